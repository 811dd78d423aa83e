//! `make bench-tls`: issue 24's figures for certificates by on-demand SDS,
//! in real Envoy (one build: CNAME_GUARD_BUILD) with the real
//! `cname-guard-lookup serve --xds-listen` over a store seeded with
//! certificates. A benchmark, not a test: ignored by `make test`; it prints
//! its figures (BENCHMARKS.md, "TLS", records them) and fails only when
//! something does not work (a handshake, a request).
//!
//! - `CNAME_GUARD_TLS_CERTS` (10,000) custom hostnames with certificates,
//!   seeded by `lookup/examples/seed_certificates.rs` (one bench CA, ECDSA
//!   P-256; the client verifies every handshake against it and the SNI, so
//!   each one proves that Envoy presented that hostname's certificate).
//! - Each hostname's first handshake, one at a time (Envoy fetches the
//!   certificate by SDS during it): p50, p99; Envoy's memory before and
//!   after, per certificate.
//! - A handshake with the cached certificate against the same handshake on
//!   a second listener of the same Envoy that has the same certificate
//!   static (resumption off on both, as the on-demand selector requires),
//!   interleaved; then requests/s over TLS (h2load, h2, keep-alive) on
//!   each, on a direct-response route and on the proxied one.
//! - The same hostnames once each on a fresh Envoy with the service's
//!   per-node bound in force (`CNAME_GUARD_TLS_BOUND`, 1,000): its memory.
//!
//! Envoy runs one worker (`--concurrency 1`) pinned to CPU 0; the client,
//! h2load, the service, the origin and BIND to CPU 1.

use cname_guard_testkit as common;

use common::dns::{zone_with_ttl, Bind};
use common::load::{memory, mib, Memory};
use common::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::json;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const XDS_TOKEN: &str = "bench-tls-xds-token-0123456789abcdef";
const KEK: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
/// The hostnames' account owns the zone their CNAME points into, so the
/// filter allows them (a cross-account CNAME to an active custom hostname).
const REGISTRY: &str = r#"{ "accounts": { "acct-saas": {} }, "zones": { "saas.example": "acct-saas" } }"#;
/// Handshakes per listener and round in the cached/static comparison.
const PER_ROUND: usize = 25;
const ROUNDS: usize = 100;
/// h2load: connections, streams per connection, seconds per run, runs per listener.
const H2_CLIENTS: u32 = 8;
const H2_STREAMS: u32 = 8;
const H2_SECONDS: u32 = 3;
const H2_ROUNDS: usize = 5;
/// The direct-response route added for h2load (as `make bench`'s).
const DIRECT: &str = "/bench-direct";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

