//! The cache and coalescing in real Envoy with two workers.

mod common;

use common::fake::{self, FakeLookup, Reply};
use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn start(lookup: &FakeLookup, origin_port: u16, extra: serde_json::Value) -> Envoy {
    let mut opts = EnvoyOpts::new(plugin_config(extra), lookup.port, origin_port);
    opts.concurrency = 2;
    Envoy::start(&opts)
}

/// Runs `n` requests from `threads` client threads at once.
fn concurrently(envoy: &Envoy, threads: usize, hosts: Vec<String>) -> Vec<Response> {
    let port = envoy.port;
    let chunks: Vec<Vec<String>> = (0..threads).map(|t| hosts.iter().skip(t).step_by(threads).cloned().collect()).collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|hs| std::thread::spawn(move || hs.iter().map(|h| send(port, &Request::get(h))).collect::<Vec<_>>()))
        .collect();
    handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
}

#[test]
fn sequential_requests_for_a_host_make_one_lookup() {
    let lookup = FakeLookup::start(|c| fake::allowed(&c.host_param, "acct-1"));
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, json!({}));
    for _ in 0..20 {
        let r = envoy.request("seq.example");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["account"], "acct-1");
    }
    assert_eq!(lookup.count("seq.example"), 1);
    envoy.wait_stat("cache.hits", 19);
    assert_eq!(envoy.stat("lookup.started"), 1);
}

#[test]
fn a_burst_for_a_new_host_makes_one_lookup() {
    let lookup = FakeLookup::start(|c| {
        Reply::Late(Duration::from_millis(400), Box::new(fake::allowed(&c.host_param, "acct-b")))
    });
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, json!({"lookup": {"timeout_ms": 2000}}));
    let responses = concurrently(&envoy, 60, vec!["burst.example".to_string(); 60]);
    assert_eq!(responses.len(), 60);
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.json()["account"], "acct-b");
    }
    assert_eq!(lookup.count("burst.example"), 1, "one lookup for the whole burst, across both workers");
    assert!(envoy.stat("lookup.coalesced") >= 1);
}

#[test]
fn waiters_of_a_failed_lookup_get_the_failure_mode() {
    let lookup = FakeLookup::start(|_| Reply::Hang);
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, json!({"lookup": {"timeout_ms": 300}}));
    let responses = concurrently(&envoy, 20, vec!["dead.example".to_string(); 20]);
    for r in &responses {
        assert_eq!(r.status, 503, "{}", r.body_text());
        assert!(r.elapsed < Duration::from_millis(300 + 900), "took {:?}", r.elapsed);
    }
    assert!(lookup.count("dead.example") <= 2, "at most one lookup per worker: {}", lookup.count("dead.example"));
}

#[test]
fn a_flood_of_unique_hosts_stays_within_the_bound() {
    let lookup = FakeLookup::start(|_| Reply::Json(404, "{}".into()));
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, json!({"cache": {"max_entries": 1000}}));
    let hosts: Vec<String> = (0..10_000).map(|i| format!("flood-{i}.example")).collect();
    let responses = concurrently(&envoy, 8, hosts);
    assert!(responses.iter().all(|r| r.status == 409), "unknown hosts are 1001");
    let entries = envoy.stat("cache.entries");
    assert!(entries <= 1000, "cache.entries {entries} over the bound");
    assert!(entries >= 900, "cache.entries {entries}: the table should be nearly full");
    assert!(envoy.stat("cache.evictions") >= 8_000);
    assert_eq!(envoy.stat("denied_1001"), 10_000);
}

#[test]
fn stale_if_error_serves_the_last_verdict() {
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let lookup = FakeLookup::start(move |c| {
        if h.load(Ordering::SeqCst) {
            Reply::Json(200, fake::record(&c.host_param, Some("acct-s"), None, None, true).replace("\"ttl\":60", "\"ttl\":1"))
        } else {
            Reply::Json(500, "{}".into())
        }
    });
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, json!({"cache": {"stale_if_error_seconds": 60}}));
    assert_eq!(envoy.request("stale.example").json()["account"], "acct-s");
    healthy.store(false, Ordering::SeqCst);
    // Once the 1 s TTL has passed, a refresh is tried, fails, and the stale verdict stands.
    wait_for("a refresh after the TTL", Duration::from_secs(10), || {
        let r = envoy.request("stale.example");
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.json()["account"], "acct-s");
        (lookup.count("stale.example") >= 2).then_some(())
    });
    assert!(envoy.stat("cache.stale_served") >= 1);
}
