//! The filter config (one per Envoy filter config, shared by all workers)
//! and the per-stream filter: thin glue over `cname-guard-core`.

use crate::feed::{Feed, EV_FEED};
use crate::ffi::{self, CalloutResponse, ConfigHandle, Level, Stream, BODY_CONTINUE, BODY_STOP_AND_BUFFER, HEADERS_CONTINUE, HEADERS_STOP_ITERATION, TRAILERS_CONTINUE, TRAILERS_STOP};
use crate::flight::{Flights, Join, Wake, Waiter, EV_RETRY, EV_SETTLED, EV_TIMEOUT};
use crate::metrics::{self, inc, Metrics};
use cname_guard_core::accept::{self, Format};
use cname_guard_core::authority::{self, Authority};
use cname_guard_core::cache::{Entry, LocalCache};
use cname_guard_core::config::{Config, FailureMode};
use cname_guard_core::lookup::{self, LookupError};
use cname_guard_core::page::Problem;
use cname_guard_core::policy::{self, GRACE_MS};
use cname_guard_core::ray::RayGen;
use cname_guard_core::respond::{self, Reply};
use cname_guard_core::verdict::{ErrorCode, Verdict};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the deadline thread looks for paused requests past their deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(50);

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What all workers of one filter config share.
pub struct State {
    cfg: Config,
    metrics: Metrics,
    cache: RwLock<LocalCache>,
    flights: Flights,
    feed: Feed,
    stop: Mutex<bool>,
    wake_thread: Condvar,
}

pub struct FilterConfig {
    st: Arc<State>,
    deadlines: Option<JoinHandle<()>>,
}

impl FilterConfig {
    /// `None` refuses the filter config; the reason is logged with the key.
    pub fn new(c: &ConfigHandle, name: &[u8], raw: &[u8]) -> Option<FilterConfig> {
        if name != b"cname_guard" {
            ffi::log(Level::Error, &format!("cname-guard: unknown filter_name {:?} (expected \"cname_guard\")", String::from_utf8_lossy(name)));
            return None;
        }
        let cfg = match Config::parse(raw) {
            Ok(cfg) => cfg,
            Err(e) => {
                ffi::log(Level::Error, &format!("cname-guard: {e}"));
                return None;
            }
        };
        ffi::log(
            Level::Info,
            &format!(
                "cname-guard (native): configured: lookup cluster {} timeout {} ms, failure_mode {:?}, cache {} entries",
                cfg.cluster,
                cfg.timeout.as_millis(),
                cfg.failure_mode,
                cfg.cache.max_entries
            ),
        );
        let st = Arc::new(State {
            cache: RwLock::new(LocalCache::new(cfg.cache.max_entries)),
            metrics: metrics::define(c),
            feed: Feed::new(c, &cfg),
            cfg,
            flights: Flights::default(),
            stop: Mutex::new(false),
            wake_thread: Condvar::new(),
        });
        let t = st.clone();
        let deadlines = std::thread::Builder::new().name("cname-guard-deadlines".into()).spawn(move || deadline_loop(&t));
        match deadlines {
            Ok(h) => Some(FilterConfig { st, deadlines: Some(h) }),
            Err(e) => {
                ffi::log(Level::Error, &format!("cname-guard: no deadline thread: {e}"));
                None
            }
        }
    }
}

/// Paused requests past their deadline are woken to answer by the failure mode.
fn deadline_loop(st: &State) {
    let mut stop = st.stop.lock().unwrap_or_else(|p| p.into_inner());
    while !*stop {
        stop = match st.wake_thread.wait_timeout(stop, DEADLINE_TICK) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        let now = now_ms();
        st.flights.expire(now);
        st.feed.tick(now);
    }
}

impl FilterConfig {
    /// A config-level event, on the main thread.
    pub fn on_scheduled(&self, c: ConfigHandle, event: u64) {
        if event == EV_FEED {
            self.st.feed.poll(c, &self.st.cfg, &self.st.metrics, now_ms());
        }
    }

    /// A config-level callout's answer: the feed's, on the main thread.
    pub fn on_feed_done(&self, c: ConfigHandle, id: u64, resp: CalloutResponse) {
        let st = &self.st;
        st.feed.answered(c, id, resp, &st.cfg, &st.metrics, &st.cache);
    }
}

