//! The change feed (lookup contract v1.1, optional): the request we send,
//! how we read the answer, what it evicts, and the poller's schedule.
//! Pure: the front ends do the calls, the shared table and the queues.

use crate::authority::{self, Authority};
use crate::json::{self, Value};
use std::collections::HashSet;
use std::fmt;

/// Names in one answer, at most (the contract pages above this).
pub const MAX_NAMES: usize = 1000;
/// An answer of 1000 names of 253 characters, quoted, fits well within this.
pub const MAX_BODY: usize = 512 * 1024;

/// A feed answer that can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `hosts`: the answer's `hosts`, then its `certificates` (hostnames
    /// whose certificate was issued, renewed or withdrawn: their answer's
    /// `https` changed, so they are evicted alike).
    Changes { seq: u64, hosts: Vec<String>, zones: Vec<String> },
    /// `since` is too old or unknown: drop everything, continue from `seq`.
    Reset { seq: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// Timeout, reset, no upstream: no response headers.
    NoResponse,
    Dispatch,
    /// 404: the lookup service has no feed; the filter runs on TTLs alone.
    Absent,
    Status(u16),
    TooLarge,
    Malformed(String),
}

impl FeedError {
    /// An answer that arrived but cannot be read: changes may have been
    /// missed, so the poller resynchronises.
    pub fn lost_changes(&self) -> bool {
        matches!(self, FeedError::TooLarge | FeedError::Malformed(_))
    }
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::NoResponse => f.write_str("no response (timeout, reset or no healthy upstream)"),
            FeedError::Dispatch => f.write_str("callout could not be dispatched"),
            FeedError::Absent => f.write_str("404: the lookup service has no change feed"),
            FeedError::Status(s) => write!(f, "unexpected status {s}"),
            FeedError::TooLarge => write!(f, "body over {MAX_BODY} bytes"),
            FeedError::Malformed(e) => write!(f, "malformed body: {e}"),
        }
    }
}

/// `path?since=N&wait=S`, or just `path` for the current sequence.
pub fn request_path(path: &str, since: Option<u64>, wait_seconds: u32) -> String {
    match since {
        None => path.to_string(),
        Some(n) if wait_seconds == 0 => format!("{path}?since={n}"),
        Some(n) => format!("{path}?since={n}&wait={wait_seconds}"),
    }
}

fn malformed(m: impl Into<String>) -> FeedError {
    FeedError::Malformed(m.into())
}

/// Reads a feed answer with the strictness of a lookup answer: one bad
/// name refuses the whole answer (nothing is half applied).
pub fn parse_answer(status: Option<&str>, body_len: usize, body: &[u8]) -> Result<Answer, FeedError> {
    let status = status.ok_or(FeedError::NoResponse)?;
    let code: u16 = status.parse().map_err(|_| malformed(format!("status {status:?}")))?;
    match code {
        200 => {}
        404 => return Err(FeedError::Absent),
        other => return Err(FeedError::Status(other)),
    }
    if body_len > MAX_BODY || body.len() > MAX_BODY {
        return Err(FeedError::TooLarge);
    }
    let doc = json::parse(body).map_err(|e| malformed(e.to_string()))?;
    if !matches!(doc, Value::Object(_)) {
        return Err(malformed(format!("expected an object, found {}", doc.kind())));
    }
    let seq = doc.get("seq").and_then(Value::as_u64).ok_or_else(|| malformed("`seq` must be a non-negative integer"))?;
    match doc.get("reset") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            if ["hosts", "zones", "certificates"].iter().any(|k| doc.get(k).is_some()) {
                return Err(malformed("a reset names no hosts, zones or certificates"));
            }
            return Ok(Answer::Reset { seq });
        }
        Some(_) => return Err(malformed("`reset` must be a boolean")),
    }
    let mut hosts = names(&doc, "hosts")?;
    let zones = names(&doc, "zones")?;
    // Optional (absent when empty); the service's 1000 names per answer count them too.
    let certificates = if doc.get("certificates").is_some() { names(&doc, "certificates")? } else { Vec::new() };
    if hosts.len() + zones.len() + certificates.len() > MAX_NAMES {
        return Err(malformed(format!("more than {MAX_NAMES} names")));
    }
    hosts.extend(certificates);
    Ok(Answer::Changes { seq, hosts, zones })
}

