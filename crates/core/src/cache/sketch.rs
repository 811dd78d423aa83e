//! How often names are used: a count-min sketch of 4-bit counters behind a
//! doorkeeper, in the manner of TinyLFU. It remembers names that are not
//! cached, so a newcomer can be compared with the entry it would replace.
//!
//! Every cell is an atomic so that the native build can count a hit under
//! its cache's read lock; relaxed ordering is enough for an estimate, and a
//! counter that is already saturated costs loads only. On wasm32 without
//! threads the atomics are plain loads and stores.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// The highest estimate: 15 in the counters, plus one for the doorkeeper.
pub const MAX_FREQUENCY: u8 = 16;

const NIBBLE_LOW_BITS: u64 = 0x7777_7777_7777_7777;

pub struct Sketch {
    /// 16 counters of 4 bits per word; each name has one counter per row.
    counters: Box<[AtomicU64]>,
    /// A bloom filter: a name seen once since the last clear sets its bits
    /// here only, so one-hit names neither reach the counters nor age them.
    door: Box<[AtomicU64]>,
    door_budget: u64,
    door_added: AtomicU64,
    /// Counter increments between two halvings.
    period: u64,
    added: AtomicU64,
    /// How many halvings so far: a name's saturation, noted outside the
    /// sketch (`LocalCache`), holds until the next one.
    epoch: AtomicU32,
    seed: u64,
}

impl Sketch {
    /// Sized for a cache of `capacity` names: 8 bytes of counters and one
    /// byte of doorkeeper per name (Caffeine's proportions).
    pub fn new(capacity: usize, seed: u64) -> Sketch {
        let words = capacity.max(16).next_power_of_two();
        Sketch {
            counters: (0..words).map(|_| AtomicU64::new(0)).collect(),
            door: (0..words / 8).map(|_| AtomicU64::new(0)).collect(),
            door_budget: capacity.max(16) as u64,
            door_added: AtomicU64::new(0),
            period: 10 * capacity.max(16) as u64,
            added: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            seed,
        }
    }

    /// The hash the sketch keys a name by (seeded: a client cannot aim
    /// names at one counter without knowing the seed).
    pub fn hash(&self, name: &[u8]) -> u64 {
        let h = name.iter().fold(0xcbf2_9ce4_8422_2325 ^ self.seed, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        mix(h)
    }

    /// Counts one use of the name of hash `h`.
    pub fn record(&self, h: u64) {
        self.record_n(h, 1);
    }

    /// Counts `n` uses of the name of hash `h` at once, as `n` calls of
    /// `record` would (a name's hits are batched by `LocalCache`). Returns
    /// the name's least counter after it, 15 once the name is saturated.
    /// Written out by hand: a saturated name costs four loads.
    pub fn record_n(&self, h: u64, mut n: u64) -> u64 {
        let cells = self.cells(h);
        let least = self.least(&cells);
        if least == 15 || n == 0 {
            return least;
        }
        // A name already counted skips the doorkeeper, so that clearing it
        // (every `capacity` new names) costs names in steady use nothing.
        if least == 0 && !self.door_has(h) {
            self.door_add(h);
            n -= 1;
            if n == 0 {
                return 0;
            }
        }
        // Conservative update: the counters under the new minimum rise to
        // it, the others already count more than this name; which keeps
        // names that share counters from looking used more than they are.
        // One try per counter: losing a race loses counts, not correctness.
        let target = (least + n).min(15);
        let mut grew = false;
        let mut lost = false;
        for (word, shift) in cells {
            let w = &self.counters[word];
            let v = w.load(Relaxed);
            let c = (v >> shift) & 15;
            if c < target {
                let ok = w.compare_exchange(v, v + ((target - c) << shift), Relaxed, Relaxed).is_ok();
                grew |= ok;
                lost |= !ok;
            }
        }
        // Exactly one caller carries the count over the period; those that
        // add while it halves count towards the next one.
        if grew {
            let added = target - least;
            let before = self.added.fetch_add(added, Relaxed);
            if before < self.period && before + added >= self.period {
                self.age();
                self.added.fetch_sub(self.period, Relaxed);
            }
        }
        if lost {
            least
        } else {
            target
        }
    }

    /// The number of halvings so far.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Relaxed)
    }

    /// How often the name of hash `h` was used lately, 0 to `MAX_FREQUENCY`.
    pub fn estimate(&self, h: u64) -> u8 {
        // A counted name passed the doorkeeper once: it keeps that use
        // after the doorkeeper is cleared, or a newcomer seen as often
        // would look used once more.
        match self.least(&self.cells(h)) {
            0 => u8::from(self.door_has(h)),
            n => n as u8 + 1,
        }
    }

    fn least(&self, cells: &[(usize, u32); 4]) -> u64 {
        let mut least = 15;
        for &(word, shift) in cells {
            least = least.min((self.counters[word].load(Relaxed) >> shift) & 15);
        }
        least
    }

