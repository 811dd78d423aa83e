//! `lookup.max_in_flight`: the per-Envoy bound on lookups in flight. A
//! lookup for an uncached host starts only while fewer than the bound are
//! out; otherwise the request gets the answer of a failed lookup at once
//! (`lookup.shed`). Joining a lookup already in flight takes no slot, and
//! the cached path never looks here.
//!
//! The native build keeps the count in an atomic (`Counter`). The Wasm
//! build's workers are separate VMs with no memory in common, so it keeps
//! the lookups in a shared-data value (`Table`): one entry per lookup with
//! the lookup's deadline, so that the slots of a VM that died mid-lookup
//! free themselves once their lookups could no longer be answered.

use std::sync::atomic::{AtomicU32, Ordering};

/// The rule: may one more lookup start with `in_flight` already out?
#[inline]
pub fn admits(in_flight: usize, max: u32) -> bool {
    in_flight < max as usize
}

/// The count of one process (the native build: one static for every
/// filter config, each admitting by its own bound).
#[derive(Debug, Default)]
pub struct Counter(AtomicU32);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU32::new(0))
    }

    /// Takes a slot if `admits` allows one.
    pub fn take(&self, max: u32) -> bool {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| admits(n as usize, max).then(|| n + 1)).is_ok()
    }

    /// Gives a taken slot back.
    pub fn release(&self) {
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// The lookups in flight of every worker VM (the Wasm build's shared data):
/// a tag (the worker's queue and a per-worker sequence) and a deadline each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub slots: Vec<(u64, u64)>,
}

const VERSION: u8 = 1;

impl Table {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 * self.slots.len());
        out.push(VERSION);
        for (tag, deadline) in &self.slots {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&deadline.to_le_bytes());
        }
        out
    }

    /// An empty or malformed value reads as no lookups in flight.
    pub fn decode(bytes: &[u8]) -> Table {
        match bytes.split_first() {
            Some((&VERSION, rest)) if rest.len() % 16 == 0 => Table {
                slots: rest
                    .chunks_exact(16)
                    .map(|c| {
                        let (tag, deadline) = c.split_at(8);
                        let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(0);
                        (word(tag), word(deadline))
                    })
                    .collect(),
            },
            _ => Table::default(),
        }
    }

    /// The table with a slot taken for `tag` until `deadline`, the slots
    /// past their deadline dropped first; `None` when the bound is reached.
    pub fn take(mut self, tag: u64, now: u64, deadline: u64, max: u32) -> Option<Table> {
        self.slots.retain(|&(_, d)| now < d);
        if !admits(self.slots.len(), max) {
            return None;
        }
        self.slots.push((tag, deadline));
        Some(self)
    }

    /// The table without `tag`'s slot; `None` when it holds none.
    pub fn release(mut self, tag: u64, now: u64) -> Option<Table> {
        let n = self.slots.len();
        self.slots.retain(|&(t, d)| t != tag && now < d);
        (self.slots.len() < n).then_some(self)
    }
}

/// A Wasm worker's tag for its `seq`-th lookup: unique in the Envoy while
/// queue ids are.
pub fn tag(queue: u32, seq: u32) -> u64 {
    (u64::from(queue) << 32) | u64::from(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counter_stops_at_the_bound_and_frees() {
        let c = Counter::default();
        assert!(c.take(2) && c.take(2));
        assert!(!c.take(2), "a third lookup beyond 2 is shed");
        assert_eq!(c.get(), 2);
        c.release();
        assert!(c.take(2));
        c.release();
        c.release();
        c.release(); // never below zero
        assert_eq!(c.get(), 0);
    }

    #[test]
    fn table_bounds_and_expires() {
        let t = Table::default().take(1, 0, 100, 2).and_then(|t| t.take(2, 0, 200, 2)).expect("two slots");
        assert_eq!(t.clone().take(3, 50, 300, 2), None, "full");
        // Slot 1's deadline passed (its VM died): the slot is free again.
        let t = t.take(3, 100, 300, 2).expect("expired slot reused");
        assert_eq!(t.slots, vec![(2, 200), (3, 300)]);
        let t = t.release(2, 150).expect("held");
        assert_eq!(t.slots, vec![(3, 300)]);
        assert_eq!(t.clone().release(2, 150), None, "released twice");
        assert_eq!(Table::decode(&t.encode()), t);
    }

    #[test]
    fn garbage_reads_empty() {
        assert_eq!(Table::decode(&[]), Table::default());
        assert_eq!(Table::decode(&[VERSION, 1, 2]), Table::default());
        assert_eq!(Table::decode(&[9; 17]), Table::default());
        assert_eq!(tag(1, 2), (1 << 32) | 2);
    }

    proptest! {
        /// Whatever the order of takes and releases, the table never holds
        /// more than the bound, and a take is refused only when it is full.
        #[test]
        fn never_over_the_bound(max in 1u32..8, ops in proptest::collection::vec((any::<bool>(), 0u64..12), 0..64)) {
            let mut t = Table::default();
            for (take, tag) in ops {
                if take {
                    let full = t.slots.len() >= max as usize;
                    match t.clone().take(tag, 0, 1_000, max) {
                        Some(next) => { prop_assert!(!full); t = next; }
                        None => prop_assert!(full),
                    }
                } else if let Some(next) = t.clone().release(tag, 0) {
                    t = next;
                }
                prop_assert!(t.slots.len() <= max as usize);
            }
        }
    }
}
