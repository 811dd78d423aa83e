//! The change feed in real Envoy with two workers: a change the feed names
//! reaches every worker within 2 s despite a 300 s TTL; zones and resets;
//! a broken feed leaves requests as they are; one poller per Envoy.
//!
//! The lookup service here is the harness's fake (crates/testkit/src/fake.rs),
//! whose feed a test drives. The edge (`edge`, `per_worker_connections`) is
//! crates/testkit/src/feed.rs, which tests/e2e_propagation.rs runs against the
//! real service.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, FeedMode, Reply};
use common::feed::{edge, per_worker_connections};
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who the fake says owns each host (`acct-1` when not set).
type Owners = Arc<Mutex<HashMap<String, String>>>;

struct Stack {
    lookup: FakeLookup,
    owners: Owners,
    envoy: Envoy,
    _origin: Proc,
}

/// The account of `n` requests for `host`, one connection each.
fn accounts(envoy: &Envoy, host: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = envoy.request(host);
            assert_eq!(r.status, 200, "{host}: {}", r.body_text());
            r.json()["account"].as_str().unwrap_or("-").to_string()
        })
        .collect()
}

/// Waits up to `within` for 10 requests in a row to show `account`; returns how long it took.
fn until_all(envoy: &Envoy, host: &str, account: &str, within: Duration) -> Duration {
    let start = Instant::now();
    wait_for(&format!("{host} to be served for {account}"), within, || {
        accounts(envoy, host, 10).iter().all(|a| a == account).then_some(())
    });
    start.elapsed()
}

impl Stack {
    /// A fake lookup service (feed in `mode`) and Envoy with `--concurrency 2`.
    fn start(mode: FeedMode, extra: serde_json::Value) -> Stack {
        let owners: Owners = Arc::default();
        let o = owners.clone();
        let lookup = FakeLookup::start(move |c| {
            let owner = o.lock().ok().and_then(|m| m.get(&c.host_param).cloned()).unwrap_or_else(|| "acct-1".into());
            fake::allowed(&c.host_param, &owner)
        });
        lookup.feed.set_mode(mode);
        let (envoy, origin) = edge(lookup.port, extra);
        Stack { lookup, owners, envoy, _origin: origin }
    }

    fn set_owner(&self, host: &str, account: &str) {
        if let Ok(mut m) = self.owners.lock() {
            m.insert(host.to_string(), account.to_string());
        }
    }

    /// Waits until the poller knows the feed's seq (it asks with `since`).
    fn wait_polling(&self) {
        self.wait_polling_after(0);
    }

    /// As `wait_polling`, counting only the feed calls after the first `from`.
    fn wait_polling_after(&self, from: usize) {
        wait_for("the poller to ask with since", Duration::from_secs(10), || {
            self.lookup.feed.calls().iter().skip(from).any(|c| c.path.contains("since=")).then_some(())
        });
    }

    fn accounts(&self, host: &str, n: usize) -> Vec<String> {
        accounts(&self.envoy, host, n)
    }

    fn per_worker_connections(&self) -> Vec<u64> {
        per_worker_connections(&self.envoy)
    }
}

#[test]
fn a_change_reaches_both_workers_within_two_seconds() {
    let s = Stack::start(FeedMode::Healthy, json!({}));
    s.wait_polling();
    // Warm both workers' own maps.
    assert!(s.accounts("flip.example", 30).iter().all(|a| a == "acct-1"));
    let workers = s.per_worker_connections();
    assert!(workers.len() == 2 && workers.iter().all(|&n| n > 0), "both workers served: {workers:?}");
    assert_eq!(s.lookup.count("flip.example"), 1);

    s.set_owner("flip.example", "acct-2");
    let changed = Instant::now();
    s.lookup.feed.host_changed("flip.example");
    until_all(&s.envoy, "flip.example", "acct-2", Duration::from_secs(2));
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let before = s.per_worker_connections();
    assert!(s.accounts("flip.example", 30).iter().all(|a| a == "acct-2"), "every worker has the new verdict");
    let after = s.per_worker_connections();
    assert!(before.iter().zip(&after).all(|(b, a)| a > b), "both workers checked: {before:?} -> {after:?}");
    assert!(s.envoy.stat("changes.applied") >= 1);
    assert_eq!(s.envoy.stat("changes.failed"), 0);
    wait_for("the seq gauge", Duration::from_secs(3), || (s.envoy.stat("changes.seq") == s.lookup.feed.seq()).then_some(()));
    eprintln!("feed to new verdict on both workers: {took:?}");
}