    /// Halves every counter and clears the doorkeeper: old popularity fades.
    fn age(&self) {
        for w in self.counters.iter() {
            let _ = w.fetch_update(Relaxed, Relaxed, |v| Some((v >> 1) & NIBBLE_LOW_BITS));
        }
        self.clear_door();
        self.epoch.fetch_add(1, Relaxed);
    }

    /// A name's four counters share one block of 8 words (a cache line,
    /// Caffeine's layout): the block from the low bits of `h`; one byte of
    /// the high half per row picks a word of the row's two and a counter of
    /// its 16. No hashing beyond `h`.
    fn cells(&self, h: u64) -> [(usize, u32); 4] {
        let base = ((h as usize) & (self.counters.len() / 8 - 1)) * 8;
        [0, 1, 2, 3].map(|row| {
            let b = (h >> (32 + 8 * row)) as usize & 0xff;
            (base + 2 * row + (b & 1), ((b >> 1) & 15) as u32 * 4)
        })
    }

    fn door_bits(&self, h: u64) -> [(usize, u64); 2] {
        let bits = self.door.len() as u64 * 64;
        [h.rotate_right(11) & (bits - 1), h.rotate_right(37) & (bits - 1)].map(|b| ((b / 64) as usize, 1u64 << (b % 64)))
    }

    fn door_has(&self, h: u64) -> bool {
        self.door_bits(h).iter().all(|&(w, bit)| self.door[w].load(Relaxed) & bit != 0)
    }

    fn door_add(&self, h: u64) {
        for (w, bit) in self.door_bits(h) {
            self.door[w].fetch_or(bit, Relaxed);
        }
        // Full enough to answer "seen" for names never seen: start over.
        if self.door_added.fetch_add(1, Relaxed) + 1 == self.door_budget {
            self.clear_door();
            self.door_added.fetch_sub(self.door_budget, Relaxed);
        }
    }

    fn clear_door(&self) {
        for w in self.door.iter() {
            w.store(0, Relaxed);
        }
    }
}

/// A 64-bit finalizer (murmur3's): every input bit moves every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_ceiling() {
        let s = Sketch::new(64, 7);
        let h = s.hash(b"shop.customer.example");
        assert_eq!(s.estimate(h), 0);
        s.record(h);
        assert_eq!(s.estimate(h), 1, "the doorkeeper alone");
        s.record(h);
        assert_eq!(s.estimate(h), 2);
        for _ in 0..100 {
            s.record(h);
        }
        assert_eq!(s.estimate(h), MAX_FREQUENCY);
        assert_eq!(s.estimate(s.hash(b"other.example")), 0);
        // Once counted, a name is counted through the doorkeeper's clearing.
        let steady = s.hash(b"steady.example");
        s.record(steady);
        for round in 0..10 {
            s.record(steady);
            for i in 0..64 {
                s.record(s.hash(format!("once{round}-{i}.example").as_bytes()));
            }
        }
        assert!(s.estimate(steady) >= 10, "{}", s.estimate(steady));
    }

    #[test]
    fn record_n_is_n_records() {
        for n in 0..20u64 {
            for pre in 0..4 {
                let (a, b) = (Sketch::new(64, 3), Sketch::new(64, 3));
                let h = a.hash(b"batched.example");
                for _ in 0..pre {
                    a.record(h);
                    b.record(h);
                }
                for _ in 0..n {
                    a.record(h);
                }
                let least = b.record_n(h, n);
                assert_eq!(a.estimate(h), b.estimate(h), "n {n}, pre {pre}");
                assert_eq!(least == 15, b.estimate(h) == MAX_FREQUENCY);
                assert_eq!(a.added.load(Relaxed), b.added.load(Relaxed));
            }
        }
        // Carried over the period, a batch halves the counts as one record would.
        let s = Sketch::new(16, 1);
        let e = s.epoch();
        for i in 0..20 {
            s.record_n(s.hash(format!("n{i}").as_bytes()), 16);
        }
        assert_eq!(s.epoch(), e + 1);
    }

    #[test]
    fn one_hit_names_do_not_age_the_counts() {
        let s = Sketch::new(1_024, 1);
        let hot = s.hash(b"hot.example");
        for _ in 0..20 {
            s.record(hot);
        }
        for i in 0..100_000 {
            s.record(s.hash(format!("scan{i}.example").as_bytes()));
        }
        // Doorkeeper false positives (~2%) reach the counters, but far too
        // few to age them: it takes ~500 one-hit names per cached name.
        assert!(s.estimate(hot) >= 15, "{}", s.estimate(hot));
    }

    #[test]
    fn repeated_use_ages_old_counts() {
        let s = Sketch::new(64, 1);
        let old = s.hash(b"old.example");
        for _ in 0..20 {
            s.record(old);
        }
        for round in 0..40 {
            for i in 0..64 {
                let h = s.hash(format!("busy{i}.example").as_bytes());
                s.record(h);
                if round == 0 {
                    s.record(h);
                }
            }
        }
        assert!(s.estimate(old) <= 4, "{}", s.estimate(old));
    }
}
