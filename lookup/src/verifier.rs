//! The background verifier: re-checks pending hostnames with backoff,
//! times them out, re-checks active and moved ones periodically. Each round
//! claims due hostnames under a lease in the database, so with several
//! replicas one check per hostname runs, not one per replica.

use crate::store::{now, CustomHostname, Status, StatusChange, Store, StoreError};
use crate::verification::{check, next_status, Check, OwnershipProbe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Pending hostnames: `(age up to, check every)`, in order; past the
    /// last step, its interval.
    pub pending_backoff: Vec<(Duration, Duration)>,
    /// A pending hostname older than this becomes `timed_out`.
    pub pending_timeout: Duration,
    /// Active and moved hostnames are re-checked this often.
    pub recheck_interval: Duration,
    /// After a DNS failure, the next try.
    pub retry_after_dns_failure: Duration,
    /// How long a claimed check is the claimer's alone.
    pub lease: Duration,
    /// Hostnames claimed per round.
    pub batch: u32,
    /// Time between rounds.
    pub tick: Duration,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

impl Default for VerifierConfig {
    fn default() -> VerifierConfig {
        let s = Duration::from_secs;
        VerifierConfig {
            // Often in the first minutes, then less.
            pending_backoff: vec![
                (s(10 * MINUTE), s(MINUTE)),
                (s(HOUR), s(5 * MINUTE)),
                (s(24 * HOUR), s(30 * MINUTE)),
                (s(7 * 24 * HOUR), s(2 * HOUR)),
            ],
            pending_timeout: s(7 * 24 * HOUR),
            recheck_interval: s(5 * MINUTE),
            retry_after_dns_failure: s(MINUTE),
            lease: s(2 * MINUTE),
            batch: 100,
            tick: s(5),
        }
    }
}

impl VerifierConfig {
    /// When a pending hostname of age `age` is next checked, from now.
    fn pending_interval(&self, age: Duration) -> Duration {
        self.pending_backoff
            .iter()
            .find(|(up_to, _)| age < *up_to)
            .or(self.pending_backoff.last())
            .map(|(_, every)| *every)
            .unwrap_or(self.recheck_interval)
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub checked: u64,
    pub changed: u64,
    pub dns_failures: u64,
    /// Leases lost or statuses changed meanwhile: nothing written.
    pub skipped: u64,
}

pub struct Verifier {
    store: Store,
    probe: Arc<dyn OwnershipProbe>,
    config: VerifierConfig,
    /// This replica's name in leases.
    owner: String,
    dns_failures_total: AtomicU64,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Verifier {
    pub fn new(store: Store, probe: Arc<dyn OwnershipProbe>, config: VerifierConfig, owner: String) -> Verifier {
        Verifier { store, probe, config, owner, dns_failures_total: AtomicU64::new(0) }
    }

    /// Checks that failed on DNS since start (a counter for metrics).
    pub fn dns_failures_total(&self) -> u64 {
        self.dns_failures_total.load(Ordering::Relaxed)
    }

    /// One round at `now` (Unix seconds): claim what is due, check it,
    /// write the outcomes.
    pub async fn round(&self, now: i64) -> Result<Round, StoreError> {
        let mut round = Round::default();
        let claimed = self.store.claim_due(&self.owner, now, secs(self.config.lease), self.config.batch).await?;
        for h in claimed {
            round.checked += 1;
            let outcome = check(&self.store, &*self.probe, &h.hostname, &h.account, &h.verification_token).await?;
            let (next, change) = self.decide(&h, now, outcome);
            match &change {
                None => {
                    round.dns_failures += 1;
                    self.dns_failures_total.fetch_add(1, Ordering::Relaxed);
                }
                Some(c) if c.from != c.to => round.changed += 1,
                Some(_) => {}
            }
            if !self.store.finish_check(&self.owner, &h.id, now, next, change.as_ref()).await? {
                round.skipped += 1;
            }
        }
        Ok(round)
    }

    /// The next check time and the change to write (`None`: DNS failed,
    /// only reschedule).
    fn decide(&self, h: &CustomHostname, now: i64, outcome: Check) -> (i64, Option<StatusChange>) {
        let age = Duration::from_secs(u64::try_from(now - h.created_at).unwrap_or(0));
        let (proven, errors, reason) = match outcome {
            Check::DnsFailed(m) => {
                crate::warn!("verifier hostname={} DNS failed, nothing changed: {m}", h.hostname);
                return (now + secs(self.config.retry_after_dns_failure), None);
            }
            Check::Proven => (true, Vec::new(), "proven by DNS".to_string()),
            Check::Unproven(errors) => {
                let reason = errors.join("; ");
                (false, errors, reason)
            }
        };
        let expired = age >= self.config.pending_timeout;
        let to = next_status(h.status, proven, expired).unwrap_or(h.status);
        let reason = if to == Status::TimedOut {
            format!("pending for longer than {}s: {reason}", self.config.pending_timeout.as_secs())
        } else {
            reason
        };
        let every =
            if to == Status::Pending { self.config.pending_interval(age) } else { self.config.recheck_interval };
        (now + secs(every), Some(StatusChange { from: h.status, to, verification_errors: errors, reason }))
    }

    /// Rounds every `tick` until `stop` resolves. A store failure is
    /// logged and the next round tries again.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        // The first round one tick after start: the service comes up (and
        // answers its first lookups) before the verifier asks DNS.
        let first = tokio::time::Instant::now() + self.config.tick;
        let mut ticker = tokio::time::interval_at(first, self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {
                    match self.round(now()).await {
                        Ok(r) if r.changed > 0 || r.dns_failures > 0 => crate::info!(
                            "verifier round checked={} changed={} dns_failures={} skipped={}",
                            r.checked, r.changed, r.dns_failures, r.skipped
                        ),
                        Ok(_) => {}
                        Err(e) => crate::error!("verifier round failed: {e}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_slows_down_with_age() {
        let c = VerifierConfig::default();
        let m = |n| Duration::from_secs(n * MINUTE);
        assert_eq!(c.pending_interval(m(0)), m(1));
        assert_eq!(c.pending_interval(m(30)), m(5));
        assert_eq!(c.pending_interval(m(120)), m(30));
        assert_eq!(c.pending_interval(m(48 * 60)), m(120));
        assert_eq!(c.pending_interval(m(30 * 24 * 60)), m(120));
    }
}
