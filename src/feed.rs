//! The change-feed poller of the Wasm build: one per Envoy, run by the
//! worker that holds the lease in shared data, from its root context's
//! tick. Never on a request's path.

use crate::changes::{self, Eviction, FeedError, Poller, Schedule};
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::shared;
use crate::worker::now_ms;
use log::{info, warn};
use proxy_wasm::hostcalls;
use std::time::Duration;

/// How often a worker says its queue is alive (the registry forgets a
/// queue after `changes::ALIVE_MS`), and the holder renews its lease.
const REGISTER_EVERY_MS: u64 = 2_000;
const RENEW_EVERY_MS: u64 = 1_000;

pub struct Feed {
    /// Some while this worker holds the lease.
    poller: Option<Poller>,
    token: Option<u32>,
    registered: Option<u64>,
    renewed: u64,
    told_absent: bool,
}

fn schedule(cfg: &Config) -> Schedule {
    Schedule { interval_ms: u64::from(cfg.changes.interval_ms), max_backoff_ms: u64::from(cfg.changes.max_backoff_ms) }
}

/// A holder that stops renewing loses the lease after this.
fn lease_ms(cfg: &Config) -> u64 {
    3 * u64::from(cfg.changes.interval_ms).max(1_000)
}

/// The holder's tick: the interval itself (50 ms to 1 s), so that polling
/// adds no tick to a default configuration's one a second; a poll due
/// within half a tick is made on this one.
pub fn poll_tick(cfg: &Config) -> Duration {
    Duration::from_millis(u64::from(cfg.changes.interval_ms).clamp(50, 1_000))
}

impl Feed {
    pub fn new() -> Feed {
        Feed { poller: None, token: None, registered: None, renewed: 0, told_absent: false }
    }

    pub fn holding(&self) -> bool {
        self.poller.is_some()
    }

    pub fn is_call(&self, token: u32) -> bool {
        self.token == Some(token)
    }

    /// Registers our queue, keeps or takes the lease, polls when due.
    pub fn tick(&mut self, cfg: &Config, me: u32, now: u64, m: &Metrics) {
        if self.registered.is_none_or(|t| now >= t + REGISTER_EVERY_MS) {
            shared::register_worker(me, now);
            self.registered = Some(now);
        }
        if self.poller.is_none() {
            // The cheap check of a non-holder: one read per tick.
            if shared::lease().is_some_and(|l| l.holder != me && now < l.until) {
                return;
            }
        }
        if self.poller.is_none() || now >= self.renewed + RENEW_EVERY_MS {
            let seq = self.poller.as_ref().and_then(Poller::handover_seq);
            match shared::claim_lease(me, now, lease_ms(cfg), seq) {
                Some(lease) => {
                    if self.poller.is_none() {
                        info!("cname-guard: this worker polls the change feed {} (from seq {:?})", cfg.changes.path, lease.seq);
                        self.poller = Some(Poller::new(lease.seq));
                    }
                    self.renewed = now;
                }
                None => {
                    if self.poller.take().is_some() {
                        info!("cname-guard: another worker polls the change feed now");
                    }
                    return;
                }
            }
        }
        let Some(p) = self.poller.as_mut() else { return };
        // A long poll holds the call for up to `wait_seconds`: the timeout is on top.
        let timeout = cfg.timeout + Duration::from_secs(u64::from(cfg.changes.wait_seconds));
        if p.give_up(now, timeout.as_millis() as u64 + 1_000, schedule(cfg)) {
            self.token = None;
            metrics::inc(m.changes_failed);
            warn!("cname-guard: change feed on cluster {}: no callback for the last call, given up", cfg.cluster);
        }
        if !p.due(now + poll_tick(cfg).as_millis() as u64 / 2) {
            return;
        }
        let path = changes::request_path(&cfg.changes.path, p.since(), cfg.changes.wait_seconds);
        let headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", cfg.authority.as_str()),
            (":scheme", "http"),
            ("accept", "application/json"),
        ];
        p.sent(now);
        metrics::inc(m.changes_polls);
        match hostcalls::dispatch_http_call(&cfg.cluster, headers, None, vec![], timeout) {
            Ok(token) => self.token = Some(token),
            Err(_) => {
                metrics::inc(m.changes_failed);
                warn!("cname-guard: change feed on cluster {}: {}", cfg.cluster, FeedError::Dispatch);
                p.answered(Err(FeedError::Dispatch), now, schedule(cfg));
            }
        }
    }

    /// Reads the answer to our call; returns what it evicts.
    pub fn answered(
        &mut self,
        cfg: &Config,
        me: u32,
        status: Option<&str>,
        body_size: usize,
        body: &[u8],
        m: &Metrics,
    ) -> Eviction {
        let now = now_ms();
        self.token = None;
        let Some(p) = self.poller.as_mut() else { return Eviction::default() };
        let result = changes::parse_answer(status, body_size, body);
        match &result {
            Err(FeedError::Absent) if !self.told_absent => {
                self.told_absent = true;
                info!("cname-guard: the lookup service has no change feed (404 on {}): entries live to their TTL", cfg.changes.path);
            }
            Err(FeedError::Absent) => {}
            Err(e) => warn!("cname-guard: change feed on cluster {} failed: {e}", cfg.cluster),
            Ok(_) => self.told_absent = false,
        }
        let step = p.answered(result, now, schedule(cfg));
        if step.failed {
            metrics::inc(m.changes_failed);
        }
        if step.reset {
            metrics::inc(m.changes_resets);
            info!("cname-guard: change feed reset at seq {:?}: every cached entry dropped", p.seq);
        }
        if let Some(seq) = p.seq {
            metrics::set(m.changes_seq, seq);
        }
        // Hand the new seq over at once, should another worker take over.
        if shared::claim_lease(me, now, lease_ms(cfg), p.handover_seq()).is_some() {
            self.renewed = now;
        }
        step.evict
    }
}
