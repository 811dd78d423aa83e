//! The verdict cache: entries, their byte encoding for shared data, the
//! fixed slot table that bounds it, and the per-worker map in front of it.
//!
//! Shared data in Envoy never forgets a key, so the cache cannot have a key
//! per host: a flood of unique hostnames would grow Envoy without limit.
//! Instead it is a 2-way set-associative table of `max_entries` fixed keys
//! (`cname_guard.slot.<n>`); a host lives in one of the two slots of its set
//! and a new host replaces the entry that expires first.

use crate::verdict::{ErrorCode, Verdict};
use std::collections::HashMap;

/// What is cached for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `None`: a lookup failure cached for `cache.failure_ttl_seconds`.
    pub verdict: Option<Verdict>,
    /// Milliseconds since the epoch, host clock.
    pub fresh_until: u64,
    /// Until then the entry may stand in for a failed refresh.
    pub stale_until: u64,
}

/// Where a host stands in the cache at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Fresh(Entry),
    /// Expired, but still usable if the refresh fails.
    Stale(Entry),
    Absent,
}

impl Entry {
    pub fn classify(self, now: u64) -> Lookup {
        if now < self.fresh_until {
            Lookup::Fresh(self)
        } else if now < self.stale_until {
            Lookup::Stale(self)
        } else {
            Lookup::Absent
        }
    }

    /// Slot value: version, kind, fresh_until, stale_until, host, payload.
    pub fn encode(&self, host: &str) -> Vec<u8> {
        let (kind, payload): (u8, &[u8]) = match &self.verdict {
            Some(Verdict::Allow(account)) => (KIND_ALLOW, account.as_bytes()),
            Some(Verdict::Deny(code)) => (KIND_DENY, &DENY_PAYLOADS[code.index()]),
            None => (KIND_FAILURE, &[]),
        };
        let mut out = Vec::with_capacity(HEADER + host.len() + payload.len());
        out.push(VERSION);
        out.push(kind);
        out.extend_from_slice(&self.fresh_until.to_le_bytes());
        out.extend_from_slice(&self.stale_until.to_le_bytes());
        out.push(host.len().min(255) as u8);
        out.push(payload.len().min(255) as u8);
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The entry of a slot value, if it is well formed and for `host`.
    pub fn decode(bytes: &[u8], host: &str) -> Option<Entry> {
        let (slot_host, entry) = decode_slot(bytes)?;
        (slot_host == host.as_bytes()).then_some(entry)
    }
}

const VERSION: u8 = 1;
const KIND_ALLOW: u8 = 0;
const KIND_DENY: u8 = 1;
const KIND_FAILURE: u8 = 2;
const HEADER: usize = 20;
const DENY_PAYLOADS: [[u8; 2]; 5] = {
    let mut p = [[0u8; 2]; 5];
    let mut i = 0;
    while i < ErrorCode::ALL.len() {
        p[i] = ErrorCode::ALL[i].number().to_le_bytes();
        i += 1;
    }
    p
};

/// Splits a slot value into its host and entry; `None` for an empty or
/// foreign value (a slot is just bytes to us: never trust them blindly).
pub fn decode_slot(bytes: &[u8]) -> Option<(&[u8], Entry)> {
    if bytes.len() < HEADER || bytes[0] != VERSION {
        return None;
    }
    let fresh_until = u64::from_le_bytes(bytes[2..10].try_into().ok()?);
    let stale_until = u64::from_le_bytes(bytes[10..18].try_into().ok()?);
    let host_len = usize::from(bytes[18]);
    let payload_len = usize::from(bytes[19]);
    if bytes.len() != HEADER + host_len + payload_len {
        return None;
    }
    let host = &bytes[HEADER..HEADER + host_len];
    let payload = &bytes[HEADER + host_len..];
    let verdict = match bytes[1] {
        KIND_ALLOW => Some(Verdict::Allow(String::from_utf8(payload.to_vec()).ok()?)),
        KIND_DENY => {
            let number = u16::from_le_bytes(payload.try_into().ok()?);
            Some(Verdict::Deny(ErrorCode::from_number(number)?))
        }
        KIND_FAILURE if payload.is_empty() => None,
        _ => return None,
    };
    Some((host, Entry { verdict, fresh_until, stale_until }))
}

/// The slot table's geometry: `sets` sets of two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    sets: u32,
}

