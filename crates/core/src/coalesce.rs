//! Cross-worker coalescing: a lock entry per cache set in shared data.
//!
//! The worker that takes the lock for a host is its leader and makes the
//! one lookup; other workers add their wake-up queue to the lock and wait.
//! A lock past its deadline belongs to a leader that died and may be taken.

/// At most this many workers wait on one lock (Envoy rarely runs more).
pub const MAX_WAITERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub host: String,
    /// Milliseconds since the epoch; after it the lock is free.
    pub deadline: u64,
    /// Shared queue ids of the workers waiting for the answer.
    pub waiters: Vec<u32>,
}

const VERSION: u8 = 1;

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.waiters.len().min(MAX_WAITERS);
        let mut out = Vec::with_capacity(11 + self.host.len() + 4 * n);
        out.push(VERSION);
        out.extend_from_slice(&self.deadline.to_le_bytes());
        out.push(self.host.len().min(255) as u8);
        out.extend_from_slice(self.host.as_bytes());
        out.push(n as u8);
        for q in &self.waiters[..n] {
            out.extend_from_slice(&q.to_le_bytes());
        }
        out
    }

    /// `None` for an empty (released) or malformed lock value.
    pub fn decode(bytes: &[u8]) -> Option<Lock> {
        if bytes.len() < 11 || bytes[0] != VERSION {
            return None;
        }
        let deadline = u64::from_le_bytes(bytes[1..9].try_into().ok()?);
        let host_len = usize::from(bytes[9]);
        let host = bytes.get(10..10 + host_len)?;
        let n = usize::from(*bytes.get(10 + host_len)?);
        let rest = bytes.get(11 + host_len..)?;
        if rest.len() != 4 * n {
            return None;
        }
        let waiters = rest.chunks_exact(4).filter_map(|c| c.try_into().ok().map(u32::from_le_bytes)).collect();
        Some(Lock { host: String::from_utf8(host.to_vec()).ok()?, deadline, waiters })
    }

    pub fn held(&self, now: u64) -> bool {
        now < self.deadline
    }
}

/// What a worker should do about a host it has no fresh entry for, given
/// the current lock value of the host's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this lock (with the CAS just read) and make the lookup.
    Lead(Lock),
    /// Write this lock (our queue added) and wait to be woken.
    Wait(Lock),
    /// The set's lock is busy with another host: look up without coalescing.
    Alone,
}

pub fn step(current: Option<Lock>, host: &str, my_queue: u32, now: u64, lock_for_ms: u64) -> Step {
    match current {
        Some(lock) if lock.held(now) && lock.host == host => {
            let mut lock = lock;
            if !lock.waiters.contains(&my_queue) {
                if lock.waiters.len() >= MAX_WAITERS {
                    return Step::Alone;
                }
                lock.waiters.push(my_queue);
            }
            Step::Wait(lock)
        }
        Some(lock) if lock.held(now) => Step::Alone,
        _ => Step::Lead(Lock { host: host.to_string(), deadline: now + lock_for_ms, waiters: Vec::new() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let l = Lock { host: "a.example".into(), deadline: 77, waiters: vec![3, 9] };
        assert_eq!(Lock::decode(&l.encode()), Some(l.clone()));
        assert_eq!(Lock::decode(&[]), None);
        let bytes = l.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Lock::decode(&bytes[..cut]), None);
        }
    }

    #[test]
    fn steps() {
        let held = Lock { host: "a".into(), deadline: 100, waiters: vec![] };
        assert!(matches!(step(None, "a", 1, 50, 600), Step::Lead(l) if l.deadline == 650 && l.host == "a"));
        assert_eq!(step(Some(held.clone()), "a", 1, 50, 600), Step::Wait(Lock { waiters: vec![1], ..held.clone() }));
        assert_eq!(step(Some(held.clone()), "b", 1, 50, 600), Step::Alone);
        // A dead leader's lock is taken over.
        assert!(matches!(step(Some(held.clone()), "a", 1, 100, 600), Step::Lead(_)));
        assert!(matches!(step(Some(held.clone()), "b", 1, 100, 600), Step::Lead(_)));
        let full = Lock { waiters: (0..MAX_WAITERS as u32).collect(), ..held };
        assert_eq!(step(Some(full), "a", 999, 50, 600), Step::Alone);
    }
}
