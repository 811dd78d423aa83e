//! On-demand SDS for Envoy (issue 24): the delta variant of Envoy's
//! aggregated discovery service, serving each active custom hostname's
//! certificate as a `Secret` named by the hostname, its key inline, to
//! Envoys that hold the node token; pushing changes from the store's feed.

mod secrets;
mod server;
mod session;

pub use secrets::{Fallback, FALLBACK_NAME, SECRET_TYPE};
pub use server::{serve, tls_config, XdsConfig, XdsStats};

/// The node metadata key that carries the token (`node.metadata`).
pub const TOKEN_KEY: &str = "cname_guard_token";