impl Slots {
    /// `max_entries` rounded up to an even number of slots; 0 turns caching off.
    pub fn new(max_entries: u32) -> Slots {
        Slots { sets: max_entries.div_ceil(2) }
    }

    pub fn enabled(self) -> bool {
        self.sets > 0
    }

    pub fn capacity(self) -> u32 {
        self.sets * 2
    }

    /// The set a host belongs to (also the index of its coalescing lock).
    pub fn set_of(self, host: &str) -> u32 {
        if self.sets == 0 {
            return 0;
        }
        (fnv1a(host.as_bytes()) % u64::from(self.sets)) as u32
    }

    /// The two slot numbers of a host's set.
    pub fn slots_of(self, host: &str) -> [u32; 2] {
        let set = self.set_of(host);
        [set * 2, set * 2 + 1]
    }
}

/// Stable across VMs and restarts, unlike the std hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Which slot of a set a new entry for `host` should take, given the two
/// current values: the host's own slot, else an empty one, else the one
/// that stops being useful first. Returns the index (0 or 1) and whether a
/// live entry of another host is evicted.
pub fn choose_victim(host: &str, current: [Option<&[u8]>; 2], now: u64) -> (usize, bool) {
    let decoded = current.map(|v| v.and_then(decode_slot));
    for (i, d) in decoded.iter().enumerate() {
        if let Some((h, _)) = d {
            if *h == host.as_bytes() {
                return (i, false);
            }
        }
    }
    let useful_until = |d: &Option<(&[u8], Entry)>| d.as_ref().map_or(0, |(_, e)| e.stale_until.max(e.fresh_until));
    let (a, b) = (useful_until(&decoded[0]), useful_until(&decoded[1]));
    let i = usize::from(b < a);
    let live = [a, b][i] > now;
    (i, live)
}

/// The per-worker map in front of shared data: no host call on a hit.
/// Bounded like the shared table. When full it is emptied rather than
/// trimmed: removing single keys leaves tombstones that make the hash table
/// double its allocation under a flood, while `clear` keeps the allocation
/// it has; the shared table still holds every entry.
pub struct LocalCache {
    map: HashMap<String, Entry>,
    max: usize,
}

impl LocalCache {
    pub fn new(max_entries: u32) -> LocalCache {
        LocalCache { map: HashMap::new(), max: max_entries as usize }
    }

    pub fn get(&self, host: &str) -> Option<&Entry> {
        self.map.get(host)
    }

    pub fn insert(&mut self, host: &str, entry: Entry) {
        if self.max == 0 {
            return;
        }
        if let Some(e) = self.map.get_mut(host) {
            *e = entry;
            return;
        }
        if self.map.len() >= self.max {
            self.map.clear();
        }
        self.map.insert(host.to_string(), entry);
    }

    /// Drops what a feed answer names; returns how many entries went.
    pub fn evict(&mut self, e: &crate::changes::Eviction) -> usize {
        let before = self.map.len();
        if e.all {
            self.map.clear();
        } else if e.hosts_only() {
            for h in &e.hosts {
                self.map.remove(h);
            }
        } else {
            self.map.retain(|h, _| !e.matches(h));
        }
        before - self.map.len()
    }

    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(verdict: Option<Verdict>) -> Entry {
        Entry { verdict, fresh_until: 1_000, stale_until: 5_000 }
    }

    #[test]
    fn encodes_and_decodes_every_kind() {
        for v in [
            Some(Verdict::Allow("acct-saas".into())),
            Some(Verdict::Deny(ErrorCode::CnameCrossUser)),
            Some(Verdict::Deny(ErrorCode::OriginDns)),
            None,
        ] {
            let e = entry(v);
            let bytes = e.encode("shop.customer.example");
            assert_eq!(Entry::decode(&bytes, "shop.customer.example"), Some(e));
            assert_eq!(Entry::decode(&bytes, "other.example"), None);
        }
    }

