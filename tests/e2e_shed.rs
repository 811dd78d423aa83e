//! `lookup.max_in_flight` in real Envoy with two workers (issue 22): with
//! the bound filled by lookups the lookup service holds, a new host gets the
//! failure mode at once and `lookup.shed` counts it, a cached host is served
//! meanwhile, and a request for a host already being looked up joins that
//! lookup; once the held lookups are answered, new hosts are looked up again.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, Reply};
use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Far beyond the test: a held lookup never times out on its own.
const TIMEOUT_MS: u64 = 30_000;
/// "At once": well below the lookup timeout a shed request would otherwise wait.
const AT_ONCE: Duration = Duration::from_secs(5);

/// A fake service that holds every lookup for `held-*` hosts until `open`.
fn holding(open: &Arc<AtomicBool>) -> FakeLookup {
    let open = open.clone();
    FakeLookup::start(move |c| {
        let reply = fake::allowed(&c.host_param, "acct-1");
        if c.host_param.starts_with("held-") {
            Reply::Held(open.clone(), Box::new(reply))
        } else {
            reply
        }
    })
}

fn start(lookup: &FakeLookup, origin_port: u16, max: usize, mode: &str) -> Envoy {
    let cfg = json!({"lookup": {"timeout_ms": TIMEOUT_MS, "max_in_flight": max}, "failure_mode": mode});
    let mut opts = EnvoyOpts::new(plugin_config(cfg), lookup.port, origin_port);
    opts.concurrency = 2;
    Envoy::start(&opts)
}

fn in_background(envoy: &Envoy, host: &str) -> JoinHandle<Response> {
    let (port, host) = (envoy.port, host.to_string());
    std::thread::spawn(move || send(port, &Request::get(&host)))
}

/// Sends a lookup for each of `n` new hosts and waits until the service holds them all.
fn fill(envoy: &Envoy, lookup: &FakeLookup, n: usize) -> Vec<JoinHandle<Response>> {
    let held: Vec<_> = (0..n).map(|i| in_background(envoy, &format!("held-{i}.example"))).collect();
    wait_for("the held lookups to fill the bound", Duration::from_secs(10), || {
        (lookup.calls().iter().filter(|c| c.host_param.starts_with("held-")).count() == n).then_some(())
    });
    held
}

#[test]
fn a_new_host_beyond_the_bound_gets_the_failure_mode_while_cached_hosts_are_served() {
    const MAX: usize = 4;
    let open = Arc::new(AtomicBool::new(false));
    let lookup = holding(&open);
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, MAX, "deny");
    assert_eq!(envoy.request("hot.example").status, 200);
    let held = fill(&envoy, &lookup, MAX);
    // Another request for a held host joins its lookup: not a new lookup, not shed.
    let joiner = in_background(&envoy, "held-0.example");
    wait_for("the second request to join", Duration::from_secs(10), || {
        (envoy.stat("lookup.coalesced") >= 1).then_some(())
    });

    let r = envoy.request("new.example");
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert!(r.body_text().contains("Ownership lookup unavailable"), "{}", r.body_text());
    assert!(r.elapsed < AT_ONCE, "shed after {:?}", r.elapsed);
    envoy.wait_stat("lookup.shed", 1);
    assert_eq!(envoy.stat("failure_mode_denied"), 1);
    assert_eq!(lookup.count("new.example"), 0, "a shed lookup is never made");
    let hot = envoy.request("hot.example");
    assert_eq!((hot.status, hot.json()["account"].as_str()), (200, Some("acct-1")), "cached: never waits");

    open.store(true, Ordering::SeqCst);
    for h in held.into_iter().chain([joiner]) {
        let r = h.join().expect("client thread");
        assert_eq!((r.status, r.json()["account"].as_str()), (200, Some("acct-1")), "{}", r.body_text());
    }
    let r = envoy.request("new.example");
    assert_eq!((r.status, r.json()["account"].as_str()), (200, Some("acct-1")), "recovered: {}", r.body_text());
    assert_eq!(lookup.count("new.example"), 1);
    assert_eq!(envoy.stat("lookup.shed"), 1);
    assert_eq!(envoy.stat("lookup.started"), 1 + MAX as u64 + 1);
}

#[test]
fn allow_mode_lets_a_shed_request_through_without_an_account() {
    let open = Arc::new(AtomicBool::new(false));
    let lookup = holding(&open);
    let (_origin, origin_port) = origin();
    let envoy = start(&lookup, origin_port, 1, "allow");
    let held = fill(&envoy, &lookup, 1);
    let r = envoy.send(&Request::get("new.example").header("x-cname-guard-account", "spoofed"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["account"], serde_json::Value::Null, "the spoofed header must be removed");
    assert!(r.elapsed < AT_ONCE, "shed after {:?}", r.elapsed);
    envoy.wait_stat("lookup.shed", 1);
    assert_eq!(envoy.stat("failure_mode_allowed"), 1);
    open.store(true, Ordering::SeqCst);
    for h in held {
        assert_eq!(h.join().expect("client thread").status, 200);
    }
}
