//! `coalesce::Lock::decode` over any bytes found in a lock of shared data.
//!
//! Invariants: no panic; a decoded lock with at most MAX_WAITERS waiters
//! re-encodes to the same bytes; `step` over it never panics, never lets
//! the queue list grow past MAX_WAITERS, and leads with the right deadline.

#![no_main]

use cname_guard_core::coalesce::{step, Lock, Step, MAX_WAITERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(lock) = Lock::decode(data) else { return };
    if lock.waiters.len() <= MAX_WAITERS {
        assert_eq!(lock.encode(), data, "decode/encode is not the identity");
    }
    assert_eq!(Lock::decode(&lock.encode()).map(|l| l.host), Some(lock.host.clone()));
    // Clock values a host can give (ms since the epoch), around the deadline.
    const LATEST: u64 = 1 << 50;
    for now in [0, 1_700_000_000_000, lock.deadline.saturating_sub(1).min(LATEST), lock.deadline.min(LATEST)] {
        for host in [lock.host.as_str(), "other.example"] {
            match step(Some(lock.clone()), host, 7, now, 750) {
                Step::Lead(l) => {
                    assert!(!lock.held(now), "led a lock that is still held");
                    assert_eq!(l.deadline, now + 750);
                    assert_eq!(l.host, host);
                    assert!(l.waiters.is_empty());
                }
                Step::Wait(l) => {
                    assert!(lock.held(now) && lock.host == host);
                    assert!(l.waiters.len() <= MAX_WAITERS.max(lock.waiters.len()));
                    assert!(l.waiters.contains(&7));
                }
                Step::Alone => assert!(lock.held(now)),
            }
        }
    }
});
