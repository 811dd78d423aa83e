//! Metric ids, defined in `on_http_filter_config_new` (stat creation is
//! frozen afterwards) from the shared list in `cname_guard_core::stats`;
//! Envoy shows them under its dynamic-module stats prefix.

use crate::ffi::{ConfigHandle, Stream};
use cname_guard_core::stats::Ids;

pub type Metrics = Ids<Option<usize>>;

pub fn define(c: &ConfigHandle) -> Metrics {
    Ids::define(|kind, name| c.define(kind, name))
}

/// Counting against one stream.
pub fn inc(s: Stream, id: Option<usize>) {
    s.count(id, 1);
}