fn names(doc: &Value, field: &str) -> Result<Vec<String>, FeedError> {
    let Some(Value::Array(items)) = doc.get(field) else {
        return Err(malformed(format!("`{field}` must be an array")));
    };
    if items.len() > MAX_NAMES {
        return Err(malformed(format!("more than {MAX_NAMES} names")));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) if canonical(s) => Ok(s.clone()),
            _ => Err(malformed(format!("`{field}` holds something other than a canonical host name"))),
        })
        .collect()
}

/// A name as the filter keys its cache: what `authority::normalize` makes
/// of it is itself (lower case, no port, no trailing dot, not an IP).
pub fn canonical(name: &str) -> bool {
    matches!(authority::normalize(name.as_bytes().to_vec()), Ok(Authority::Name(n)) if n == name)
}

/// What one applied answer evicts from the caches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eviction {
    pub all: bool,
    pub hosts: HashSet<String>,
    pub zones: HashSet<String>,
}

impl Eviction {
    pub fn everything() -> Eviction {
        Eviction { all: true, ..Eviction::default() }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.hosts.is_empty() && self.zones.is_empty()
    }

    /// Whether a cached `host` goes: named, or at or under a named zone.
    pub fn matches(&self, host: &str) -> bool {
        if self.all || self.hosts.contains(host) {
            return true;
        }
        if self.zones.is_empty() {
            return false;
        }
        let mut rest = host;
        loop {
            if self.zones.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return false,
            }
        }
    }

    /// Whether only the named hosts' slots need looking at (no scan).
    pub fn hosts_only(&self) -> bool {
        !self.all && self.zones.is_empty()
    }

    /// The queue message telling a worker what to drop: `R`, or one
    /// `h<name>` / `z<name>` per line.
    pub fn encode(&self) -> Vec<u8> {
        if self.all {
            return b"R".to_vec();
        }
        let mut out = Vec::new();
        for (tag, set) in [(b'h', &self.hosts), (b'z', &self.zones)] {
            for n in set {
                out.push(tag);
                out.extend_from_slice(n.as_bytes());
                out.push(b'\n');
            }
        }
        out
    }

    /// A message from `encode`; anything else is refused whole.
    pub fn decode(bytes: &[u8]) -> Option<Eviction> {
        if bytes == b"R" {
            return Some(Eviction::everything());
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let mut e = Eviction::default();
        for line in text.split_terminator('\n') {
            let (tag, name) = line.split_at_checked(1)?;
            if !canonical(name) {
                return None;
            }
            match tag {
                "h" => e.hosts.insert(name.to_string()),
                "z" => e.zones.insert(name.to_string()),
                _ => return None,
            };
        }
        Some(e)
    }
}

/// The feed's timing and what a takeover needs: `changes.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval_ms: u64,
    pub max_backoff_ms: u64,
}

/// What the poller does with an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    pub evict: Eviction,
    pub failed: bool,
    pub reset: bool,
}

/// The poller of one Envoy: where it is in the feed and when it asks next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poller {
    /// The last sequence applied; `None` until the service told us one.
    pub seq: Option<u64>,
    /// Changes may have been missed: ask without `since`, then reset.
    resync: bool,
    failures: u32,
    next_due: u64,
    /// When the call in flight was sent, and with which `since`.
    in_flight: Option<(u64, Option<u64>)>,
}

impl Poller {
    /// A poller continuing from `seq` (from the lease), due at once.
    pub fn new(seq: Option<u64>) -> Poller {
        Poller { seq, resync: false, failures: 0, next_due: 0, in_flight: None }
    }

