//! Metric ids, defined in `on_http_filter_config_new` (stat creation is
//! frozen afterwards) under the Wasm build's names; Envoy shows them under
//! its dynamic-module stats prefix.

use crate::ffi::{ConfigHandle, MetricKind, Stream};
use cname_guard_core::verdict::ErrorCode;

pub struct Metrics {
    pub requests: Option<usize>,
    pub allowed: Option<usize>,
    pub denied: [Option<usize>; ErrorCode::ALL.len()],
    pub bad_request: Option<usize>,
    pub failure_mode_denied: Option<usize>,
    pub failure_mode_allowed: Option<usize>,
    pub cache_hits: Option<usize>,
    pub cache_misses: Option<usize>,
    pub cache_evictions: Option<usize>,
    pub cache_stale_served: Option<usize>,
    pub cache_entries: Option<usize>,
    pub lookups_started: Option<usize>,
    pub lookups_failed: Option<usize>,
    pub lookups_timed_out: Option<usize>,
    pub lookups_coalesced: Option<usize>,
    pub lookup_latency_ms: Option<usize>,
}

impl Metrics {
    pub fn define(c: &ConfigHandle) -> Metrics {
        use MetricKind::{Counter, Gauge, Histogram};
        Metrics {
            requests: c.define(Counter, "cname_guard.requests"),
            allowed: c.define(Counter, "cname_guard.allowed"),
            denied: ErrorCode::ALL.map(|e| c.define(Counter, &format!("cname_guard.denied_{}", e.number()))),
            bad_request: c.define(Counter, "cname_guard.bad_request"),
            failure_mode_denied: c.define(Counter, "cname_guard.failure_mode_denied"),
            failure_mode_allowed: c.define(Counter, "cname_guard.failure_mode_allowed"),
            cache_hits: c.define(Counter, "cname_guard.cache.hits"),
            cache_misses: c.define(Counter, "cname_guard.cache.misses"),
            cache_evictions: c.define(Counter, "cname_guard.cache.evictions"),
            cache_stale_served: c.define(Counter, "cname_guard.cache.stale_served"),
            cache_entries: c.define(Gauge, "cname_guard.cache.entries"),
            lookups_started: c.define(Counter, "cname_guard.lookup.started"),
            lookups_failed: c.define(Counter, "cname_guard.lookup.failed"),
            lookups_timed_out: c.define(Counter, "cname_guard.lookup.timeouts"),
            lookups_coalesced: c.define(Counter, "cname_guard.lookup.coalesced"),
            lookup_latency_ms: c.define(Histogram, "cname_guard.lookup.latency_ms"),
        }
    }
}

/// Counting against one stream.
pub fn inc(s: Stream, id: Option<usize>) {
    s.count(id, 1);
}
