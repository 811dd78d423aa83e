//! cname-guard's decision logic, shared by both front ends: the Proxy-Wasm
//! filter (the `cname-guard` crate) and the Envoy dynamic module
//! (`crates/native`). Nothing here calls a host; it is tested natively.

pub mod accept;
pub mod authority;
pub mod backlog;
pub mod cache;
pub mod changes;
pub mod clock;
pub mod coalesce;
pub mod config;
pub mod feed;
pub mod host;
pub mod incoming;
pub mod inflight;
pub mod json;
pub mod lookup;
pub mod page;
pub mod policy;
pub mod ray;
pub mod request;
pub mod respond;
pub mod stats;
pub mod tls;
pub mod verdict;
