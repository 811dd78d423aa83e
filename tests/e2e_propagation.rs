//! Issue 12's propagation, measured end to end: real Envoy with two workers
//! (`cache.ttl_seconds` 300, the feed on at its default interval), the real
//! `cname-guard-lookup serve` on SQLite and on PostgreSQL, BIND for DNS.
//! Four changes through the management API (activating a pending hostname,
//! blocking, deleting, suspending its account), 3 times each, each after
//! both workers have cached the old verdict; the time from the API's answer
//! to the first response of each worker that shows the new verdict. Every
//! one must be under 2 s.
//!
//! `make bench-propagation` runs the ignored `bench_propagation_*` tests:
//! the same with 20 repetitions (CNAME_GUARD_PROPAGATION_REPS), p50/p99
//! printed (docs/benchmarks.md, "Change propagation").
//!
//! DNS records live 300 s, as long as the cache: within the test only the
//! feed can change a cached verdict.

use cname_guard_testkit as common;

use common::dns::Bind;
use common::feed::{edge, per_worker_connections};
use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
/// Repetitions of each change in `make test`; the benchmark's are
/// `bench_repetitions()`.
const TEST_REPETITIONS: usize = 3;
/// What the issue promises: a change reaches every worker within 2 s.
const BOUND: Duration = Duration::from_secs(2);
/// How long a poll goes on before the test fails with what Envoy answers.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Between two requests of a poll: fine enough for the figures, and leaves
/// the 2 cores to Envoy and the service.
const POLL: Duration = Duration::from_millis(5);

const REGISTRY: &str = r#"{
  "accounts": { "acct-saas": {}, "acct-sus": {} },
  "zones": { "saas.example": "acct-saas", "sus.example": "acct-sus" }
}"#;

/// A zone whose records live 300 s (negative answers 1 s, so a name added
/// with nsupdate is seen at once).
fn zone(name: &str, records: &str) -> String {
    common::dns::zone_with_ttl(name, 300, records)
}