    pub fn due(&self, now: u64) -> bool {
        self.in_flight.is_none() && now >= self.next_due
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The `since` of the next call (`None`: ask for the current seq).
    pub fn since(&self) -> Option<u64> {
        if self.resync {
            None
        } else {
            self.seq
        }
    }

    /// The seq a takeover may continue from: none while resynchronising
    /// (the lease then keeps the last one written).
    pub fn handover_seq(&self) -> Option<u64> {
        self.since()
    }

    pub fn sent(&mut self, now: u64) {
        self.in_flight = Some((now, self.since()));
    }

    /// A call out longer than `limit` (its host never answered) counts as
    /// no response, so that one lost callback cannot stop the feed.
    pub fn give_up(&mut self, now: u64, limit: u64, s: Schedule) -> bool {
        if !self.overdue(now, limit) {
            return false;
        }
        self.answered(Err(FeedError::NoResponse), now, s);
        true
    }

    pub fn overdue(&self, now: u64, limit: u64) -> bool {
        self.in_flight.is_some_and(|(started, _)| now > started + limit)
    }

    /// Applies the result of the call in flight.
    pub fn answered(&mut self, result: Result<Answer, FeedError>, now: u64, s: Schedule) -> Step {
        let (started, since) = self.in_flight.take().unwrap_or((now, self.since()));
        let mut step = Step::default();
        let ok = match result {
            Ok(Answer::Reset { seq }) => {
                step.reset = true;
                self.seq = Some(seq);
                true
            }
            Ok(Answer::Changes { seq, hosts, zones }) => match since {
                None => {
                    // A resync (or the first call): we only learn where we are.
                    step.reset = self.resync;
                    self.seq = Some(seq);
                    true
                }
                Some(n) if seq < n => {
                    // Backwards: the service lost its history; trust nothing.
                    step.failed = true;
                    step.reset = true;
                    self.seq = Some(seq);
                    true
                }
                Some(n) if seq == n && !(hosts.is_empty() && zones.is_empty()) => {
                    step.failed = true;
                    self.resync = true;
                    false
                }
                Some(_) => {
                    let paged = hosts.len() + zones.len() >= MAX_NAMES;
                    step.evict.hosts = hosts.into_iter().collect();
                    step.evict.zones = zones.into_iter().collect();
                    self.seq = Some(seq);
                    self.failures = 0;
                    self.resync = false;
                    // More is waiting: ask again at once.
                    self.next_due = if paged { now } else { now.max(started + s.interval_ms) };
                    return step;
                }
            },
            Err(FeedError::Absent) => {
                // No feed: TTLs alone; ask again rarely, in case it appears.
                self.next_due = now + s.max_backoff_ms;
                return step;
            }
            Err(e) => {
                step.failed = true;
                if e.lost_changes() {
                    self.resync = true;
                }
                false
            }
        };
        if ok {
            if step.reset {
                step.evict = Eviction::everything();
            }
            self.resync = false;
            if !step.failed {
                self.failures = 0;
                self.next_due = now.max(started + s.interval_ms);
                return step;
            }
        }
        self.failures = self.failures.saturating_add(1);
        self.next_due = now + backoff(s, self.failures);
        step
    }
}

/// Interval × 2^failures, capped.
pub fn backoff(s: Schedule, failures: u32) -> u64 {
    let factor = 1u64 << failures.min(20);
    s.interval_ms.saturating_mul(factor).min(s.max_backoff_ms).max(s.interval_ms.min(s.max_backoff_ms))
}

/// The poller's lease in shared data: who polls, until when, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub holder: u32,
    pub until: u64,
    pub seq: Option<u64>,
}

const LEASE_VERSION: u8 = 1;

