//! The change-feed poller of the native build: one per filter config (so
//! one per Envoy), on Envoy's main thread through the config-level
//! scheduler and callout of ABI v0.2.0, timed by the module's own thread.
//! Never on a request's path.

use crate::ffi::{self, CalloutResponse, ConfigHandle, ConfigScheduler, Level};
use crate::metrics::Metrics;
use crate::module::now_ms;
use cname_guard_core::cache::LocalCache;
use cname_guard_core::changes::{self, FeedError, Poller, Schedule};
use cname_guard_core::config::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// The one config-level event: "poll now if due".
pub const EV_FEED: u64 = 1;
/// A posted poll not run by then is posted again (an event Envoy dropped).
const REPOST_MS: u64 = 1_000;

struct PollState {
    poller: Poller,
    callout: Option<u64>,
    told_absent: bool,
}

pub struct Feed {
    sched: Option<ConfigScheduler>,
    /// A call unanswered this long is given up (a lost callback).
    give_up_ms: u64,
    /// When the last poll event was posted; 0 when none is pending.
    posted: AtomicU64,
    state: Mutex<PollState>,
}

/// A long poll holds the call for up to `wait_seconds`: the timeout is on top.
fn timeout_ms(cfg: &Config) -> u64 {
    cfg.timeout.as_millis() as u64 + 1000 * u64::from(cfg.changes.wait_seconds)
}

fn schedule(cfg: &Config) -> Schedule {
    Schedule { interval_ms: u64::from(cfg.changes.interval_ms), max_backoff_ms: u64::from(cfg.changes.max_backoff_ms) }
}

impl Feed {
    pub fn new(c: &ConfigHandle, cfg: &Config) -> Feed {
        let sched = if cfg.changes.enabled() { c.scheduler() } else { None };
        if cfg.changes.enabled() && sched.is_none() {
            ffi::log(Level::Warn, "cname-guard: no config scheduler: the change feed is off, entries live to their TTL");
        }
        Feed {
            sched,
            give_up_ms: timeout_ms(cfg) + 1_000,
            posted: AtomicU64::new(0),
            state: Mutex::new(PollState { poller: Poller::new(None), callout: None, told_absent: false }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the module's thread: asks the main thread to poll when due.
    pub fn tick(&self, now: u64) {
        let Some(s) = &self.sched else { return };
        let posted = self.posted.load(Ordering::Acquire);
        if posted != 0 && now < posted + REPOST_MS {
            return;
        }
        let st = self.state();
        if st.poller.due(now) || st.poller.overdue(now, self.give_up_ms) {
            drop(st);
            self.posted.store(now.max(1), Ordering::Release);
            s.commit(EV_FEED);
        }
    }

    /// On the main thread: sends the poll.
    pub fn poll(&self, c: ConfigHandle, cfg: &Config, m: &Metrics, now: u64) {
        self.posted.store(0, Ordering::Release);
        let mut st = self.state();
        let timeout_ms = timeout_ms(cfg);
        if st.poller.give_up(now, timeout_ms + 1_000, schedule(cfg)) {
            st.callout = None;
            c.count(m.changes_failed, 1);
            ffi::log(Level::Warn, &format!("cname-guard: change feed on cluster {}: no callback for the last call, given up", cfg.cluster));
        }
        if !st.poller.due(now) {
            return;
        }
        let path = changes::request_path(&cfg.changes.path, st.poller.since(), cfg.changes.wait_seconds);
        let headers = [
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", cfg.authority.as_str()),
            (":scheme", "http"),
            ("accept", "application/json"),
        ];
        st.poller.sent(now);
        c.count(m.changes_polls, 1);
        match c.callout(&cfg.cluster, &headers, timeout_ms) {
            Ok(id) => st.callout = Some(id),
            Err(code) => {
                c.count(m.changes_failed, 1);
                ffi::log(Level::Warn, &format!("cname-guard: change feed on cluster {}: callout refused ({code})", cfg.cluster));
                st.poller.answered(Err(FeedError::Dispatch), now, schedule(cfg));
            }
        }
    }

    /// On the main thread: applies the answer to the poll.
    pub fn answered(&self, c: ConfigHandle, id: u64, resp: CalloutResponse, cfg: &Config, m: &Metrics, cache: &RwLock<LocalCache>) {
        let now = now_ms();
        let mut st = self.state();
        if st.callout != Some(id) {
            return;
        }
        st.callout = None;
        let status = if resp.ok { resp.status.as_deref() } else { None };
        let result = changes::parse_answer(status, resp.body_len, &resp.body);
        match &result {
            Err(FeedError::Absent) if !st.told_absent => {
                st.told_absent = true;
                ffi::log(
                    Level::Info,
                    &format!("cname-guard: the lookup service has no change feed (404 on {}): entries live to their TTL", cfg.changes.path),
                );
            }
            Err(FeedError::Absent) => {}
            Err(e) => ffi::log(Level::Warn, &format!("cname-guard: change feed on cluster {} failed: {e}", cfg.cluster)),
            Ok(_) => st.told_absent = false,
        }
        let step = st.poller.answered(result, now, schedule(cfg));
        if step.failed {
            c.count(m.changes_failed, 1);
        }
        if step.reset {
            c.count(m.changes_resets, 1);
            ffi::log(Level::Info, &format!("cname-guard: change feed reset at seq {:?}: every cached entry dropped", st.poller.seq));
        }
        if let Some(seq) = st.poller.seq {
            c.gauge_set(m.changes_seq, seq);
        }
        if !step.evict.is_empty() {
            let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
            let gone = cache.evict(&step.evict);
            c.count(m.changes_applied, gone as u64);
            c.gauge_set(m.cache_entries, cache.len() as u64);
        }
    }
}
