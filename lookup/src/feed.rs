//! The change feed (lookup contract v1.1): `GET /v1/changes?since=N&wait=S`
//! answers the hosts and zones changed after N, waiting up to S seconds
//! for a change when there is none yet.
//!
//! Waiters hold no database connection: they wait on the store's head
//! (`Store::subscribe_changes`), which this process's writes move at once
//! and a poller of the counter row moves for other replicas' writes.

use crate::store::{Changes, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub const PATH: &str = "/v1/changes";
/// The longest long poll; a larger `wait` is clamped.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    /// How often the counter row is read, for other replicas' writes.
    pub poll: Duration,
    /// How often old changes are pruned.
    pub prune_every: Duration,
    /// Sequence numbers kept; a `since` older than that gets a reset.
    pub retain: u64,
    /// Long polls waiting at once; beyond it, a request is answered at once.
    pub max_waiters: usize,
}

impl Default for FeedConfig {
    fn default() -> FeedConfig {
        FeedConfig {
            poll: Duration::from_millis(100),
            prune_every: Duration::from_secs(60),
            retain: 100_000,
            max_waiters: 1024,
        }
    }
}

/// A request's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// None: the client asks where the feed stands.
    pub since: Option<u64>,
    pub wait: Duration,
}

/// `since` and `wait` from a query string; other keys are ignored.
pub fn parse_query(query: Option<&str>) -> Result<Query, &'static str> {
    let mut since = None;
    let mut wait = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let (slot, name) = match &*key {
            "since" => (&mut since, "since"),
            "wait" => (&mut wait, "wait"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(if name == "since" { "more than one since parameter" } else { "more than one wait parameter" });
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(if name == "since" {
                "since must be an unsigned decimal integer"
            } else {
                "wait must be an unsigned decimal integer (seconds)"
            });
        }
        *slot = Some(value.into_owned());
    }
    let since = match since {
        Some(s) => Some(s.parse::<u64>().map_err(|_| "since is out of range")?),
        None => None,
    };
    // Digits only, so the one failure is overflow: clamped like any large wait.
    let wait = wait.map(|w| w.parse::<u64>().unwrap_or(u64::MAX)).unwrap_or(0);
    Ok(Query { since, wait: Duration::from_secs(wait).min(MAX_WAIT) })
}

/// The feed of one replica; the poller stops when it is dropped.
pub struct Feed {
    store: Store,
    waiters: Semaphore,
    max_waiters: usize,
    closing: watch::Sender<bool>,
    poller: JoinHandle<()>,
}

impl Feed {
    /// Starts the poller (inside a Tokio runtime).
    pub fn start(store: Store, config: FeedConfig) -> Arc<Feed> {
        let poller = tokio::spawn(poll(store.clone(), config.clone()));
        Arc::new(Feed {
            store,
            waiters: Semaphore::new(config.max_waiters),
            max_waiters: config.max_waiters,
            closing: watch::Sender::new(false),
            poller,
        })
    }

    pub async fn changes(&self, query: Query) -> Result<Changes, StoreError> {
        let Some(since) = query.since else {
            let head = self.store.feed_head().await?;
            return Ok(Changes::Page { seq: head.seq, hosts: Vec::new(), zones: Vec::new(), certs: Vec::new() });
        };
        let first = self.store.changes_since(since).await?;
        if !first.is_empty() || query.wait.is_zero() || *self.closing.borrow() {
            return Ok(first);
        }
        // Beyond the bound the answer is the current state, at once: the
        // client asks again after its interval.
        let Ok(_permit) = self.waiters.try_acquire() else {
            return Ok(first);
        };
        let _waiting = crate::metrics::Waiting::start();
        let mut head = self.store.subscribe_changes();
        let mut closing = self.closing.subscribe();
        tokio::select! {
            _ = tokio::time::timeout(query.wait, head.wait_for(|&seq| seq > since)) => {}
            _ = closing.wait_for(|&c| c) => {}
        }
        self.store.changes_since(since).await
    }

    /// Long polls waiting now.
    pub fn waiting(&self) -> usize {
        self.max_waiters - self.waiters.available_permits()
    }

    /// Shutting down: every long poll answers now, and new ones do not wait.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Reads the counter row every `poll`, prunes every `prune_every`. A
/// failure is logged once, and its end once.
async fn poll(store: Store, config: FeedConfig) {
    let mut ticks = tokio::time::interval(config.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        ticks.tick().await;
        let mut result = store.refresh_head().await.map(crate::metrics::feed_head);
        if result.is_ok() && pruned.elapsed() >= config.prune_every {
            pruned = tokio::time::Instant::now();
            result = store.prune_changes(config.retain).await.map(drop);
        }
        match result {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "change feed: cannot read the store");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("change feed: store readable again");
            }
            _ => {}
        }
    }
}

/// The JSON of an answer, in the feed-wire format.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Wire<'a> {
    Page {
        seq: u64,
        hosts: &'a [String],
        zones: &'a [String],
        /// Absent when empty: the answers of v1.1 stay byte for byte.
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        certificates: &'a [String],
    },
    Reset {
        seq: u64,
        reset: bool,
    },
}

impl<'a> From<&'a Changes> for Wire<'a> {
    fn from(c: &'a Changes) -> Wire<'a> {
        match c {
            Changes::Page { seq, hosts, zones, certs } => Wire::Page { seq: *seq, hosts, zones, certificates: certs },
            Changes::Reset { seq } => Wire::Reset { seq: *seq, reset: true },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = |s| parse_query(Some(s));
        assert_eq!(parse_query(None), Ok(Query { since: None, wait: Duration::ZERO }));
        assert_eq!(q("since=0"), Ok(Query { since: Some(0), wait: Duration::ZERO }));
        assert_eq!(q("since=42&wait=5"), Ok(Query { since: Some(42), wait: Duration::from_secs(5) }));
        assert_eq!(q("wait=31&since=1&x=y"), Ok(Query { since: Some(1), wait: MAX_WAIT }));
        assert_eq!(q("since=1&wait=99999999999999999999999").map(|q| q.wait), Ok(MAX_WAIT));
        assert_eq!(q("since=18446744073709551615").map(|q| q.since), Ok(Some(u64::MAX)));
        for bad in [
            "since=",
            "since=-1",
            "since=+1",
            "since=1.5",
            "since=0x10",
            "since=%201",
            "since=1&since=2",
            "since=18446744073709551616",
            "since=1&wait=",
            "since=1&wait=-1",
            "since=1&wait=1s",
            "since=1&wait=1&wait=2",
        ] {
            assert!(q(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire() {
        let page = Changes::Page { seq: 7, hosts: vec!["a.example".into()], zones: vec![], certs: vec![] };
        assert_eq!(serde_json::to_string(&Wire::from(&page)).unwrap(), r#"{"seq":7,"hosts":["a.example"],"zones":[]}"#);
        let reset = Changes::Reset { seq: 9 };
        assert_eq!(serde_json::to_string(&Wire::from(&reset)).unwrap(), r#"{"seq":9,"reset":true}"#);
    }
}
