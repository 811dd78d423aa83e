//! `changes::parse_answer` over any status and body a change feed (or
//! whatever answers in its place) can send, and the eviction it leads to.
//!
//! The first byte picks the status; the rest is the body. Invariants: no
//! panic; only 200 yields an answer, 404 is always "no feed"; oversized
//! bodies are refused; an answer names at most 1000 canonical names, and
//! its eviction takes exactly those names and what is under its zones.

#![no_main]

use cname_guard_core::changes::{canonical, parse_answer, Answer, Eviction, FeedError, MAX_BODY, MAX_NAMES};
use libfuzzer_sys::fuzz_target;

const STATUSES: [Option<&str>; 6] = [Some("200"), Some("200"), Some("404"), Some("500"), Some("x"), None];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel) % STATUSES.len()];
    let reported = if sel & 0x80 != 0 { body.len() + MAX_BODY } else { body.len() };
    let result = parse_answer(status, reported, body);
    let _ = result.as_ref().map_err(|e| e.to_string());
    match (status, &result) {
        (None, r) => assert_eq!(r, &Err(FeedError::NoResponse)),
        (Some("404"), r) => assert_eq!(r, &Err(FeedError::Absent)),
        (Some("200"), _) if reported > MAX_BODY => assert_eq!(result, Err(FeedError::TooLarge)),
        (Some(s), Ok(_)) if s != "200" => panic!("status {s:?} read as an answer"),
        (_, Ok(Answer::Changes { hosts, zones, .. })) => {
            assert!(hosts.len() + zones.len() <= MAX_NAMES);
            assert!(hosts.iter().chain(zones).all(|n| canonical(n)));
            let e = Eviction { all: false, hosts: hosts.iter().cloned().collect(), zones: zones.iter().cloned().collect() };
            for n in hosts.iter().chain(zones) {
                assert!(e.matches(n));
                assert!(!e.matches(&format!("x{n}")) || hosts.contains(&format!("x{n}")) || zones.iter().any(|z| format!("x{n}").ends_with(&format!(".{z}"))));
            }
            assert_eq!(Eviction::decode(&e.encode()), Some(e));
        }
        _ => {}
    }
    assert_eq!(parse_answer(status, reported, body), result);
});
