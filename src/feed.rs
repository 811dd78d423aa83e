//! The change-feed poller of the Wasm build: one per Envoy, run by the
//! worker that holds the lease in shared data, from its root context's
//! tick. Never on a request's path.

use crate::shared;
use crate::worker::now_ms;
use cname_guard_core::changes::Eviction;
use cname_guard_core::config::Config;
use cname_guard_core::feed as core;
use cname_guard_core::host::Host;
use cname_guard_core::lookup;
use proxy_wasm::hostcalls;
use std::time::Duration;

/// How often a worker says its queue is alive (the registry forgets a
/// queue after `changes::ALIVE_MS`), and the holder renews its lease.
const REGISTER_EVERY_MS: u64 = 2_000;
const RENEW_EVERY_MS: u64 = 1_000;

pub struct Feed {
    /// Some while this worker holds the lease.
    poller: Option<core::Feed>,
    token: Option<u32>,
    registered: Option<u64>,
    renewed: u64,
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
        Feed { poller: None, token: None, registered: None, renewed: 0 }
    }

    pub fn holding(&self) -> bool {
        self.poller.is_some()
    }

    pub fn is_call(&self, token: u32) -> bool {
        self.token == Some(token)
    }

    /// Registers our queue, keeps or takes the lease, polls when due.
    pub fn tick(&mut self, cfg: &Config, me: u32, now: u64, h: &mut impl Host) {
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
            let seq = self.poller.as_ref().and_then(core::Feed::handover_seq);
            match shared::claim_lease(me, now, lease_ms(cfg), seq) {
                Some(lease) => {
                    if self.poller.is_none() {
                        self.poller = Some(core::Feed::took_lease(cfg, lease.seq, h));
                    }
                    self.renewed = now;
                }
                None => {
                    if self.poller.take().is_some() {
                        core::Feed::lost_lease(h);
                    }
                    return;
                }
            }
        }
        let Some(p) = self.poller.as_mut() else { return };
        let polling = p.tick(cfg, now, poll_tick(cfg).as_millis() as u64 / 2, h);
        if polling.gave_up {
            self.token = None;
        }
        let Some(poll) = polling.poll else { return };
        let headers = lookup::request_headers(&cfg.authority, &poll.path, None);
        let timeout = Duration::from_millis(poll.timeout_ms);
        match hostcalls::dispatch_http_call(&cfg.cluster, headers, None, vec![], timeout) {
            Ok(token) => self.token = Some(token),
            Err(_) => p.refused(cfg, now, h),
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
        h: &mut impl Host,
    ) -> Eviction {
        let now = now_ms();
        self.token = None;
        let Some(p) = self.poller.as_mut() else { return Eviction::default() };
        let evict = p.answered(cfg, status, body_size, body, now, h);
        // Hand the new seq over at once, should another worker take over.
        if shared::claim_lease(me, now, lease_ms(cfg), p.handover_seq()).is_some() {
            self.renewed = now;
        }
        evict
    }
}
