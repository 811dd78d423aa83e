//! Configuration errors: on_configure returns false and the log names the key.

mod common;
use cname_guard_host::Host;
use common::*;
use serde_json::json;

fn refused(config: &[u8]) -> Host {
    let h = Host::builder().raw_config(config).cluster(CLUSTER).workers(2).build().expect("VM starts");
    assert!(!h.configured(), "accepted: {}", String::from_utf8_lossy(config));
    assert_eq!(h.configure_results(), vec![false, false]);
    h
}

#[test]
fn unknown_key_is_refused() {
    let h = refused(br#"{"lookup":{"cluster":"lookup"},"bogus":1}"#);
    assert!(h.logged("`bogus`"), "{}", h.log_text());
    let h = refused(br#"{"lookup":{"cluster":"lookup","tiemout_ms":100}}"#);
    assert!(h.logged("tiemout_ms"), "{}", h.log_text());
}

#[test]
fn missing_lookup_cluster_is_refused() {
    let h = refused(br#"{"lookup":{}}"#);
    assert!(h.logged("cluster"), "{}", h.log_text());
    refused(br#"{}"#);
    refused(br#"{"lookup":{"cluster":""}}"#);
}

#[test]
fn wrong_types_are_refused() {
    let h = refused(br#"{"lookup":{"cluster":"lookup","timeout_ms":"500"}}"#);
    assert!(h.logged("`lookup.timeout_ms`"), "{}", h.log_text());
    refused(br#"{"lookup":{"cluster":"lookup"},"failure_mode":true}"#);
    refused(br#"{"lookup":{"cluster":"lookup"},"cache":{"ttl_seconds":-1}}"#);
    refused(br#"{"lookup":"lookup"}"#);
}

#[test]
fn out_of_range_values_are_refused() {
    refused(br#"{"lookup":{"cluster":"lookup","timeout_ms":0}}"#);
    refused(br#"{"lookup":{"cluster":"lookup"},"status":{"1014":200}}"#);
    refused(br#"{"lookup":{"cluster":"lookup"},"status":{"1015":409}}"#);
    refused(br#"{"lookup":{"cluster":"lookup"},"account_header":":authority"}"#);
    refused(br#"{"lookup":{"cluster":"lookup","path":"v1?x"}}"#);
}

#[test]
fn malformed_or_empty_configuration_is_refused() {
    refused(b"");
    refused(b"not json");
    refused(b"[]");
    refused(b"\xff\xfe");
}

#[test]
fn a_valid_configuration_is_accepted_by_every_worker() {
    let h = builder(json!({"failure_mode": "allow", "cache": {"ttl_seconds": 5}})).workers(3).build().unwrap();
    assert_eq!(h.configure_results(), vec![true, true, true]);
}
