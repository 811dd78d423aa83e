//! Metrics, defined once per VM in `on_configure`; Envoy shares them by
//! name across workers and shows them in `/stats` under `cname_guard.`.

use crate::verdict::ErrorCode;
use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Counter and gauge ids. An id of `None` (the host refused the metric) is
/// skipped: metrics must never fail a request.
pub struct Metrics {
    pub requests: Option<u32>,
    pub allowed: Option<u32>,
    pub denied: [Option<u32>; ErrorCode::ALL.len()],
    pub bad_request: Option<u32>,
    pub failure_mode_denied: Option<u32>,
    pub failure_mode_allowed: Option<u32>,
    pub cache_hits: Option<u32>,
    pub cache_misses: Option<u32>,
    pub cache_evictions: Option<u32>,
    pub cache_stale_served: Option<u32>,
    pub cache_entries: Option<u32>,
    pub lookups_started: Option<u32>,
    pub lookups_failed: Option<u32>,
    pub lookups_timed_out: Option<u32>,
    pub lookups_coalesced: Option<u32>,
    pub lookup_latency_ms: Option<u32>,
    pub changes_polls: Option<u32>,
    pub changes_applied: Option<u32>,
    pub changes_resets: Option<u32>,
    pub changes_failed: Option<u32>,
    pub changes_seq: Option<u32>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(e) => {
            warn!("cname-guard: metric {name} not defined: {e:?}");
            None
        }
    }
}

impl Metrics {
    pub fn define() -> Metrics {
        use MetricType::{Counter, Gauge, Histogram};
        Metrics {
            requests: define(Counter, "cname_guard.requests"),
            allowed: define(Counter, "cname_guard.allowed"),
            denied: ErrorCode::ALL.map(|c| define(Counter, &format!("cname_guard.denied_{}", c.number()))),
            bad_request: define(Counter, "cname_guard.bad_request"),
            failure_mode_denied: define(Counter, "cname_guard.failure_mode_denied"),
            failure_mode_allowed: define(Counter, "cname_guard.failure_mode_allowed"),
            cache_hits: define(Counter, "cname_guard.cache.hits"),
            cache_misses: define(Counter, "cname_guard.cache.misses"),
            cache_evictions: define(Counter, "cname_guard.cache.evictions"),
            cache_stale_served: define(Counter, "cname_guard.cache.stale_served"),
            cache_entries: define(Gauge, "cname_guard.cache.entries"),
            lookups_started: define(Counter, "cname_guard.lookup.started"),
            lookups_failed: define(Counter, "cname_guard.lookup.failed"),
            lookups_timed_out: define(Counter, "cname_guard.lookup.timeouts"),
            lookups_coalesced: define(Counter, "cname_guard.lookup.coalesced"),
            lookup_latency_ms: define(Histogram, "cname_guard.lookup.latency_ms"),
            changes_polls: define(Counter, "cname_guard.changes.polls"),
            changes_applied: define(Counter, "cname_guard.changes.applied"),
            changes_resets: define(Counter, "cname_guard.changes.resets"),
            changes_failed: define(Counter, "cname_guard.changes.failed"),
            changes_seq: define(Gauge, "cname_guard.changes.seq"),
        }
    }
}

pub fn inc(id: Option<u32>) {
    add(id, 1);
}

pub fn add(id: Option<u32>, n: i64) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, n);
    }
}

/// Sets a gauge to `value` (Proxy-Wasm records a gauge's value).
pub fn set(id: Option<u32>, value: u64) {
    record(id, value);
}

pub fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}
