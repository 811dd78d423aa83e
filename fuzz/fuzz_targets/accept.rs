//! `accept::negotiate` over any `Accept` header value.
//!
//! Invariants: no panic; case does not matter; bytes that are not UTF-8
//! get HTML; adding a range that accepts nothing never changes the choice.

#![no_main]

use cname_guard_core::accept::{negotiate, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = negotiate(Some(data));
    assert_eq!(negotiate(Some(&data.to_ascii_lowercase())), f, "case changed the choice");
    assert_eq!(negotiate(Some(&data.to_ascii_uppercase())), f, "case changed the choice");
    match std::str::from_utf8(data) {
        Err(_) => assert_eq!(f, Format::Html),
        Ok(s) => {
            // Only the first 64 ranges are read, so append to short headers only.
            if s.split(',').count() < 60 {
                let more = format!("{s}, image/png, font/woff2;q=0.9");
                assert_eq!(negotiate(Some(more.as_bytes())), f, "an unrelated range changed the choice");
            }
        }
    }
});
