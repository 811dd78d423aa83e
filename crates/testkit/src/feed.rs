//! The edge the change feed's tests run: Envoy with two workers,
//! `cache.ttl_seconds` 300 and the feed on (its defaults), in front of a
//! lookup service given by port (the harness's fake or the real service),
//! and which of its workers accepted a connection.

use super::{get, merge, origin, plugin_config, Envoy, EnvoyOpts, Proc};
use serde_json::json;

/// Envoy (`--concurrency 2`, `cache.ttl_seconds` 300, the feed on by
/// default, `extra` merged in) in front of `lookup_port`, and its origin.
pub fn edge(lookup_port: u16, extra: serde_json::Value) -> (Envoy, Proc) {
    let (origin, origin_port) = origin();
    let mut config = json!({"cache": {"ttl_seconds": 300}});
    merge(&mut config, extra);
    let mut opts = EnvoyOpts::new(plugin_config(config), lookup_port, origin_port);
    opts.concurrency = 2;
    (Envoy::start(&opts), origin)
}

/// How many connections each worker has accepted, by worker index.
pub fn per_worker_connections(envoy: &Envoy) -> Vec<u64> {
    // Only the listeners' connection counters: this is read once per request
    // when a test tells the workers apart.
    let text = get(envoy.admin, "/stats?filter=downstream_cx_total").body_text();
    let mut v: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(k, n)| n.trim().parse().ok().map(|n| (k.to_string(), n)))
        .filter(|(k, _)| k.starts_with("listener.edge.worker_") && k.ends_with(".downstream_cx_total"))
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}
