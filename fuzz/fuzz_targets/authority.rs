//! `authority::normalize` over any bytes a client can put in `:authority`.
//!
//! Invariants: a name is 1..=253 bytes of `[a-z0-9.-]`, labels of 1..=63,
//! no trailing dot, and normalizing it again (or its upper-case, port or
//! trailing-dot variants) gives the same name; an IP literal is echoed
//! only as digits, hex, dots, colons and brackets; errors have a reason.

#![no_main]

use cname_guard_core::authority::{normalize, Authority};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match normalize(data.to_vec()) {
        Ok(Authority::Name(name)) => check_name(&name),
        Ok(Authority::IpLiteral(ip)) => {
            assert!(!ip.is_empty());
            assert!(
                ip.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'[' | b']')),
                "IP literal echoed with other characters: {ip:?}"
            );
            assert_eq!(normalize(ip.clone().into_bytes()), Ok(Authority::IpLiteral(ip.clone())), "not idempotent");
        }
        Err(e) => assert!(!e.reason().is_empty()),
    }
});

fn check_name(name: &str) {
    assert!((1..=253).contains(&name.len()), "length {}: {name:?}", name.len());
    assert!(
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
        "bad byte in {name:?}"
    );
    for label in name.split('.') {
        assert!((1..=63).contains(&label.len()), "label {label:?} of {name:?}");
    }
    let same = Ok(Authority::Name(name.to_string()));
    assert_eq!(normalize(name.as_bytes().to_vec()), same, "not idempotent");
    assert_eq!(normalize(name.to_ascii_uppercase().into_bytes()), same, "upper case");
    assert_eq!(normalize(format!("{name}.").into_bytes()), same, "trailing dot");
    assert_eq!(normalize(format!("{name}:443").into_bytes()), same, "port");
    assert_eq!(normalize(format!("{name}.:8080").into_bytes()), same, "trailing dot and port");
}
