//! Request-side behaviour: authority checks, the account header, error page formats, HEAD.

mod common;
use cname_guard_host::{Action, Req};
use common::*;
use serde_json::json;

#[test]
fn bad_authority_is_400_without_a_lookup() {
    let mut h = host();
    for bad in
        ["", "bad_host.example", "a..b.example", "exa mple.com", "host.example:99999", "xn--é.example", "1.2.3", "[::1"]
    {
        let r = h.worker(0).send(Req::get(bad));
        let lr = r.local_response(&h).unwrap_or_else(|| panic!("{bad:?}: no local response"));
        assert_eq!(lr.status, 400, "{bad:?}");
        assert_eq!(lr.header("content-type"), Some("text/plain; charset=UTF-8"));
        assert!(lr.body_str().starts_with("400 Bad Request: invalid Host header ("), "{bad:?}: {}", lr.body_str());
        assert!(!r.continued(&h));
    }
    // No :authority at all.
    let r = h.worker(0).send(Req::get("x").without(":authority"));
    assert_eq!(status(&h, &r), 400);
    assert!(h.calls().is_empty(), "no lookup for a bad authority: {:?}", h.calls());
    assert_eq!(h.metric("cname_guard.bad_request"), Some(9));
    h.assert_no_anomalies();
}

#[test]
fn ip_literal_is_1003_without_a_lookup() {
    let mut h = host();
    for ip in ["192.0.2.1", "192.0.2.1:8443", "[2001:db8::1]", "[2001:db8::1]:443", "10.0.0.1."] {
        let r = h.worker(0).get(ip);
        assert_eq!(r.action(), Action::Pause);
        let lr = r.local_response(&h).unwrap_or_else(|| panic!("{ip}: no local response\n{}", h.log_text()));
        assert_eq!(lr.status, 403, "{ip}");
        assert!(lr.body_str().contains("Error 1003"), "{ip}");
    }
    assert!(h.calls().is_empty());
    assert_eq!(h.metric("cname_guard.denied_1003"), Some(5));
}

#[test]
fn authority_is_normalized_before_the_lookup() {
    let mut h = host();
    let _r = h.worker(0).get("Shop.Customer.EXAMPLE.:8443");
    assert_eq!(h.last_call().unwrap().query("host"), Some("shop.customer.example"));
}

#[test]
fn spoofed_account_header_is_replaced_on_allow() {
    let mut h = host();
    let spoofed =
        Req::get("shop.customer.example").header(ACCOUNT_HEADER, "acct-victim").add_header(ACCOUNT_HEADER, "acct-two");
    let r = h.worker(0).send(spoofed.clone());
    answer_record(&mut h, "shop.customer.example", json!({"account": "acct-real"}));
    assert_eq!(r.forwarded_headers(&h).unwrap().get_all(ACCOUNT_HEADER), vec!["acct-real"]);
    // From the cache too.
    let r = h.worker(0).send(spoofed);
    assert_eq!(r.action(), Action::Continue);
    assert_eq!(r.forwarded_headers(&h).unwrap().get_all(ACCOUNT_HEADER), vec!["acct-real"]);
    h.assert_no_anomalies();
}

#[test]
fn account_header_name_is_configurable() {
    let mut h = host_with(json!({"account_header": "X-Tenant"}));
    let r = looked_up(&mut h, "shop.customer.example", json!({"account": "t-1"}));
    assert_eq!(r.forwarded_header(&h, "x-tenant"), Some("t-1"));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), None);
}

fn denied_with_accept(accept: Option<&str>) -> (String, String) {
    let mut h = host();
    let mut req = Req::get("shop.customer.example");
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = h.worker(0).send(req);
    answer_record(&mut h, "shop.customer.example", json!({"account": "a", "target_account": "b"}));
    let lr = r.local_response(&h).expect("denied");
    assert_eq!(lr.status, 409);
    (lr.header("content-type").unwrap().to_string(), lr.body_str().to_string())
}

#[test]
fn error_page_follows_accept() {
    let (ct, body) = denied_with_accept(Some("application/json"));
    assert_eq!(ct, "application/problem+json");
    let v: serde_json::Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(v["error_code"], 1014);
    assert_eq!(v["status"], 409);
    assert_eq!(v["host"], "shop.customer.example");
    assert!(v["ray_id"].as_str().unwrap().ends_with("-EDG"));

    let (ct, body) = denied_with_accept(Some("text/plain"));
    assert_eq!(ct, "text/plain; charset=UTF-8");
    assert_eq!(body, "error code: 1014\n");

    let (ct, body) = denied_with_accept(Some("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"));
    assert_eq!(ct, "text/html; charset=UTF-8");
    assert!(body.starts_with("<!doctype html>") && body.contains("Error 1014"));

    let (ct, _) = denied_with_accept(None);
    assert_eq!(ct, "text/html; charset=UTF-8");
    let (ct, _) = denied_with_accept(Some("text/html;q=0.1, application/json;q=0.5"));
    assert_eq!(ct, "application/problem+json");
}

#[test]
fn head_gets_no_body() {
    let mut h = host();
    let r = h.worker(0).send(Req::get("shop.customer.example").method("HEAD"));
    answer_record(&mut h, "shop.customer.example", json!({"account": "a", "target_account": "b"}));
    let resp = r.response(&h).expect("response");
    assert_eq!(resp.status, 409);
    assert!(resp.local);
    assert!(resp.body.is_empty(), "HEAD response carried a body");
    // Envoy keeps the content-length of the body it dropped.
    let len: usize = resp.header("content-length").expect("content-length").parse().unwrap();
    assert_eq!(len, r.local_response(&h).unwrap().body.len());
    // An IP literal on HEAD too.
    let r = h.worker(0).send(Req::get("192.0.2.7").method("HEAD"));
    assert_eq!(status(&h, &r), 403);
    assert!(r.response(&h).unwrap().body.is_empty());
}

#[test]
fn request_id_is_passed_to_the_lookup() {
    let mut h = host();
    let _r = h.worker(0).send(Req::get("shop.customer.example").header("x-request-id", "req-42"));
    assert_eq!(h.last_call().unwrap().header("x-request-id"), Some("req-42"));
}

#[test]
fn a_paused_request_keeps_its_body_until_resumed() {
    let mut h = host();
    let r = h.worker(0).send(Req::get("shop.customer.example").method("POST").body("payload"));
    assert!(r.paused(&h));
    answer_record(&mut h, "shop.customer.example", json!({}));
    assert_eq!(r.forwarded_body(&h), Some(&b"payload"[..]));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-owner"));
    h.assert_no_anomalies();
}
