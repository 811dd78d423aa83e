//! The bounded map of a worker (Wasm) or of the whole module (native).
//!
//! Full, it is never emptied to make room: a newcomer is compared with the
//! least used of a few residents picked at random, and takes its place
//! only if `admit` says so. Uses are counted in a `Sketch`, hits included,
//! so a scan of names seen once leaves the names in steady use resident.

use super::admit::{admit, Worth};
use super::sketch::{Sketch, MAX_FREQUENCY};
use super::Entry;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

/// Residents compared for each newcomer when the map is full. More finds a
/// colder victim; 8 of 1,024 with 200 hot names all hot: once in 500,000.
const SAMPLE: usize = 8;

/// A resident's hits go to the sketch this many at a time: between two,
/// a hit is one load and one store to the resident (`Uses`), and once the
/// name's counters are saturated, until the sketch next halves, one load.
const BATCH: u32 = 16;

/// A resident's hits not yet in the sketch, in one word: the sketch's epoch
/// (24 bits) when they were counted, whether the name was saturated then,
/// and how many (7 bits, under `BATCH`). An atomic so that the native build
/// counts under its read lock; relaxed, so racing hits of one name may lose
/// a count, or (both completing a batch) count a batch twice: an estimate.
struct Uses(AtomicU32);

const SATURATED: u32 = 0x80;
const PENDING: u32 = 0x7f;
const EPOCH_BITS: u32 = 0x00ff_ffff;

impl Uses {
    fn new(epoch: u32) -> Uses {
        Uses(AtomicU32::new((epoch & EPOCH_BITS) << 8))
    }

    /// The hits not yet in the sketch as of `epoch`: halved once for each
    /// halving of the sketch since they were counted, as the sketch's are.
    fn pending(word: u32, epoch: u32) -> u32 {
        let behind = (epoch & EPOCH_BITS).wrapping_sub(word >> 8) & EPOCH_BITS;
        (word & PENDING) >> behind.min(7)
    }
}

struct Resident {
    host: Arc<str>,
    entry: Entry,
    /// The sketch's hash of `host`, kept so that a hit does not hash again.
    hash: u64,
    uses: Uses,
}

/// What `insert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The host's entry was replaced.
    Updated,
    /// Into a free place.
    Added,
    /// In place of another host's entry; `live` when that one was still usable.
    Replaced { live: bool },
    /// Not admitted: every resident compared was worth more.
    Rejected,
}

pub struct LocalCache {
    index: HashMap<Arc<str>, u32>,
    residents: Vec<Resident>,
    sketch: Sketch,
    max: usize,
    rng: u64,
}

impl LocalCache {
    pub fn new(max_entries: u32) -> LocalCache {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(max_entries);
        LocalCache::with_seed(max_entries, h.finish())
    }

    /// A cache whose hashing and sampling follow `seed` (tests).
    pub fn with_seed(max_entries: u32, seed: u64) -> LocalCache {
        let max = max_entries as usize;
        LocalCache {
            index: HashMap::new(),
            residents: Vec::new(),
            // A disabled cache still answers `frequency` for the slot table.
            sketch: Sketch::new(max, seed),
            max,
            rng: seed | 1,
        }
    }

    /// The entry of `host`, counting the use (a hit).
    pub fn get(&self, host: &str) -> Option<&Entry> {
        self.find(host, |_| true)
    }

    /// The entry of `host` if `wanted` accepts it; only then is the use counted.
    pub fn find(&self, host: &str, wanted: impl FnOnce(&Entry) -> bool) -> Option<&Entry> {
        self.find_used(host, wanted).map(|(e, _)| e)
    }

    /// `find`, and the name's use when this hit is one to tell other
    /// workers of (`hit`): the Wasm build notes it in the slot table.
    pub fn find_used(&self, host: &str, wanted: impl FnOnce(&Entry) -> bool) -> Option<(&Entry, Option<u8>)> {
        let r = &self.residents[*self.index.get(host)? as usize];
        if !wanted(&r.entry) {
            return None;
        }
        let news = self.hit(r);
        Some((&r.entry, news))
    }

