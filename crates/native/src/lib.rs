//! cname-guard as an Envoy dynamic module (`libcname_guard.so`): the same
//! decisions as the Proxy-Wasm build, from `cname-guard-core`, behind a
//! thin native front end.
//!
//! - `ffi`: every `unsafe`: the ABI subset, safe wrappers, exported hooks.
//! - `module`: the filter config (cache, lookups in flight, deadline
//!   thread) and the per-stream filter.
//! - `feed`: the change-feed poller (main thread, config-level callouts).
//! - `flight`: lookups in flight shared by all workers (coalescing).
//! - `metrics`: counter, gauge and histogram ids.
//! - `host`: core's `Host` (clock, counters, log, ray ids) over the ABI.

// The glue links against symbols only Envoy provides, so unit tests
// (a plain executable) cover the pure parts only.
#[cfg(not(test))]
mod feed;
#[cfg(not(test))]
mod ffi;
pub mod flight;
#[cfg(not(test))]
mod host;
#[cfg(not(test))]
mod metrics;
#[cfg(not(test))]
mod module;
