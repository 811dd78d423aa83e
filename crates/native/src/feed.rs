//! The change-feed poller of the native build: one per filter config (so
//! one per Envoy), on Envoy's main thread through the config-level
//! scheduler and callout of ABI v0.2.0, timed by the module's own thread.
//! Never on a request's path.

use crate::ffi::{self, CalloutResponse, ConfigHandle, ConfigScheduler, Level};
use crate::host::Native;
use crate::metrics::Metrics;
use crate::module::now_ms;
use cname_guard_core::cache::LocalCache;
use cname_guard_core::config::Config;
use cname_guard_core::feed as core;
use cname_guard_core::lookup;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// The one config-level event: "poll now if due".
pub const EV_FEED: u64 = 1;
/// A posted poll not run by then is posted again (an event Envoy dropped).
const REPOST_MS: u64 = 1_000;

pub struct Feed {
    sched: Option<ConfigScheduler>,
    /// When the last poll event was posted; 0 when none is pending.
    posted: AtomicU64,
    state: Mutex<PollState>,
}

struct PollState {
    feed: core::Feed,
    callout: Option<u64>,
}

impl Feed {
    pub fn new(c: &ConfigHandle, cfg: &Config) -> Feed {
        let sched = if cfg.changes.enabled() { c.scheduler() } else { None };
        if cfg.changes.enabled() && sched.is_none() {
            ffi::log(
                Level::Warn,
                "cname-guard: no config scheduler: the change feed is off, entries live to their TTL",
            );
        }
        Feed {
            sched,
            posted: AtomicU64::new(0),
            state: Mutex::new(PollState { feed: core::Feed::new(None), callout: None }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the module's thread: asks the main thread to poll when due.
    pub fn tick(&self, cfg: &Config, now: u64) {
        let Some(s) = &self.sched else { return };
        let posted = self.posted.load(Ordering::Acquire);
        if posted != 0 && now < posted + REPOST_MS {
            return;
        }
        if self.state().feed.wants_tick(cfg, now) {
            self.posted.store(now.max(1), Ordering::Release);
            s.commit(EV_FEED);
        }
    }

    /// On the main thread: sends the poll.
    pub fn poll(&self, c: ConfigHandle, cfg: &Config, m: &Metrics, now: u64) {
        self.posted.store(0, Ordering::Release);
        let mut h = Native { h: c, m };
        let mut st = self.state();
        let polling = st.feed.tick(cfg, now, 0, &mut h);
        if polling.gave_up {
            st.callout = None;
        }
        let Some(poll) = polling.poll else { return };
        let headers = lookup::request_headers(&cfg.authority, &poll.path, None);
        match c.callout(&cfg.cluster, &headers, poll.timeout_ms) {
            Ok(id) => st.callout = Some(id),
            Err(_) => st.feed.refused(cfg, now, &mut h),
        }
    }

    /// On the main thread: applies the answer to the poll.
    pub fn answered(
        &self,
        c: ConfigHandle,
        id: u64,
        resp: CalloutResponse,
        cfg: &Config,
        m: &Metrics,
        cache: &RwLock<LocalCache>,
    ) {
        let now = now_ms();
        let mut h = Native { h: c, m };
        let mut st = self.state();
        if st.callout != Some(id) {
            return;
        }
        st.callout = None;
        let status = if resp.ok { resp.status.as_deref() } else { None };
        let evict = st.feed.answered(cfg, status, resp.body_len, &resp.body, now, &mut h);
        if !evict.is_empty() {
            let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
            let gone = cache.evict(&evict);
            core::Feed::applied(gone as u64, &mut h);
            c.gauge_set(m.cache_entries, cache.len() as u64);
        }
    }
}
