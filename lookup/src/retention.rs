//! Audit retention: every replica deletes audit entries older than
//! `--audit-retention` in the background, in bounded batches, so the audit
//! log (the largest table) stops growing with the service's age.

use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Entries older than this are deleted.
    pub keep: Duration,
    /// Time between prunings (the first at start).
    pub every: Duration,
    /// Entries deleted per statement.
    pub batch: u32,
    /// Pause between two batches, so other writers get the database
    /// (SQLite has one writer at a time).
    pub pause: Duration,
}

impl RetentionConfig {
    /// What `serve` runs with: hourly, 1,000 entries a statement.
    pub fn keeping(keep: Duration) -> RetentionConfig {
        RetentionConfig { keep, every: Duration::from_secs(3600), batch: 1000, pause: Duration::from_millis(20) }
    }
}

pub struct AuditPruner {
    store: Store,
    config: RetentionConfig,
    pruned_total: AtomicU64,
}

impl AuditPruner {
    pub fn new(store: Store, config: RetentionConfig) -> AuditPruner {
        AuditPruner { store, config, pruned_total: AtomicU64::new(0) }
    }

    /// Entries this replica deleted since start (a counter for metrics).
    pub fn pruned_total(&self) -> u64 {
        self.pruned_total.load(Ordering::Relaxed)
    }

    /// Deletes every entry older than the retention at `now`, a batch at a
    /// time, until a batch comes back short. Returns how many it deleted.
    pub async fn prune(&self, now: SystemTime) -> Result<u64, StoreError> {
        let before = now.checked_sub(self.config.keep).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut pruned = 0;
        loop {
            let deleted = self.store.prune_audit(before, self.config.batch).await?;
            pruned += deleted;
            self.pruned_total.fetch_add(deleted, Ordering::Relaxed);
            if deleted < u64::from(self.config.batch) {
                return Ok(pruned);
            }
            tokio::time::sleep(self.config.pause).await;
        }
    }

    /// Prunes at start, then every `every`, until `stop`.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut ticker = tokio::time::interval(self.config.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {
                    let pruning = self.prune(SystemTime::now());
                    let outcome = tokio::select! {
                        _ = &mut stop => return,
                        outcome = pruning => outcome,
                    };
                    match outcome {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            pruned = n,
                            older_than = %humantime::format_duration(self.config.keep),
                            total = self.pruned_total(),
                            "audit retention: pruned"
                        ),
                        Err(e) => tracing::warn!(
                            error = %e,
                            retry_in = %humantime::format_duration(self.config.every),
                            "audit retention: pruning failed"
                        ),
                    }
                }
            }
        }
    }
}
