//! DNS answers kept by their TTL in a bounded cache, with identical questions
//! in flight coalesced onto one. Failures are never kept.
//!
//! `moka` decides what stays when the cache is full: TinyLFU admission, so a
//! scan of names asked once does not push out the names every chain shares
//! (the platform's edge names), and no insert walks the whole map.

use crate::resolve::{Dns, DnsError, Reply, Rtype};
use moka::future::Cache;
use moka::Expiry;
use std::time::{Duration, Instant};

type Key = (String, Rtype);

/// What an answer costs besides its names and texts: the key and reply
/// structs, `moka`'s entry, deques and frequency sketch, the allocator's
/// rounding (measured: `tests::dns_cache_memory`, 503 bytes of RSS an
/// answer with 42 bytes of names).
const ENTRY_OVERHEAD: usize = 460;

pub struct CachedDns<D> {
    inner: D,
    /// TTLs above this are cut to it (`--max-ttl`).
    max_ttl: u32,
    answers: Cache<Key, Answer>,
}

/// A reply and when it expires: a cached reply reads with the TTL it has left.
#[derive(Clone)]
struct Answer {
    reply: Reply,
    expires: Instant,
}

/// Each answer lives as long as its (capped) TTL; TTL 0 is not kept.
struct UntilExpiry;

impl Expiry<Key, Answer> for UntilExpiry {
    fn expire_after_create(&self, _key: &Key, answer: &Answer, created_at: Instant) -> Option<Duration> {
        Some(answer.expires.saturating_duration_since(created_at))
    }
}

/// The bytes an answer holds, as the cache's bound counts them.
fn weight(key: &Key, answer: &Answer) -> u32 {
    let texts = match &answer.reply {
        Reply::Cname { target, .. } => target.len(),
        Reply::Txt { texts, .. } => texts.iter().map(String::len).sum(),
        Reply::Caa { issue, .. } => issue.iter().map(String::len).sum(),
        Reply::Addresses { .. } | Reply::NoData { .. } | Reply::NxDomain { .. } => 0,
    };
    u32::try_from(ENTRY_OVERHEAD + key.0.len() + texts).unwrap_or(u32::MAX)
}

