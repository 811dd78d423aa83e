//! DNS answers kept by their TTL in a bounded map, with identical questions
//! in flight coalesced onto one. Failures are never kept.

use crate::resolve::{Dns, DnsError, Reply, Rtype};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

type Key = (String, Rtype);
type Flight = Arc<OnceCell<Result<Reply, DnsError>>>;

pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

pub struct CachedDns<D> {
    inner: D,
    max_entries: usize,
    /// TTLs above this are cut to it (`--max-ttl`).
    max_ttl: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    answers: HashMap<Key, (Reply, Instant)>,
    flights: HashMap<Key, Flight>,
}

impl<D: Dns> CachedDns<D> {
    pub fn new(inner: D, max_entries: usize, max_ttl: u32) -> CachedDns<D> {
        CachedDns { inner, max_entries, max_ttl, state: Mutex::new(State::default()) }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn len(&self) -> usize {
        self.lock().answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned map is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self, key: Key, reply: &Reply) {
        let ttl = reply.ttl().min(self.max_ttl);
        if ttl == 0 || self.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        if state.answers.len() >= self.max_entries && !state.answers.contains_key(&key) {
            state.answers.retain(|_, (_, expires)| *expires > now);
            if state.answers.len() >= self.max_entries {
                // Still full of live answers: drop one (the map's bound wins).
                if let Some(victim) = state.answers.keys().next().cloned() {
                    state.answers.remove(&victim);
                }
            }
        }
        state.answers.insert(key, (reply.clone(), now + Duration::from_secs(u64::from(ttl))));
    }
}

/// A cached reply with its TTL counted down to what is left.
fn remaining(reply: &Reply, expires: Instant, now: Instant) -> Reply {
    // Rounded up: a live answer never reads as TTL 0.
    let left = expires.saturating_duration_since(now).as_millis().div_ceil(1000);
    let left = u32::try_from(left).unwrap_or(u32::MAX);
    with_ttl(reply, left)
}

fn with_ttl(reply: &Reply, ttl: u32) -> Reply {
    match reply.clone() {
        Reply::Cname { target, .. } => Reply::Cname { target, ttl },
        Reply::Addresses { .. } => Reply::Addresses { ttl },
        Reply::Txt { texts, .. } => Reply::Txt { texts, ttl },
        Reply::NoData { .. } => Reply::NoData { ttl },
        Reply::NxDomain { .. } => Reply::NxDomain { ttl },
    }
}

impl<D: Dns> Dns for CachedDns<D> {
    async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
        let key = (name.to_string(), rtype);
        let flight = {
            let now = Instant::now();
            let mut state = self.lock();
            if let Some((reply, expires)) = state.answers.get(&key) {
                if *expires > now {
                    return Ok(remaining(reply, *expires, now));
                }
                state.answers.remove(&key);
            }
            state.flights.entry(key.clone()).or_default().clone()
        };
        // The first caller asks; the others wait on its answer. If the first
        // is cancelled, a waiter asks instead.
        let result = flight
            .get_or_init(|| async {
                let result = self.inner.query(name, rtype).await.map(|reply| {
                    self.store(key.clone(), &reply);
                    with_ttl(&reply, reply.ttl().min(self.max_ttl))
                });
                self.lock().flights.remove(&key);
                result
            })
            .await;
        result.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fake::{block, Zone};
    use std::sync::atomic::Ordering;

    #[test]
    fn answers_are_kept_by_ttl_and_capped() {
        let cache = CachedDns::new(Zone::default().a("a.example", 600).a("zero.example", 0), 100, 300);
        block(async {
            assert_eq!(cache.query("a.example", Rtype::A).await, Ok(Reply::Addresses { ttl: 300 }));
            assert_eq!(cache.query("a.example", Rtype::A).await.map(|r| r.ttl() <= 300), Ok(true));
            assert_eq!(cache.inner().queries.load(Ordering::SeqCst), 1);
            // TTL 0: asked every time.
            cache.query("zero.example", Rtype::A).await.expect("answer");
            cache.query("zero.example", Rtype::A).await.expect("answer");
            assert_eq!(cache.inner().queries.load(Ordering::SeqCst), 3);
        });
    }

    #[test]
    fn failures_are_not_kept() {
        let cache = CachedDns::new(Zone::default().broken("b.example"), 100, 300);
        block(async {
            assert!(cache.query("b.example", Rtype::A).await.is_err());
            assert!(cache.query("b.example", Rtype::A).await.is_err());
        });
        assert_eq!(cache.inner().queries.load(Ordering::SeqCst), 2);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut zone = Zone::default();
        for i in 0..50 {
            zone = zone.a(&format!("h{i}.example"), 60);
        }
        let cache = CachedDns::new(zone, 10, 300);
        block(async {
            for i in 0..50 {
                cache.query(&format!("h{i}.example"), Rtype::A).await.expect("answer");
                assert!(cache.len() <= 10);
            }
        });
    }

    /// DNS that answers after a pause, so questions overlap.
    struct Slow(Zone);
    impl Dns for Slow {
        async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.0.query(name, rtype).await
        }
    }

    #[test]
    fn identical_questions_in_flight_are_coalesced() {
        let cache = Arc::new(CachedDns::new(Slow(Zone::default().a("c.example", 60)), 100, 300));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move { cache.query("c.example", Rtype::A).await })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.expect("task").map(|r| r.ttl() > 0), Ok(true));
            }
        });
        assert_eq!(cache.inner().0.queries.load(Ordering::SeqCst), 1);
    }
}
