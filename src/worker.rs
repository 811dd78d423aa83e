//! Per-worker state and the root context: the cache in front of shared
//! data, the paused requests, and the lookups (always made by the root
//! context, so a lookup outlives the request that started it).

use crate::cache::{Entry, LocalCache, Lookup, Slots};
use crate::changes::{self, Eviction};
use crate::coalesce::Step;
use crate::config::{Config, FailureMode};
use crate::feed::{self, Feed};
use crate::filter::Filter;
use crate::lookup::{self, Answer, LookupError};
use crate::metrics::{self, Metrics};
use crate::page::Problem;
use crate::policy;
use crate::ray::RayGen;
use crate::accept::{self, Format};
use crate::respond::{self, Reply};
use crate::shared;
use crate::verdict::{self, Verdict};
use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// Tick while requests wait (deadlines), and otherwise (deferred counters).
const TICK_WAITING: Duration = Duration::from_millis(100);
const TICK_IDLE: Duration = Duration::from_secs(1);
pub use crate::policy::GRACE_MS;

/// Queue messages: a local request for a lookup, or another worker's leader
/// telling us its lookup for a host is done (`W`) or failed (`F`).
const MSG_LOOKUP: u8 = b'L';
const MSG_DONE: u8 = b'W';
const MSG_FAILED: u8 = b'F';
/// The feed's poller telling every worker what to drop from its map.
const MSG_EVICT: u8 = b'E';

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    Allow(String),
    /// `failure_mode: allow`: continue without the account header.
    FailOpen,
    Reply(Reply),
}

/// A request paused until its host's lookup ends.
pub struct Waiter {
    pub ctx: u32,
    pub format: Format,
    pub request_id: Option<String>,
    pub deadline: u64,
}

struct Call {
    host: String,
    started: u64,
    locked: bool,
    /// The feed named the host while this call was out: its answer may
    /// predate the change, so it answers the waiters but is not cached.
    superseded: bool,
}

pub struct Worker {
    pub cfg: Rc<Config>,
    pub metrics: Metrics,
    slots: Slots,
    local: LocalCache,
    queue: Option<u32>,
    waiting: HashMap<String, Vec<Waiter>>,
    ctx_host: HashMap<u32, String>,
    calls: HashMap<u32, Call>,
    /// Hosts another worker is looking up for us, with the lock's deadline.
    remote: HashMap<String, u64>,
    rng: RayGen,
    tick: Duration,
    feed: Feed,
    /// Counters of the cached path, added to the metrics on the next slow
    /// path or tick (at most a second late): three host calls saved on
    /// nearly every request.
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    requests: i64,
    hits: i64,
    allowed: i64,
}

pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

impl Worker {
    fn new(cfg: Config) -> Worker {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u64(now_ms());
        let seed = seed.finish();
        let queue = match hostcalls::register_shared_queue(&format!("cname_guard.wake.{seed:016x}")) {
            Ok(q) => Some(q),
            Err(e) => {
                warn!("cname-guard: no shared queue ({e:?}); lookups are made from the request");
                None
            }
        };
        Worker {
            slots: Slots::new(cfg.cache.max_entries),
            local: LocalCache::new(cfg.cache.max_entries),
            cfg: Rc::new(cfg),
            metrics: Metrics::define(),
            queue,
            waiting: HashMap::new(),
            ctx_host: HashMap::new(),
            calls: HashMap::new(),
            remote: HashMap::new(),
            rng: RayGen::new(seed),
            tick: TICK_IDLE,
            feed: Feed::new(),
            tally: Tally::default(),
        }
    }

    /// Counts a request; the hot path's only bookkeeping.
    pub fn count_request(&mut self) {
        self.tally.requests += 1;
    }

