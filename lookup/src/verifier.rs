//! The background verifier: re-checks pending hostnames with backoff,
//! times them out, re-checks active and moved ones periodically. Each round
//! claims due hostnames under a lease in the database, so with several
//! replicas one check per hostname runs, not one per replica. Checks start
//! at the pace of a DNS budget (`qps`) and run several at once, so one
//! customer's slow nameserver holds up one check, not the round.

use crate::pacer::Pacer;
use crate::store::{now, CustomHostname, Status, StatusChange, Store, StoreError};
use crate::verification::{check_counted, next_status, Check, OwnershipProbe};
use futures_util::stream::{self, StreamExt};
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
    /// Hostnames claimed per round, at most (fewer when the budget could
    /// not check them within half the lease).
    pub batch: u32,
    /// When nothing was due, the time until the next look.
    pub tick: Duration,
    /// DNS queries a second the verifier may send, over all its checks.
    pub qps: u32,
    /// Checks in flight at once.
    pub concurrency: usize,
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
            batch: 1_000,
            tick: s(5),
            // 25 checks a second at ~4 questions each: about what the verifier
            // did before it had a budget.
            qps: 100,
            concurrency: 16,
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
    pacer: Pacer,
}

/// What a full pass costs at the budget (logged at start and every
/// re-check interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Active and moved hostnames: each re-checked every interval.
    pub hostnames: u64,
    pub queries_per_check: f64,
    /// How long checking them all takes at the budget.
    pub pass: Duration,
    /// Whether that fits in the re-check interval.
    pub meets_interval: bool,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Verifier {
    pub fn new(store: Store, probe: Arc<dyn OwnershipProbe>, config: VerifierConfig, owner: String) -> Verifier {
        let pacer = Pacer::new(config.qps);
        Verifier { store, probe, config, owner, dns_failures_total: AtomicU64::new(0), pacer }
    }

    /// The cost of a full pass now, from the store's count of active and
    /// moved hostnames and the questions a check has cost so far.
    pub async fn plan(&self) -> Result<Plan, StoreError> {
        let hostnames = self.store.count_rechecked().await?;
        let pass = self.pacer.pass(hostnames);
        Ok(Plan {
            hostnames,
            queries_per_check: self.pacer.per_check(),
            pass,
            meets_interval: pass <= self.config.recheck_interval,
        })
    }

    async fn log_plan(&self) {
        let plan = self.plan().await;
        if let Ok(p) = &plan {
            crate::metrics::verifier_plan(p.hostnames, p.pass);
        }
        match plan {
            Ok(p) if p.meets_interval => tracing::info!(
                qps = self.config.qps,
                queries_per_check = p.queries_per_check,
                hostnames = p.hostnames,
                pass_s = p.pass.as_secs(),
                recheck_s = self.config.recheck_interval.as_secs(),
                "verifier budget: a pass of the active and moved hostnames fits the re-check interval"
            ),
            Ok(p) => tracing::warn!(
                qps = self.config.qps,
                queries_per_check = p.queries_per_check,
                hostnames = p.hostnames,
                pass_s = p.pass.as_secs(),
                recheck_s = self.config.recheck_interval.as_secs(),
                "verifier cannot re-check every hostname in --verify-recheck at --verify-qps; raise either"
            ),
            Err(e) => tracing::error!(error = %e, "verifier plan failed"),
        }
    }

    /// Checks that failed on DNS since start (a counter for metrics).
    pub fn dns_failures_total(&self) -> u64 {
        self.dns_failures_total.load(Ordering::Relaxed)
    }

    /// One round at `now` (Unix seconds): claim what is due, check it at
    /// the budget's pace, write the outcomes.
    pub async fn round(&self, now: i64) -> Result<Round, StoreError> {
        // Claim no more than the budget checks within half the lease, so
        // the last check still holds its lease.
        let batch = self.config.batch.min(self.pacer.checks_in(self.config.lease / 2));
        let claimed = self.store.claim_due(&self.owner, now, secs(self.config.lease), batch).await?;
        let started = tokio::time::Instant::now();
        let outcomes: Vec<Result<Outcome, StoreError>> = stream::iter(claimed)
            .map(|h| self.check_one(h, now, started))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut round = Round::default();
        for outcome in outcomes {
            round.checked += 1;
            match outcome? {
                Outcome::DnsFailed => round.dns_failures += 1,
                Outcome::Changed => round.changed += 1,
                Outcome::Same => {}
                Outcome::Skipped => round.skipped += 1,
            }
        }
        Ok(round)
    }

    /// One check in its turn; `now` is the round's, advanced by the time
    /// the round has taken so far.
    async fn check_one(
        &self,
        h: CustomHostname,
        now: i64,
        started: tokio::time::Instant,
    ) -> Result<Outcome, StoreError> {
        let reserved = self.pacer.turn().await;
        let now = now.saturating_add(secs(started.elapsed()));
        let (outcome, queries) =
            check_counted(&self.store, &*self.probe, &h.hostname, &h.account, &h.verification_token).await?;
        self.pacer.settle(reserved, queries);
        let (next, change) = self.decide(&h, now, outcome);
        let kind = match &change {
            None => {
                self.dns_failures_total.fetch_add(1, Ordering::Relaxed);
                Outcome::DnsFailed
            }
            Some(c) if c.from != c.to => Outcome::Changed,
            Some(_) => Outcome::Same,
        };
        if !self.store.finish_check(&self.owner, &h.id, now, next, change.as_ref()).await? {
            crate::metrics::verifier_check("skipped");
            return Ok(Outcome::Skipped);
        }
        match (&kind, &change) {
            (Outcome::Changed, Some(c)) => {
                crate::metrics::verifier_check("changed");
                crate::metrics::verifier_transition(c.from.as_str(), c.to.as_str());
            }
            (Outcome::DnsFailed, _) => crate::metrics::verifier_check("dns_failed"),
            _ => crate::metrics::verifier_check("same"),
        }
        Ok(kind)
    }

    /// The next check time and the change to write (`None`: DNS failed,
    /// only reschedule).
    fn decide(&self, h: &CustomHostname, now: i64, outcome: Check) -> (i64, Option<StatusChange>) {
        let age = Duration::from_secs(u64::try_from(now - h.created_at).unwrap_or(0));
        let (proven, errors, reason) = match outcome {
            Check::DnsFailed(m) => {
                tracing::warn!(hostname = h.hostname, error = m, "verifier: DNS failed, nothing changed");
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

    /// Rounds until `stop` resolves: another at once after a round that
    /// checked something, else after `tick`. A store failure is logged and the
    /// next round tries again. The pass's cost is logged at start and
    /// every re-check interval.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        // The first round one tick after start: the service comes up (and
        // answers its first lookups) before the verifier asks DNS.
        let mut wait = self.config.tick;
        let mut next_plan = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if tokio::time::Instant::now() >= next_plan {
                self.log_plan().await;
                next_plan = tokio::time::Instant::now() + self.config.recheck_interval;
            }
            let round = tokio::select! {
                _ = &mut stop => return,
                r = self.round(now()) => r,
            };
            wait = match round {
                Ok(r) => {
                    if r.changed > 0 || r.dns_failures > 0 {
                        tracing::info!(
                            checked = r.checked,
                            changed = r.changed,
                            dns_failures = r.dns_failures,
                            skipped = r.skipped,
                            "verifier round"
                        );
                    }
                    if r.checked > 0 {
                        Duration::ZERO
                    } else {
                        self.config.tick
                    }
                }
                Err(e) => {
                    crate::metrics::store_error(crate::metrics::StoreOp::Verifier);
                    tracing::error!(error = %e, "verifier round failed");
                    self.config.tick
                }
            };
        }
    }
}

/// How one check ended.
enum Outcome {
    DnsFailed,
    Changed,
    Same,
    /// The lease was lost or the status changed meanwhile.
    Skipped,
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
