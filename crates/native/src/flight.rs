//! Lookups in flight, shared by every worker of one filter config: the
//! first stream to miss a host leads (makes the callout); the others wait
//! and are resumed through their own stream's scheduler.

use cname_guard_core::verdict::Verdict;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Something that can wake a paused stream from any thread.
pub trait Wake: Send + Sync {
    fn wake(&self, event: u64);
}

#[cfg(not(test))]
impl<S: crate::ffi::Scope> Wake for crate::ffi::Scheduler<S> {
    fn wake(&self, event: u64) {
        self.commit(event)
    }
}

/// Event ids passed through the scheduler.
pub const EV_SETTLED: u64 = 1;
/// The leader went away before its answer: look again (and maybe lead).
pub const EV_RETRY: u64 = 2;
pub const EV_TIMEOUT: u64 = 3;

/// How a lookup ended, for the streams that waited on it: the verdict,
/// or `None` when the lookup failed.
pub type Settled = Option<Verdict>;

/// A paused stream.
pub struct Waiter {
    pub id: u64,
    pub deadline: u64,
    pub waker: Box<dyn Wake>,
    pub outcome: Mutex<Option<Settled>>,
}

struct Flight {
    leader: u64,
    waiters: Vec<Arc<Waiter>>,
}

/// What a stream that missed the cache should do.
pub enum Join {
    Lead,
    Wait(Arc<Waiter>),
}

#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Flight>>,
    ids: AtomicU64,
}

/// At most this many streams wait on one host; beyond, they fail by the
/// failure mode rather than grow the list without bound.
pub const MAX_WAITERS: usize = 4096;

impl Flights {
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        // A panic while holding the lock leaves plain data: keep using it.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leads the lookup for `host`, or waits on the one in flight. `None`
    /// when the host already has `MAX_WAITERS` waiters.
    pub fn join(&self, host: &str, me: u64, deadline: u64, waker: impl FnOnce() -> Option<Box<dyn Wake>>) -> Option<Join> {
        let mut map = self.lock();
        match map.get_mut(host) {
            Some(f) if f.leader != me => {
                if f.waiters.len() >= MAX_WAITERS {
                    return None;
                }
                let w = Arc::new(Waiter { id: me, deadline, waker: waker()?, outcome: Mutex::new(None) });
                f.waiters.push(w.clone());
                Some(Join::Wait(w))
            }
            _ => {
                map.insert(host.to_string(), Flight { leader: me, waiters: Vec::new() });
                Some(Join::Lead)
            }
        }
    }

    /// The waiters of `host`'s flight, ending it, if `leader` leads it.
    fn take(&self, host: &str, leader: u64) -> Vec<Arc<Waiter>> {
        let mut map = self.lock();
        if map.get(host).is_some_and(|f| f.leader == leader) {
            map.remove(host).map(|f| f.waiters).unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// The leader's answer: every waiter gets it and is woken.
    pub fn settle(&self, host: &str, leader: u64, outcome: Settled) {
        for w in self.take(host, leader) {
            if let Ok(mut o) = w.outcome.lock() {
                *o = Some(outcome.clone());
            }
            w.waker.wake(EV_SETTLED);
        }
    }

    /// A leader gone before its answer: its waiters look again.
    pub fn abandon(&self, host: &str, leader: u64) {
        for w in self.take(host, leader) {
            w.waker.wake(EV_RETRY);
        }
    }

    /// A waiting stream that ended (client gone) leaves its flight.
    pub fn leave(&self, host: &str, me: u64) {
        if let Some(f) = self.lock().get_mut(host) {
            f.waiters.retain(|w| w.id != me);
        }
    }

    /// Wakes every waiter past its deadline with `EV_TIMEOUT`; returns how
    /// many streams are still waiting.
    pub fn expire(&self, now: u64) -> usize {
        let mut late = Vec::new();
        let mut left = 0;
        {
            let mut map = self.lock();
            for f in map.values_mut() {
                f.waiters.retain(|w| {
                    if now >= w.deadline {
                        late.push(w.clone());
                        false
                    } else {
                        true
                    }
                });
                left += f.waiters.len();
            }
        }
        for w in late {
            w.waker.wake(EV_TIMEOUT);
        }
        left
    }

    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    struct Probe(Arc<AtomicU64>);
    impl Wake for Probe {
        fn wake(&self, event: u64) {
            self.0.store(event, Ordering::SeqCst);
        }
    }

    fn probe() -> (Arc<AtomicU64>, impl FnOnce() -> Option<Box<dyn Wake>>) {
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        (seen, move || Some(Box::new(Probe(s)) as Box<dyn Wake>))
    }

    #[test]
    fn one_leader_many_waiters() {
        let f = Flights::default();
        let (_, w) = probe();
        assert!(matches!(f.join("h", 1, 100, w), Some(Join::Lead)));
        let (seen, w) = probe();
        let Some(Join::Wait(waiter)) = f.join("h", 2, 100, w) else { panic!("should wait") };
        f.settle("h", 99, None); // not the leader: ignored
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        f.settle("h", 1, Some(Verdict::Allow { account: "a".into(), https: true }));
        assert_eq!(seen.load(Ordering::SeqCst), EV_SETTLED);
        assert_eq!(
            *waiter.outcome.lock().expect("lock"),
            Some(Some(Verdict::Allow { account: "a".into(), https: true }))
        );
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn abandoned_and_expired() {
        let f = Flights::default();
        let (_, w) = probe();
        assert!(matches!(f.join("h", 1, 100, w), Some(Join::Lead)));
        let (seen, w) = probe();
        assert!(matches!(f.join("h", 2, 100, w), Some(Join::Wait(_))));
        f.abandon("h", 1);
        assert_eq!(seen.load(Ordering::SeqCst), EV_RETRY);
        let (_, w) = probe();
        assert!(matches!(f.join("h", 2, 100, w), Some(Join::Lead)));
        let (seen, w) = probe();
        assert!(matches!(f.join("h", 3, 50, w), Some(Join::Wait(_))));
        assert_eq!(f.expire(49), 1);
        assert_eq!(f.expire(50), 0);
        assert_eq!(seen.load(Ordering::SeqCst), EV_TIMEOUT);
        let (seen, w) = probe();
        assert!(matches!(f.join("h", 4, 50, w), Some(Join::Wait(_))));
        f.leave("h", 4);
        f.settle("h", 2, None);
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    }
}
