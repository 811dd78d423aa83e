//! Shared by the store and admin API tests.
#![allow(dead_code)]

pub mod api;
pub mod service;

// The kit's, under the names these tests use (not every binary uses each).
#[allow(unused_imports)]
pub use cname_guard_testkit::{dns, dns::zone, postgres, Scratch};

/// The service's resolver, uncached, asking only `server`.
pub fn resolver(server: &str) -> cname_guard_lookup::resolve::Hickory {
    let config = cname_guard_lookup::resolve::DnsConfig {
        servers: vec![server.parse().expect("server address")],
        timeout: std::time::Duration::from_millis(300),
        attempts: 2,
    };
    cname_guard_lookup::resolve::Hickory::new(&config).expect("resolver")
}
