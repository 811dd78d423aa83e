//! What a request comes to once its verdict (or its lookup's failure) is
//! known, and what a lookup's answer means: one set of rules, counters and
//! log lines for both builds.

use crate::accept::Format;
use crate::cache::Entry;
use crate::config::{Config, FailureMode};
use crate::host::{Host, Level};
use crate::lookup::{self, LookupError};
use crate::page::Problem;
use crate::policy;
use crate::respond::{self, Reply};
use crate::verdict::Verdict;

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Continue with this account in the account header.
    Allow(String),
    /// `failure_mode: allow`: continue without the account header.
    FailOpen,
    /// Answer with this page (and stop the request).
    Reply(Reply),
}

/// The request as the pages and the log name it.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub host: &'a str,
    pub format: Format,
    pub request_id: Option<&'a str>,
}

/// What a verdict means for a request (`None`: a cached failure).
/// `location` is read only for an allow that says `https` with
/// `tls.redirect_http` on: where a plain HTTP request is redirected.
pub fn act(
    cfg: &Config,
    verdict: Option<&Verdict>,
    r: Asker<'_>,
    location: impl FnOnce() -> Option<String>,
    h: &mut impl Host,
) -> Act {
    match verdict {
        Some(Verdict::Allow { account, https }) => {
            if *https && cfg.redirect_http {
                if let Some(location) = location() {
                    return Act::Reply(redirect(cfg, &location, h));
                }
            }
            h.add(h.ids().allowed, 1);
            Act::Allow(account.clone())
        }
        Some(Verdict::Deny(code)) => Act::Reply(deny(cfg, Problem::Code(*code), r, h)),
        None => failure(cfg, r, h),
    }
}

/// The answer to a request whose lookup failed, per `failure_mode`.
pub fn failure(cfg: &Config, r: Asker<'_>, h: &mut impl Host) -> Act {
    match cfg.failure_mode {
        FailureMode::Allow => {
            h.add(h.ids().failure_mode_allowed, 1);
            Act::FailOpen
        }
        FailureMode::Deny => Act::Reply(deny(cfg, Problem::Unavailable, r, h)),
    }
}

/// A failed lookup: the stale verdict if one may stand in, else the failure mode.
pub fn failed(
    cfg: &Config,
    stale: Option<&Verdict>,
    r: Asker<'_>,
    location: impl FnOnce() -> Option<String>,
    h: &mut impl Host,
) -> Act {
    if stale.is_some() {
        h.add(h.ids().cache_stale_served, 1);
    }
    act(cfg, stale, r, location, h)
}

/// The 308 to `location`, counted.
pub fn redirect(cfg: &Config, location: &str, h: &mut impl Host) -> Reply {
    h.add(h.ids().redirected_https, 1);
    let ray = h.ray_id(&cfg.colo);
    respond::redirect(cfg, location, &ray)
}

/// An error page, counted and logged.
pub fn deny(cfg: &Config, problem: Problem, r: Asker<'_>, h: &mut impl Host) -> Reply {
    let ray = h.ray_id(&cfg.colo);
    let reply = respond::error(cfg, problem, r.host, &ray, h.now_ms() / 1000, r.format);
    let (label, counter) = match problem {
        Problem::Code(code) => (code.number().to_string(), h.ids().denied[code.index()]),
        Problem::Unavailable => ("lookup_unavailable".to_string(), h.ids().failure_mode_denied),
        Problem::Misdirected => ("421".to_string(), h.ids().misdirected),
    };
    h.add(counter, 1);
    h.log(
        Level::Info,
        format_args!(
            "cname-guard: deny {label} status={} host={} ray={ray} request_id={}",
            reply.status,
            r.host,
            r.request_id.unwrap_or("-")
        ),
    );
    reply
}

/// A malformed authority: 400, counted.
pub fn bad_request(cfg: &Config, reason: &str, h: &mut impl Host) -> Reply {
    h.add(h.ids().bad_request, 1);
    respond::bad_request(cfg, reason)
}

/// A lookup's callout was sent.
pub fn lookup_started(h: &mut impl Host) {
    h.add(h.ids().lookups_started, 1);
}

