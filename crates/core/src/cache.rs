//! The verdict cache: entries, their byte encoding for shared data, the
//! fixed slot table that bounds it, and the per-worker map in front of it.
//!
//! Shared data in Envoy never forgets a key, so the cache cannot have a key
//! per host: a flood of unique hostnames would grow Envoy without limit.
//! Instead it is a 2-way set-associative table of `max_entries` fixed keys
//! (`cname_guard.slot.<n>`); a host lives in one of the two slots of its set
//! and a new host replaces the one worth less, if it is worth more itself
//! (`admit`: by use, then by kind). Use is counted in each worker's own
//! `Sketch`, so a slot also carries the use its writers last saw (`uses`):
//! a name one worker serves all the time must not look cold to another.

mod admit;
mod local;
mod sketch;

pub use admit::{admit, Worth};
pub use local::{Inserted, LocalCache};
pub use sketch::{Sketch, MAX_FREQUENCY};

use crate::lookup::safe_account;
use crate::verdict::{ErrorCode, Verdict};

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

    /// Slot value, with no use noted (`encode_used`).
    pub fn encode(&self, host: &str) -> Vec<u8> {
        self.encode_used(host, 0)
    }

    /// Slot value: version, kind, fresh_until, stale_until, host and payload
    /// lengths, uses, host, payload.
    pub fn encode_used(&self, host: &str, uses: u8) -> Vec<u8> {
        let (kind, payload): (u8, &[u8]) = match &self.verdict {
            Some(Verdict::Allow { account, https: false }) => (KIND_ALLOW, account.as_bytes()),
            Some(Verdict::Allow { account, https: true }) => (KIND_ALLOW_HTTPS, account.as_bytes()),
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
        out.push(uses.min(MAX_FREQUENCY));
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

/// 2: the `uses` byte. A filter of version 1 on the same `vm_id` reads a
/// version 2 slot as foreign (an empty slot) and the other way round: each
/// looks the host up again, nothing wrong is served.
const VERSION: u8 = 2;
const KIND_ALLOW: u8 = 0;
const KIND_DENY: u8 = 1;
const KIND_FAILURE: u8 = 2;
/// An allow whose answer says `https` (a kind of its own, not a flag bit,
/// so that the slots of earlier filters keep their meaning: their allows
/// read as allows without HTTPS, and a filter that predates this kind
/// reads such a slot as foreign, an empty slot, and looks the host up).
const KIND_ALLOW_HTTPS: u8 = 3;
const HEADER: usize = 21;
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
    decode_used(bytes).map(|(host, entry, _)| (host, entry))
}

/// `decode_slot`, with the use the slot's writers noted.
fn decode_used(bytes: &[u8]) -> Option<(&[u8], Entry, u8)> {
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
    let uses = bytes[20].min(MAX_FREQUENCY);
    let host = &bytes[HEADER..HEADER + host_len];
    let payload = &bytes[HEADER + host_len..];
    let verdict = match bytes[1] {
        kind @ (KIND_ALLOW | KIND_ALLOW_HTTPS) => {
            let account = std::str::from_utf8(payload).ok().filter(|a| safe_account(a))?;
            Some(Verdict::Allow { account: account.to_string(), https: kind == KIND_ALLOW_HTTPS })
        }
        KIND_DENY => {
            let number = u16::from_le_bytes(payload.try_into().ok()?);
            Some(Verdict::Deny(ErrorCode::from_number(number)?))
        }
        KIND_FAILURE if payload.is_empty() => None,
        _ => return None,
    };
    Some((host, Entry { verdict, fresh_until, stale_until }, uses))
}

/// How often the resident of a slot was used lately: by the worker that
/// asks (`frequency`), or by the slot's writers, what they noted while the
/// entry is fresh. A refresh notes the use anew, so a note is never older
/// than the entry's TTL and a name no longer used loses it.
fn resident_uses(host: &[u8], entry: &Entry, noted: u8, now: u64, frequency: impl Fn(&[u8]) -> u8) -> u8 {
    let noted = if now < entry.fresh_until { noted } else { 0 };
    frequency(host).max(noted)
}

/// The slot value `bytes` with its use raised to `uses`, if it holds a fresh
/// entry for `host` noted as used less; `None`: leave the slot as it is. A
/// worker calls this when its hits of `host` reach its sketch, so that the
/// other workers see them (amortized: a few shared-data writes per entry).
pub fn raise_uses(bytes: &[u8], host: &str, uses: u8, now: u64) -> Option<Vec<u8>> {
    let (slot_host, entry, noted) = decode_used(bytes)?;
    let uses = uses.min(MAX_FREQUENCY);
    if slot_host != host.as_bytes() || noted >= uses || now >= entry.fresh_until {
        return None;
    }
    let mut out = bytes.to_vec();
    out[20] = uses;
    Some(out)
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

/// Which slot of a set a new entry for `host` (worth `candidate`) should
/// take, given the two current values: the host's own slot, else an empty
/// one, else the one worth less by `worth`, if the newcomer is admitted
/// over it. A resident's use is the larger of the asking worker's count
/// (`frequency`) and the slot's note (`resident_uses`). Returns the index
/// (0 or 1) and whether a live entry of another host is evicted; `None`
/// when the newcomer is not admitted.
pub fn choose_victim(
    host: &str,
    current: [Option<&[u8]>; 2],
    candidate: Worth,
    now: u64,
    frequency: impl Fn(&[u8]) -> u8,
) -> Option<(usize, bool)> {
    let decoded = current.map(|v| v.and_then(decode_used));
    if let Some(i) = decoded.iter().position(|d| d.as_ref().is_some_and(|(h, _, _)| *h == host.as_bytes())) {
        return Some((i, false));
    }
    if let Some(i) = decoded.iter().position(Option::is_none) {
        return Some((i, false));
    }
    let w = decoded.map(|d| d.map(|(h, e, noted)| Worth::of(&e, resident_uses(h, &e, noted, now, &frequency), now)));
    let (Some(a), Some(b)) = (w[0], w[1]) else {
        return None;
    };
    let i = usize::from(b < a);
    let victim = [a, b][i];
    admit(candidate, victim).then_some((i, victim.live))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(verdict: Option<Verdict>) -> Entry {
        Entry { verdict, fresh_until: 1_000, stale_until: 5_000 }
    }

    fn allow(account: &str) -> Verdict {
        Verdict::Allow { account: account.into(), https: false }
    }

    #[test]
    fn encodes_and_decodes_every_kind() {
        for v in [
            Some(allow("acct-saas")),
            Some(Verdict::Allow { account: "acct-saas".into(), https: true }),
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
        let good = entry(Some(allow("a"))).encode("h");
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
        let mut bad = good.clone();
        bad[1] = KIND_ALLOW_HTTPS + 1;
        assert_eq!(Entry::decode(&bad, "h"), None);
    }

    #[test]
    fn https_is_a_kind_of_its_own() {
        // An allow without HTTPS is written as before this kind existed, so
        // the slots of an earlier filter on the same vm_id read as they did.
        let plain = entry(Some(allow("acct"))).encode("h");
        assert_eq!(plain[1], 0);
        let https = entry(Some(Verdict::Allow { account: "acct".into(), https: true })).encode("h");
        assert_eq!(https[1], 3);
        assert_eq!((&plain[..1], &plain[2..]), (&https[..1], &https[2..]), "only the kind differs");
        let Some((_, e)) = decode_slot(&https) else { panic!("decodes") };
        assert!(e.verdict.is_some_and(|v| v.https()));
        // An allow's account becomes a header: one the lookup answer could
        // not have given (empty, CR/LF) is garbage, HTTPS or not.
        for kind in [KIND_ALLOW, KIND_ALLOW_HTTPS] {
            let mut bad = entry(None).encode("h");
            bad[1] = kind;
            assert_eq!(decode_slot(&bad), None);
            let mut bad = entry(Some(allow("a\r\nx: 1"))).encode("h");
            bad[1] = kind;
            assert_eq!(decode_slot(&bad), None);
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
        let allow = Entry { verdict: Some(allow("a")), fresh_until: 100, stale_until: 100 }.encode("allow");
        let by_use = |uses: &[(&str, u8)]| {
            let uses: Vec<(String, u8)> = uses.iter().map(|(h, f)| (h.to_string(), *f)).collect();
            move |h: &[u8]| uses.iter().find(|(n, _)| n.as_bytes() == h).map_or(0, |(_, f)| *f)
        };
        let cand = |f, now| Worth::of(&entry(None), f, now);
        let w = by_use(&[]);
        assert_eq!(choose_victim("me", [Some(&young), Some(&mine)], cand(1, 50), 50, &w), Some((1, false)));
        assert_eq!(choose_victim("me", [Some(&young), None], cand(1, 50), 50, &w), Some((1, false)));
        assert_eq!(choose_victim("me", [None, Some(&young)], cand(1, 50), 50, &w), Some((0, false)));
        assert_eq!(
            choose_victim("me", [Some(&young), Some(&old)], cand(0, 50), 50, &w),
            Some((1, false)),
            "expired goes first"
        );
        assert_eq!(choose_victim("me", [Some(b"junk".as_slice()), Some(&young)], cand(0, 5), 5, &w), Some((0, false)));
        // Both live: the less used goes, and only to a newcomer used more.
        let w = by_use(&[("old", 3), ("young", 9)]);
        assert_eq!(choose_victim("me", [Some(&old), Some(&young)], cand(4, 5), 5, &w), Some((0, true)));
        assert_eq!(
            choose_victim("me", [Some(&old), Some(&young)], cand(3, 5), 5, &w),
            None,
            "a tie keeps the resident"
        );
        // A failure does not push out an allow used as often; an allow pushes out a failure.
        let w = by_use(&[("allow", 2), ("young", 2)]);
        let allowed = Worth::of(&Entry { verdict: Some(self::allow("b")), fresh_until: 100, stale_until: 100 }, 2, 5);
        assert_eq!(choose_victim("me", [Some(&allow), Some(&young)], allowed, 5, &w), Some((1, true)));
        let w2 = by_use(&[("allow", 2), ("young", 5)]);
        assert_eq!(choose_victim("me", [Some(&allow), Some(&young)], cand(2, 5), 5, &w2), None);
    }

    #[test]
    fn a_slot_carries_the_use_its_writers_saw() {
        let e = Entry { verdict: Some(allow("a")), fresh_until: 100, stale_until: 1_000 };
        let hot = e.encode_used("hot", 9);
        let cold = e.encode_used("cold", 1);
        let none = |_: &[u8]| 0;
        // Cold by the asking worker's count, used by another: kept.
        assert_eq!(choose_victim("new", [Some(&hot), Some(&cold)], Worth::of(&e, 2, 50), 50, none), Some((1, true)));
        assert_eq!(choose_victim("new", [Some(&hot), Some(&hot)], Worth::of(&e, 9, 50), 50, none), None);
        // The asker's own count counts too, whichever is larger.
        assert_eq!(choose_victim("new", [Some(&hot), Some(&cold)], Worth::of(&e, 2, 50), 50, |_: &[u8]| 12), None);
        // A note lasts while the entry is fresh: stale, only the asker's count.
        assert_eq!(choose_victim("new", [Some(&hot), Some(&hot)], Worth::of(&e, 1, 200), 200, none), Some((0, true)));
        // Raised by a worker's hits, never lowered, only for its own host and fresh.
        let raised = raise_uses(&cold, "cold", 7, 50).expect("raised");
        assert_eq!(decode_used(&raised).map(|(_, _, u)| u), Some(7));
        assert_eq!(decode_slot(&raised), decode_slot(&cold));
        assert_eq!(raise_uses(&hot, "hot", 7, 50), None);
        assert_eq!(raise_uses(&cold, "hot", 7, 50), None);
        assert_eq!(raise_uses(&cold, "cold", 7, 100), None);
        assert_eq!(raise_uses(b"junk", "cold", 7, 50), None);
        assert_eq!(decode_used(&e.encode_used("h", 200)).map(|(_, _, u)| u), Some(MAX_FREQUENCY));
    }
}
