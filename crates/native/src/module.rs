//! The filter config (one per Envoy filter config, shared by all workers)
//! and the per-stream filter: thin glue over `cname-guard-core`.

use crate::feed::{Feed, EV_FEED};
use crate::ffi::{
    self, CalloutResponse, ConfigHandle, Level, OnStream, Stream, BODY_CONTINUE, BODY_STOP_AND_BUFFER,
    HEADERS_CONTINUE, HEADERS_STOP_ITERATION, TRAILERS_CONTINUE, TRAILERS_STOP,
};
use crate::flight::{Flights, Join, Waiter, Wake, EV_RETRY, EV_SETTLED, EV_TIMEOUT};
use crate::host::Native;
use crate::metrics::{self, inc, Metrics};
use cname_guard_core::accept::Format;
use cname_guard_core::cache::{Entry, Inserted, LocalCache};
use cname_guard_core::clock;
use cname_guard_core::config::{Config, FailureMode};
use cname_guard_core::incoming;
use cname_guard_core::inflight::Counter;
use cname_guard_core::lookup::{self, LookupError};
use cname_guard_core::page::Problem;
use cname_guard_core::policy::GRACE_MS;
use cname_guard_core::ray::{self, RayGen};
use cname_guard_core::request::{self, Act, Asker};
use cname_guard_core::respond::{self, Reply};
use cname_guard_core::verdict::Verdict;
use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the deadline thread looks for paused requests past their deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(50);

pub fn now_ms() -> u64 {
    clock::unix_ms(SystemTime::now())
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
            ffi::log(
                Level::Error,
                &format!(
                    "cname-guard: unknown filter_name {:?} (expected \"cname_guard\")",
                    String::from_utf8_lossy(name)
                ),
            );
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
        let deadlines =
            std::thread::Builder::new().name("cname-guard-deadlines".into()).spawn(move || deadline_loop(&t));
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
        st.feed.tick(&st.cfg, now);
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
    static RAYS: RefCell<RayGen> = RefCell::new(RayGen::new(ray::seed(now_ms())));
}

pub fn ray_id(colo: &str) -> String {
    RAYS.with(|r| {
        r.try_borrow_mut().map(|mut r| r.ray_id(colo)).unwrap_or_else(|_| format!("{:016x}-{colo}", now_ms()))
    })
}

enum Role {
    Idle,
    /// Our callout's id, and its slot of `lookup.max_in_flight` (held for
    /// its `Drop`).
    Leading(u64, #[allow(dead_code)] Slot),
    Waiting(Arc<Waiter>),
}

/// Lookups out now in this Envoy, every worker's and every filter
/// config's (the HTTP and HTTPS listeners each have one): the count
/// `lookup.max_in_flight` bounds.
static IN_FLIGHT: Counter = Counter::new();

/// A slot of `lookup.max_in_flight`, given back when the lookup ends in
/// whatever way (answer, failed dispatch, stream gone).
struct Slot;

impl Slot {
    fn take(cfg: &Config) -> Option<Slot> {
        IN_FLIGHT.take(cfg.max_in_flight).then_some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.release();
    }
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
                let r =
                    respond::error(cfg, Problem::Unavailable, "-", &ray_id(&cfg.colo), now_ms() / 1000, Format::Html);
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

    /// Core's host, counting against this stream.
    fn h(&self, s: Stream) -> Native<'_, OnStream> {
        Native { h: s, m: &self.st.metrics }
    }