#[test]
#[ignore = "a benchmark: `make bench-tls` runs it for both builds"]
fn bench_tls() {
    let started = Instant::now();
    let count = env_usize("CNAME_GUARD_TLS_CERTS", 10_000);
    let bound = env_usize("CNAME_GUARD_TLS_BOUND", 1_000);
    let pinned = pin_self();
    let seed = Seeded::new(count);
    println!(
        "bench-tls ({:?} build): {count} hostnames with certificates seeded in {:.1} s; Envoy --concurrency 1{}",
        build(),
        seed.took.as_secs_f64(),
        if pinned { " on CPU 0, everything else on CPU 1" } else { " (not pinned: taskset or a second CPU missing)" }
    );
    let bind = Bind::start(&[
        ("saas.example", &zone_with_ttl("saas.example", 300, "edge IN A 127.0.0.1\n")),
        (&seed.suffix, &zone_with_ttl(&seed.suffix, 300, "* IN CNAME edge.saas.example.\n")),
    ]);
    let (_origin, origin_port) = origin();
    let client = Client::new(&seed.ca);
    let first = seed.hostnames[0].clone();

    // Unbounded: every certificate stays in Envoy (the bound above the count).
    let edge = Edge::start(&seed, &bind, origin_port, count + 1_000, pinned);
    let unbounded = first_handshakes(&edge, &client, &seed.hostnames);
    unbounded.print("no bound", count + 1_000);
    let (on_demand, fixed) = compare(&edge, &client, &first);
    let rps = requests_per_second(&edge, &first, pinned);
    drop(edge);

    // Bounded: the service removes the least recently requested secrets.
    let edge = Edge::start(&seed, &bind, origin_port, bound, pinned);
    let bounded = first_handshakes(&edge, &client, &seed.hostnames);
    bounded.print("bound", bound);
    // What the eviction did to a name and to clients without SNI.
    let held = secrets(&edge.envoy);
    println!(
        "  after the bounded pass Envoy holds {} secrets, {first} {}, `fallback` {}",
        held.len(),
        if held.contains(&first) { "among them" } else { "not among them" },
        if held.iter().any(|n| n == "fallback") { "among them" } else { "not among them" },
    );
    let again = client.handshake(edge.envoy.https_port, &first, true);
    let no_sni = client.handshake(edge.envoy.https_port, "127.0.0.1", false);
    println!(
        "  after the bounded pass: {first}{} again: {}; a client without SNI (the `fallback` secret, held outside \
         the bound): {}",
        if bound < count { " (evicted)" } else { "" },
        show(&again),
        show(&no_sni)
    );
    drop(edge);

    println!("bench-tls ({:?} build), {count} certificates: the figures", build());
    println!("  | figure | value |");
    println!("  |---|---|");
    for (label, pass) in [("no bound".to_string(), &unbounded), (format!("bound {bound}"), &bounded)] {
        println!(
            "  | first handshake (SDS fetch), {count} names one at a time, {label} | p50 {}, p99 {}; \
             per handshake Envoy CPU {}, service CPU {} |",
            ms(pass.pct(50.0)),
            ms(pass.pct(99.0)),
            ms(pass.cpu_per(pass.envoy_cpu)),
            ms(pass.cpu_per(pass.service_cpu)),
        );
    }
    let n = (PER_ROUND * ROUNDS) as f64;
    println!(
        "  | handshake, cached on demand / static ({ROUNDS} interleaved rounds of {PER_ROUND}) | p50 {} / {} ({:.3}), \
         p99 {} / {}; Envoy CPU per handshake {} / {} ({:.3}) |",
        ms(pct(&on_demand.times, 50.0)),
        ms(pct(&fixed.times, 50.0)),
        ratio(pct(&on_demand.times, 50.0), pct(&fixed.times, 50.0)),
        ms(pct(&on_demand.times, 99.0)),
        ms(pct(&fixed.times, 99.0)),
        ms(Duration::from_nanos((on_demand.envoy_cpu as f64 / n) as u64)),
        ms(Duration::from_nanos((fixed.envoy_cpu as f64 / n) as u64)),
        on_demand.envoy_cpu as f64 / fixed.envoy_cpu as f64,
    );
    for (label, pass, limit) in [("no bound", &unbounded, None), ("bound", &bounded, Some(bound))] {
        let plateau = limit
            .and_then(|b| pass.curve.iter().find(|(names, _)| *names >= b))
            .map_or(String::new(), |(names, m)| format!(" ({} after the first {names} names)", mib(m.rss)));
        println!(
            "  | Envoy memory, {count} names once each, {} | RSS {} -> {}{plateau}, {:.1} kB per secret held; \
             allocated {} -> {}, {:.1} kB per secret held; secrets held {} -> {} |",
            limit.map_or(label.to_string(), |b| format!("{label} {b}")),
            mib(pass.before.rss),
            mib(pass.after.rss),
            pass.per_secret_kb(|m| m.rss),
            mib(pass.before.allocated),
            mib(pass.after.allocated),
            pass.per_secret_kb(|m| m.allocated),
            pass.held.0,
            pass.held.1,
        );
    }
    for r in &rps {
        println!(
            "  | requests/s over TLS, {} (h2load -c{H2_CLIENTS} -m{H2_STREAMS}, h2, {H2_ROUNDS} interleaved runs of \
             {H2_SECONDS} s each) | on demand {:.0} / static {:.0} ({:.3}; per round {:.2}-{:.2}); Envoy CPU per \
             request {} / {} ({:.3}); Envoy's core {:.0}% busy, other processes {:.0}% of it |",
            r.route,
            r.on_demand,
            r.fixed,
            r.on_demand / r.fixed,
            r.round_ratios.0,
            r.round_ratios.1,
            us(r.on_demand_cpu),
            us(r.fixed_cpu),
            r.on_demand_cpu / r.fixed_cpu,
            r.busy * 100.0,
            r.others * 100.0,
        );
    }
    println!("bench-tls ({:?} build): {:.0} s in all", build(), started.elapsed().as_secs_f64());
}