    /// The account of a fresh allow for `host` in the worker's own map:
    /// the cached path, with no host call and no allocation.
    pub fn local_allow(&mut self, host: &str, now: u64) -> Option<&str> {
        match self.local.get(host) {
            Some(Entry { verdict: Some(Verdict::Allow(account)), fresh_until, .. }) if now < *fresh_until => {
                self.tally.hits += 1;
                self.tally.allowed += 1;
                Some(account)
            }
            _ => None,
        }
    }

    /// Adds the deferred counters to the metrics.
    pub fn flush(&mut self) {
        let t = std::mem::take(&mut self.tally);
        for (id, n) in [(self.metrics.requests, t.requests), (self.metrics.cache_hits, t.hits), (self.metrics.allowed, t.allowed)] {
            if n > 0 {
                metrics::add(id, n);
            }
        }
    }

    /// The cached entry for `host`: the worker's map, then shared data.
    pub fn cached(&mut self, host: &str, now: u64) -> Lookup {
        if let Some(e) = self.local.get(host) {
            if now < e.fresh_until {
                return Lookup::Fresh(e.clone());
            }
        }
        match shared::read(self.slots, host) {
            Some(e) => {
                let found = e.clone().classify(now);
                if let Lookup::Fresh(_) = found {
                    self.local.insert(host, e);
                }
                found
            }
            None => Lookup::Absent,
        }
    }

    /// What a cached verdict means for a request.
    pub fn act(&mut self, verdict: Option<&Verdict>, host: &str, format: Format, request_id: Option<&str>) -> Act {
        match verdict {
            Some(Verdict::Allow(account)) => {
                metrics::inc(self.metrics.allowed);
                Act::Allow(account.clone())
            }
            Some(Verdict::Deny(code)) => Act::Reply(self.deny(Problem::Code(*code), host, format, request_id)),
            None => self.failure(host, format, request_id),
        }
    }

    /// The answer to a request whose lookup failed, per `failure_mode`.
    pub fn failure(&mut self, host: &str, format: Format, request_id: Option<&str>) -> Act {
        match self.cfg.failure_mode {
            FailureMode::Allow => {
                metrics::inc(self.metrics.failure_mode_allowed);
                Act::FailOpen
            }
            FailureMode::Deny => Act::Reply(self.deny(Problem::Unavailable, host, format, request_id)),
        }
    }

    pub fn deny(&mut self, problem: Problem, host: &str, format: Format, request_id: Option<&str>) -> Reply {
        let ray = self.rng.ray_id(&self.cfg.colo);
        let reply = respond::error(&self.cfg, problem, host, &ray, now_ms() / 1000, format);
        let (label, counter) = match problem {
            Problem::Code(code) => (code.number().to_string(), self.metrics.denied[code.index()]),
            Problem::Unavailable => ("lookup_unavailable".to_string(), self.metrics.failure_mode_denied),
        };
        metrics::inc(counter);
        info!(
            "cname-guard: deny {label} status={} host={host} ray={ray} request_id={}",
            reply.status,
            request_id.unwrap_or("-")
        );
        reply
    }

    /// Pauses a request until `host` is looked up. Returns false when the
    /// lookup could not even be requested.
    pub fn wait(&mut self, host: &str, waiter: Waiter) -> bool {
        self.ctx_host.insert(waiter.ctx, host.to_string());
        if let Some(list) = self.waiting.get_mut(host) {
            list.push(waiter);
            metrics::inc(self.metrics.lookups_coalesced);
            return true;
        }
        let ctx = waiter.ctx;
        self.waiting.insert(host.to_string(), vec![waiter]);
        // Hand the lookup to the root context through our own queue.
        let queued = self.queue.is_some_and(|q| {
            let mut msg = Vec::with_capacity(host.len() + 1);
            msg.push(MSG_LOOKUP);
            msg.extend_from_slice(host.as_bytes());
            hostcalls::enqueue_shared_queue(q, Some(&msg)).is_ok()
        });
        if !queued {
            self.waiting.remove(host);
            self.ctx_host.remove(&ctx);
            warn!("cname-guard: could not queue the lookup for {host}");
        }
        self.update_tick();
        queued
    }

