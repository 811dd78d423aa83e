//! Every verdict through real Envoy, the reference lookup service over the
//! demo registry, and the demo origin.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, Reply};
use common::*;
use serde_json::json;

struct Stack {
    envoy: Envoy,
    _lookup: Proc,
    _origin: Proc,
}

fn stack() -> Stack {
    let (lookup, lookup_port) = reference_lookup();
    let (origin, origin_port) = origin();
    let envoy = Envoy::start(&EnvoyOpts::new(plugin_config(json!({})), lookup_port, origin_port));
    Stack { envoy, _lookup: lookup, _origin: origin }
}

fn assert_ray(r: &Response) {
    let ray = r.header("cf-ray").expect("cf-ray header");
    let (hex, colo) = ray.split_once('-').expect("ray has a dash");
    assert_eq!(hex.len(), 16, "{ray}");
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{ray}");
    assert_eq!(colo, "ARN");
}

fn assert_page(r: &Response, status: u16, code: u16, name: &str, host: &str) {
    assert_eq!(r.status, status, "{host}: {}", r.body_text());
    assert_eq!(r.header("server"), Some("cloudflare"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(r.header("cache-control"), Some("private, max-age=0, no-store, no-cache, must-revalidate"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_ray(r);
    let body = r.body_text();
    assert!(body.contains(&format!("<title>{host} | Error {code}</title>")), "{body}");
    assert!(body.contains(&format!("<h1>Error {code}: {name}</h1>")), "{body}");
    assert!(body.contains(r.header("cf-ray").unwrap_or("?")), "ray id shown on the page");
}

#[test]
fn the_seed_request_gets_the_1014_page() {
    let s = stack();
    let r = s.envoy.send(
        &Request::get("custom.myclientsite.com")
            .header("User-Agent", "Mozilla/5.0")
            .header("Accept", "text/html"),
    );
    assert_page(&r, 409, 1014, "CNAME cross-user banned", "custom.myclientsite.com");
    let body = r.body_text();
    assert!(body.contains("custom hostname"), "remedy: add as custom hostname");
    assert!(body.contains("A record"), "remedy: A record to the origin");
    // A fresh ray id per response.
    let again = s.envoy.request("custom.myclientsite.com");
    assert_ne!(again.header("cf-ray"), r.header("cf-ray"));
}

#[test]
fn every_verdict_of_the_demo_registry() {
    let s = stack();
    for (host, status, code, name) in [
        ("blocked.customer.example", 409, 1014, "CNAME cross-user banned"),
        ("pending.customer.example", 530, 1016, "Origin DNS error"),
        ("moved.customer.example", 530, 1016, "Origin DNS error"),
        ("broken.saas.example", 530, 1016, "Origin DNS error"),
        ("www.frozen.example", 403, 1004, "Host not configured to serve web traffic"),
        ("orphan.example", 409, 1001, "DNS resolution error"),
        ("nobody-knows-this.example", 409, 1001, "DNS resolution error"),
    ] {
        let r = s.envoy.request(host);
        assert_page(&r, status, code, name, host);
    }
    for (host, account) in [
        ("shop.customer.example", "acct-saas"),
        ("www.saas.example", "acct-saas"),
        ("app.saas.example", "acct-saas"),
        ("anything.tenants.saas.example", "acct-saas"),
    ] {
        let r = s.envoy.request(host);
        assert_eq!(r.status, 200, "{host}: {}", r.body_text());
        let echo = r.json();
        assert_eq!(echo["host"], host);
        assert_eq!(echo["account"], account, "{host}");
        assert_eq!(echo["account_headers"], 1);
    }
    assert!(s.envoy.stat("denied_1014") >= 1);
    assert!(s.envoy.stat("allowed") >= 4);
}

#[test]
fn a_spoofed_account_header_is_replaced_or_removed() {
    let s = stack();
    let r = s.envoy.send(
        &Request::get("shop.customer.example")
            .header("x-cname-guard-account", "acct-client")
            .header("X-Cname-Guard-Account", "root"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["account"], "acct-saas");
    assert_eq!(r.json()["account_headers"], 1);
}

#[test]
fn content_negotiation_and_head() {
    let s = stack();
    let host = "custom.myclientsite.com";
    for accept in ["application/json", "application/problem+json", "text/html;q=0.5, application/json"] {
        let r = s.envoy.send(&Request::get(host).header("Accept", accept));
        assert_eq!(r.status, 409);
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{accept}");
        let p = r.json();
        assert_eq!(p["status"], 409);
        assert_eq!(p["error_code"], 1014);
        assert_eq!(p["error_name"], "CNAME cross-user banned");
        assert_eq!(p["host"], host);
        assert_eq!(p["ray_id"], r.header("cf-ray").expect("ray"));
        assert_eq!(p["retryable"], false);
        assert_eq!(p["owner_action_required"], true);
        for key in ["type", "title", "detail", "instance"] {
            assert!(p[key].is_string(), "{key}");
        }
    }
    let r = s.envoy.send(&Request::get(host).header("Accept", "text/plain"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(r.body_text(), "error code: 1014\n");
    let r = s.envoy.send(&Request::get(host).header("Accept", "text/plain;q=0.1, text/html"));
    assert!(r.body_text().starts_with("<!doctype html>"));

    let get = s.envoy.request(host);
    let head = s.envoy.send(&Request::get(host).method("HEAD"));
    assert_eq!(head.status, 409);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_ray(&head);
}

#[test]
fn normalization_and_refusals_without_lookup() {
    let lookup = FakeLookup::start(|c| fake::allowed(&c.host_param, "acct-n"));
    let (_origin, origin_port) = origin();
    let envoy = Envoy::start(&EnvoyOpts::new(plugin_config(json!({})), lookup.port, origin_port));
    for raw in ["Shop.Example.COM", "shop.example.com:8443", "shop.example.com.", "SHOP.example.com.:80"] {
        let r = envoy.request(raw);
        assert_eq!(r.status, 200, "{raw}: {}", r.body_text());
        assert_eq!(r.json()["account"], "acct-n");
    }
    assert_eq!(lookup.count("shop.example.com"), 1, "one normalized key, cached: {:?}", lookup.calls());

    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}.example", vec!["a".repeat(60); 5].join("."));
    for bad in ["", "a..b", "exa_mple.com", "example.com:http", long_label.as_str(), long_name.as_str(), "1.2.3.4.5"] {
        let r = envoy.request(bad);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body_text());
        assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
        assert!(r.body_text().starts_with("400 Bad Request: invalid Host header"), "{bad:?}");
    }
    // Envoy's own codec refuses these before any filter runs: still a 400.
    for bad in ["bad host.example", "<script>.example"] {
        assert_eq!(envoy.request(bad).status, 400, "{bad:?}");
    }
    // Non-ASCII bytes in Host.
    let r = send(envoy.port, &Request { headers: vec![("Host".into(), "bücher.example".into())], ..Request::get("x") });
    assert!(r.status == 400, "non-ASCII: {}", r.status);
    for (ip, shown) in [("192.0.2.7", "192.0.2.7"), ("192.0.2.7:8080", "192.0.2.7"), ("[2001:db8::1]", "[2001:db8::1]"), ("[::1]:443", "[::1]")] {
        let r = envoy.request(ip);
        assert_eq!(r.status, 403, "{ip}");
        assert!(r.body_text().contains("Error 1003: Direct IP access not allowed"), "{ip}");
        assert!(r.body_text().contains(&format!("<title>{shown} | Error 1003</title>")), "{ip}");
        assert_ray(&r);
    }
    let asked: Vec<String> = lookup.calls().iter().map(|c| c.host_param.clone()).collect();
    assert_eq!(asked, vec!["shop.example.com".to_string()], "no lookup for refused names");
    assert!(envoy.stat("bad_request") >= 7);
    assert_eq!(envoy.stat("denied_1003"), 4);
}

#[test]
fn the_lookup_request_follows_contract_v1() {
    let lookup = FakeLookup::start(|c| fake::allowed(&c.host_param, "acct-c"));
    let (_origin, origin_port) = origin();
    let cfg = plugin_config(json!({"lookup": {"authority": "ownership.internal", "path": "/v9/who"}}));
    let envoy = Envoy::start(&EnvoyOpts::new(cfg, lookup.port, origin_port));
    let r = envoy.send(&Request::get("Api.Example.net").header("x-request-id", "req-123"));
    assert_eq!(r.status, 200);
    let calls = lookup.calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.path, "/v9/who?host=api.example.net");
    assert_eq!(c.header("host"), Some("ownership.internal"));
    assert_eq!(c.header("accept"), Some("application/json"));
    assert_eq!(c.header("x-request-id"), Some("req-123"));
}

#[test]
fn a_request_body_waits_for_the_verdict() {
    // A slow 1014: the body must not carry the request to the origin first.
    let lookup = FakeLookup::start(|c| {
        Reply::Late(
            std::time::Duration::from_millis(300),
            Box::new(Reply::Json(200, fake::record(&c.host_param, Some("a"), Some("b"), None, true))),
        )
    });
    let (_origin, origin_port) = origin();
    let envoy = Envoy::start(&EnvoyOpts::new(plugin_config(json!({})), lookup.port, origin_port));
    let r = envoy.send(&Request::get("post.example").method("POST").body(&[b'x'; 20_000]));
    assert_eq!(r.status, 409);
    let upstream = stats(envoy.admin);
    assert_eq!(upstream.get("cluster.origin.upstream_rq_total").copied().unwrap_or(0), 0, "origin saw the request");
}

#[test]
fn a_configuration_error_is_refused_naming_the_key() {
    for (cfg, key) in [
        (json!({"lookup": {"cluster": "cname_guard_lookup"}, "bogus": true}), "bogus"),
        (json!({"lookup": {}}), "cluster"),
        (json!({"lookup": {"cluster": "cname_guard_lookup", "timeout_ms": "fast"}}), "lookup.timeout_ms"),
        (json!({"lookup": {"cluster": "cname_guard_lookup"}, "failure_mode": "open"}), "failure_mode"),
    ] {
        let log = Envoy::refused(&EnvoyOpts::new(cfg.clone(), free_port(), free_port()));
        assert!(log.contains("cname-guard: invalid configuration"), "{cfg}: {log}");
        assert!(log.contains(key), "{cfg}: key {key} not named in:\n{log}");
    }
}