impl Drop for FilterConfig {
    fn drop(&mut self) {
        *self.st.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.st.wake_thread.notify_all();
        if let Some(h) = self.deadlines.take() {
            let _ = h.join();
        }
    }
}

thread_local! {
    static RAYS: RefCell<RayGen> = RefCell::new({
        let mut h = RandomState::new().build_hasher();
        h.write_u64(now_ms());
        RayGen::new(h.finish())
    });
}

fn ray_id(colo: &str) -> String {
    RAYS.with(|r| r.try_borrow_mut().map(|mut r| r.ray_id(colo)).unwrap_or_else(|_| format!("{:016x}-{colo}", now_ms())))
}

/// What to do with one request.
enum Act {
    Allow(String),
    FailOpen,
    Reply(Reply),
}

enum Role {
    Idle,
    Leading(u64),
    Waiting(Arc<Waiter>),
}

pub struct Filter {
    st: Arc<State>,
    id: u64,
    host: String,
    format: Format,
    request_id: Option<String>,
    started: u64,
    role: Role,
}

/// The answer when the filter itself failed (a caught panic).
pub struct Fallback(Arc<State>);

impl Fallback {
    pub fn perform(&self, s: Stream) -> u32 {
        let cfg = &self.0.cfg;
        match cfg.failure_mode {
            FailureMode::Allow => {
                s.set_request_header(&cfg.account_header, None);
                HEADERS_CONTINUE
            }
            FailureMode::Deny => {
                let r = respond::error(cfg, Problem::Unavailable, "-", &ray_id(&cfg.colo), now_ms() / 1000, Format::Html);
                s.send_response(r.status, &r.headers, &r.body, "cname_guard_internal_error");
                HEADERS_STOP_ITERATION
            }
        }
    }
}

impl Filter {
    pub fn new(fc: &FilterConfig) -> Filter {
        Filter {
            st: fc.st.clone(),
            id: fc.st.flights.next_id(),
            host: String::new(),
            format: Format::Html,
            request_id: None,
            started: 0,
            role: Role::Idle,
        }
    }

    pub fn fallback_status(&self) -> Fallback {
        Fallback(self.st.clone())
    }

    fn m(&self) -> &Metrics {
        &self.st.metrics
    }

    fn paused(&self) -> bool {
        !matches!(self.role, Role::Idle)
    }

    pub fn on_request_headers(&mut self, s: Stream) -> u32 {
        inc(s, self.m().requests);
        let raw = s.request_header(":authority").unwrap_or_default();
        let host = match authority::normalize(raw) {
            Ok(Authority::Name(host)) => host,
            Ok(Authority::IpLiteral(ip)) => {
                self.read_request(s);
                let act = Act::Reply(self.deny(s, Problem::Code(ErrorCode::DirectIp), &ip));
                return self.apply(s, act, true);
            }
            Err(e) => {
                inc(s, self.m().bad_request);
                let r = respond::bad_request(&self.st.cfg, e.reason());
                return self.apply(s, Act::Reply(r), true);
            }
        };
        let now = now_ms();
        // The hot path: a fresh allow, the account header set under the read lock.
        {
            let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(Entry { verdict: Some(Verdict::Allow(account)), fresh_until, .. }) = cache.get(&host) {
                if now < *fresh_until {
                    s.set_request_header(&self.st.cfg.account_header, Some(account));
                    inc(s, self.m().cache_hits);
                    inc(s, self.m().allowed);
                    return HEADERS_CONTINUE;
                }
            }
        }
        self.host = host;
        self.read_request(s);
        if let Some(v) = self.fresh(now) {
            inc(s, self.m().cache_hits);
            let act = self.act(s, v.as_ref());
            return self.apply(s, act, true);
        }
        inc(s, self.m().cache_misses);
        self.lookup(s, now, true)
    }

    fn read_request(&mut self, s: Stream) {
        self.format = accept::negotiate(s.request_header("accept").as_deref());
        self.request_id = s.request_header("x-request-id").and_then(policy::request_id);
    }

    /// A fresh cached verdict (`Some(None)`: a cached failure).
    fn fresh(&self, now: u64) -> Option<Option<Verdict>> {
        let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.get(&self.host).filter(|e| now < e.fresh_until).map(|e| e.verdict.clone())
    }