    /// Counts a hit of `r`: batched, and nothing at all while the name's
    /// counters are saturated (a record would leave them as they are).
    /// Returns the name's estimate at the first hit of a batch (the name's
    /// second use) and when a batch reaches the sketch: a few times per
    /// name until it saturates, then never until the sketch halves.
    fn hit(&self, r: &Resident) -> Option<u8> {
        let epoch = self.sketch.epoch() & EPOCH_BITS;
        let word = r.uses.0.load(Relaxed);
        if word == epoch << 8 | SATURATED {
            return None;
        }
        let pending = Uses::pending(word, epoch) + 1;
        if pending < BATCH {
            r.uses.0.store(epoch << 8 | pending, Relaxed);
            return (pending == 1).then(|| self.estimate(r));
        }
        let least = self.sketch.record_n(r.hash, u64::from(pending));
        // Noted with the epoch read before the record: if the record
        // halved the sketch, the next hit counts again.
        r.uses.0.store(epoch << 8 | if least == 15 { SATURATED } else { 0 }, Relaxed);
        Some(self.estimate(r))
    }

    /// What the sketch would estimate for `r` had its hits gone there one by
    /// one. A resident was used at least once, by the miss that cached it:
    /// that use sits in the doorkeeper until its hits reach the counters,
    /// and clearing the doorkeeper must not make it look newer than a
    /// newcomer used as often.
    fn estimate(&self, r: &Resident) -> u8 {
        let pending = Uses::pending(r.uses.0.load(Relaxed), self.sketch.epoch());
        let counted = self.sketch.estimate(r.hash).max(1);
        (u32::from(counted) + pending).min(u32::from(MAX_FREQUENCY)) as u8
    }

    /// Hands a leaving resident's batched hits to the sketch, which goes on
    /// remembering the name.
    fn retire(&self, r: &Resident) {
        let pending = Uses::pending(r.uses.0.load(Relaxed), self.sketch.epoch());
        self.sketch.record_n(r.hash, u64::from(pending));
    }

    /// The entry of `host`, not counted as a use (a second look in one request).
    pub fn peek(&self, host: &str) -> Option<&Entry> {
        self.index.get(host).map(|&i| &self.residents[i as usize].entry)
    }

    /// How often `host` was used lately, cached or not.
    pub fn frequency(&self, host: &[u8]) -> u8 {
        let resident = std::str::from_utf8(host).ok().and_then(|h| self.index.get(h));
        match resident {
            Some(&i) => self.estimate(&self.residents[i as usize]),
            None => self.sketch.estimate(self.sketch.hash(host)),
        }
    }

    /// Caches `entry` for `host` after a miss (counted as a use), if the
    /// admission rule lets it in.
    pub fn insert(&mut self, host: &str, entry: Entry, now: u64) -> Inserted {
        if self.max == 0 {
            return Inserted::Rejected;
        }
        if let Some(&i) = self.index.get(host) {
            let r = &mut self.residents[i as usize];
            r.entry = entry;
            self.sketch.record(r.hash);
            return Inserted::Updated;
        }
        let hash = self.sketch.hash(host.as_bytes());
        self.sketch.record(hash);
        let host: Arc<str> = Arc::from(host);
        if self.residents.len() < self.max {
            self.index.insert(host.clone(), self.residents.len() as u32);
            let uses = Uses::new(self.sketch.epoch());
            self.residents.push(Resident { host, entry, hash, uses });
            return Inserted::Added;
        }
        let candidate = Worth::of(&entry, self.sketch.estimate(hash), now);
        let (v, worth) = self.victim(now);
        if !admit(candidate, worth) {
            return Inserted::Rejected;
        }
        let uses = Uses::new(self.sketch.epoch());
        let old = std::mem::replace(&mut self.residents[v], Resident { host: host.clone(), entry, hash, uses });
        self.retire(&old);
        self.index.remove(&old.host);
        self.index.insert(host, v as u32);
        Inserted::Replaced { live: worth.live }
    }

    /// The least worth of `SAMPLE` residents picked at random.
    fn victim(&mut self, now: u64) -> (usize, Worth) {
        let n = self.residents.len();
        let mut best: Option<(usize, Worth)> = None;
        for k in 0..SAMPLE.min(n) {
            let i = if n <= SAMPLE { k } else { (self.next_random() % n as u64) as usize };
            let r = &self.residents[i];
            let w = Worth::of(&r.entry, self.estimate(r), now);
            if best.is_none_or(|(_, b)| w < b) {
                best = Some((i, w));
            }
        }
        // `insert` only asks when full, and full means at least one resident.
        best.unwrap_or((0, Worth { live: false, frequency: 0, kind: 0 }))
    }