#[test]
fn a_zone_evicts_every_host_under_it() {
    let s = Stack::start(FeedMode::Healthy, json!({}));
    s.wait_polling();
    let hosts = ["brand.example", "a.brand.example", "b.c.brand.example", "xbrand.example", "other.example"];
    for h in hosts {
        s.accounts(h, 4);
    }
    for h in hosts {
        s.set_owner(h, "acct-z");
    }
    s.lookup.feed.zone_changed("brand.example");
    for h in &hosts[..3] {
        until_all(&s.envoy, h, "acct-z", Duration::from_secs(2));
    }
    for h in &hosts[3..] {
        assert!(s.accounts(h, 10).iter().all(|a| a == "acct-1"), "{h} is not under the zone");
        assert_eq!(s.lookup.count(h), 1, "{h}");
    }
    assert!(s.envoy.stat("changes.applied") >= 3);
}

#[test]
fn a_reset_evicts_everything_and_refills_with_one_lookup_per_host() {
    let s = Stack::start(FeedMode::Healthy, json!({}));
    s.wait_polling();
    let hosts: Vec<String> = (0..8).map(|i| format!("r{i}.example")).collect();
    for h in &hosts {
        s.accounts(h, 3);
        assert_eq!(s.lookup.count(h), 1);
    }
    s.lookup.feed.forget();
    wait_for("the reset", Duration::from_secs(3), || (s.envoy.stat("changes.resets") == 1).then_some(()));
    // A burst per host from many connections at once: coalesced to one lookup.
    let port = s.envoy.port;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let hosts = hosts.clone();
            std::thread::spawn(move || {
                // Each thread starts at another host: the bursts overlap.
                hosts.iter().cycle().skip(t).take(hosts.len()).map(|h| send(port, &Request::get(h)).status).filter(|&st| st != 200).count()
            })
        })
        .collect();
    let bad: usize = threads.into_iter().map(|t| t.join().expect("client")).sum();
    assert_eq!(bad, 0, "no failure during the refill");
    for h in &hosts {
        assert_eq!(s.lookup.count(h), 2, "{h}: one lookup before the reset, one after");
    }
    assert_eq!(s.envoy.stat("changes.failed"), 0);
}