    /// Leads or joins the lookup for `self.host`.
    fn lookup(&mut self, s: Stream, now: u64, inline: bool) -> u32 {
        let deadline = now + self.st.cfg.timeout.as_millis() as u64 + GRACE_MS;
        let joined = self.st.flights.join(&self.host, self.id, deadline, || s.scheduler().map(|w| Box::new(w) as Box<dyn Wake>));
        match joined {
            Some(Join::Wait(w)) => {
                inc(s, self.m().lookups_coalesced);
                self.role = Role::Waiting(w);
                HEADERS_STOP_ITERATION
            }
            Some(Join::Lead) => match self.callout(s) {
                Ok(id) => {
                    inc(s, self.m().lookups_started);
                    self.started = now;
                    self.role = Role::Leading(id);
                    HEADERS_STOP_ITERATION
                }
                Err(e) => {
                    inc(s, self.m().lookups_failed);
                    ffi::log(Level::Warn, &format!("cname-guard: lookup for {} on cluster {} failed: {e}", self.host, self.st.cfg.cluster));
                    self.st.flights.settle(&self.host, self.id, None);
                    let act = self.failed(s, now);
                    self.apply(s, act, inline)
                }
            },
            None => {
                ffi::log(Level::Warn, &format!("cname-guard: could not wait for the lookup of {}", self.host));
                let act = self.failed(s, now);
                self.apply(s, act, inline)
            }
        }
    }

    fn callout(&self, s: Stream) -> Result<u64, LookupError> {
        let cfg = &self.st.cfg;
        let path = lookup::request_path(&cfg.path, &self.host);
        let mut headers = vec![(":method", "GET"), (":path", path.as_str()), ("host", cfg.authority.as_str()), ("accept", "application/json")];
        if let Some(id) = &self.request_id {
            headers.push(("x-request-id", id));
        }
        s.callout(&cfg.cluster, &headers, cfg.timeout.as_millis() as u64).map_err(|_| LookupError::Dispatch)
    }

    pub fn on_callout_done(&mut self, s: Stream, id: u64, resp: ffi::CalloutResponse) {
        if !matches!(self.role, Role::Leading(mine) if mine == id) {
            return;
        }
        self.role = Role::Idle;
        let now = now_ms();
        let result = if resp.ok {
            lookup::parse_answer(resp.status.as_deref(), resp.body_len, &resp.body, &self.host)
        } else {
            Err(LookupError::NoResponse)
        };
        let elapsed = now.saturating_sub(self.started);
        s.record(self.m().lookup_latency_ms, elapsed);
        if let Err(e) = &result {
            inc(s, self.m().lookups_failed);
            if policy::timed_out(e, elapsed, self.st.cfg.timeout.as_millis() as u64) {
                inc(s, self.m().lookups_timed_out);
            }
            ffi::log(Level::Warn, &format!("cname-guard: lookup for {} on cluster {} failed after {elapsed} ms: {e}", self.host, self.st.cfg.cluster));
        }
        let verdict = policy::verdict_of(&result);
        // A cached failure must not push out a stale entry still worth serving.
        let keep_stale = verdict.is_none() && self.stale_usable(now);
        if let Some(entry) = policy::entry_for(&self.st.cfg.cache, &result, now) {
            if !keep_stale && entry.stale_until > now {
                self.store(s, entry);
            }
        }
        self.st.flights.settle(&self.host, self.id, verdict.clone());
        let act = match &verdict {
            Some(v) => self.act(s, Some(v)),
            None => self.failed(s, now),
        };
        self.apply(s, act, false);
    }

    pub fn on_scheduled(&mut self, s: Stream, event: u64) {
        let Role::Waiting(w) = &self.role else { return };
        let w = w.clone();
        let now = now_ms();
        match event {
            EV_SETTLED => {
                self.role = Role::Idle;
                let outcome = w.outcome.lock().ok().and_then(|mut o| o.take());
                let act = match outcome.flatten() {
                    Some(v) => self.act(s, Some(&v)),
                    None => self.failed(s, now),
                };
                self.apply(s, act, false);
            }
            EV_TIMEOUT => {
                self.role = Role::Idle;
                inc(s, self.m().lookups_timed_out);
                let act = self.failed(s, now);
                self.apply(s, act, false);
            }
            EV_RETRY => {
                self.role = Role::Idle;
                if let Some(v) = self.fresh(now) {
                    let act = self.act(s, v.as_ref());
                    self.apply(s, act, false);
                } else {
                    self.lookup(s, now, false);
                }
            }
            _ => {}
        }
    }

