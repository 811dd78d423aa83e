//! DNS questions in flight, bounded overall and per zone: a flood cannot open
//! unbounded sockets, and a slow or dead nameserver holds at most its zone's
//! share, so names on other nameservers are still asked.
//!
//! The service only talks to its resolvers, so the nameserver behind a name
//! is approximated by the name's last two labels (its zone key). A question
//! over its zone's budget fails at once; over the overall budget it waits a
//! short while, then fails. Either way the lookup is a DNS failure (503), so
//! the filter applies its failure mode instead of waiting.

use crate::resolve::{Dns, DnsError, Reply, Rtype};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;
pub const DEFAULT_MAX_IN_FLIGHT_PER_ZONE: usize = 32;
/// How long a question waits for the overall budget before it fails.
pub const OVERALL_WAIT: Duration = Duration::from_millis(50);

/// What a refused question says; tests and operators grep for it.
pub const REFUSED: &str = "questions in flight";

pub struct Bounded<D> {
    inner: D,
    overall: Arc<Semaphore>,
    max_overall: usize,
    per_zone: usize,
    /// Questions in flight per zone key; a key is removed when it reaches 0,
    /// so the map holds at most `max_overall` keys.
    zones: Mutex<HashMap<String, usize>>,
}

impl<D: Dns> Bounded<D> {
    pub fn new(inner: D, max_overall: usize, per_zone: usize) -> Bounded<D> {
        Bounded {
            inner,
            overall: Arc::new(Semaphore::new(max_overall)),
            max_overall,
            per_zone,
            zones: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Zones with questions in flight now.
    pub fn zones_in_flight(&self) -> usize {
        self.zones.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn zone_slot(&self, key: &str) -> Option<ZoneSlot<'_>> {
        let mut zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        let n = zones.entry(key.to_string()).or_insert(0);
        if *n >= self.per_zone {
            return None;
        }
        *n += 1;
        Some(ZoneSlot { zones: &self.zones, key: key.to_string() })
    }
}

/// The zone key of a canonical name: its last two labels (`a.b.example` ->
/// `b.example`), or the name itself.
pub fn zone_key(name: &str) -> &str {
    let mut dots = name.rmatch_indices('.').map(|(i, _)| i);
    match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &name[second + 1..],
        _ => name,
    }
}

/// One question's place in its zone's budget, given back on drop (also when
/// the lookup is cancelled).
struct ZoneSlot<'a> {
    zones: &'a Mutex<HashMap<String, usize>>,
    key: String,
}

impl Drop for ZoneSlot<'_> {
    fn drop(&mut self) {
        let mut zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = zones.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                zones.remove(&self.key);
            }
        }
    }
}

impl<D: Dns> Dns for Bounded<D> {
    async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
        let refused = |detail: String| DnsError { name: name.to_string(), detail };
        let key = zone_key(name);
        let Some(_zone) = self.zone_slot(key) else {
            crate::metrics::dns_budget_refused(true);
            return Err(refused(format!(
                "refused: {} {REFUSED} for {key} (--dns-max-in-flight-per-zone)",
                self.per_zone
            )));
        };
        let _overall = match tokio::time::timeout(OVERALL_WAIT, self.overall.acquire()).await {
            Ok(Ok(permit)) => permit,
            // Closed never happens (the semaphore is never closed); a wait past the bound fails.
            _ => {
                crate::metrics::dns_budget_refused(false);
                return Err(refused(format!("refused: {} {REFUSED} (--dns-max-in-flight)", self.max_overall)));
            }
        };
        self.inner.query(name, rtype).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fake::Zone;

    #[test]
    fn zone_keys() {
        assert_eq!(zone_key("a.b.example"), "b.example");
        assert_eq!(zone_key("b.example"), "b.example");
        assert_eq!(zone_key("example"), "example");
        assert_eq!(zone_key("x.y.z.slow.example"), "slow.example");
    }

    /// DNS that holds questions for names ending in `.slow.example` until released.
    struct Held {
        zone: Zone,
        /// Closed to let the held questions through.
        gate: Semaphore,
    }

    impl Dns for Held {
        async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
            if name.ends_with(".slow.example") {
                // An error: the gate was closed, the question goes through.
                let _ = self.gate.acquire().await;
            }
            self.zone.query(name, rtype).await
        }
    }

    fn held() -> Held {
        Held { zone: Zone::default().a("fast.example", 60), gate: Semaphore::new(0) }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    }

    #[test]
    fn a_full_zone_is_refused_at_once_while_other_zones_are_asked() {
        let dns = Arc::new(Bounded::new(held(), 100, 3));
        runtime().block_on(async {
            let slow: Vec<_> = (0..3)
                .map(|i| {
                    let dns = dns.clone();
                    tokio::spawn(async move { dns.query(&format!("h{i}.slow.example"), Rtype::A).await })
                })
                .collect();
            while count(&dns, "slow.example") < 3 {
                tokio::task::yield_now().await;
            }
            let e = dns.query("h9.slow.example", Rtype::A).await.expect_err("over the zone's budget");
            assert!(e.detail.contains(REFUSED) && e.detail.contains("slow.example"), "{e}");
            assert_eq!(dns.query("fast.example", Rtype::A).await, Ok(Reply::Addresses { ttl: 60 }));
            dns.inner().gate.close();
            for t in slow {
                assert!(t.await.expect("task").is_ok());
            }
        });
        // Every slot given back: no key left behind.
        assert_eq!(dns.zones_in_flight(), 0);
    }

    #[test]
    fn the_overall_budget_fails_after_a_short_wait() {
        let dns = Arc::new(Bounded::new(held(), 2, 10));
        runtime().block_on(async {
            let slow: Vec<_> = (0..2)
                .map(|i| {
                    let dns = dns.clone();
                    tokio::spawn(async move { dns.query(&format!("h{i}.slow.example"), Rtype::A).await })
                })
                .collect();
            while dns.overall.available_permits() > 0 {
                tokio::task::yield_now().await;
            }
            let e = dns.query("fast.example", Rtype::A).await.expect_err("over the overall budget");
            assert!(e.detail.contains("--dns-max-in-flight)"), "{e}");
            dns.inner().gate.close();
            for t in slow {
                assert!(t.await.expect("task").is_ok());
            }
            assert_eq!(dns.query("fast.example", Rtype::A).await, Ok(Reply::Addresses { ttl: 60 }));
        });
        assert_eq!(dns.overall.available_permits(), 2);
        assert_eq!(dns.zones_in_flight(), 0);
    }

    #[test]
    fn a_cancelled_question_gives_its_slot_back() {
        let dns = Bounded::new(held(), 1, 1);
        runtime().block_on(async {
            let r = tokio::time::timeout(Duration::from_millis(10), dns.query("a.slow.example", Rtype::A)).await;
            assert!(r.is_err(), "held");
            assert_eq!(dns.zones_in_flight(), 0);
            assert_eq!(dns.overall.available_permits(), 1);
        });
    }

    fn count<D: Dns>(dns: &Bounded<D>, key: &str) -> usize {
        dns.zones.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied().unwrap_or(0)
    }
}
