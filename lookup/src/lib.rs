//! cname-guard's reference ownership lookup service (lookup contract v1) and
//! demo origin.

pub mod logs;
// Issue 20: Prometheus metrics.
pub mod metrics;

pub mod api;
pub mod chain;
pub mod cli;
pub mod client;
pub mod dns;
pub mod dns_budget;
pub mod dns_cache;
pub mod ext_authz;
pub mod feed;
pub mod http;
pub mod origin;
pub mod output;
pub mod ownership;
pub mod pacer;
pub mod registry;
pub mod resolve;
pub mod run;
pub mod serve;
pub mod server;
pub mod shed;
pub mod verdict;

// Issue 11: the store, the management API and the verifier.
pub mod admin;
pub mod diagnosis;
pub mod probe;
pub mod retention;
pub mod store;
pub mod verification;
pub mod verifier;

// Issue 21: certificates.
pub mod certs;
// Issue 24: on-demand SDS for Envoy.
pub mod xds;