    pub fn on_request_body(&self) -> u32 {
        // Hold the body back while the verdict is pending.
        if self.paused() {
            BODY_STOP_AND_BUFFER
        } else {
            BODY_CONTINUE
        }
    }

    pub fn on_request_trailers(&self) -> u32 {
        if self.paused() {
            TRAILERS_STOP
        } else {
            TRAILERS_CONTINUE
        }
    }

    /// What a verdict means for the request (`None`: a cached failure).
    fn act(&self, s: Stream, verdict: Option<&Verdict>) -> Act {
        match verdict {
            Some(Verdict::Allow(account)) => {
                inc(s, self.m().allowed);
                Act::Allow(account.clone())
            }
            Some(Verdict::Deny(code)) => Act::Reply(self.deny(s, Problem::Code(*code), &self.host)),
            None => self.failure(s),
        }
    }

    /// A failed lookup: a stale verdict if one may stand in, else the failure mode.
    fn failed(&self, s: Stream, now: u64) -> Act {
        let stale = {
            let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
            cache.get(&self.host).filter(|e| e.verdict.is_some() && now < e.stale_until).and_then(|e| e.verdict.clone())
        };
        match stale {
            Some(v) => {
                inc(s, self.m().cache_stale_served);
                self.act(s, Some(&v))
            }
            None => self.failure(s),
        }
    }

    fn stale_usable(&self, now: u64) -> bool {
        let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.get(&self.host).is_some_and(|e| e.verdict.is_some() && now < e.stale_until)
    }

    fn failure(&self, s: Stream) -> Act {
        match self.st.cfg.failure_mode {
            FailureMode::Allow => {
                inc(s, self.m().failure_mode_allowed);
                Act::FailOpen
            }
            FailureMode::Deny => Act::Reply(self.deny(s, Problem::Unavailable, &self.host)),
        }
    }

    fn deny(&self, s: Stream, problem: Problem, host: &str) -> Reply {
        let cfg = &self.st.cfg;
        let ray = ray_id(&cfg.colo);
        let reply = respond::error(cfg, problem, host, &ray, now_ms() / 1000, self.format);
        let (label, counter) = match problem {
            Problem::Code(code) => (code.number().to_string(), self.m().denied[code.index()]),
            Problem::Unavailable => ("lookup_unavailable".to_string(), self.m().failure_mode_denied),
        };
        inc(s, counter);
        ffi::log(
            Level::Info,
            &format!("cname-guard: deny {label} status={} host={host} ray={ray} request_id={}", reply.status, self.request_id.as_deref().unwrap_or("-")),
        );
        reply
    }

    fn store(&self, s: Stream, entry: Entry) {
        let mut cache = self.st.cache.write().unwrap_or_else(|p| p.into_inner());
        let before = cache.len();
        let known = cache.get(&self.host).is_some();
        cache.insert(&self.host, entry);
        let after = cache.len();
        if !known && after <= before {
            // The bounded map was full and emptied to make room.
            s.count(self.m().cache_evictions, before as u64);
        }
        s.gauge_set(self.m().cache_entries, after as u64);
    }

    /// Performs an act: from the headers hook (`inline`) by the returned
    /// status, else by resuming the paused stream.
    fn apply(&self, s: Stream, act: Act, inline: bool) -> u32 {
        let header = &self.st.cfg.account_header;
        match act {
            Act::Allow(account) => s.set_request_header(header, Some(&account)),
            Act::FailOpen => s.set_request_header(header, None),
            Act::Reply(r) => {
                s.send_response(r.status, &r.headers, &r.body, "cname_guard");
                return HEADERS_STOP_ITERATION;
            }
        }
        if !inline {
            s.continue_decoding();
        }
        HEADERS_CONTINUE
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        match &self.role {
            Role::Waiting(_) => self.st.flights.leave(&self.host, self.id),
            // Our callout dies with the stream: the waiters look again.
            Role::Leading(_) => self.st.flights.abandon(&self.host, self.id),
            Role::Idle => {}
        }
    }
}