// --- the store -------------------------------------------------------------

/// The seeded store and what the client and the static listener need.
struct Seeded {
    db: PathBuf,
    kek: PathBuf,
    token: PathBuf,
    registry: PathBuf,
    ca: PathBuf,
    first_chain: PathBuf,
    first_key: PathBuf,
    suffix: String,
    hostnames: Vec<String>,
    took: Duration,
    _dir: Scratch,
}

fn seed_bin() -> PathBuf {
    let path = std::env::var_os("CNAME_GUARD_SEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/examples/seed_certificates"));
    assert!(path.exists(), "{} is missing: run `make bench-tls` (or set CNAME_GUARD_SEED)", path.display());
    path
}

impl Seeded {
    fn new(count: usize) -> Seeded {
        let dir = shm_scratch("bench-tls");
        let file = |name: &str, text: &str| {
            let path = dir.0.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        let (kek, token, registry) = (file("kek", KEK), file("xds-token", XDS_TOKEN), file("registry.json", REGISTRY));
        let db = dir.0.join("store.db");
        let suffix = "bench.example".to_string();
        let t = Instant::now();
        let out = Command::new(seed_bin())
            .args(["--database", &format!("sqlite:{}", db.display()), "--kek-file"])
            .arg(&kek)
            .args(["--count", &count.to_string(), "--suffix", &suffix, "--out"])
            .arg(&dir.0)
            .output()
            .expect("run seed_certificates");
        assert!(out.status.success(), "seed_certificates: {}", String::from_utf8_lossy(&out.stderr));
        let took = t.elapsed();
        let hostnames: Vec<String> = std::fs::read_to_string(dir.0.join("hostnames.txt"))
            .expect("hostnames.txt")
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(hostnames.len(), count);
        Seeded {
            db,
            kek,
            token,
            registry,
            ca: dir.0.join("ca.pem"),
            first_chain: dir.0.join("first.pem"),
            first_key: dir.0.join("first-key.pem"),
            suffix,
            hostnames,
            took,
            _dir: dir,
        }
    }
}

/// A scratch directory in memory (/dev/shm) where there is one: the seed
/// writes 20,000 SQLite transactions, each synced.
fn shm_scratch(tag: &str) -> Scratch {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let dir = shm.join(format!("cname-guard-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::create_dir_all(&dir).is_ok() {
            return Scratch(dir);
        }
    }
    Scratch::new(tag)
}

// --- the edge --------------------------------------------------------------

/// The service (SDS and lookups) and Envoy with the shipped HTTPS listener
/// (on demand) and a copy of it with a static certificate.
struct Edge {
    envoy: Envoy,
    static_port: u16,
    service: Proc,
}

impl Edge {
    fn start(seed: &Seeded, bind: &Bind, origin_port: u16, bound: usize, pinned: bool) -> Edge {
        let mut args = lookup_serve_args_on(&format!("sqlite:{}", seed.db.display()), &seed.registry);
        args.extend(
            ["--verifier", "off", "--quiet", "--dns-server", &bind.addr(), "--xds-listen", "127.0.0.1:0"]
                .map(String::from),
        );
        for (flag, path) in [("--xds-token-file", &seed.token), ("--kek-file", &seed.kek)] {
            args.extend([flag.to_string(), path.display().to_string()]);
        }
        args.extend(["--xds-max-secrets-per-node".to_string(), bound.to_string()]);
        // No admin token: `listening on`, then `xds listening on`.
        let (service, ports) =
            start_service_ports(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        let mut opts = EnvoyOpts::new(plugin_config(json!({})), ports[0], origin_port);
        opts.https = true;
        opts.xds_port = ports[1];
        opts.xds_token = XDS_TOKEN.to_string();
        let edit = |yaml: String| with_direct_route(with_static_listener(yaml, &seed.first_chain, &seed.first_key));
        let envoy = Envoy::start_with(&opts, Some(&edit));
        let static_port = envoy.listener("edge_static");
        if pinned {
            taskset("0", envoy.proc.child.id());
        }
        // Ready when the ADS stream is up and the fallback prefetched: a
        // handshake without SNI gets it.
        let client = Client::new(&seed.ca);
        wait_for("a handshake without SNI (the fallback)", Duration::from_secs(20), || {
            client.handshake(envoy.https_port, "127.0.0.1", false).ok()
        });
        Edge { envoy, static_port, service }
    }

    fn pid(&self) -> u32 {
        self.envoy.proc.child.id()
    }
}

/// The shipped HTTPS listener copied as `edge_static` on port 0, its
/// certificate selector replaced by the static certificate: everything else
/// (resumption off, ALPN, the connection manager and the filter) the same.
fn with_static_listener(yaml: String, chain: &Path, key: &Path) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "- name: edge_https").expect("the shipped HTTPS listener");
    let end = start + lines[start..].iter().position(|l| *l == "  clusters:").expect("clusters after the listeners");
    let mut copy: Vec<String> = Vec::new();
    let mut skipping: Option<usize> = None;
    let mut replaced = false;
    for line in &lines[start..end] {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if let Some(at) = skipping {
            if indent > at || t.is_empty() {
                continue;
            }
            skipping = None;
        }
        let pad = " ".repeat(indent);
        if t == "- name: edge_https" {
            copy.push(format!("{pad}- name: edge_static"));
        } else if t == "stat_prefix: edge_https" {
            copy.push(format!("{pad}stat_prefix: edge_static"));
        } else if t.ends_with("# https-listener") {
            copy.push(format!("{pad}socket_address: {{ address: 127.0.0.1, port_value: 0 }}"));
        } else if t == "custom_tls_certificate_selector:" {
            skipping = Some(indent);
            replaced = true;
            copy.push(format!("{pad}tls_certificates:"));
            copy.push(format!("{pad}- certificate_chain: {{ filename: {} }}", chain.display()));
            copy.push(format!("{pad}  private_key: {{ filename: {} }}", key.display()));
        } else {
            copy.push(line.to_string());
        }
    }
    assert!(replaced, "no custom_tls_certificate_selector in the shipped HTTPS listener");
    let mut out: Vec<String> = lines[..end].iter().map(|l| l.to_string()).collect();
    out.extend(copy);
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// A `direct_response` route at `DIRECT` ahead of the proxied one, in the
/// connection manager both HTTPS listeners share: the filter runs as on
/// any route, then Envoy answers itself, with no origin in the way.
fn with_direct_route(yaml: String) -> String {
    let mut out = String::with_capacity(yaml.len() + 200);
    let mut done = false;
    for line in yaml.lines() {
        if !done && line.trim() == "- match: { prefix: \"/\" }" {
            let pad = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{pad}- match: {{ path: \"{DIRECT}\" }}\n"));
            out.push_str(&format!(
                "{pad}  direct_response: {{ status: 200, body: {{ inline_string: \"direct\" }} }}\n"
            ));
            done = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "no catch-all route in the shipped YAML");
    out
}

// --- pinning and CPU time --------------------------------------------------

fn taskset(cpus: &str, pid: u32) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// This process (the client) and everything it starts on CPU 1; Envoy is
/// moved to CPU 0 once started. False where that cannot be done.
fn pin_self() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) && taskset("1", std::process::id())
}

