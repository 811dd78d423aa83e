//! Metrics, defined once per VM in `on_configure` from the shared list in
//! `cname_guard_core::stats`; Envoy shares them by name across workers and
//! shows them in `/stats` under `cname_guard.`.

use cname_guard_core::stats::{Ids, Kind};
use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Counter, gauge and histogram ids, by the names in `cname_guard_core::stats`.
/// An id of `None` (the host refused the metric) is skipped: metrics must
/// never fail a request.
pub type Metrics = Ids<Option<u32>>;

pub fn define() -> Metrics {
    Ids::define(|kind, name| {
        let kind = match kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
        };
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(e) => {
                warn!("cname-guard: metric {name} not defined: {e:?}");
                None
            }
        }
    })
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
