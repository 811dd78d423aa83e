//! Helpers shared by the host tests: a configured host, lookup answers, request shapes.
#![allow(dead_code)]

use cname_guard_host::{Host, HostBuilder, Request};
use serde_json::{json, Value};

pub const CLUSTER: &str = "lookup";
pub const ACCOUNT_HEADER: &str = "x-cname-guard-account";

/// The smallest valid configuration, merged with `extra` (top-level keys
/// replace). The change feed is off: its polls would be calls these tests
/// count (the feed is tested in real Envoy, tests/e2e_changes.rs).
pub fn config(extra: Value) -> Value {
    let mut c = json!({"lookup": {"cluster": CLUSTER}, "changes": {"interval_ms": 0}});
    if let (Some(base), Some(more)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    c
}

pub fn builder(extra: Value) -> HostBuilder {
    Host::builder().config(config(extra)).cluster(CLUSTER)
}

/// One worker, default configuration.
pub fn host() -> Host {
    host_with(json!({}))
}

pub fn host_with(extra: Value) -> Host {
    let h = builder(extra).build().expect("host starts");
    assert!(h.configured(), "configuration refused:\n{}", h.log_text());
    h
}

/// A lookup record (contract v1) for `host`; fields not given keep the "plain owner" shape.
pub fn record(host: &str, fields: Value) -> Vec<u8> {
    let mut r = json!({
        "host": host,
        "account": "acct-owner",
        "cname_target": null,
        "target_account": null,
        "custom_hostname": null,
        "origin_resolves": true,
        "suspended": false,
        "ttl": 60
    });
    if let (Some(base), Some(more)) = (r.as_object_mut(), fields.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&r).unwrap()
}

/// Answers the newest pending callout with 200 and this record.
pub fn answer_record(h: &mut Host, host: &str, fields: Value) {
    let token = h.pending_calls().last().expect("a pending lookup").token;
    h.answer(token, 200, &[("content-type", "application/json")], &record(host, fields));
}

/// Sends `GET /` for `host` on worker 0 and answers its lookup with `fields`.
pub fn looked_up(h: &mut Host, host: &str, fields: Value) -> Request {
    let r = h.worker(0).get(host);
    answer_record(h, host, fields);
    r
}

/// The status the client got, or a panic with the story of the request.
pub fn status(h: &Host, r: &Request) -> u32 {
    match r.status(h) {
        Some(s) => s,
        None => panic!("request has no response yet (paused: {})\n{}", r.paused(h), h.log_text()),
    }
}