/// Nanoseconds on CPU of every thread of `pid`.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU 0's time not idle, ns (`/proc/stat`, in USER_HZ of 10 ms).
fn cpu0_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu0 ")) else { return 0 };
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = f.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy * 10_000_000
}

// --- the client ------------------------------------------------------------

/// A TLS client (rustls, ring) without resumption: one that verifies
/// against the bench CA, one that takes any certificate (the fallback is
/// self-signed).
struct Client {
    verified: Arc<ClientConfig>,
    any: Arc<ClientConfig>,
}

impl Client {
    fn new(ca: &Path) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca.pem") {
            roots.add(cert.expect("a certificate in ca.pem")).expect("a root");
        }
        let config = |verifier: Option<Arc<dyn ServerCertVerifier>>| {
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("TLS versions");
            let mut c = match verifier {
                Some(v) => builder.dangerous().with_custom_certificate_verifier(v).with_no_client_auth(),
                None => builder.with_root_certificates(roots.clone()).with_no_client_auth(),
            };
            c.resumption = Resumption::disabled();
            c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(c)
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
            .build()
            .expect("verifier");
        Client { verified: config(None), any: config(Some(Arc::new(AnyCertificate(webpki)))) }
    }

    /// Connects and completes a handshake with the TLS name `name` (an IP
    /// address: no SNI); the time from connect to the handshake's end.
    fn handshake(&self, port: u16, name: &str, verify: bool) -> Result<Duration, String> {
        let config = if verify { &self.verified } else { &self.any };
        let server = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut tls = ClientConnection::new(config.clone(), server).map_err(|e| e.to_string())?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        let took = start.elapsed();
        tls.send_close_notify();
        let _ = tls.complete_io(&mut tcp);
        Ok(took)
    }
}

