//! `lookup::parse_answer` over any status and body the lookup service (or
//! whatever answers in its place) can send.
//!
//! The first byte picks the status Envoy reports (or none: timeout/reset);
//! the rest is the body. Invariants: no panic; a found record is for the
//! host asked, its accounts are header-safe; oversized bodies are refused;
//! only 200 can yield a record and 404 is always "unknown".

#![no_main]

use cname_guard_core::lookup::{parse_answer, safe_account, Answer, LookupError, MAX_BODY};
use libfuzzer_sys::fuzz_target;

const ASKED: &str = "custom.myclientsite.com";
const STATUSES: [Option<&str>; 8] =
    [Some("200"), Some("200"), Some("200"), Some("404"), Some("503"), Some("2x0"), Some(""), None];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel) % STATUSES.len()];
    // The body length Envoy reports may exceed what we read.
    let reported = if sel & 0x80 != 0 { body.len() + MAX_BODY } else { body.len() };
    let result = parse_answer(status, reported, body, ASKED);
    let _ = result.as_ref().map_err(|e| e.to_string());
    match (status, &result) {
        (None, r) => assert_eq!(r, &Err(LookupError::NoResponse)),
        (Some("404"), r) => assert_eq!(r, &Ok(Answer::Unknown)),
        (Some("200"), _) if reported > MAX_BODY => assert_eq!(result, Err(LookupError::TooLarge)),
        (Some(s), Ok(Answer::Found(record))) => {
            assert_eq!(s, "200");
            for id in [&record.account, &record.target_account].into_iter().flatten() {
                assert!(safe_account(id), "unsafe account accepted: {id:?}");
                assert!((1..=128).contains(&id.len()));
                assert!(!id.bytes().any(|b| b.is_ascii_control() || b == b' '));
            }
            // (serde_json::Value refuses some numbers the record skips, like 1e400.)
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                let host = v["host"].as_str().expect("a record names its host");
                assert!(host.eq_ignore_ascii_case(ASKED), "answer for {host:?} accepted for {ASKED}");
            }
        }
        (Some(s), Ok(Answer::Unknown)) => panic!("status {s:?} read as unknown"),
        (Some(_), Err(_)) => {}
    }
    // Deterministic: the same answer reads the same way.
    assert_eq!(parse_answer(status, reported, body, ASKED), result);
});