fn pending_host(i: usize) -> String {
    format!("p{i}.brand.example")
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Edge {
    envoy: Envoy,
    bind: Bind,
    lookup_port: u16,
    admin_port: u16,
    _lookup: Proc,
    _origin: Proc,
    _pg: Option<Postgres>,
    _dir: Scratch,
}

impl Edge {
    fn start(backend: Backend) -> Edge {
        let bind = Bind::start(&[
            ("saas.example", zone("saas.example", "edge IN A 192.0.2.10\n").as_str()),
            ("sus.example", zone("sus.example", "edge IN A 192.0.2.20\n").as_str()),
            (
                "brand.example",
                zone(
                    "brand.example",
                    "blk IN CNAME edge.saas.example.\ndel IN CNAME edge.saas.example.\nsus IN CNAME edge.sus.example.\n",
                )
                .as_str(),
            ),
        ]);
        let dir = Scratch::new("e2e-propagation");
        let registry = dir.0.join("registry.json");
        std::fs::write(&registry, REGISTRY).expect("write registry");
        let token_file = dir.0.join("admin-token");
        std::fs::write(&token_file, ADMIN_TOKEN).expect("write token");
        let pg = matches!(backend, Backend::Postgres).then(Postgres::start);
        let mut args = match &pg {
            Some(pg) => lookup_serve_args_on(&pg.url(), &registry),
            None => lookup_serve_args(&registry),
        };
        // The verifier off: a pending hostname becomes active only through `verify`.
        let flags = [
            "--dns-server",
            &bind.addr(),
            "--admin-token-file",
            token_file.to_str().expect("utf-8"),
            "--verifier",
            "off",
        ];
        args.extend(flags.map(String::from));
        let (lookup, ports) =
            start_service_ports(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        let (envoy, origin) = edge(ports[0], json!({}));
        let edge = Edge {
            envoy,
            bind,
            lookup_port: ports[0],
            admin_port: ports[1],
            _lookup: lookup,
            _origin: origin,
            _pg: pg,
            _dir: dir,
        };
        // The first feed call learns the seq; a change is followed from the second.
        wait_for("the poller to follow the feed", GIVE_UP, || (edge.envoy.stat("changes.polls") >= 2).then_some(()));
        edge
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request { path: path.into(), ..Request::get("127.0.0.1").method(method) }
            .header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string().as_bytes());
        }
        let r = send(self.admin_port, &req);
        (r.status, r.try_json().unwrap_or(Value::Null))
    }

    fn create(&self, account: &str, hostname: &str) -> Value {
        let path = format!("/v1/accounts/{account}/custom_hostnames");
        let (status, h) = self.api("POST", &path, Some(json!({ "hostname": hostname })));
        assert_eq!(status, 201, "{h}");
        h
    }

    /// An API call expected to answer `want`; returns the moment it answered.
    fn change(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Instant {
        let (status, answer) = self.api(method, path, body);
        let at = Instant::now();
        assert_eq!(status, want, "{method} {path}: {answer}");
        at
    }

    /// Requests `host` (a fresh connection each) until both workers have
    /// answered `status`, every answer being `status`: the verdict is cached.
    fn warm(&self, host: &str, status: u16) {
        let mut before = per_worker_connections(&self.envoy);
        let mut served = [false; 2];
        let start = Instant::now();
        while !served.iter().all(|&s| s) {
            let r = self.envoy.request(host);
            assert_eq!(r.status, status, "{host} while warming: {}", r.body_text());
            let after = per_worker_connections(&self.envoy);
            if let Some(w) = worker(&before, &after) {
                served[w] = true;
            }
            before = after;
            assert!(start.elapsed() < GIVE_UP, "{host}: one worker got no connection: {before:?}");
        }
    }

    /// Polls `host` from `since` (the API's answer), a fresh connection per
    /// request, until each worker has answered `status`; the time of each
    /// worker's first such answer.
    fn propagation(&self, host: &str, status: u16, since: Instant) -> [Duration; 2] {
        let mut before = per_worker_connections(&self.envoy);
        let mut seen: [Option<Duration>; 2] = [None, None];
        loop {
            let r = self.envoy.request(host);
            let at = since.elapsed();
            let after = per_worker_connections(&self.envoy);
            if r.status == status {
                if let Some(w) = worker(&before, &after) {
                    seen[w].get_or_insert(at);
                }
            }
            before = after;
            if let [Some(a), Some(b)] = seen {
                return [a, b];
            }
            if since.elapsed() > GIVE_UP {
                let answer = get(self.lookup_port, &format!("/v1/ownership?host={host}")).body_text();
                panic!("{host}: not {status} on every worker after {GIVE_UP:?} ({seen:?}): Envoy answers {} {:?}, the lookup {answer}", r.status, r.body_text());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The worker whose connection count moved between two reads, if exactly one did.
fn worker(before: &[u64], after: &[u64]) -> Option<usize> {
    let moved: Vec<usize> = (0..after.len()).filter(|&i| before.get(i) != after.get(i)).collect();
    match moved[..] {
        [w] if w < 2 => Some(w),
        _ => None,
    }
}

/// Per kind of change: each repetition's time to each worker.
struct Figures {
    kind: &'static str,
    samples: Vec<[Duration; 2]>,
}

impl Figures {
    fn new(kind: &'static str) -> Figures {
        Figures { kind, samples: Vec::new() }
    }

    /// Nearest-rank percentile of the first worker's (`first`) or the last
    /// worker's times.
    fn percentile(&self, p: f64, first: bool) -> Duration {
        let mut v: Vec<Duration> =
            self.samples.iter().map(|[a, b]| if first { *a.min(b) } else { *a.max(b) }).collect();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// Every repetition under the bound on both workers.
    fn check(&self, backend: &str) {
        for (i, s) in self.samples.iter().enumerate() {
            assert!(
                s.iter().all(|d| *d < BOUND),
                "{backend} {} #{i}: {s:?} (workers 0, 1), not under {BOUND:?}",
                self.kind
            );
        }
    }

    fn print(&self, backend: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "propagation {backend} {:<10} n={} first worker p50 {:.0} ms p99 {:.0} ms; both workers p50 {:.0} ms p99 {:.0} ms",
            self.kind,
            self.samples.len(),
            ms(self.percentile(50.0, true)),
            ms(self.percentile(99.0, true)),
            ms(self.percentile(50.0, false)),
            ms(self.percentile(99.0, false)),
        );
    }
}

/// Pending (CNAMEd in, not proven) to active: 530 (1016) to 200. The
/// hostnames are created before their CNAME exists, so they stay pending.
fn activations(e: &Edge, reps: usize) -> Figures {
    let mut ids = Vec::new();
    for i in 0..reps {
        let h = e.create("acct-saas", &pending_host(i));
        assert_eq!(h["status"], "pending", "{h}");
        let id = h["id"].as_str().expect("id").to_string();
        let token = h["ownership_verification"]["value"].as_str().expect("token").to_string();
        ids.push((id, token));
    }
    let cnames: Vec<String> =
        (0..reps).map(|i| format!("update add {}. 300 IN CNAME edge.saas.example.", pending_host(i))).collect();
    e.bind.update("brand.example", &cnames.iter().map(String::as_str).collect::<Vec<_>>());
    let mut fig = Figures::new("activate");
    for (i, (id, token)) in ids.iter().enumerate() {
        let host = pending_host(i);
        // The service sees the CNAME once the NXDOMAIN it cached (1 s) is gone.
        wait_for(&format!("{host} pending behind its CNAME"), GIVE_UP, || {
            let a = get(e.lookup_port, &format!("/v1/ownership?host={host}")).try_json()?;
            (a["custom_hostname"] == "pending" && a["target_account"] == "acct-saas").then_some(())
        });
        e.warm(&host, 530);
        e.bind.update("brand.example", &[&format!("update add _cname-guard.{host}. 300 IN TXT \"{token}\"")]);
        let path = format!("/v1/accounts/acct-saas/custom_hostnames/{id}/verify");
        let (status, h) = e.api("POST", &path, None);
        let since = Instant::now();
        assert_eq!((status, h["status"].as_str()), (200, Some("active")), "{h}");
        fig.samples.push(e.propagation(&host, 200, since));
    }
    fig
}

/// Active to blocked: 200 to 409 (1014); unblocked again between repetitions.
fn blocks(e: &Edge, reps: usize) -> Figures {
    let h = e.create("acct-saas", "blk.brand.example");
    assert_eq!(h["status"], "active", "{h}");
    let path = format!("/v1/accounts/acct-saas/custom_hostnames/{}", h["id"].as_str().expect("id"));
    let mut fig = Figures::new("block");
    for _ in 0..reps {
        e.warm("blk.brand.example", 200);
        let since = e.change("PATCH", &path, Some(json!({"status": "blocked"})), 200);
        fig.samples.push(e.propagation("blk.brand.example", 409, since));
        let since = e.change("PATCH", &path, Some(json!({"status": "active"})), 200);
        e.propagation("blk.brand.example", 200, since);
    }
    fig
}

/// An active hostname deleted: 200 to 409 (1014); created again between
/// repetitions (a change of its own the feed carries).
fn deletes(e: &Edge, reps: usize) -> Figures {
    let mut fig = Figures::new("delete");
    for _ in 0..reps {
        let h = e.create("acct-saas", "del.brand.example");
        assert_eq!(h["status"], "active", "{h}");
        e.propagation("del.brand.example", 200, Instant::now());
        e.warm("del.brand.example", 200);
        let path = format!("/v1/accounts/acct-saas/custom_hostnames/{}", h["id"].as_str().expect("id"));
        let since = e.change("DELETE", &path, None, 204);
        fig.samples.push(e.propagation("del.brand.example", 409, since));
    }
    fig
}

/// The account of an active hostname suspended: 200 to 403 (1004); resumed
/// between repetitions. Its zone's own host goes with it.
fn suspensions(e: &Edge, reps: usize) -> Figures {
    let h = e.create("acct-sus", "sus.brand.example");
    assert_eq!(h["status"], "active", "{h}");
    let mut fig = Figures::new("suspend");
    for _ in 0..reps {
        e.warm("sus.brand.example", 200);
        e.warm("edge.sus.example", 200);
        let since = e.change("PUT", "/v1/accounts/acct-sus", Some(json!({"suspended": true})), 200);
        fig.samples.push(e.propagation("sus.brand.example", 403, since));
        let zone_host = e.propagation("edge.sus.example", 403, since);
        assert!(zone_host.iter().all(|d| *d < BOUND), "edge.sus.example: {zone_host:?}");
        let since = e.change("PUT", "/v1/accounts/acct-sus", Some(json!({"suspended": false})), 200);
        e.propagation("sus.brand.example", 200, since);
    }
    fig
}

/// Every kind of change `reps` times on `backend`, each under the bound;
/// the figures are printed when `print`.
fn measure(backend: Backend, name: &str, reps: usize, print: bool) {
    let e = Edge::start(backend);
    let figures = [activations(&e, reps), blocks(&e, reps), deletes(&e, reps), suspensions(&e, reps)];
    assert_eq!(e.envoy.stat("changes.failed"), 0, "the feed never failed");
    assert_eq!(e.envoy.stat("changes.resets"), 0, "no reset");
    let backend = format!("{} {name}", std::env::var("CNAME_GUARD_BUILD").unwrap_or_else(|_| "wasm".into()));
    if print {
        figures.iter().for_each(|f| f.print(&backend));
    }
    figures.iter().for_each(|f| f.check(&backend));
}

#[test]
fn changes_reach_both_workers_within_two_seconds_on_sqlite() {
    measure(Backend::Sqlite, "sqlite", TEST_REPETITIONS, false);
}

#[test]
fn changes_reach_both_workers_within_two_seconds_on_postgres() {
    measure(Backend::Postgres, "postgres", TEST_REPETITIONS, false);
}

/// The benchmark's repetitions: CNAME_GUARD_PROPAGATION_REPS, 20 by default.
fn bench_repetitions() -> usize {
    std::env::var("CNAME_GUARD_PROPAGATION_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

#[test]
#[ignore = "a benchmark: `make bench-propagation` runs it for both builds"]
fn bench_propagation_sqlite() {
    measure(Backend::Sqlite, "sqlite", bench_repetitions(), true);
}

#[test]
#[ignore = "a benchmark: `make bench-propagation` runs it for both builds"]
fn bench_propagation_postgres() {
    measure(Backend::Postgres, "postgres", bench_repetitions(), true);
}
