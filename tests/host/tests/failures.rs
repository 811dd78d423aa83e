//! Lookup failures: failure_mode deny and allow, timeouts, resets, bad answers.

mod common;
use cname_guard_host::{Action, CallOutcome, Host, Req};
use common::*;
use serde_json::json;
use std::time::Duration;

const H: &str = "shop.customer.example";

fn assert_unavailable(h: &Host, r: &cname_guard_host::Request) {
    let lr = r.local_response(h).unwrap_or_else(|| panic!("no local response\n{}", h.log_text()));
    assert_eq!(lr.status, 503);
    assert_eq!(lr.header("retry-after"), Some("5"));
    assert!(!r.continued(h));
}

#[test]
fn failure_mode_deny_answers_503() {
    let mut h = host();
    for (i, answer) in [(500u32, &b"oops"[..]), (200, b"not json"), (200, b"{}"), (302, b"")].into_iter().enumerate() {
        let host = format!("h{i}.customer.example");
        let r = h.worker(0).get(&host);
        let token = h.pending_calls().last().unwrap().token;
        h.answer(token, answer.0, &[], answer.1);
        assert_unavailable(&h, &r);
    }
    // An answer about another host is a failure too.
    let r = h.worker(0).get(H);
    answer_record(&mut h, "other.example", json!({}));
    assert_unavailable(&h, &r);
    assert_eq!(h.metric("cname_guard.failure_mode_denied"), Some(5));
    assert_eq!(h.metric("cname_guard.lookup.failed"), Some(5));
    h.assert_no_anomalies();
}

#[test]
fn failure_mode_deny_page_in_json() {
    let mut h = host();
    let r = h.worker(0).send(Req::get(H).header("accept", "application/json"));
    let token = h.pending_calls().last().unwrap().token;
    h.fail(token);
    let lr = r.local_response(&h).unwrap();
    assert_eq!(lr.status, 503);
    let v: serde_json::Value = serde_json::from_slice(&lr.body).unwrap();
    assert_eq!(v["error_code"], serde_json::Value::Null);
    assert_eq!(v["retryable"], true);
}

#[test]
fn failure_mode_allow_continues_without_the_account_header() {
    let mut h = host_with(json!({"failure_mode": "allow"}));
    let r = h.worker(0).send(Req::get(H).header(ACCOUNT_HEADER, "acct-spoofed"));
    let token = h.pending_calls().last().unwrap().token;
    h.answer(token, 503, &[], b"no healthy upstream");
    assert!(r.continued(&h), "{}", h.log_text());
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), None);
    assert_eq!(r.local_response(&h), None);
    assert_eq!(status(&h, &r), 200);
    assert_eq!(h.metric("cname_guard.failure_mode_allowed"), Some(1));
    h.assert_no_anomalies();
}

#[test]
fn callout_timeout_by_the_clock() {
    let mut h = host();
    let r = h.worker(0).get(H);
    let token = h.pending_calls().last().unwrap().token;
    h.advance(Duration::from_millis(499));
    assert!(r.paused(&h));
    h.advance(Duration::from_millis(1));
    // Envoy's router answered 504 at the callout timeout.
    assert_eq!(h.call(token).unwrap().outcome, Some(CallOutcome::TimedOut));
    assert_unavailable(&h, &r);
    h.assert_no_anomalies();
}

#[test]
fn callout_reset_without_response() {
    // Envoy on a reset: proxy_on_http_call_response with 0 headers and no body.
    let mut h = host_with(json!({"failure_mode": "allow"}));
    let r = h.worker(0).get(H);
    let token = h.pending_calls().last().unwrap().token;
    h.fail(token);
    assert!(r.continued(&h));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), None);
    h.assert_no_anomalies();
}

#[test]
fn a_lookup_that_never_ends_releases_the_request_at_its_deadline() {
    // The callout never completes (no timeout from the host either): the filter's own
    // deadline, lookup timeout + 250 ms, checked on its 100 ms ticks, lets the request go.
    let mut h = builder(json!({})).callout_timeouts(false).build().unwrap();
    let r = h.worker(0).get(H);
    let token = h.pending_calls().last().unwrap().token;
    h.advance(Duration::from_millis(700));
    assert!(r.paused(&h));
    h.advance(Duration::from_millis(100));
    assert_unavailable(&h, &r);
    assert_eq!(h.metric("cname_guard.lookup.timeouts"), Some(1));
    // The answer arriving late finds nobody waiting, and is still cached.
    h.answer(token, 200, &[], &record(H, json!({"account": "late"})));
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Continue);
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("late"));
    h.assert_no_anomalies();
}

#[test]
fn unknown_cluster_fails_the_lookup() {
    // The host knows no cluster of that name: proxy_http_call returns BadArgument.
    let mut h = Host::builder().config(config(json!({"lookup": {"cluster": "missing"}}))).build().unwrap();
    assert!(h.configured());
    let r = h.worker(0).get(H);
    assert!(h.calls().is_empty());
    assert_unavailable(&h, &r);
    assert!(h.logged("lookup for shop.customer.example on cluster missing failed"), "{}", h.log_text());
}

#[test]
fn stale_entry_serves_when_the_refresh_fails() {
    let mut h = host_with(json!({"cache": {"ttl_seconds": 10, "stale_if_error_seconds": 60}}));
    let r = looked_up(&mut h, H, json!({"account": "acct-1"}));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-1"));
    h.advance(Duration::from_secs(11));
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Pause, "expired entry needs a refresh");
    let token = h.pending_calls().last().unwrap().token;
    h.answer(token, 500, &[], b"");
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-1"), "{}", h.log_text());
    assert_eq!(h.metric("cname_guard.cache.stale_served"), Some(1));
}

/// Envoy's async client reports a callout timeout as a 504 from its router (body
/// `upstream request timeout`), not as a 0-header failure: it still counts as a timeout.
#[test]
fn envoy_callout_timeouts_are_counted_as_timeouts() {
    let mut h = host();
    let _r = h.worker(0).get(H);
    h.advance(Duration::from_millis(500));
    assert_eq!(h.metric("cname_guard.lookup.timeouts"), Some(1));
}
