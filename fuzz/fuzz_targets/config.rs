//! `config::Config::parse` over any plugin configuration.
//!
//! Invariants: no panic; an accepted configuration is within every range
//! docs/configuration.md documents; a refusal names a key and displays.

#![no_main]

use cname_guard_core::config::Config;
use cname_guard_core::verdict::ErrorCode;
use libfuzzer_sys::fuzz_target;

fn token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(c) => {
            assert!(!c.cluster.is_empty() && c.cluster.bytes().all(|b| b.is_ascii_graphic()));
            assert!(!c.authority.is_empty() && c.authority.bytes().all(|b| b.is_ascii_graphic()));
            assert!(c.path.starts_with('/') && !c.path.contains(['?', '#', ' ']));
            assert!((1..=60_000).contains(&c.timeout.as_millis()));
            assert!(c.cache.max_entries <= 1_000_000);
            for s in [
                c.cache.ttl_seconds,
                c.cache.negative_ttl_seconds,
                c.cache.failure_ttl_seconds,
                c.cache.stale_if_error_seconds,
            ] {
                assert!(s <= 86_400);
            }
            assert!((400..=599).contains(&c.status_on_error));
            assert!(c.retry_after_seconds <= 86_400);
            assert!(token(&c.ray_header) && c.ray_header == c.ray_header.to_ascii_lowercase());
            assert!(token(&c.account_header) && c.account_header == c.account_header.to_ascii_lowercase());
            assert!((1..=8).contains(&c.colo.len()) && c.colo.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(!c.server_header.is_empty() && c.server_header.bytes().all(|b| (b' '..=b'~').contains(&b)));
            for code in ErrorCode::ALL {
                assert!((400..=599).contains(&c.status(code)));
            }
            // Parsing is a function of the bytes.
            assert_eq!(Config::parse(data), Ok(c));
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
});