    pub fn is_waiting(&self, ctx: u32) -> bool {
        self.ctx_host.contains_key(&ctx)
    }

    /// A request that ended while paused.
    pub fn forget(&mut self, ctx: u32) {
        if let Some(host) = self.ctx_host.remove(&ctx) {
            if let Some(list) = self.waiting.get_mut(&host) {
                list.retain(|w| w.ctx != ctx);
            }
        }
    }

    fn take_waiters(&mut self, host: &str) -> Vec<Waiter> {
        let list = self.waiting.remove(host).unwrap_or_default();
        for w in &list {
            self.ctx_host.remove(&w.ctx);
        }
        self.remote.remove(host);
        list
    }

    /// Answers every request paused on `host`: the verdict, or on failure a
    /// stale entry if allowed, else the failure mode.
    fn settle(&mut self, host: &str, verdict: Option<Option<Verdict>>, now: u64) -> Vec<(u32, Act)> {
        let waiters = self.take_waiters(host);
        let verdict = verdict.or_else(|| self.stale(host, now));
        let acts = waiters
            .iter()
            .map(|w| {
                let act = match &verdict {
                    Some(v) => self.act(v.as_ref(), host, w.format, w.request_id.as_deref()),
                    None => self.failure(host, w.format, w.request_id.as_deref()),
                };
                (w.ctx, act)
            })
            .collect();
        self.update_tick();
        acts
    }

    /// The verdict of an expired entry still within `stale_if_error_seconds`.
    fn stale(&mut self, host: &str, now: u64) -> Option<Option<Verdict>> {
        let entry = self.local.get(host).cloned().or_else(|| shared::read(self.slots, host))?;
        match entry.classify(now) {
            Lookup::Stale(e) | Lookup::Fresh(e) if e.verdict.is_some() => {
                metrics::inc(self.metrics.cache_stale_served);
                Some(e.verdict)
            }
            _ => None,
        }
    }

    fn store(&mut self, host: &str, entry: Entry, now: u64) {
        if entry.stale_until <= now {
            return;
        }
        let written = shared::write(self.slots, host, &entry, now);
        if written.filled_empty {
            metrics::inc(self.metrics.cache_entries);
        }
        if written.evicted {
            metrics::inc(self.metrics.cache_evictions);
        }
        self.local.insert(host, entry);
    }

    /// The entry to cache for a lookup result.
    fn entry_for(&self, result: &Result<Answer, LookupError>, now: u64) -> Option<Entry> {
        policy::entry_for(&self.cfg.cache, result, now)
    }

    fn update_tick(&mut self) {
        let mut tick = if self.waiting.is_empty() { TICK_IDLE } else { TICK_WAITING };
        if self.feed.holding() {
            tick = tick.min(feed::poll_tick(&self.cfg));
        }
        if tick != self.tick {
            let _ = hostcalls::set_tick_period(tick);
            self.tick = tick;
        }
    }

    /// The feed's part of a tick (every worker: registry and lease).
    fn feed_tick(&mut self, now: u64) {
        let Some(me) = self.queue.filter(|_| self.cfg.changes.enabled()) else { return };
        self.feed.tick(&self.cfg, me, now, &self.metrics);
        self.update_tick();
    }

    /// Applies what the feed named: the shared table now, every worker's
    /// map (ours included) through the queues.
    fn apply_eviction(&mut self, e: &Eviction, now: u64) {
        if e.is_empty() {
            return;
        }
        let gone = shared::evict(self.slots, e) as i64;
        metrics::add(self.metrics.changes_applied, gone);
        metrics::add(self.metrics.cache_entries, -gone);
        // The eviction's time rides along: a worker drops only the calls
        // started before it, not a refill that began after the table was cleared.
        let mut msg = vec![MSG_EVICT];
        msg.extend_from_slice(&now.to_le_bytes());
        msg.extend_from_slice(&e.encode());
        let mut queues = shared::workers(now);
        if let Some(me) = self.queue.filter(|q| !queues.contains(q)) {
            queues.push(me);
        }
        for q in queues {
            let _ = hostcalls::enqueue_shared_queue(q, Some(&msg));
        }
    }