impl Lease {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22);
        out.push(LEASE_VERSION);
        out.extend_from_slice(&self.holder.to_le_bytes());
        out.extend_from_slice(&self.until.to_le_bytes());
        out.push(u8::from(self.seq.is_some()));
        out.extend_from_slice(&self.seq.unwrap_or(0).to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Lease> {
        if b.len() != 22 || b[0] != LEASE_VERSION || b[13] > 1 {
            return None;
        }
        let holder = u32::from_le_bytes(b[1..5].try_into().ok()?);
        let until = u64::from_le_bytes(b[5..13].try_into().ok()?);
        let seq = u64::from_le_bytes(b[14..22].try_into().ok()?);
        Some(Lease { holder, until, seq: (b[13] == 1).then_some(seq) })
    }

    /// The lease `me` should write now, if it holds it or may take it over:
    /// ours, or nobody's, or not renewed in time.
    pub fn claim(current: Option<Lease>, me: u32, now: u64, lease_ms: u64, seq: Option<u64>) -> Option<Lease> {
        match current {
            Some(l) if l.holder != me && now < l.until => None,
            Some(l) if l.holder != me => Some(Lease { holder: me, until: now + lease_ms, seq: l.seq }),
            // A holder that does not know a seq (just restarted, resyncing) keeps the lease's.
            Some(l) => Some(Lease { holder: me, until: now + lease_ms, seq: seq.or(l.seq) }),
            None => Some(Lease { holder: me, until: now + lease_ms, seq: None }),
        }
    }
}

/// The workers' queues, each with when it last said it was alive: the
/// poller tells every queue seen within `ALIVE_MS`.
pub const ALIVE_MS: u64 = 10_000;
const MAX_WORKERS: usize = 1024;

pub fn decode_workers(b: &[u8]) -> Vec<(u32, u64)> {
    b.chunks_exact(12)
        .filter_map(|c| Some((u32::from_le_bytes(c[..4].try_into().ok()?), u64::from_le_bytes(c[4..].try_into().ok()?))))
        .take(MAX_WORKERS)
        .collect()
}

pub fn encode_workers(w: &[(u32, u64)]) -> Vec<u8> {
    w.iter().flat_map(|(q, t)| q.to_le_bytes().into_iter().chain(t.to_le_bytes())).collect()
}

/// The registry with `me` marked alive at `now` and the silent dropped.
pub fn register(current: &[(u32, u64)], me: u32, now: u64) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64)> =
        current.iter().copied().filter(|&(q, t)| q != me && t + ALIVE_MS > now).take(MAX_WORKERS - 1).collect();
    out.push((me, now));
    out
}

