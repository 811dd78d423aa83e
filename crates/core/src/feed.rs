//! The change feed's poll machine, as both builds run it: when to poll,
//! the call to make, and what an answer evicts, counted and logged through
//! the host. Who polls (the Wasm lease, the native main thread) and how
//! the eviction reaches every cache stay in the front ends.

use crate::changes::{self, Eviction, FeedError, Poller, Schedule};
use crate::config::Config;
use crate::host::{Host, Level};

/// The poll to send: `lookup::request_headers(authority, &path, None)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub path: String,
    pub timeout_ms: u64,
}

/// What a poll tick came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polling {
    /// The call out was given up (a lost callback): forget its id.
    pub gave_up: bool,
    pub poll: Option<Poll>,
}

pub struct Feed {
    poller: Poller,
    /// The 404 ("no change feed") is logged once per run of them.
    told_absent: bool,
}

/// A long poll holds the call for up to `wait_seconds`: the timeout is on top.
pub fn timeout_ms(cfg: &Config) -> u64 {
    cfg.timeout.as_millis() as u64 + 1000 * u64::from(cfg.changes.wait_seconds)
}

/// A call unanswered this long is given up (its callback was lost).
pub fn give_up_ms(cfg: &Config) -> u64 {
    timeout_ms(cfg) + 1_000
}

fn schedule(cfg: &Config) -> Schedule {
    Schedule { interval_ms: u64::from(cfg.changes.interval_ms), max_backoff_ms: u64::from(cfg.changes.max_backoff_ms) }
}

impl Feed {
    /// A poller continuing from `seq` (the Wasm lease's), due at once.
    pub fn new(seq: Option<u64>) -> Feed {
        Feed { poller: Poller::new(seq), told_absent: false }
    }

    /// The seq a takeover may continue from.
    pub fn handover_seq(&self) -> Option<u64> {
        self.poller.handover_seq()
    }

    /// Whether a poll tick has anything to do at `now`.
    pub fn wants_tick(&self, cfg: &Config, now: u64) -> bool {
        self.poller.due(now) || self.poller.overdue(now, give_up_ms(cfg))
    }

    /// A poll tick: gives up a call out too long, and returns the poll to
    /// send if one is due by `now + slack_ms` (then counted as sent).
    pub fn tick(&mut self, cfg: &Config, now: u64, slack_ms: u64, h: &mut impl Host) -> Polling {
        let gave_up = self.poller.give_up(now, give_up_ms(cfg), schedule(cfg));
        if gave_up {
            h.add(h.ids().changes_failed, 1);
            h.log(
                Level::Warn,
                format_args!(
                    "cname-guard: change feed on cluster {}: no callback for the last call, given up",
                    cfg.cluster
                ),
            );
        }
        if !self.poller.due(now + slack_ms) {
            return Polling { gave_up, poll: None };
        }
        let path = changes::request_path(&cfg.changes.path, self.poller.since(), cfg.changes.wait_seconds);
        self.poller.sent(now);
        h.add(h.ids().changes_polls, 1);
        Polling { gave_up, poll: Some(Poll { path, timeout_ms: timeout_ms(cfg) }) }
    }

    /// The host refused to send the poll.
    pub fn refused(&mut self, cfg: &Config, now: u64, h: &mut impl Host) {
        h.add(h.ids().changes_failed, 1);
        h.log(
            Level::Warn,
            format_args!("cname-guard: change feed on cluster {}: {}", cfg.cluster, FeedError::Dispatch),
        );
        self.poller.answered(Err(FeedError::Dispatch), now, schedule(cfg));
    }