    /// xorshift64*: sampling needs speed and spread, not secrecy.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Drops what a feed answer names; returns how many entries went.
    /// The sketch keeps its counts: how often a name is used is still true.
    pub fn evict(&mut self, e: &crate::changes::Eviction) -> usize {
        let before = self.residents.len();
        if e.all {
            self.index.clear();
            self.residents.clear();
        } else if e.hosts_only() {
            for h in &e.hosts {
                self.remove(h);
            }
        } else {
            self.residents.retain(|r| !e.matches(&r.host));
            self.index.clear();
            for (i, r) in self.residents.iter().enumerate() {
                self.index.insert(r.host.clone(), i as u32);
            }
        }
        before - self.residents.len()
    }

    fn remove(&mut self, host: &str) {
        let Some(i) = self.index.remove(host) else { return };
        self.residents.swap_remove(i as usize);
        if let Some(moved) = self.residents.get(i as usize) {
            self.index.insert(moved.host.clone(), i);
        }
    }

    /// The index's allocation, in entries (a flood must not grow it).
    pub fn capacity(&self) -> usize {
        self.index.capacity()
    }

    pub fn len(&self) -> usize {
        self.residents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.residents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Eviction;
    use crate::verdict::{ErrorCode, Verdict};

    const NOW: u64 = 1_000;

    fn allow() -> Entry {
        Entry {
            verdict: Some(Verdict::Allow { account: "acct".into(), https: false }),
            fresh_until: 60_000,
            stale_until: 60_000,
        }
    }

    fn deny() -> Entry {
        Entry { verdict: Some(Verdict::Deny(ErrorCode::DnsResolution)), fresh_until: 60_000, stale_until: 60_000 }
    }

    #[test]
    fn bounded_and_never_emptied() {
        let mut c = LocalCache::with_seed(3, 1);
        for i in 0..10 {
            c.insert(&format!("h{i}"), allow(), NOW);
            assert_eq!(c.len(), (i + 1).min(3));
        }
        let mut off = LocalCache::with_seed(0, 1);
        assert_eq!(off.insert("h", allow(), NOW), Inserted::Rejected);
        assert!(off.is_empty() && off.get("h").is_none());
    }

    #[test]
    fn a_flood_does_not_grow_the_index() {
        let mut c = LocalCache::with_seed(1_000, 2);
        for i in 0..1_000 {
            c.insert(&format!("warm{i}"), allow(), NOW);
        }
        // Replacing keys leaves tombstones; the index may double once so
        // that it can rehash them away in place, then it stays: 4,096
        // buckets at most (7/8 of them usable).
        for i in 0..150_000 {
            // Used twice: admitted, so every insert replaces a key.
            c.insert(&format!("flood{i}"), deny(), NOW);
            c.insert(&format!("flood{i}"), deny(), NOW);
            assert_eq!(c.len(), 1_000);
            assert!(c.capacity() <= 3_584, "{}", c.capacity());
        }
    }

    #[test]
    fn a_name_used_twice_gets_in() {
        let mut c = LocalCache::with_seed(4, 3);
        for h in ["a", "b", "c", "d"] {
            c.insert(h, deny(), NOW);
        }
        assert_eq!(c.insert("new", deny(), NOW), Inserted::Rejected, "seen once, as often as the residents");
        assert_eq!(c.insert("new", deny(), NOW), Inserted::Replaced { live: true });
        assert!(c.peek("new").is_some());
    }

    #[test]
    fn denials_do_not_push_out_allows_used_as_often() {
        let mut c = LocalCache::with_seed(256, 7);
        for round in 0..3 {
            for i in 0..256 {
                c.insert(&format!("a{i}"), allow(), NOW);
                if round > 0 {
                    c.get(&format!("a{i}"));
                }
            }
        }
        // Fewer uses than the sketch's period: no aging in between.
        for i in 0..500 {
            let h = format!("d{i}");
            for _ in 0..3 {
                let f = if i % 2 == 0 { deny() } else { Entry { verdict: None, ..deny() } };
                c.insert(&h, f, NOW);
            }
        }
        // Ties go to the allow. The sketch holds three times as many names
        // as it is sized for here, so it overestimates a few (~6%).
        let kept = (0..256).filter(|i| c.peek(&format!("a{i}")).is_some()).count();
        assert!(kept >= 240, "{kept}");
    }

    #[test]
    fn expired_residents_make_room() {
        let mut c = LocalCache::with_seed(2, 4);
        let old = Entry {
            verdict: Some(Verdict::Allow { account: "a".into(), https: false }),
            fresh_until: 10,
            stale_until: 10,
        };
        for h in ["a", "b"] {
            c.insert(h, old.clone(), 0);
            for _ in 0..20 {
                c.get(h);
            }
        }
        assert_eq!(c.insert("new", deny(), NOW), Inserted::Replaced { live: false });
    }

    #[test]
    fn evictions_are_never_served() {
        let mut c = LocalCache::with_seed(100, 5);
        for i in 0..100 {
            c.insert(&format!("h{i}.example"), allow(), NOW);
        }
        let e = Eviction { hosts: ["h3.example", "h99.example", "absent.example"].map(String::from).into(), ..Default::default() };
        assert_eq!(c.evict(&e), 2);
        assert!(c.get("h3.example").is_none() && c.get("h99.example").is_none());
        for i in (0..100).filter(|i| ![3, 99].contains(i)) {
            assert!(c.get(&format!("h{i}.example")).is_some(), "h{i}");
        }
        assert_eq!(c.evict(&Eviction { all: true, ..Default::default() }), 98);
        assert!(c.is_empty() && c.get("h1.example").is_none());
    }

    #[test]
    fn batched_hits_count_as_each_one_would() {
        let mut c = LocalCache::with_seed(64, 8);
        let reference = Sketch::new(64, 8);
        let h = reference.hash(b"b.example");
        c.insert("b.example", allow(), NOW);
        reference.record(h);
        for k in 1..60 {
            assert!(c.get("b.example").is_some());
            reference.record(h);
            assert_eq!(c.frequency(b"b.example"), reference.estimate(h), "hit {k}");
        }
        assert_eq!(c.frequency(b"b.example"), MAX_FREQUENCY);
        // A resident pushed out hands its batched hits to the sketch.
        let mut c = LocalCache::with_seed(1, 9);
        c.insert("old.example", deny(), NOW);
        for _ in 0..5 {
            c.get("old.example");
        }
        assert_eq!(c.frequency(b"old.example"), 6);
        for _ in 0..7 {
            c.insert("new.example", allow(), NOW);
        }
        assert!(c.peek("new.example").is_some() && c.peek("old.example").is_none());
        assert_eq!(c.frequency(b"old.example"), 6);
    }

    #[test]
    fn hits_worth_telling_other_workers() {
        let c = {
            let mut c = LocalCache::with_seed(64, 10);
            c.insert("n.example", allow(), NOW);
            c
        };
        let news: Vec<(usize, u8)> =
            (1..=40).filter_map(|k| c.find_used("n.example", |_| true).and_then(|(_, n)| n).map(|n| (k, n))).collect();
        // The second use, then the batch that saturates the name; then nothing.
        assert_eq!(news, [(1, 2), (BATCH as usize, MAX_FREQUENCY)]);
    }

    #[test]
    fn batched_hits_halve_with_the_sketch() {
        let word = |epoch: u32, pending: u32| (epoch & EPOCH_BITS) << 8 | pending;
        assert_eq!(Uses::pending(word(3, 12), 3), 12);
        assert_eq!(Uses::pending(word(3, 12), 4), 6);
        assert_eq!(Uses::pending(word(3, 12), 6), 1);
        assert_eq!(Uses::pending(word(3, 12), 300), 0);
        assert_eq!(Uses::pending(word(EPOCH_BITS, 12), EPOCH_BITS + 1), 6, "the epoch wraps");
        assert_eq!(Uses::pending(word(3, 0) | SATURATED, 3), 0);
    }

    #[test]
    fn find_counts_only_what_it_returns() {
        let mut c = LocalCache::with_seed(10, 6);
        c.insert("d.example", deny(), NOW);
        let before = c.frequency(b"d.example");
        for _ in 0..5 {
            assert!(c.find("d.example", |e| matches!(e.verdict, Some(Verdict::Allow { .. }))).is_none());
            assert!(c.peek("d.example").is_some());
        }
        assert_eq!(c.frequency(b"d.example"), before);
        c.get("d.example");
        assert_eq!(c.frequency(b"d.example"), before + 1);
    }
}
