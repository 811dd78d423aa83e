//! Coalescing across workers when the leader fails or dies.

mod common;

use cname_guard_core::cache::Slots;
use cname_guard_core::coalesce::Lock;
use cname_guard_host::Action;
use common::*;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};

const H: &str = "shop.customer.example";

fn now_ms(h: &cname_guard_host::Host) -> u64 {
    h.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn waiters_on_other_workers_get_the_failure_mode_when_the_leader_times_out() {
    let mut h = builder(json!({})).workers(3).build().unwrap();
    let rs: Vec<_> = (0..3).map(|w| h.worker(w).get(H)).collect();
    assert!(rs.iter().all(|r| r.action() == Action::Pause));
    assert_eq!(h.calls().len(), 1, "one lookup for three workers");
    // The callout times out by the clock (Envoy answers it with a 504).
    h.advance(Duration::from_millis(500));
    for r in &rs {
        assert_eq!(status(&h, r), 503, "worker {}\n{}", r.worker, h.log_text());
    }
    assert_eq!(h.metric("cname_guard.lookup.timeouts"), Some(1));
    assert_eq!(h.metric("cname_guard.failure_mode_denied"), Some(3));
    // Nothing is left waiting, and the next request looks up afresh.
    assert_eq!(h.pending_calls().count(), 0);
    let r = h.worker(1).get(H);
    assert_eq!(r.action(), Action::Pause);
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    h.assert_no_anomalies();
}

#[test]
fn a_lock_left_by_a_dead_leader_expires_and_is_taken_over() {
    let mut h = builder(json!({})).workers(2).build().unwrap();
    // A leader that took the lock and died: its lock ends 300 ms from now.
    let set = Slots::new(10_000).set_of(H);
    let dead = Lock { host: H.to_string(), deadline: now_ms(&h) + 300, waiters: vec![] };
    h.set_shared_data(&format!("cname_guard.lock.{set}"), &dead.encode());

    let r = h.worker(1).get(H);
    h.pump();
    assert_eq!(r.action(), Action::Pause);
    assert_eq!(h.calls().len(), 0, "waits on the dead leader first");
    h.advance(Duration::from_millis(400));
    assert_eq!(h.calls().len(), 1, "takes over once the lock expired\n{}", h.log_text());
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"), "{}", h.log_text());
    h.assert_no_anomalies();
}

#[test]
fn a_request_never_outlives_its_deadline_even_if_nobody_answers() {
    let mut h = builder(json!({"lookup": {"cluster": CLUSTER, "timeout_ms": 200}})).workers(2).build().unwrap();
    let set = Slots::new(10_000).set_of(H);
    // A lock that would hold for an hour: the request must still be answered.
    let stuck = Lock { host: H.to_string(), deadline: now_ms(&h) + 3_600_000, waiters: vec![] };
    h.set_shared_data(&format!("cname_guard.lock.{set}"), &stuck.encode());
    let r = h.worker(0).get(H);
    h.advance(Duration::from_millis(200 + 250 + 100));
    assert_eq!(status(&h, &r), 503, "{}", h.log_text());
    assert_eq!(h.metric("cname_guard.lookup.timeouts"), Some(1));
}
