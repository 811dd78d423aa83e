//! Clients that hang up while their request is paused on a lookup: the
//! leader of a lookup, its waiters on the same and on the other worker.
//! Envoy (`--concurrency 2`) must stay up, answer normally afterwards, and
//! keep its heap flat from one round of hang-ups to the next: nothing a
//! paused request holds (waiter entries, schedulers, callouts) may outlive it.
//!
//! Part of `make test` for both builds; `DISCONNECT_SECONDS` (default 3)
//! sets the length of each of the two measured rounds.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, Reply as FakeReply};
use common::load::{self, mib};
use common::*;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lookup answers after this long; clients hang up well before.
const LOOKUP_DELAY: Duration = Duration::from_millis(400);
const CLIENTS: usize = 8;
/// Heap growth allowed between the two rounds (allocator noise, stats).
const FLAT: u64 = 2 * 1024 * 1024;

fn seconds() -> Duration {
    let s = std::env::var("DISCONNECT_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    Duration::from_secs(s)
}

/// Opens a connection, sends a request for one of a few hosts (so that
/// leaders and waiters mix), and closes it after a short, varying pause.
fn hang_up_round(port: u16, length: Duration, salt: u64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let host = format!("h{}.{salt}.hangup.example", (i + t as u64) % 16);
                    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                        let req = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
                        if s.write_all(req.as_bytes()).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // Hang up while the request waits for its lookup.
                        std::thread::sleep(Duration::from_millis(5 + (i * 7 + t as u64) % 60));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    sent.load(Ordering::Relaxed)
}

#[test]
fn clients_hanging_up_while_paused() {
    let lookup = FakeLookup::start(|call| FakeReply::Late(LOOKUP_DELAY, Box::new(fake::allowed(&call.host_param, "acct-hangup"))));
    let (_origin, origin_port) = origin();
    let cfg = plugin_config(json!({"lookup": {"timeout_ms": 1000}, "failure_mode": "deny", "cache": {"max_entries": 1000}}));
    let mut opts = EnvoyOpts::new(cfg, lookup.port, origin_port);
    opts.concurrency = 2;
    let mut envoy = Envoy::start(&opts);

    // A warm-up round brings the heap to its working size; the two measured
    // rounds that follow must not grow it.
    let salt = load::run_salt();
    hang_up_round(envoy.port, seconds(), salt);
    let before = load::memory(&envoy);
    let mut sent = hang_up_round(envoy.port, seconds(), salt + 1);
    sent += hang_up_round(envoy.port, seconds(), salt + 2);
    // Let the last abandoned lookups come back (or time out) before measuring.
    wait_for("no lookup in flight", Duration::from_secs(10), || {
        (stats(envoy.admin).get("cluster.cname_guard_lookup.upstream_rq_active") == Some(&0)).then_some(())
    });
    let after = load::memory(&envoy);
    assert!(envoy.proc.alive(), "envoy died:\n{}", envoy.log());
    println!("hang-ups: {sent} requests; heap before {before}, after {after}");
    assert!(sent > 100, "only {sent} requests were sent");
    let grown = after.allocated.saturating_sub(before.allocated);
    assert!(grown <= FLAT, "heap grew {} over two rounds of hang-ups ({before} -> {after})", mib(grown));

    // Nothing is stuck: a host whose requests all hung up is answered now.
    let start = Instant::now();
    let r = envoy.request(&format!("h1.{}.hangup.example", salt + 2));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(envoy.proc.alive());
}
