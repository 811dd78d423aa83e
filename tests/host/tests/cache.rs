//! The verdict cache and lookup coalescing, within a worker and across workers.

mod common;
use cname_guard_host::Action;
use common::*;
use serde_json::json;
use std::time::Duration;

const H: &str = "shop.customer.example";

#[test]
fn a_cached_verdict_needs_no_lookup() {
    let mut h = host();
    looked_up(&mut h, H, json!({"account": "acct-saas"}));
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Continue);
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    assert_eq!(h.calls().len(), 1);
    // The cached path defers its counters (no host call) to the next tick.
    assert_eq!(h.metric("cname_guard.cache.hits"), Some(0));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.metric("cname_guard.cache.hits"), Some(1));
    assert_eq!(h.metric("cname_guard.requests"), Some(2));
    assert_eq!(h.metric("cname_guard.allowed"), Some(2));
    // Denials are cached too.
    looked_up(&mut h, "bad.customer.example", json!({"account": "a", "target_account": "b"}));
    let r = h.worker(0).get("bad.customer.example");
    assert_eq!(status(&h, &r), 409);
    assert_eq!(h.calls().len(), 2);
}

#[test]
fn every_spelling_of_a_cached_host_is_served_from_the_cache() {
    // The cached path looks an authority up as it came when it is canonical,
    // and normalized otherwise: both find the one entry, whichever spelling
    // the lookup was made for.
    let mut h = host();
    let first = h.worker(0).get("Shop.Customer.Example:8443");
    assert!(h.calls()[0].path().contains("?host=shop.customer.example"), "{:?}", h.calls()[0].path());
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    assert!(first.continued(&h));
    for spelling in [H, "SHOP.customer.example", "shop.customer.example.", "shop.customer.example:443"] {
        let headers = [(":authority", spelling), (":path", "/"), (":method", "GET"), (ACCOUNT_HEADER, "spoofed")];
        let r = h.worker(0).request(&headers);
        assert_eq!(r.action(), Action::Continue, "{spelling}");
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"), "{spelling}");
    }
    assert_eq!(h.calls().len(), 1, "one lookup for every spelling");
    // A spelling that is not a name never reaches the map.
    let r = h.worker(0).get("shop..customer.example");
    assert_eq!(status(&h, &r), 400);
    assert_eq!(h.calls().len(), 1);
}

#[test]
fn the_cache_is_shared_by_workers() {
    let mut h = builder(json!({})).workers(2).build().unwrap();
    let r = h.worker(0).request(&[(":authority", H), (":path", "/"), (":method", "GET")]);
    assert_eq!(r.action(), Action::Pause);
    let call = h.pending_calls().last().unwrap();
    assert!(call.path().contains("?host=shop.customer.example"));
    h.answer(call.token, 200, &[], &record(H, json!({"account": "acct-saas"})));
    assert!(r.continued(&h));
    let r2 = h.worker(1).request(&[(":authority", H), (":path", "/"), (":method", "GET")]);
    assert_eq!(r2.action(), Action::Continue);
    assert_eq!(r2.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    assert_eq!(h.calls().len(), 1);
    assert!(h.shared_data_keys().iter().any(|k| k.starts_with("cname_guard.slot.")));
    h.assert_no_anomalies();
}

#[test]
fn ttl_expiry_by_the_clock_needs_a_new_lookup() {
    let mut h = host();
    looked_up(&mut h, H, json!({"account": "acct-1", "ttl": 60}));
    h.advance(Duration::from_secs(59));
    assert_eq!(h.worker(0).get(H).action(), Action::Continue);
    h.advance(Duration::from_secs(2));
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Pause, "the entry expired after 60 s");
    assert_eq!(h.calls().len(), 2);
    answer_record(&mut h, H, json!({"account": "acct-2"}));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-2"));
}

#[test]
fn a_shorter_record_ttl_wins_and_the_config_caps_it() {
    let mut h = host_with(json!({"cache": {"ttl_seconds": 30}}));
    looked_up(&mut h, "a.example", json!({"ttl": 5}));
    looked_up(&mut h, "b.example", json!({"ttl": 3600}));
    h.advance(Duration::from_secs(6));
    assert_eq!(h.worker(0).get("a.example").action(), Action::Pause);
    assert_eq!(h.worker(0).get("b.example").action(), Action::Continue);
    h.advance(Duration::from_secs(25));
    assert_eq!(h.worker(0).get("b.example").action(), Action::Pause);
}