impl<D: Dns> CachedDns<D> {
    /// A cache of at most `max_bytes` (0: nothing is kept).
    pub fn new(inner: D, max_bytes: u64, max_ttl: u32) -> CachedDns<D> {
        let answers = Cache::builder().max_capacity(max_bytes).weigher(weight).expire_after(UntilExpiry).build();
        CachedDns { inner, max_ttl, answers }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Answers held (after the cache's pending evictions have run).
    pub async fn entries(&self) -> u64 {
        self.answers.run_pending_tasks().await;
        self.answers.entry_count()
    }
}

/// A cached reply with its TTL counted down to what is left.
fn remaining(answer: &Answer, now: Instant) -> Reply {
    // Rounded up: a live answer never reads as TTL 0.
    let left = answer.expires.saturating_duration_since(now).as_millis().div_ceil(1000);
    with_ttl(&answer.reply, u32::try_from(left).unwrap_or(u32::MAX))
}

fn with_ttl(reply: &Reply, ttl: u32) -> Reply {
    match reply.clone() {
        Reply::Cname { target, .. } => Reply::Cname { target, ttl },
        Reply::Addresses { .. } => Reply::Addresses { ttl },
        Reply::Txt { texts, .. } => Reply::Txt { texts, ttl },
        Reply::Caa { issue, critical_unknown, .. } => Reply::Caa { issue, critical_unknown, ttl },
        Reply::NoData { .. } => Reply::NoData { ttl },
        Reply::NxDomain { .. } => Reply::NxDomain { ttl },
    }
}

impl<D: Dns> Dns for CachedDns<D> {
    async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
        // The first caller asks; the others wait on its answer (if the first
        // is cancelled, a waiter asks instead). An error is not kept.
        let mut asked = false;
        let answer = self
            .answers
            .try_get_with((name.to_string(), rtype), async {
                asked = true;
                let reply = self.inner.query(name, rtype).await?;
                let ttl = reply.ttl().min(self.max_ttl);
                Ok::<_, DnsError>(Answer { expires: Instant::now() + Duration::from_secs(u64::from(ttl)), reply })
            })
            .await;
        // A waiter on another caller's question counts as a hit: it asked no one.
        crate::metrics::dns_cache(!asked);
        let answer = answer.map_err(|e| (*e).clone())?;
        Ok(remaining(&answer, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fake::{block, Zone};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn answers_are_kept_by_ttl_and_capped() {
        let cache = CachedDns::new(Zone::default().a("a.example", 600).a("zero.example", 0), 1 << 20, 300);
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
        let cache = CachedDns::new(Zone::default().broken("b.example"), 1 << 20, 300);
        block(async {
            assert!(cache.query("b.example", Rtype::A).await.is_err());
            assert!(cache.query("b.example", Rtype::A).await.is_err());
        });
        assert_eq!(cache.inner().queries.load(Ordering::SeqCst), 2);
        assert_eq!(block(cache.entries()), 0);
    }

    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().split(' ').next()?.parse().ok());
        kb.unwrap_or(0u64) * 1024
    }

    /// Memory per cached answer, for the weigher's overhead: run by hand,
    /// `cargo test -p cname-guard-lookup --release --lib dns_cache_memory -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement"]
    fn dns_cache_memory() {
        const N: usize = 200_000;
        let mut zone = Zone::default();
        for i in 0..N {
            zone = zone.cname(&format!("shop{i}.customer{}.example", i % 1000), "edge.saas.example", 300);
        }
        let cache = CachedDns::new(zone, u64::MAX, 300);
        let before = rss_bytes();
        block(async {
            for i in 0..N {
                cache.query(&format!("shop{i}.customer{}.example", i % 1000), Rtype::Cname).await.expect("answer");
            }
            cache.answers.run_pending_tasks().await;
        });
        let after = rss_bytes();
        let weight = cache.answers.weighted_size();
        eprintln!(
            "{N} answers: RSS +{} bytes, {} a answer; weighed {} bytes, {} a answer",
            after - before,
            (after - before) / N as u64,
            weight,
            weight / N as u64
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut zone = Zone::default();
        for i in 0..50 {
            zone = zone.a(&format!("h{i}.example"), 60);
        }
        // Room for 10 answers of names like `h12.example`.
        let cache = CachedDns::new(zone, 10 * (ENTRY_OVERHEAD as u64 + 11), 300);
        block(async {
            for i in 0..50 {
                cache.query(&format!("h{i}.example"), Rtype::A).await.expect("answer");
                assert!(cache.entries().await <= 10);
                assert!(cache.answers.weighted_size() <= 10 * (ENTRY_OVERHEAD as u64 + 11));
            }
        });
    }

    /// The names every chain shares stay while a scan of names asked once
    /// goes through a full cache.
    #[test]
    fn a_scan_does_not_push_out_the_names_in_use() {
        let mut zone = Zone::default().a("edge.example", 300);
        for i in 0..2_000 {
            zone = zone.a(&format!("scan{i}.example"), 300);
        }
        let cache = CachedDns::new(zone, 100 * (ENTRY_OVERHEAD as u64 + 16), 300);
        block(async {
            for i in 0..2_000 {
                cache.query("edge.example", Rtype::A).await.expect("answer");
                cache.query(&format!("scan{i}.example"), Rtype::A).await.expect("answer");
            }
            assert!(cache.entries().await <= 100);
        });
        // Once for edge.example, once for each scanned name.
        assert_eq!(cache.inner().queries.load(Ordering::SeqCst), 1 + 2_000);
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
        let cache = Arc::new(CachedDns::new(Slow(Zone::default().a("c.example", 60)), 1 << 20, 300));
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