    #[test]
    fn garbage_never_decodes() {
        let good = entry(Some(Verdict::Allow("a".into()))).encode("h");
        assert_eq!(Entry::decode(&[], "h"), None);
        assert_eq!(Entry::decode(&good[..good.len() - 1], "h"), None);
        let mut bad = good.clone();
        bad[0] = 9;
        assert_eq!(Entry::decode(&bad, "h"), None);
        let mut bad = good.clone();
        bad[1] = 7;
        assert_eq!(Entry::decode(&bad, "h"), None);
        let deny = entry(Some(Verdict::Deny(ErrorCode::CnameCrossUser))).encode("h");
        let mut bad = deny.clone();
        let n = bad.len();
        bad[n - 2..].copy_from_slice(&999u16.to_le_bytes());
        assert_eq!(Entry::decode(&bad, "h"), None);
        for cut in 0..good.len() {
            let _ = decode_slot(&good[..cut]);
        }
    }

    #[test]
    fn classify_by_time() {
        let e = entry(None);
        assert!(matches!(e.clone().classify(999), Lookup::Fresh(_)));
        assert!(matches!(e.clone().classify(1_000), Lookup::Stale(_)));
        assert!(matches!(e.clone().classify(4_999), Lookup::Stale(_)));
        assert_eq!(e.classify(5_000), Lookup::Absent);
    }

    #[test]
    fn slots_are_stable_and_bounded() {
        let s = Slots::new(1_000);
        assert_eq!(s.capacity(), 1_000);
        assert_eq!(Slots::new(999).capacity(), 1_000);
        assert!(!Slots::new(0).enabled());
        for i in 0..5_000 {
            let host = format!("h{i}.example");
            let [a, b] = s.slots_of(&host);
            assert!(a < 1_000 && b == a + 1 && a % 2 == 0);
            assert_eq!(s.slots_of(&host), [a, b]);
        }
        assert_eq!(s.set_of("custom.myclientsite.com"), (fnv1a(b"custom.myclientsite.com") % 500) as u32);
    }

    #[test]
    fn victim_choice() {
        let mine = entry(None).encode("me");
        let old = Entry { verdict: None, fresh_until: 10, stale_until: 10 }.encode("old");
        let young = Entry { verdict: None, fresh_until: 100, stale_until: 100 }.encode("young");
        assert_eq!(choose_victim("me", [Some(&young), Some(&mine)], 50), (1, false));
        assert_eq!(choose_victim("me", [Some(&young), None], 50), (1, false));
        assert_eq!(choose_victim("me", [None, Some(&young)], 50), (0, false));
        assert_eq!(choose_victim("me", [Some(&young), Some(&old)], 50), (1, false));
        assert_eq!(choose_victim("me", [Some(&old), Some(&young)], 5), (0, true));
        assert_eq!(choose_victim("me", [Some(b"junk".as_slice()), Some(&young)], 5), (0, false));
    }

    #[test]
    fn local_cache_is_bounded() {
        let mut c = LocalCache::new(3);
        for i in 0..10 {
            c.insert(&format!("h{i}"), entry(None));
            assert!(c.len() <= 3);
        }
        // A flood never grows the table past what the bound first needed.
        let mut c = LocalCache::new(1_000);
        for i in 0..1_000 {
            c.insert(&format!("warm{i}"), entry(None));
        }
        let full = c.capacity();
        for i in 0..50_000 {
            c.insert(&format!("flood{i}"), entry(None));
            assert!(c.len() <= 1_000);
        }
        assert_eq!(c.capacity(), full);
        c.insert("h9", entry(Some(Verdict::Allow("x".into()))));
        assert_eq!(c.get("h9").and_then(|e| e.verdict.clone()), Some(Verdict::Allow("x".into())));
        let mut off = LocalCache::new(0);
        off.insert("h", entry(None));
        assert!(off.is_empty());
    }
}