/// Takes any certificate; signatures still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

// --- the figures -----------------------------------------------------------

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn show(r: &Result<Duration, String>) -> String {
    match r {
        Ok(d) => format!("handshake in {}", ms(*d)),
        Err(e) => format!("FAILED ({e})"),
    }
}

/// Every hostname's first handshake, in order, one at a time.
struct Pass {
    times: Vec<Duration>,
    before: Memory,
    after: Memory,
    /// (names requested so far, Envoy's memory then), every tenth of the pass.
    curve: Vec<(usize, Memory)>,
    envoy_cpu: u64,
    service_cpu: u64,
    /// Secrets Envoy holds before and after (the fallback included).
    held: (usize, usize),
    took: Duration,
}

impl Pass {
    fn pct(&self, p: f64) -> Duration {
        pct(&self.times, p)
    }

    /// Envoy's growth over the secrets it holds more than before (1,000
    /// bytes a kB).
    fn per_secret_kb(&self, f: impl Fn(&Memory) -> u64) -> f64 {
        let more = self.held.1.saturating_sub(self.held.0).max(1);
        (f(&self.after) as f64 - f(&self.before) as f64) / 1000.0 / more as f64
    }

    fn cpu_per(&self, ns: u64) -> Duration {
        Duration::from_nanos(ns / self.times.len().max(1) as u64)
    }

    fn print(&self, label: &str, bound: usize) {
        println!(
            "  {} first handshakes, {label} ({bound}), in {:.1} s: p50 {} p99 {} max {}; secrets held {} -> {}",
            self.times.len(),
            self.took.as_secs_f64(),
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.times.last().copied().unwrap_or_default()),
            self.held.0,
            self.held.1,
        );
    }
}