#[test]
fn a_broken_feed_leaves_requests_alone_and_the_filter_recovers() {
    let s = Stack::start(FeedMode::Healthy, json!({"changes": {"max_backoff_ms": 2000}}));
    s.wait_polling();
    assert!(s.accounts("kept.example", 6).iter().all(|a| a == "acct-1"));
    // A seq above 0, so that an answer can go backwards.
    s.lookup.feed.host_changed("warm.example");
    wait_for("seq 1", Duration::from_secs(3), || (s.envoy.stat("changes.seq") == 1).then_some(()));
    let names: Vec<String> = (0..100_000).map(|i| format!("h{i}.example")).collect();
    let huge = json!({"seq": 1_000_000, "hosts": names, "zones": []}).to_string();
    let faults = [
        ("500", Reply::Json(500, r#"{"error":"boom"}"#.into())),
        ("hang", Reply::Hang),
        ("backwards", Reply::Json(200, r#"{"seq": 0, "hosts": [], "zones": []}"#.into())),
        ("garbage", Reply::Json(200, r#"{"seq": 5, "hosts": ["ok.example", "NOT VALID"], "zones": []}"#.into())),
        ("not json", Reply::Json(200, "<html>".into())),
        ("100,000 hosts", Reply::Json(200, huge)),
    ];
    for (what, reply) in faults {
        let failed = s.envoy.stat("changes.failed");
        s.lookup.feed.set_mode(FeedMode::Fault(reply));
        wait_for(&format!("{what} to be counted"), Duration::from_secs(8), || {
            (s.envoy.stat("changes.failed") > failed).then_some(())
        });
        assert!(s.accounts("kept.example", 6).iter().all(|a| a == "acct-1"), "{what}: verdict kept");
        assert!(s.envoy.stat("failure_mode_denied") == 0, "{what}: no failure mode");
    }
    // "kept" was looked up once at the start, once after the backwards seq's
    // reset, once after the resync that follows garbage, once after the change.
    let from = s.lookup.feed.calls().len();
    s.lookup.feed.set_mode(FeedMode::Healthy);
    s.wait_polling_after(from);
    s.set_owner("kept.example", "acct-2");
    let changed = Instant::now();
    s.lookup.feed.host_changed("kept.example");
    until_all(&s.envoy, "kept.example", "acct-2", Duration::from_secs(6));
    eprintln!("recovered: change applied {:?} after the feed healed", changed.elapsed());
    assert!(s.lookup.count("kept.example") <= 4, "lookups: {}", s.lookup.count("kept.example"));
}

#[test]
fn without_a_feed_the_filter_runs_on_ttls_alone() {
    // The feed answers 404: asked again after `max_backoff_ms` (3 s), not at
    // `interval_ms` (1 s, the default); requests go on from the cache meanwhile.
    let s = Stack::start(FeedMode::Absent, json!({"changes": {"max_backoff_ms": 3000}}));
    assert!(s.accounts("ttl.example", 20).iter().all(|a| a == "acct-1"));
    wait_for("the feed to be asked again", Duration::from_secs(10), || {
        assert!(s.accounts("ttl.example", 5).iter().all(|a| a == "acct-1"));
        (s.lookup.feed.calls().len() >= 2).then_some(())
    });
    let calls = s.lookup.feed.calls();
    // A lower bound (a busy machine only lengthens the gap); a tick may poll
    // up to half a tick early.
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_secs(2), "a 404 feed asked again after {gap:?}, not after changes.max_backoff_ms");
    wait_for("two polls counted", Duration::from_secs(3), || (s.envoy.stat("changes.polls") == 2).then_some(()));
    assert_eq!(s.envoy.stat("changes.failed"), 0);
    assert_eq!(s.lookup.count("ttl.example"), 1);
}

/// The `since` of each feed call after the first `from`.
fn sinces(s: &Stack, from: usize) -> Vec<u64> {
    let since = |c: &fake::Call| c.path.split_once("since=")?.1.split('&').next()?.parse().ok();
    let calls = s.lookup.feed.calls();
    calls.iter().skip(from).map(|c| since(c).unwrap_or_else(|| panic!("no since: {}", c.path))).collect()
}

#[test]
fn one_poller_per_envoy() {
    // Long polls: the poller's one call waits on the fake until a change, so
    // one poller asks each seq exactly once; a second poller (two workers
    // each holding the lease, say) would send calls of its own.
    let s = Stack::start(FeedMode::Healthy, json!({"changes": {"interval_ms": 200, "wait_seconds": 30}}));
    s.wait_polling();
    let from = s.lookup.feed.calls().iter().position(|c| c.path.contains("since=")).expect("a long poll");
    for i in 1..=5 {
        let seq = s.lookup.feed.host_changed(&format!("c{i}.example"));
        wait_for(&format!("seq {seq} applied"), Duration::from_secs(5), || {
            (s.envoy.stat("changes.seq") == seq).then_some(())
        });
        wait_for(&format!("the long poll after seq {seq}"), Duration::from_secs(5), || {
            sinces(&s, from).contains(&seq).then_some(())
        });
    }
    assert_eq!(sinces(&s, from), [0, 1, 2, 3, 4, 5], "one call per seq: one poller");
    assert_eq!(s.envoy.stat("changes.failed"), 0);
}

#[test]
fn changes_interval_zero_turns_the_feed_off() {
    let s = Stack::start(FeedMode::Healthy, json!({"changes": {"interval_ms": 0}}));
    s.accounts("off.example", 10);
    wait_for("a tick or two", Duration::from_secs(3), || (s.envoy.stat("requests") == 10).then_some(()));
    // A witness: an Envoy with the feed on, started after this one, polls
    // twice. By then this one would have polled too.
    let on = Stack::start(FeedMode::Healthy, json!({}));
    wait_for("the witness to poll twice", Duration::from_secs(10), || {
        (on.lookup.feed.calls().len() >= 2).then_some(())
    });
    assert!(s.lookup.feed.calls().is_empty());
    assert_eq!(s.envoy.stat("changes.polls"), 0);
}

#[test]
fn a_bad_changes_key_is_refused_with_its_name() {
    let lookup = FakeLookup::start(|c| fake::allowed(&c.host_param, "acct-1"));
    let opts = EnvoyOpts::new(plugin_config(json!({"changes": {"wait_seconds": 31}})), lookup.port, free_port());
    let log = Envoy::refused(&opts);
    assert!(log.contains("changes.wait_seconds"), "{log}");
}
