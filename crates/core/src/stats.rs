//! The filter's metrics: one list of names and kinds for both builds, each
//! front end supplying how a metric is defined on its host (`Ids::define`).

use crate::verdict::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The id (of the host's type `T`) of every metric.
pub struct Ids<T> {
    pub requests: T,
    pub allowed: T,
    pub denied: [T; ErrorCode::ALL.len()],
    pub bad_request: T,
    pub misdirected: T,
    pub redirected_https: T,
    pub failure_mode_denied: T,
    pub failure_mode_allowed: T,
    pub cache_hits: T,
    pub cache_misses: T,
    pub cache_evictions: T,
    pub cache_stale_served: T,
    pub cache_entries: T,
    pub lookups_started: T,
    pub lookups_failed: T,
    pub lookups_timed_out: T,
    pub lookups_coalesced: T,
    pub lookups_shed: T,
    pub lookup_latency_ms: T,
    pub changes_polls: T,
    pub changes_applied: T,
    pub changes_resets: T,
    pub changes_failed: T,
    pub changes_seq: T,
}

impl<T> Ids<T> {
    /// Defines every metric with `f(kind, full name)`.
    pub fn define(mut f: impl FnMut(Kind, &str) -> T) -> Ids<T> {
        use Kind::{Counter, Gauge, Histogram};
        Ids {
            requests: f(Counter, "cname_guard.requests"),
            allowed: f(Counter, "cname_guard.allowed"),
            denied: ErrorCode::ALL.map(|c| f(Counter, &format!("cname_guard.denied_{}", c.number()))),
            bad_request: f(Counter, "cname_guard.bad_request"),
            misdirected: f(Counter, "cname_guard.misdirected"),
            redirected_https: f(Counter, "cname_guard.redirected_https"),
            failure_mode_denied: f(Counter, "cname_guard.failure_mode_denied"),
            failure_mode_allowed: f(Counter, "cname_guard.failure_mode_allowed"),
            cache_hits: f(Counter, "cname_guard.cache.hits"),
            cache_misses: f(Counter, "cname_guard.cache.misses"),
            cache_evictions: f(Counter, "cname_guard.cache.evictions"),
            cache_stale_served: f(Counter, "cname_guard.cache.stale_served"),
            cache_entries: f(Gauge, "cname_guard.cache.entries"),
            lookups_started: f(Counter, "cname_guard.lookup.started"),
            lookups_failed: f(Counter, "cname_guard.lookup.failed"),
            lookups_timed_out: f(Counter, "cname_guard.lookup.timeouts"),
            lookups_coalesced: f(Counter, "cname_guard.lookup.coalesced"),
            lookups_shed: f(Counter, "cname_guard.lookup.shed"),
            lookup_latency_ms: f(Histogram, "cname_guard.lookup.latency_ms"),
            changes_polls: f(Counter, "cname_guard.changes.polls"),
            changes_applied: f(Counter, "cname_guard.changes.applied"),
            changes_resets: f(Counter, "cname_guard.changes.resets"),
            changes_failed: f(Counter, "cname_guard.changes.failed"),
            changes_seq: f(Gauge, "cname_guard.changes.seq"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_once() {
        let mut names = Vec::new();
        Ids::define(|_, n| names.push(n.to_string()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|n| n.starts_with("cname_guard.")));
        assert!(names.contains(&"cname_guard.denied_1014".to_string()));
        assert!(names.contains(&"cname_guard.misdirected".to_string()));
        assert!(names.contains(&"cname_guard.redirected_https".to_string()));
    }
}