fn first_handshakes(edge: &Edge, client: &Client, names: &[String]) -> Pass {
    // Let the start settle (the fallback, the first stats flush).
    std::thread::sleep(Duration::from_secs(1));
    let before = memory(&edge.envoy);
    let held_before = secrets_held(&edge.envoy);
    let mut curve = Vec::new();
    let step = (names.len() / 10).max(1);
    let (envoy0, service0) = (cpu_ns(edge.pid()), cpu_ns(edge.service.child.id()));
    let start = Instant::now();
    let mut times = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let took = client
            .handshake(edge.envoy.https_port, name, true)
            .unwrap_or_else(|e| panic!("first handshake for {name} (the {i}th): {e}"));
        times.push(took);
        if (i + 1) % step == 0 {
            let m = memory(&edge.envoy);
            println!("  after {:>6} names: {m}", i + 1);
            curve.push((i + 1, m));
        }
    }
    let took = start.elapsed();
    let (envoy_cpu, service_cpu) = (cpu_ns(edge.pid()) - envoy0, cpu_ns(edge.service.child.id()) - service0);
    std::thread::sleep(Duration::from_secs(1));
    let after = memory(&edge.envoy);
    let held = (held_before, secrets_held(&edge.envoy));
    times.sort();
    Pass { times, before, after, curve, envoy_cpu, service_cpu, held, took }
}

/// How many secrets Envoy holds, from its config dump: dynamic active
/// secrets, the on-demand ones and the fallback.
fn secrets_held(envoy: &Envoy) -> usize {
    secrets(envoy).len()
}

/// The names of the secrets Envoy holds.
fn secrets(envoy: &Envoy) -> Vec<String> {
    let r = get(envoy.admin, "/config_dump?resource=dynamic_active_secrets");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("the config dump is JSON");
    let configs = v["configs"].as_array().cloned().unwrap_or_default();
    configs.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect()
}

/// Handshakes on one listener: their times (sorted) and Envoy's CPU.
#[derive(Default)]
struct Handshakes {
    times: Vec<Duration>,
    envoy_cpu: u64,
}

/// The same handshake (SNI `name`, its certificate cached) on the
/// on-demand listener and on the static one, in interleaved rounds.
fn compare(edge: &Edge, client: &Client, name: &str) -> (Handshakes, Handshakes) {
    let (mut on_demand, mut fixed) = (Handshakes::default(), Handshakes::default());
    let batch = |port: u16, into: &mut Handshakes| {
        let cpu = cpu_ns(edge.pid());
        for _ in 0..PER_ROUND {
            let took = client.handshake(port, name, true).unwrap_or_else(|e| panic!("{name} on {port}: {e}"));
            into.times.push(took);
        }
        into.envoy_cpu += cpu_ns(edge.pid()) - cpu;
    };
    // Warm-up, unmeasured.
    for port in [edge.envoy.https_port, edge.static_port] {
        for _ in 0..50 {
            client.handshake(port, name, true).unwrap_or_else(|e| panic!("{name} on {port}: {e}"));
        }
    }
    for round in 0..ROUNDS {
        // ABBA: neither listener always goes first.
        if round % 2 == 0 {
            batch(edge.envoy.https_port, &mut on_demand);
            batch(edge.static_port, &mut fixed);
        } else {
            batch(edge.static_port, &mut fixed);
            batch(edge.envoy.https_port, &mut on_demand);
        }
    }
    on_demand.times.sort();
    fixed.times.sort();
    (on_demand, fixed)
}