/// A lookup refused by `lookup.max_in_flight` (`inflight`): counted, not
/// logged (a flood would fill the log). Its requests get the answer of a
/// failed lookup (`failed`: a stale verdict, else the failure mode).
pub fn lookup_shed(h: &mut impl Host) {
    h.add(h.ids().lookups_shed, 1);
}

/// A lookup's callout could not be sent.
pub fn lookup_not_started(cfg: &Config, host: &str, e: &LookupError, h: &mut impl Host) {
    h.add(h.ids().lookups_failed, 1);
    h.log(Level::Warn, format_args!("cname-guard: lookup for {host} on cluster {} failed: {e}", cfg.cluster));
}

/// What a lookup's answer comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// For the requests that waited on it; `None`: the lookup failed.
    pub verdict: Option<Verdict>,
    /// What to cache, if anything (see `to_store`).
    pub entry: Option<Entry>,
}

impl Answered {
    /// The entry to store, given whether the cache holds a stale verdict
    /// still worth serving: a cached failure must not push that out.
    pub fn to_store(&self, stale_usable: bool, now: u64) -> Option<&Entry> {
        if self.verdict.is_none() && stale_usable {
            return None;
        }
        self.entry.as_ref().filter(|e| e.stale_until > now)
    }
}

/// Reads the answer to the lookup of `host` started at `started`
/// (`status`: `None` when the callout got no response); counts and logs it.
#[allow(clippy::too_many_arguments)]
pub fn lookup_answered(
    cfg: &Config,
    host: &str,
    status: Option<&str>,
    body_len: usize,
    body: &[u8],
    started: u64,
    now: u64,
    h: &mut impl Host,
) -> Answered {
    let result = lookup::parse_answer(status, body_len, body, host);
    let elapsed = now.saturating_sub(started);
    h.record(h.ids().lookup_latency_ms, elapsed);
    if let Err(e) = &result {
        h.add(h.ids().lookups_failed, 1);
        if policy::timed_out(e, elapsed, cfg.timeout.as_millis() as u64) {
            h.add(h.ids().lookups_timed_out, 1);
        }
        h.log(
            Level::Warn,
            format_args!("cname-guard: lookup for {host} on cluster {} failed after {elapsed} ms: {e}", cfg.cluster),
        );
    }
    Answered { verdict: policy::verdict_of(&result), entry: policy::entry_for(&cfg.cache, &result, now) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::Fake;
    use crate::verdict::ErrorCode;

    fn cfg(extra: &str) -> Config {
        let raw = format!(r#"{{"lookup": {{"cluster": "lookup", "authority": "lookup.internal"}}{extra}}}"#);
        Config::parse(raw.as_bytes()).expect("config")
    }

    fn asker() -> Asker<'static> {
        Asker { host: "h.example", format: Format::Html, request_id: Some("rid-1") }
    }

    #[test]
    fn allow_deny_and_failure() {
        let c = cfg("");
        let mut h = Fake::new(5_000);
        let allow = Verdict::Allow { account: "acct".into(), https: false };
        assert_eq!(act(&c, Some(&allow), asker(), || None, &mut h), Act::Allow("acct".into()));
        assert_eq!(h.count("cname_guard.allowed"), 1);
        let Act::Reply(r) = act(&c, Some(&Verdict::Deny(ErrorCode::CnameCrossUser)), asker(), || None, &mut h) else {
            panic!("deny")
        };
        assert_eq!(r.status, c.status(ErrorCode::CnameCrossUser));
        assert_eq!(h.count("cname_guard.denied_1014"), 1);
        assert!(h.logged("deny 1014 status=") && h.logged("host=h.example") && h.logged("request_id=rid-1"));
        // failure_mode defaults to deny.
        let Act::Reply(r) = act(&c, None, asker(), || None, &mut h) else { panic!("failure") };
        assert_eq!(r.status, c.status_on_error);
        assert_eq!(h.count("cname_guard.failure_mode_denied"), 1);
        assert!(h.logged("deny lookup_unavailable"));
        let c = cfg(r#", "failure_mode": "allow""#);
        assert_eq!(failure(&c, asker(), &mut h), Act::FailOpen);
        assert_eq!(h.count("cname_guard.failure_mode_allowed"), 1);
    }

    #[test]
    fn https_redirects_only_with_a_location() {
        let c = cfg(r#", "tls": {"redirect_http": true}"#);
        let mut h = Fake::new(0);
        let allow = Verdict::Allow { account: "acct".into(), https: true };
        let Act::Reply(r) = act(&c, Some(&allow), asker(), || Some("https://h.example/".into()), &mut h) else {
            panic!("redirect")
        };
        assert_eq!(r.status, respond::REDIRECT_STATUS);
        assert_eq!(h.count("cname_guard.redirected_https"), 1);
        assert_eq!(act(&c, Some(&allow), asker(), || None, &mut h), Act::Allow("acct".into()));
        // Off: the location is not even read.
        let c = cfg("");
        assert_eq!(act(&c, Some(&allow), asker(), || panic!("read"), &mut h), Act::Allow("acct".into()));
    }

    #[test]
    fn stale_stands_in_for_a_failed_lookup() {
        let c = cfg("");
        let mut h = Fake::new(0);
        let allow = Verdict::Allow { account: "old".into(), https: false };
        assert_eq!(failed(&c, Some(&allow), asker(), || None, &mut h), Act::Allow("old".into()));
        assert_eq!(h.count("cname_guard.cache.stale_served"), 1);
        assert!(matches!(failed(&c, None, asker(), || None, &mut h), Act::Reply(_)));
    }

    #[test]
    fn a_shed_lookup_is_a_failure_without_a_lookup() {
        let c = cfg("");
        let mut h = Fake::new(0);
        let slots = crate::inflight::Counter::default();
        assert!(slots.take(1));
        assert!(!slots.take(1));
        lookup_shed(&mut h);
        let Act::Reply(r) = failed(&c, None, asker(), || None, &mut h) else { panic!("failure mode") };
        assert_eq!(r.status, c.status_on_error);
        assert_eq!((h.count("cname_guard.lookup.shed"), h.count("cname_guard.failure_mode_denied")), (1, 1));
        assert_eq!((h.count("cname_guard.lookup.failed"), h.count("cname_guard.lookup.started")), (0, 0));
        assert!(h.logs.iter().all(|(_, l)| !l.contains("lookup for")), "a shed lookup is not logged as failed");
    }

    #[test]
    fn answers_counted_and_logged() {
        let c = cfg("");
        let mut h = Fake::new(0);
        let body = br#"{"host":"h.example","account":"a","cname_target":null,"target_account":null,"custom_hostname":null,"origin_resolves":true}"#;
        let a = lookup_answered(&c, "h.example", Some("200"), body.len(), body, 1_000, 1_020, &mut h);
        assert_eq!(a.verdict, Some(Verdict::Allow { account: "a".into(), https: false }));
        assert!(a.to_store(true, 1_020).is_some());
        assert_eq!(h.count("cname_guard.lookup.latency_ms"), 20);
        assert_eq!(h.count("cname_guard.lookup.failed"), 0);
        // Envoy's own 504 after the timeout: a failure and a timeout.
        let a = lookup_answered(&c, "h.example", Some("504"), 0, b"", 1_000, 2_000, &mut h);
        assert_eq!(a.verdict, None);
        assert_eq!((h.count("cname_guard.lookup.failed"), h.count("cname_guard.lookup.timeouts")), (1, 1));
        assert!(h.logged("lookup for h.example on cluster lookup failed after 1000 ms"));
        // No response, early: failed, not timed out.
        let a = lookup_answered(&c, "h.example", None, 0, b"", 1_000, 1_001, &mut h);
        assert_eq!((h.count("cname_guard.lookup.failed"), h.count("cname_guard.lookup.timeouts")), (2, 1));
        // A cached failure (failure_ttl_seconds) never pushes out a stale verdict.
        let failed = Answered { verdict: None, entry: Some(Entry { verdict: None, fresh_until: 10, stale_until: 10 }) };
        assert!(failed.to_store(true, 0).is_none());
        assert!(failed.to_store(false, 0).is_some());
        assert!(failed.to_store(false, 10).is_none());
        assert_eq!(a.to_store(false, 0), None);
        lookup_not_started(&c, "h.example", &LookupError::Dispatch, &mut h);
        assert!(h.logged("lookup for h.example on cluster lookup failed: "));
    }
}