    fn asker(&self) -> Asker<'_> {
        Asker { host: &self.host, format: self.format, request_id: self.request_id.as_deref() }
    }

    fn paused(&self) -> bool {
        !matches!(self.role, Role::Idle)
    }

    pub fn on_request_headers(&mut self, s: Stream) -> u32 {
        inc(s, self.m().requests);
        // Checked before the cache: 400, 421 or 1003 answer here.
        let raw = incoming::authority(&s);
        let sni = incoming::sni(&self.st.cfg, &s);
        let host = match incoming::admit(&self.st.cfg, raw, sni.as_deref(), &s, &mut self.h(s)) {
            Ok(host) => host,
            Err(r) => return self.apply(s, Act::Reply(r), true),
        };
        let now = now_ms();
        // The hot path: a fresh allow, the account header set under the read
        // lock. `get` counts the use (relaxed atomics: a load and a store
        // in the entry, the sketch every 16th hit, a load once saturated);
        // the later looks in this request `peek`. A host whose answer says
        // `https`, with `tls.redirect_http` on, reads how the request came
        // first: plain HTTP is redirected.
        let redirect = {
            let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
            match cache.get(&host) {
                Some(Entry { verdict: Some(Verdict::Allow { account, https }), fresh_until, .. })
                    if now < *fresh_until =>
                {
                    match (*https && self.st.cfg.redirect_http).then(|| incoming::https_location(&s, &host)).flatten() {
                        Some(location) => Some(location),
                        None => {
                            s.set_request_header(&self.st.cfg.account_header, Some(account));
                            inc(s, self.m().cache_hits);
                            inc(s, self.m().allowed);
                            return HEADERS_CONTINUE;
                        }
                    }
                }
                _ => None,
            }
        };
        if let Some(location) = redirect {
            inc(s, self.m().cache_hits);
            let act = Act::Reply(self.redirect(s, &location));
            return self.apply(s, act, true);
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
        self.format = incoming::format(&s);
        self.request_id = incoming::request_id(&s);
    }

    /// A fresh cached verdict (`Some(None)`: a cached failure).
    fn fresh(&self, now: u64) -> Option<Option<Verdict>> {
        let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.peek(&self.host).filter(|e| now < e.fresh_until).map(|e| e.verdict.clone())
    }

    /// Leads or joins the lookup for `self.host`.
    fn lookup(&mut self, s: Stream, now: u64, inline: bool) -> u32 {
        let deadline = now + self.st.cfg.timeout.as_millis() as u64 + GRACE_MS;
        let joined =
            self.st.flights.join(&self.host, self.id, deadline, || s.scheduler().map(|w| Box::new(w) as Box<dyn Wake>));
        match joined {
            Some(Join::Wait(w)) => {
                inc(s, self.m().lookups_coalesced);
                self.role = Role::Waiting(w);
                HEADERS_STOP_ITERATION
            }
            Some(Join::Lead) => {
                let Some(slot) = Slot::take(&self.st.cfg) else {
                    // Over `lookup.max_in_flight`: the answer of a failed lookup, at once.
                    request::lookup_shed(&mut self.h(s));
                    self.st.flights.settle(&self.host, self.id, None);
                    let act = self.failed(s, now);
                    return self.apply(s, act, inline);
                };
                self.lead(s, now, inline, slot)
            }
            None => {
                ffi::log(Level::Warn, &format!("cname-guard: could not wait for the lookup of {}", self.host));
                let act = self.failed(s, now);
                self.apply(s, act, inline)
            }
        }
    }

    /// Makes the lookup for `self.host`, holding `slot` until it ends.
    fn lead(&mut self, s: Stream, now: u64, inline: bool, slot: Slot) -> u32 {
        match self.callout(s) {
            Ok(id) => {
                request::lookup_started(&mut self.h(s));
                self.started = now;
                self.role = Role::Leading(id, slot);
                HEADERS_STOP_ITERATION
            }
            Err(e) => {
                request::lookup_not_started(&self.st.cfg, &self.host, &e, &mut self.h(s));
                self.st.flights.settle(&self.host, self.id, None);
                let act = self.failed(s, now);
                self.apply(s, act, inline)
            }
        }
    }

    fn callout(&self, s: Stream) -> Result<u64, LookupError> {
        let cfg = &self.st.cfg;
        let path = lookup::request_path(&cfg.path, &self.host);
        let headers = lookup::request_headers(&cfg.authority, &path, self.request_id.as_deref());
        s.callout(&cfg.cluster, &headers, cfg.timeout.as_millis() as u64).map_err(|_| LookupError::Dispatch)
    }

    pub fn on_callout_done(&mut self, s: Stream, id: u64, resp: ffi::CalloutResponse) {
        if !matches!(self.role, Role::Leading(mine, _) if mine == id) {
            return;
        }
        // Drops the slot: the lookup is over.
        self.role = Role::Idle;
        let now = now_ms();
        let status = if resp.ok { resp.status.as_deref() } else { None };
        let answered = request::lookup_answered(
            &self.st.cfg,
            &self.host,
            status,
            resp.body_len,
            &resp.body,
            self.started,
            now,
            &mut self.h(s),
        );
        if let Some(entry) = answered.to_store(answered.verdict.is_none() && self.stale(now).is_some(), now) {
            self.store(s, entry.clone(), now);
        }
        let verdict = answered.verdict;
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
        request::act(&self.st.cfg, verdict, self.asker(), || incoming::https_location(&s, &self.host), &mut self.h(s))
    }

    /// A failed lookup: a stale verdict if one may stand in, else the failure mode.
    fn failed(&self, s: Stream, now: u64) -> Act {
        let stale = self.stale(now);
        request::failed(
            &self.st.cfg,
            stale.as_ref(),
            self.asker(),
            || incoming::https_location(&s, &self.host),
            &mut self.h(s),
        )
    }

    /// The cached verdict that may stand in for a failed lookup.
    fn stale(&self, now: u64) -> Option<Verdict> {
        let cache = self.st.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.peek(&self.host).filter(|e| e.verdict.is_some() && now < e.stale_until).and_then(|e| e.verdict.clone())
    }

    fn redirect(&self, s: Stream, location: &str) -> Reply {
        request::redirect(&self.st.cfg, location, &mut self.h(s))
    }

    /// Offers the entry to the bounded map; when it is full, the admission
    /// rule may keep the residents instead (the next request looks up again).
    fn store(&self, s: Stream, entry: Entry, now: u64) {
        let mut cache = self.st.cache.write().unwrap_or_else(|p| p.into_inner());
        if let Inserted::Replaced { live: true } = cache.insert(&self.host, entry, now) {
            s.count(self.m().cache_evictions, 1);
        }
        s.gauge_set(self.m().cache_entries, cache.len() as u64);
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
            Role::Leading(..) => self.st.flights.abandon(&self.host, self.id),
            Role::Idle => {}
        }
    }
}