/// One route's h2load figures, medians over the runs.
struct Rps {
    route: &'static str,
    on_demand: f64,
    fixed: f64,
    /// Envoy CPU per request, ns.
    on_demand_cpu: f64,
    fixed_cpu: f64,
    /// The lowest and highest on-demand/static ratio of a round.
    round_ratios: (f64, f64),
    /// Envoy's CPU over wall time: near 1, Envoy was the bottleneck.
    busy: f64,
    /// The share of Envoy's CPU other processes took.
    others: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// h2load over TLS (h2) for `host`, cached, on each listener, interleaved,
/// on the direct-response route and the proxied one.
fn requests_per_second(edge: &Edge, host: &str, pinned: bool) -> Vec<Rps> {
    let mut all = Vec::new();
    for (route, path) in [("direct response", DIRECT), ("proxied", "/")] {
        let mut runs: [Vec<H2Run>; 2] = [Vec::new(), Vec::new()];
        for round in 0..H2_ROUNDS {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let port = if which == 0 { edge.envoy.https_port } else { edge.static_port };
                let run = h2load(edge, port, host, path, pinned);
                println!(
                    "  h2load {route}, {}: {:.0} req/s, Envoy {} per request, Envoy's core {:.0}% busy",
                    ["on-demand", "static"][which],
                    run.rps,
                    us(run.cpu_per_request),
                    run.busy * 100.0
                );
                runs[which].push(run);
            }
        }
        let med = |which: usize, f: fn(&H2Run) -> f64| median(runs[which].iter().map(f).collect());
        let ratios: Vec<f64> = runs[0].iter().zip(&runs[1]).map(|(a, b)| a.rps / b.rps).collect();
        let round_ratios = ratios.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        all.push(Rps {
            route,
            on_demand: med(0, |r| r.rps),
            fixed: med(1, |r| r.rps),
            on_demand_cpu: med(0, |r| r.cpu_per_request),
            fixed_cpu: med(1, |r| r.cpu_per_request),
            round_ratios,
            busy: median(runs.iter().flatten().map(|r| r.busy).collect()),
            others: median(runs.iter().flatten().map(|r| r.others).collect()),
        });
    }
    all
}

struct H2Run {
    rps: f64,
    cpu_per_request: f64,
    busy: f64,
    others: f64,
}

/// One h2load run: requests/s; Envoy's CPU per request and over wall time
/// (warm-up included in the CPU, the requests and the time).
fn h2load(edge: &Edge, port: u16, host: &str, path: &str, pinned: bool) -> H2Run {
    let completed = || stats(edge.envoy.admin).get("http.edge.downstream_rq_completed").copied().unwrap_or(0);
    let (cpu0, rq0, core0, t0) = (cpu_ns(edge.pid()), completed(), cpu0_busy_ns(), Instant::now());
    let mut cmd = Command::new(if pinned { "taskset" } else { "h2load" });
    if pinned {
        cmd.args(["-c", "1", "h2load"]);
    }
    let out = cmd
        .args(["--connect-to", &format!("127.0.0.1:{port}")])
        .args(["-c", &H2_CLIENTS.to_string(), "-m", &H2_STREAMS.to_string(), "-t", "1"])
        .args(["-D", &H2_SECONDS.to_string(), "--warm-up-time", "1"])
        .arg(format!("https://{host}{path}"))
        .output()
        .expect("run h2load (make bench-tools)");
    let (cpu, rq, core, wall) = (cpu_ns(edge.pid()) - cpu0, completed() - rq0, cpu0_busy_ns() - core0, t0.elapsed());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "h2load: {text}{}", String::from_utf8_lossy(&out.stderr));
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|v| v.strip_suffix(" req/s"))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no req/s in h2load's output:\n{text}"));
    let codes = text.lines().find(|l| l.starts_with("status codes:")).unwrap_or("");
    let requests = text.lines().find(|l| l.starts_with("requests:")).unwrap_or("");
    assert!(
        codes.contains(" 0 3xx, 0 4xx, 0 5xx") && requests.contains(" 0 failed, 0 errored"),
        "h2load saw failures:\n{text}"
    );
    let tls: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("TLS Protocol") || l.starts_with("Cipher") || l.starts_with("Application protocol"))
        .collect();
    println!("    {}", tls.join(", "));
    let wall = wall.as_nanos() as f64;
    H2Run {
        rps,
        cpu_per_request: cpu as f64 / rq.max(1) as f64,
        busy: cpu as f64 / wall,
        others: (core as f64 - cpu as f64).max(0.0) / wall,
    }
}