/// The queues alive at `now`.
pub fn alive(workers: &[(u32, u64)], now: u64) -> Vec<u32> {
    workers.iter().filter(|&&(_, t)| t + ALIVE_MS > now).map(|&(q, _)| q).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schedule = Schedule { interval_ms: 1000, max_backoff_ms: 30_000 };

    fn parse(body: &str) -> Result<Answer, FeedError> {
        parse_answer(Some("200"), body.len(), body.as_bytes())
    }

    #[test]
    fn reads_changes_and_resets() {
        assert_eq!(
            parse(r#"{"seq": 7, "hosts": ["a.example"], "zones": ["brand.example"]}"#),
            Ok(Answer::Changes { seq: 7, hosts: vec!["a.example".into()], zones: vec!["brand.example".into()] })
        );
        assert_eq!(parse(r#"{"seq": 9, "reset": true}"#), Ok(Answer::Reset { seq: 9 }));
        assert_eq!(parse(r#"{"seq": 0, "hosts": [], "zones": [], "reset": false}"#).map(|_| ()), Ok(()));
        // Keys the filter does not know are ignored.
        assert_eq!(
            parse(r#"{"seq": 8, "hosts": [], "zones": [], "later": ["a.example", 7]}"#),
            Ok(Answer::Changes { seq: 8, hosts: vec![], zones: vec![] })
        );
    }

    #[test]
    fn certificates_are_evicted_like_hosts() {
        // A certificate issued or withdrawn changes the host's `https`.
        assert_eq!(
            parse(r#"{"seq": 8, "hosts": ["a.example"], "zones": [], "certificates": ["b.example", "a.example"]}"#),
            Ok(Answer::Changes {
                seq: 8,
                hosts: vec!["a.example".into(), "b.example".into(), "a.example".into()],
                zones: vec![]
            })
        );
        assert_eq!(
            parse(r#"{"seq": 9, "hosts": [], "zones": [], "certificates": []}"#),
            Ok(Answer::Changes { seq: 9, hosts: vec![], zones: vec![] })
        );
        // Read as strictly as `hosts`: one bad name refuses the answer.
        for body in [
            r#"{"seq": 8, "hosts": [], "zones": [], "certificates": ["a.example", 7]}"#,
            r#"{"seq": 8, "hosts": [], "zones": [], "certificates": ["A.example"]}"#,
            r#"{"seq": 8, "hosts": [], "zones": [], "certificates": "a.example"}"#,
            r#"{"seq": 8, "hosts": [], "zones": [], "certificates": null}"#,
            r#"{"seq": 8, "reset": true, "certificates": ["a.example"]}"#,
        ] {
            assert!(matches!(parse(body), Err(FeedError::Malformed(_))), "{body}");
        }
        // They count towards the 1000 names of an answer.
        let hosts: Vec<String> = (0..600).map(|i| format!("\"h{i}.example\"")).collect();
        let certs: Vec<String> = (0..401).map(|i| format!("\"c{i}.example\"")).collect();
        let body = |certs: &[String]| {
            let (hosts, certs) = (hosts.join(","), certs.join(","));
            format!(r#"{{"seq": 5, "hosts": [{hosts}], "zones": [], "certificates": [{certs}]}}"#)
        };
        assert!(matches!(parse(&body(&certs)), Err(FeedError::Malformed(_))));
        let body = body(&certs[1..]);
        let Ok(Answer::Changes { hosts, .. }) = parse(&body) else { panic!("1000 names") };
        assert_eq!(hosts.len(), MAX_NAMES);
        // A page of 1000 names, certificates among them, is followed at once.
        let mut p = Poller::new(Some(1));
        p.sent(0);
        p.answered(parse(&body), 10, S);
        assert!(p.due(10));
    }

    #[test]
    fn statuses() {
        assert_eq!(parse_answer(Some("404"), 0, b""), Err(FeedError::Absent));
        assert_eq!(parse_answer(Some("500"), 0, b""), Err(FeedError::Status(500)));
        assert_eq!(parse_answer(None, 0, b""), Err(FeedError::NoResponse));
        assert!(matches!(parse_answer(Some("2x"), 0, b""), Err(FeedError::Malformed(_))));
    }

    #[test]
    fn refuses_garbage_whole() {
        for body in [
            "", "[]", "{}", "nope", r#"{"seq": -1, "hosts": [], "zones": []}"#, r#"{"seq": 1.5, "hosts": [], "zones": []}"#,
            r#"{"seq": 1, "hosts": []}"#, r#"{"seq": 1, "hosts": "a", "zones": []}"#,
            r#"{"seq": 1, "hosts": ["ok.example", "Upper.example"], "zones": []}"#,
            r#"{"seq": 1, "hosts": ["a.example."], "zones": []}"#, r#"{"seq": 1, "hosts": ["a.example:80"], "zones": []}"#,
            r#"{"seq": 1, "hosts": ["10.0.0.1"], "zones": []}"#, r#"{"seq": 1, "hosts": [""], "zones": []}"#,
            r#"{"seq": 1, "hosts": [7], "zones": []}"#, r#"{"seq": 1, "hosts": [], "zones": ["a..b"]}"#,
            r#"{"seq": 1, "reset": "yes"}"#, r#"{"seq": 1, "reset": true, "hosts": ["a.example"]}"#,
            r#"{"seq": "1", "hosts": [], "zones": []}"#,
        ] {
            assert!(matches!(parse(body), Err(FeedError::Malformed(_))), "{body}");
        }
    }

    #[test]
    fn too_many_names_or_bytes() {
        let hosts: Vec<String> = (0..=MAX_NAMES).map(|i| format!("\"h{i}.example\"")).collect();
        let body = format!(r#"{{"seq": 5, "hosts": [{}], "zones": []}}"#, hosts.join(","));
        assert!(matches!(parse(&body), Err(FeedError::Malformed(_))));
        let half: Vec<String> = (0..600).map(|i| format!("\"h{i}.example\"")).collect();
        let body = format!(r#"{{"seq": 5, "hosts": [{}], "zones": [{}]}}"#, half.join(","), half.join(","));
        assert!(matches!(parse(&body), Err(FeedError::Malformed(_))));
        assert_eq!(parse_answer(Some("200"), MAX_BODY + 1, b"{}"), Err(FeedError::TooLarge));
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("/v1/changes", None, 10), "/v1/changes");
        assert_eq!(request_path("/v1/changes", Some(3), 0), "/v1/changes?since=3");
        assert_eq!(request_path("/v1/changes", Some(3), 10), "/v1/changes?since=3&wait=10");
    }

    #[test]
    fn zones_match_at_and_under() {
        let mut e = Eviction::default();
        e.zones.insert("brand.example".into());
        e.hosts.insert("one.example".into());
        assert!(e.matches("brand.example") && e.matches("a.b.brand.example") && e.matches("one.example"));
        assert!(!e.matches("xbrand.example") && !e.matches("example") && !e.matches("sub.one.example"));
        assert!(Eviction::everything().matches("anything.example"));
        assert!(Eviction::default().is_empty());
    }

    #[test]
    fn eviction_messages_round_trip() {
        let mut e = Eviction::default();
        e.zones.insert("brand.example".into());
        e.hosts.insert("one.example".into());
        assert_eq!(Eviction::decode(&e.encode()), Some(e));
        assert_eq!(Eviction::decode(b"R"), Some(Eviction::everything()));
        assert_eq!(Eviction::decode(b"hBad\n"), None);
        assert_eq!(Eviction::decode(b"xa.example\n"), None);
        assert_eq!(Eviction::decode(b""), Some(Eviction::default()));
    }

    fn ask(p: &mut Poller, now: u64, r: Result<Answer, FeedError>) -> Step {
        assert!(p.due(now), "not due at {now}: {p:?}");
        p.sent(now);
        p.answered(r, now + 10, S)
    }

    fn changes(seq: u64, hosts: &[&str]) -> Result<Answer, FeedError> {
        Ok(Answer::Changes { seq, hosts: hosts.iter().map(|h| h.to_string()).collect(), zones: vec![] })
    }

    #[test]
    fn poller_follows_the_feed() {
        let mut p = Poller::new(None);
        assert_eq!(p.since(), None);
        let s = ask(&mut p, 0, changes(4, &[]));
        assert!(s.evict.is_empty() && !s.reset && !s.failed);
        assert_eq!(p.since(), Some(4));
        assert!(!p.due(500) && p.due(1000));
        let s = ask(&mut p, 1000, changes(6, &["a.example"]));
        assert!(s.evict.matches("a.example") && !s.evict.matches("b.example"));
        let s = ask(&mut p, 2000, Ok(Answer::Reset { seq: 9 }));
        assert!(s.reset && s.evict.all && !s.failed);
        assert_eq!(p.since(), Some(9));
    }

    #[test]
    fn failures_back_off_and_garbage_resyncs() {
        let mut p = Poller::new(Some(4));
        let s = ask(&mut p, 0, Err(FeedError::Status(500)));
        assert!(s.failed && s.evict.is_empty());
        assert_eq!(p.since(), Some(4));
        assert!(!p.due(1500) && p.due(2010));
        let s = ask(&mut p, 2010, Err(FeedError::Malformed("x".into())));
        assert!(s.failed && s.evict.is_empty());
        assert_eq!(p.since(), None, "garbage: changes may be lost");
        assert!(!p.due(5000) && p.due(6020));
        let s = ask(&mut p, 6020, changes(8, &[]));
        assert!(s.reset && s.evict.all && !s.failed, "the resync resets once: {s:?}");
        assert_eq!(p.since(), Some(8));
        assert!(p.due(7020), "healthy again: back to the interval");
        for i in 0..30 {
            p.sent(0);
            p.answered(Err(FeedError::NoResponse), 0, S);
            assert!(backoff(S, i) <= S.max_backoff_ms);
        }
        assert!(!p.due(29_999) && p.due(30_000));
    }

    #[test]
    fn backwards_seq_resets_and_counts() {
        let mut p = Poller::new(Some(10));
        let s = ask(&mut p, 0, changes(3, &["a.example"]));
        assert!(s.failed && s.reset && s.evict.all);
        assert_eq!(p.since(), Some(3));
        let s = ask(&mut p, 10_000, changes(3, &["a.example"]));
        assert!(s.failed && !s.reset && s.evict.is_empty(), "names without a new seq: refused");
    }

    #[test]
    fn a_lost_call_is_given_up() {
        let mut p = Poller::new(Some(1));
        p.sent(0);
        assert!(!p.give_up(1000, 1500, S) && !p.due(1000));
        assert!(p.give_up(1501, 1500, S));
        assert!(!p.in_flight() && p.due(1501 + 2000));
    }

    #[test]
    fn absent_feed_is_asked_rarely() {
        let mut p = Poller::new(None);
        let s = ask(&mut p, 0, Err(FeedError::Absent));
        assert_eq!(s, Step::default());
        assert!(!p.due(29_000) && p.due(30_010));
    }

    #[test]
    fn paging_asks_again_at_once() {
        let mut p = Poller::new(Some(1));
        let names: Vec<String> = (0..MAX_NAMES).map(|i| format!("h{i}.example")).collect();
        p.sent(0);
        p.answered(Ok(Answer::Changes { seq: 2, hosts: names, zones: vec![] }), 10, S);
        assert!(p.due(10));
    }

    #[test]
    fn lease_claims() {
        let l = Lease { holder: 3, until: 5000, seq: Some(12) };
        assert_eq!(Lease::decode(&l.encode()), Some(l));
        assert_eq!(Lease::decode(b"junk"), None);
        assert_eq!(Lease::claim(Some(l), 4, 4999, 3000, None), None);
        assert_eq!(Lease::claim(Some(l), 4, 5000, 3000, None), Some(Lease { holder: 4, until: 8000, seq: Some(12) }));
        assert_eq!(Lease::claim(Some(l), 3, 4000, 3000, Some(13)), Some(Lease { holder: 3, until: 7000, seq: Some(13) }));
        assert_eq!(Lease::claim(Some(l), 3, 4000, 3000, None), Some(Lease { holder: 3, until: 7000, seq: Some(12) }));
        assert_eq!(Lease::claim(None, 4, 1, 3000, Some(1)), Some(Lease { holder: 4, until: 3001, seq: None }));
    }

    #[test]
    fn registry_keeps_the_living() {
        let w = register(&[], 1, 0);
        let w = register(&w, 2, 5_000);
        assert_eq!(alive(&w, 9_000), vec![1, 2]);
        let w = register(&decode_workers(&encode_workers(&w)), 2, 12_000);
        assert_eq!(w, vec![(2, 12_000)]);
        assert_eq!(alive(&w, 30_000), Vec::<u32>::new());
        assert_eq!(decode_workers(&[1, 2, 3]), vec![]);
    }
}