    /// A worker's share of an eviction: its own map, its calls in flight.
    fn evict_local(&mut self, e: &Eviction, at: u64) {
        self.local.evict(e);
        for call in self.calls.values_mut() {
            if call.started <= at && e.matches(&call.host) {
                call.superseded = true;
            }
        }
    }

    fn lock_for_ms(&self) -> u64 {
        self.cfg.timeout.as_millis() as u64 + GRACE_MS
    }
}

/// Performs an act for a paused request from a root callback.
fn resume(ctx: u32, act: &Act, account_header: &str) {
    if hostcalls::set_effective_context(ctx).is_err() {
        return; // the request is gone
    }
    match act {
        Act::Allow(account) => {
            let _ = stamp(account_header, account);
            let _ = hostcalls::resume_http_request();
        }
        Act::FailOpen => {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, account_header);
            let _ = hostcalls::resume_http_request();
        }
        Act::Reply(reply) => send(reply),
    }
}

/// Lets the request through, stamped with the serving account (replacing
/// any value the client sent).
pub fn stamp(account_header: &str, account: &str) -> Action {
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, account_header, Some(account.as_bytes()));
    Action::Continue
}

pub fn send(reply: &Reply) {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let _ = hostcalls::send_http_response(u32::from(reply.status), headers, Some(reply.body.as_bytes()));
}

/// The root context of one worker VM.
#[derive(Default)]
pub struct Root {
    worker: Option<Rc<RefCell<Worker>>>,
}

impl Root {
    fn with<T>(&self, f: impl FnOnce(&mut Worker) -> T) -> Option<T> {
        let w = self.worker.as_ref()?;
        let mut w = w.try_borrow_mut().ok()?;
        Some(f(&mut w))
    }

    fn apply(&self, acts: Vec<(u32, Act)>) {
        let Some(header) = self.with(|w| w.cfg.account_header.clone()) else { return };
        for (ctx, act) in &acts {
            resume(*ctx, act, &header);
        }
    }

    /// Starts (or joins) the lookup for a host paused on this worker.
    fn request(&self, host: &str) {
        let now = now_ms();
        let acts = self.with(|w| {
            if let Lookup::Fresh(e) = w.cached(host, now) {
                return w.settle(host, Some(e.verdict), now);
            }
            let step = match w.queue {
                Some(q) => shared::take_lock(w.slots, host, q, now, w.lock_for_ms()),
                None => Step::Alone,
            };
            if let Step::Wait(lock) = &step {
                metrics::inc(w.metrics.lookups_coalesced);
                w.remote.insert(host.to_string(), lock.deadline);
                return Vec::new();
            }
            let locked = matches!(step, Step::Lead(_));
            let request_id = w.waiting.get(host).and_then(|l| l.first()).and_then(|wt| wt.request_id.clone());
            match dispatch(&w.cfg, host, request_id.as_deref()) {
                Ok(token) => {
                    metrics::inc(w.metrics.lookups_started);
                    w.calls.insert(token, Call { host: host.to_string(), started: now, locked, superseded: false });
                    Vec::new()
                }
                Err(e) => {
                    metrics::inc(w.metrics.lookups_failed);
                    warn!("cname-guard: lookup for {host} on cluster {} failed: {e}", w.cfg.cluster);
                    if locked {
                        wake(shared::release_lock(w.slots, host), MSG_FAILED, host);
                    }
                    w.settle(host, None, now)
                }
            }
        });
        self.apply(acts.unwrap_or_default());
    }