    /// Reads the answer to the poll (`status`: `None` when it got no
    /// response); returns what it evicts.
    pub fn answered(
        &mut self,
        cfg: &Config,
        status: Option<&str>,
        body_len: usize,
        body: &[u8],
        now: u64,
        h: &mut impl Host,
    ) -> Eviction {
        let result = changes::parse_answer(status, body_len, body);
        match &result {
            Err(FeedError::Absent) if !self.told_absent => {
                self.told_absent = true;
                h.log(
                    Level::Info,
                    format_args!(
                        "cname-guard: the lookup service has no change feed (404 on {}): entries live to their TTL",
                        cfg.changes.path
                    ),
                );
            }
            Err(FeedError::Absent) => {}
            Err(e) => {
                h.log(Level::Warn, format_args!("cname-guard: change feed on cluster {} failed: {e}", cfg.cluster))
            }
            Ok(_) => self.told_absent = false,
        }
        let step = self.poller.answered(result, now, schedule(cfg));
        if step.failed {
            h.add(h.ids().changes_failed, 1);
        }
        if step.reset {
            h.add(h.ids().changes_resets, 1);
            h.log(
                Level::Info,
                format_args!("cname-guard: change feed reset at seq {:?}: every cached entry dropped", self.poller.seq),
            );
        }
        if let Some(seq) = self.poller.seq {
            h.set(h.ids().changes_seq, seq);
        }
        step.evict
    }

    /// This worker took the Wasm lease: it polls from `seq`.
    pub fn took_lease(cfg: &Config, seq: Option<u64>, h: &mut impl Host) -> Feed {
        h.log(
            Level::Info,
            format_args!("cname-guard: this worker polls the change feed {} (from seq {seq:?})", cfg.changes.path),
        );
        Feed::new(seq)
    }

    /// This worker lost the Wasm lease to another.
    pub fn lost_lease(h: &mut impl Host) {
        h.log(Level::Info, format_args!("cname-guard: another worker polls the change feed now"));
    }

    /// What the feed evicted from a cache, counted.
    pub fn applied(gone: u64, h: &mut impl Host) {
        h.add(h.ids().changes_applied, gone as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::Fake;

    fn cfg() -> Config {
        let raw = br#"{"lookup": {"cluster": "lookup", "authority": "lookup.internal", "timeout_ms": 500},
            "changes": {"path": "/v1/changes", "interval_ms": 1000, "wait_seconds": 0}}"#;
        Config::parse(raw).expect("config")
    }

    #[test]
    fn polls_when_due_and_applies_answers() {
        let c = cfg();
        let mut h = Fake::new(0);
        let mut f = Feed::new(None);
        assert!(f.wants_tick(&c, 0));
        let p = f.tick(&c, 0, 0, &mut h).poll.expect("due at once");
        assert_eq!(p.timeout_ms, 500);
        assert!(p.path.starts_with("/v1/changes"));
        assert_eq!(h.count("cname_guard.changes.polls"), 1);
        // One call at a time.
        assert_eq!(f.tick(&c, 10, 0, &mut h), Polling::default());
        let body = br#"{"seq": 7, "hosts": [], "zones": []}"#;
        let e = f.answered(&c, Some("200"), body.len(), body, 20, &mut h);
        assert!(e.is_empty());
        assert_eq!(h.count("cname_guard.changes.seq"), 7);
        assert_eq!(f.handover_seq(), Some(7));
    }

    #[test]
    fn absent_feed_logged_once() {
        let c = cfg();
        let mut h = Fake::new(0);
        let mut f = Feed::new(None);
        for now in [0, 100_000] {
            f.tick(&c, now, 0, &mut h).poll.expect("due");
            f.answered(&c, Some("404"), 0, b"", now, &mut h);
        }
        assert_eq!(h.logs.iter().filter(|(_, l)| l.contains("has no change feed (404 on /v1/changes)")).count(), 1);
    }

    #[test]
    fn lost_callbacks_and_refusals_fail() {
        let c = cfg();
        let mut h = Fake::new(0);
        let mut f = Feed::new(None);
        f.tick(&c, 0, 0, &mut h).poll.expect("due");
        assert!(f.wants_tick(&c, give_up_ms(&c) + 1));
        let t = f.tick(&c, give_up_ms(&c) + 1, 0, &mut h);
        assert!(t.gave_up);
        assert_eq!(h.count("cname_guard.changes.failed"), 1);
        assert!(h.logged("no callback for the last call, given up"));
        let p = f.tick(&c, 1_000_000, 0, &mut h).poll.expect("due after the backoff");
        assert!(!p.path.is_empty());
        f.refused(&c, 1_000_000, &mut h);
        assert_eq!(h.count("cname_guard.changes.failed"), 2);
        assert!(h.logged("change feed on cluster lookup: callout could not be dispatched"));
    }
}
