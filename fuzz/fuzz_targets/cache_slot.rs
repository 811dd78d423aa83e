//! `cache::decode_slot` over any bytes found in a slot of shared data
//! (another VM version, a torn write, a hostile neighbour on the same vm_id).
//!
//! Invariants: no panic; what decodes re-encodes to the very same bytes
//! (the encoding is canonical), `Entry::decode` agrees with it, and the
//! victim choice over two arbitrary slot values is always 0 or 1 (or none:
//! the newcomer is not admitted), and an own or empty slot is always taken.

#![no_main]

use cname_guard_core::cache::{choose_victim, decode_slot, Entry, Worth};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((host, entry)) = decode_slot(data) {
        assert!(data.len() >= 20 + host.len());
        if let Ok(host) = std::str::from_utf8(host) {
            assert_eq!(entry.encode(host), data, "decode/encode is not the identity");
            assert_eq!(Entry::decode(data, host), Some(entry.clone()));
            assert_eq!(Entry::decode(data, &format!("{host}x")), None, "entry read for another host");
        }
        for now in [0, entry.fresh_until, entry.stale_until, u64::MAX] {
            let _ = entry.clone().classify(now);
        }
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    for now in [0, 1_700_000_000_000, u64::MAX] {
        let freq = data.len() as u8 % 17;
        let worth = |h: &[u8], e: &Entry| Worth::of(e, h.len() as u8 % 17, now);
        let candidate = Worth { live: true, frequency: freq, kind: freq % 3 };
        if let Some((i, _)) = choose_victim("custom.myclientsite.com", [Some(a), Some(b)], candidate, worth) {
            assert!(i < 2);
        }
        let own = decode_slot(data).is_some_and(|(h, _)| h == b"custom.myclientsite.com");
        let chosen = choose_victim("custom.myclientsite.com", [None, Some(data)], candidate, worth);
        assert_eq!(chosen, Some((usize::from(own), false)), "its own slot, else an empty one, is taken first");
    }
});