    fn on_message(&self, msg: &[u8]) {
        let Some((&kind, host)) = msg.split_first() else { return };
        if kind == MSG_EVICT {
            let Some((at, rest)) = host.split_first_chunk::<8>() else { return };
            if let Some(e) = Eviction::decode(rest) {
                self.with(|w| w.evict_local(&e, u64::from_le_bytes(*at)));
            }
            return;
        }
        let Ok(host) = std::str::from_utf8(host) else { return };
        match kind {
            MSG_LOOKUP => self.request(host),
            MSG_DONE | MSG_FAILED => {
                let now = now_ms();
                let waits = self.with(|w| w.waiting.contains_key(host)).unwrap_or(false);
                if !waits {
                    return;
                }
                if kind == MSG_DONE {
                    // The leader stored the answer; if it is gone already, ask ourselves.
                    self.request(host);
                } else {
                    let acts = self.with(|w| w.settle(host, None, now));
                    self.apply(acts.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
}

fn dispatch(cfg: &Config, host: &str, request_id: Option<&str>) -> Result<u32, LookupError> {
    let path = lookup::request_path(&cfg.path, host);
    let mut headers = vec![
        (":method", "GET"),
        (":path", path.as_str()),
        (":authority", cfg.authority.as_str()),
        (":scheme", "http"),
        ("accept", "application/json"),
    ];
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    hostcalls::dispatch_http_call(&cfg.cluster, headers, None, vec![], cfg.timeout).map_err(|_| LookupError::Dispatch)
}

fn wake(queues: Vec<u32>, kind: u8, host: &str) {
    if queues.is_empty() {
        return;
    }
    let mut msg = Vec::with_capacity(host.len() + 1);
    msg.push(kind);
    msg.extend_from_slice(host.as_bytes());
    for q in queues {
        let _ = hostcalls::enqueue_shared_queue(q, Some(&msg));
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let now = now_ms();
        let fed = self.with(|w| {
            if !w.feed.is_call(token) {
                return false;
            }
            let status = response_status(num_headers);
            let body = if body_size == 0 || body_size > changes::MAX_BODY {
                None
            } else {
                hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten()
            };
            let Some(me) = w.queue else { return true };
            let cfg = w.cfg.clone();
            let e = w.feed.answered(&cfg, me, status.as_deref(), body_size, body.as_deref().unwrap_or(&[]), &w.metrics);
            w.apply_eviction(&e, now);
            // A full page: the next one is due at once, not on the next tick.
            w.feed_tick(now);
            true
        });
        if fed == Some(true) {
            return;
        }
        let acts = self.with(|w| {
            let call = w.calls.remove(&token)?;
            let host = call.host;
            let status = response_status(num_headers);
            let status = status.as_deref();
            let body = if body_size == 0 || body_size > lookup::MAX_BODY {
                None
            } else {
                hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten()
            };
            let result = lookup::parse_answer(status, body_size, body.as_deref().unwrap_or(&[]), &host);
            let elapsed = now.saturating_sub(call.started);
            metrics::record(w.metrics.lookup_latency_ms, elapsed);
            let entry = w.entry_for(&result, now);
            let verdict = match &result {
                Ok(answer) => Some(Some(verdict::decide(answer))),
                Err(e) => {
                    metrics::inc(w.metrics.lookups_failed);
                    // Envoy answers a callout timeout with its own 504.
                    let timed_out = matches!(e, LookupError::NoResponse | LookupError::Status(504));
                    if timed_out && elapsed >= w.cfg.timeout.as_millis() as u64 {
                        metrics::inc(w.metrics.lookups_timed_out);
                    }
                    warn!("cname-guard: lookup for {host} on cluster {} failed after {elapsed} ms: {e}", w.cfg.cluster);
                    None
                }
            };
            // A cached failure must not push out a stale entry still worth serving.
            let keep_stale = verdict.is_none() && matches!(w.stale_peek(&host, now), Some(true));
            if let Some(entry) = entry {
                if !keep_stale && !call.superseded {
                    w.store(&host, entry, now);
                }
            }
            if call.locked {
                let kind = if verdict.is_some() { MSG_DONE } else { MSG_FAILED };
                wake(shared::release_lock(w.slots, &host), kind, &host);
            }
            Some(w.settle(&host, verdict, now))
        });
        self.apply(acts.flatten().unwrap_or_default());
    }
}

/// The `:status` of a callout's answer; `None` when there was none.
fn response_status(num_headers: usize) -> Option<String> {
    if num_headers == 0 {
        return None;
    }
    let s = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status").ok().flatten()?;
    String::from_utf8(s).ok()
}

impl Worker {
    /// Whether a stale-but-usable entry exists, without counting it served.
    fn stale_peek(&self, host: &str, now: u64) -> Option<bool> {
        let e = self.local.get(host).cloned().or_else(|| shared::read(self.slots, host))?;
        Some(e.verdict.is_some() && now < e.stale_until)
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        match Config::parse(&raw) {
            Ok(cfg) => {
                info!(
                    "cname-guard: configured: lookup cluster {} timeout {} ms, failure_mode {:?}, cache {} entries",
                    cfg.cluster,
                    cfg.timeout.as_millis(),
                    cfg.failure_mode,
                    cfg.cache.max_entries
                );
                self.worker = Some(Rc::new(RefCell::new(Worker::new(cfg))));
                let _ = hostcalls::set_tick_period(TICK_IDLE);
                true
            }
            Err(e) => {
                error!("cname-guard: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.with(Worker::flush);
        let now = now_ms();
        // Paused requests past their deadline get the failure mode; hosts
        // whose remote leader is overdue are looked up again.
        let (acts, retry) = self
            .with(|w| {
                let mut late = Vec::new();
                let mut acts = Vec::new();
                for (host, list) in w.waiting.iter_mut() {
                    list.retain(|wt| {
                        if now >= wt.deadline {
                            late.push((host.clone(), wt.ctx, wt.format, wt.request_id.clone()));
                            false
                        } else {
                            true
                        }
                    });
                }
                for (host, ctx, format, rid) in late {
                    w.ctx_host.remove(&ctx);
                    metrics::inc(w.metrics.lookups_timed_out);
                    let act = match w.stale(&host, now) {
                        Some(v) => w.act(v.as_ref(), &host, format, rid.as_deref()),
                        None => w.failure(&host, format, rid.as_deref()),
                    };
                    acts.push((ctx, act));
                }
                let retry: Vec<String> =
                    w.remote.iter().filter(|(_, &deadline)| now >= deadline).map(|(h, _)| h.clone()).collect();
                for h in &retry {
                    w.remote.remove(h);
                }
                w.waiting.retain(|h, list| !list.is_empty() || w.calls.values().any(|c| &c.host == h) || w.remote.contains_key(h));
                w.update_tick();
                w.feed_tick(now);
                (acts, retry)
            })
            .unwrap_or_default();
        self.apply(acts);
        for host in retry {
            self.request(&host);
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        // Bounded: a flood cannot keep one callback running forever.
        for _ in 0..1024 {
            match hostcalls::dequeue_shared_queue(queue_id) {
                Ok(Some(msg)) => self.on_message(&msg),
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let worker = self.worker.clone()?;
        let cfg = worker.try_borrow().ok()?.cfg.clone();
        Some(Box::new(Filter::new(context_id, worker, cfg)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The page format the request asks for, read only when it is needed.
pub fn requested_format() -> Format {
    let accept = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "accept").ok().flatten();
    accept::negotiate(accept.as_deref())
}

pub fn request_id() -> Option<String> {
    let id = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-request-id").ok().flatten()?;
    policy::request_id(id)
}