#[test]
fn negative_answers_expire_sooner() {
    let mut h = host(); // negative_ttl_seconds: 30
    let r = h.worker(0).get(H);
    let token = h.pending_calls().last().unwrap().token;
    h.answer(token, 404, &[], b"");
    assert_eq!(status(&h, &r), 409);
    h.advance(Duration::from_secs(29));
    let again = h.worker(0).get(H);
    assert_eq!(status(&h, &again), 409);
    assert_eq!(h.calls().len(), 1);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.worker(0).get(H).action(), Action::Pause);
}

#[test]
fn two_requests_paused_on_one_lookup() {
    let mut h = host();
    let r1 = h.worker(0).get(H);
    let r2 = h.worker(0).get(H);
    assert_eq!((r1.action(), r2.action()), (Action::Pause, Action::Pause));
    assert_eq!(h.pending_calls().count(), 1, "one lookup for both");
    assert_eq!(h.metric("cname_guard.lookup.coalesced"), Some(1));
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    for r in [r1, r2] {
        assert!(r.resumed(&h));
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    }
    h.assert_no_anomalies();
}

#[test]
fn two_requests_paused_on_one_lookup_both_denied() {
    let mut h = host();
    let r1 = h.worker(0).get(H);
    let r2 = h.worker(0).send(cname_guard_host::Req::get(H).header("accept", "text/plain"));
    answer_record(&mut h, H, json!({"account": "a", "target_account": "b"}));
    assert_eq!(r1.local_response(&h).unwrap().header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(r2.local_response(&h).unwrap().body_str(), "error code: 1014\n");
    // Each denial gets its own ray id.
    assert_ne!(r1.local_response(&h).unwrap().header("cf-ray"), r2.local_response(&h).unwrap().header("cf-ray"));
}

#[test]
fn workers_coalesce_on_one_lookup() {
    let mut h = builder(json!({})).workers(3).build().unwrap();
    let rs: Vec<_> = (0..3).map(|w| h.worker(w).get(H)).collect();
    assert_eq!(h.calls().len(), 1, "one lookup for three workers: {:?}", h.calls());
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    for r in &rs {
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"), "worker {}\n{}", r.worker, h.log_text());
    }
    h.assert_no_anomalies();
}

#[test]
fn a_client_leaving_while_paused_is_forgotten() {
    let mut h = host();
    let r1 = h.worker(0).get(H);
    let r2 = h.worker(0).get(H);
    r1.reset(&mut h);
    assert!(r1.completed(&h));
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    assert!(!r1.continued(&h));
    assert!(r2.continued(&h));
    h.assert_no_anomalies();
}

#[test]
fn the_shared_table_is_bounded() {
    let mut h = host_with(json!({"cache": {"max_entries": 4}}));
    for i in 0..20 {
        let host = format!("h{i}.customer.example");
        let r = looked_up(&mut h, &host, json!({"account": format!("a{i}")}));
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some(format!("a{i}").as_str()));
    }
    let keys = h.shared_data_keys();
    assert!(keys.iter().filter(|k| k.starts_with("cname_guard.slot.")).count() <= 4, "{keys:?}");
    assert!(keys.iter().filter(|k| k.starts_with("cname_guard.lock.")).count() <= 2, "{keys:?}");
    assert!(h.metric("cname_guard.cache.entries").unwrap() <= 4);
    // Names seen once do not push out residents seen as often; a name in
    // steady use does.
    let steady = "h19.customer.example";
    for _ in 0..4 {
        let r = h.worker(0).get(steady);
        if r.paused(&h) {
            answer_record(&mut h, steady, json!({"account": "a19"}));
        }
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("a19"));
    }
    assert!(h.metric("cname_guard.cache.evictions").unwrap() > 0);
    assert!(h.metric("cname_guard.cache.entries").unwrap() <= 4);
}
