//! The service under a flood of unique names (issue 22), for figures, not a
//! pass/fail test: `#[ignore]`d, run by hand.
//!
//!   CNAME_GUARD_LOOKUP=target/release/cname-guard-lookup FLOOD_CONNS=512 FLOOD_SECS=10 \
//!   FLOOD_RATE=6000 FLOOD_NAMES=tenants|unlisted FLOOD_ARGS="--unlisted-hosts refuse" \
//!   cargo test -p cname-guard-lookup --test flood -- --ignored --nocapture
//!
//! A flood on FLOOD_CONNS keep-alive connections, each lookup a name never
//! asked before (`tenants`: under the platform zone, answered by BIND's
//! wildcard; `unlisted`: under no platform zone, NXDOMAIN), while one
//! legitimate client asks for a known name 100 times a second. Prints the
//! flood's answers by status, the legitimate lookups' latency and failures,
//! the DNS questions BIND received, and the service's peak memory.

mod support;

use cname_guard_testkit::lookup_bin;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{dns, Scratch};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One keep-alive connection; reopened after an error.
struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn get(&mut self, host: &str) -> Option<u16> {
        let r = self.exchange(host);
        if r.is_none() {
            self.conn = None;
        }
        r
    }

    fn exchange(&mut self, host: &str) -> Option<u16> {
        if self.conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            s.set_nodelay(true).ok()?;
            self.conn = Some(BufReader::new(s));
        }
        let c = self.conn.as_mut()?;
        let req = format!("GET /v1/ownership?host={host} HTTP/1.1\r\nHost: lookup\r\n\r\n");
        c.get_mut().write_all(req.as_bytes()).ok()?;
        let mut line = String::new();
        c.read_line(&mut line).ok()?;
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut length = 0usize;
        loop {
            line.clear();
            if c.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        c.read_exact(&mut body).ok()?;
        Some(status)
    }
}

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    field.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
#[ignore = "figures for BENCHMARKS.md; run by hand"]
fn flood_figures() {
    let conns: usize = env("FLOOD_CONNS", "512").parse().expect("FLOOD_CONNS");
    let secs: u64 = env("FLOOD_SECS", "10").parse().expect("FLOOD_SECS");
    let names = env("FLOOD_NAMES", "tenants");
    let extra = env("FLOOD_ARGS", "");
    // Offered lookups a second in all (0: each connection as fast as it is answered).
    let rate: f64 = env("FLOOD_RATE", "0").parse().expect("FLOOD_RATE");
    let every = if rate > 0.0 { Duration::from_secs_f64(conns as f64 / rate) } else { Duration::ZERO };
    let bind = dns::Bind::with_zone_dir(&dns::demo_zone_dir());
    let dir = Scratch::new("flood");
    let db = format!("sqlite:{}", dir.path("store.db").display());
    let registry = dns::repo().join("envoy/registry.json");
    let bin = lookup_bin();
    let mut child = Command::new(&bin)
        .args(["serve", "--database", &db, "--listen", "127.0.0.1:0", "--verifier", "off", "--quiet"])
        .args(["--dns-server", &bind.addr(), "--import", registry.to_str().expect("utf-8")])
        .args(extra.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("stderr.log")).expect("log"))
        .spawn()
        .expect("start the service");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let service = Service(child);
    let port: u16 = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).expect("listening on");
    let pid = service.0.id();
    let legit = "custom.myclientsite.com";
    assert_eq!(Client { port, conn: None }.get(legit), Some(200), "warm-up");
    let before = bind.queries().len();

    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let salt = std::process::id();
    let flood: Vec<_> = (0..conns)
        .map(|t| {
            let (stop, statuses, names) = (stop.clone(), statuses.clone(), names.clone());
            std::thread::spawn(move || {
                let mut client = Client { port, conn: None };
                let mut mine = BTreeMap::<u16, u64>::new();
                let mut i = 0u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // Paced: the next lookup is due `every` after the last was due.
                    next += every;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    i += 1;
                    let host = match names.as_str() {
                        "unlisted" => format!("f{salt}-{t}-{i}.flood.example"),
                        _ => format!("f{salt}-{t}-{i}.tenants.saas.example"),
                    };
                    *mine.entry(client.get(&host).unwrap_or(0)).or_default() += 1;
                }
                let mut all = statuses.lock().unwrap_or_else(|e| e.into_inner());
                for (s, n) in mine {
                    *all.entry(s).or_default() += n;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut client = Client { port, conn: None };
    let (mut latencies, mut failed) = (Vec::new(), BTreeMap::<u16, u64>::new());
    while started.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        match client.get(legit) {
            Some(200) => {}
            other => *failed.entry(other.unwrap_or(0)).or_default() += 1,
        }
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10).saturating_sub(t.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let statuses = statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let total: u64 = statuses.values().sum();
    let questions = bind.queries().len() - before;
    println!(
        "flood {names} on {conns} connections, offered {} for {elapsed:.1} s, {} {extra}",
        if rate > 0.0 { format!("{rate}/s") } else { "closed loop".into() },
        bin.display()
    );
    println!(
        "  flood answers: {total} ({:.0}/s) by status {statuses:?} (0: connection error or timeout)",
        total as f64 / elapsed
    );
    println!("  DNS questions BIND received: {questions} ({:.2} per flood lookup)", questions as f64 / total as f64);
    println!(
        "  legitimate lookups: {} (not 200, by status: {failed:?}), p50 {:?} p99 {:?} max {:?}",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!("  service peak memory (VmHWM): {} MiB", peak_memory_kib(pid) / 1024);
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default();
    let overloaded = log.lines().filter(|l| l.contains(r#"error="overloaded""#)).count();
    let per_zone = log.lines().filter(|l| l.contains("(--dns-max-in-flight-per-zone)")).count();
    let overall = log.lines().filter(|l| l.contains("(--dns-max-in-flight)")).count();
    println!("  shed (overloaded): {overloaded}; DNS questions refused: {per_zone} per zone, {overall} overall");
}
