//! Lookup failures in real Envoy: every request gets the failure mode's
//! answer within the lookup timeout plus a margin, in deny and allow mode.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, Reply};
use common::*;
use serde_json::json;
use std::time::Duration;

const TIMEOUT_MS: u64 = 300;
/// What "within the timeout plus a little" means here.
const MARGIN: Duration = Duration::from_millis(700);

fn envoy(lookup_port: u16, origin_port: u16, mode: &str) -> Envoy {
    let cfg = plugin_config(json!({"lookup": {"timeout_ms": TIMEOUT_MS}, "failure_mode": mode, "retry_after_seconds": 7}));
    Envoy::start(&EnvoyOpts::new(cfg, lookup_port, origin_port))
}

fn hostile_answers() -> Vec<(&'static str, Reply)> {
    let big = format!(
        r#"{{"host":"h.example","account":"a","cname_target":null,"target_account":null,"custom_hostname":null,"origin_resolves":true,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    vec![
        ("timeout", Reply::Late(Duration::from_millis(TIMEOUT_MS + 400), Box::new(fake::allowed("h.example", "a")))),
        ("hang", Reply::Hang),
        ("status 500", Reply::Json(500, "{}".into())),
        ("status 302", Reply::Json(302, String::new())),
        ("malformed", Reply::Json(200, "{not json".into())),
        ("not an object", Reply::Json(200, "[1,2,3]".into())),
        ("wrong type", Reply::Json(200, r#"{"host":"h.example","account":"a","origin_resolves":"yes"}"#.into())),
        ("oversized", Reply::Json(200, big)),
        ("other host", fake::allowed("evil.example", "a")),
        ("CRLF in account", Reply::Json(200, fake::record("h.example", Some("a\r\nx-admin: 1"), None, None, true))),
        ("space in target account", Reply::Json(200, fake::record("h.example", Some("a"), Some("b c"), Some("active"), true))),
        ("reset", Reply::Reset),
        ("cut body", Reply::CutBody(200, fake::record("h.example", Some("a"), None, None, true))),
        ("trickle past timeout", Reply::Trickle(200, fake::record("h.example", Some("a"), None, None, true), Duration::from_millis(20))),
    ]
}

fn check_deny(r: &Response, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.body_text());
    assert_eq!(r.header("retry-after"), Some("7"), "{what}");
    assert_eq!(r.header("server"), Some("cloudflare"), "{what}");
    assert!(r.header("cf-ray").is_some(), "{what}");
    assert!(r.body_text().contains("Ownership lookup unavailable"), "{what}");
    assert!(r.elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN, "{what}: took {:?}", r.elapsed);
}

#[test]
fn deny_mode_answers_503_for_every_lookup_failure() {
    let (_origin, origin_port) = origin();
    for (what, reply) in hostile_answers() {
        let lookup = FakeLookup::start(move |_| reply.clone());
        let envoy = envoy(lookup.port, origin_port, "deny");
        check_deny(&envoy.request("h.example"), what);
        let p = envoy.send(&Request::get("h.example").header("accept", "application/json")).json();
        assert_eq!(p["status"], 503, "{what}");
        assert_eq!(p["retryable"], true, "{what}");
        assert!(envoy.stat("lookup.failed") >= 2, "{what}");
        assert_eq!(envoy.stat("allowed"), 0, "{what}");
    }
}

#[test]
fn allow_mode_lets_requests_through_without_an_account() {
    let (_origin, origin_port) = origin();
    for (what, reply) in hostile_answers() {
        let lookup = FakeLookup::start(move |_| reply.clone());
        let envoy = envoy(lookup.port, origin_port, "allow");
        let r = envoy.send(&Request::get("h.example").header("x-cname-guard-account", "spoofed"));
        assert_eq!(r.status, 200, "{what}: {}", r.body_text());
        assert_eq!(r.json()["account"], serde_json::Value::Null, "{what}: the spoofed header must be removed");
        assert_eq!(r.json()["account_headers"], 0, "{what}");
        assert!(r.elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN, "{what}: took {:?}", r.elapsed);
        assert_eq!(envoy.stat("failure_mode_allowed"), 1, "{what}");
    }
}

#[test]
fn lookup_cluster_down() {
    let (_origin, origin_port) = origin();
    let nothing = free_port();
    let deny = envoy(nothing, origin_port, "deny");
    check_deny(&deny.request("down.example"), "cluster down");
    let allow = envoy(nothing, origin_port, "allow");
    let r = allow.request("down.example");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["account"], serde_json::Value::Null);
}

#[test]
fn failures_are_not_cached_and_service_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let lookup = FakeLookup::start(move |c| {
        if h.load(Ordering::SeqCst) {
            fake::allowed(&c.host_param, "acct-r")
        } else {
            Reply::Json(503, "{}".into())
        }
    });
    let (_origin, origin_port) = origin();
    let envoy = envoy(lookup.port, origin_port, "deny");
    assert_eq!(envoy.request("r.example").status, 503);
    assert_eq!(envoy.request("r.example").status, 503);
    healthy.store(true, Ordering::SeqCst);
    let r = envoy.request("r.example");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["account"], "acct-r");
    assert_eq!(lookup.count("r.example"), 3);
}

#[test]
fn an_unknown_cluster_is_a_lookup_failure() {
    let (_origin, origin_port) = origin();
    let cfg = plugin_config(json!({"lookup": {"cluster": "no_such_cluster"}}));
    let envoy = Envoy::start(&EnvoyOpts::new(cfg, free_port(), origin_port));
    let r = envoy.request("x.example");
    assert_eq!(r.status, 503, "{}", r.body_text());
    envoy.wait_log("on cluster no_such_cluster failed");
}
