//! Per-worker state and the root context: the cache in front of shared
//! data, the paused requests, and the lookups (always made by the root
//! context, so a lookup outlives the request that started it).

use crate::feed::{self, Feed};
use crate::filter::Filter;
use crate::host::Wasm;
use crate::metrics::{self, Metrics};
use crate::shared;
use cname_guard_core::accept::Format;
use cname_guard_core::cache::{Entry, LocalCache, Lookup, Slots};
use cname_guard_core::changes::{self, Eviction};
use cname_guard_core::clock;
use cname_guard_core::coalesce::Step;
use cname_guard_core::config::Config;
use cname_guard_core::feed as core_feed;
use cname_guard_core::backlog::Backlog;
use cname_guard_core::inflight;
use cname_guard_core::lookup::{self, LookupError};
use cname_guard_core::ray::{self, RayGen};
use cname_guard_core::request::{self, Act, Asker};
use cname_guard_core::respond::Reply;
use cname_guard_core::verdict::Verdict;
use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Tick while requests wait (deadlines), and otherwise (deferred counters).
const TICK_WAITING: Duration = Duration::from_millis(100);
const TICK_IDLE: Duration = Duration::from_secs(1);
pub use cname_guard_core::policy::GRACE_MS;

/// Queue messages: a local request for a lookup, or another worker's leader
/// telling us its lookup for a host is done (`W`) or failed (`F`).
const MSG_LOOKUP: u8 = b'L';
const MSG_DONE: u8 = b'W';
const MSG_FAILED: u8 = b'F';
/// The feed's poller telling every worker what to drop from its map.
const MSG_EVICT: u8 = b'E';
/// Our own reminder: answers are left in the backlog.
const MSG_RESUME: u8 = b'R';

/// A request paused until its host's lookup ends.
pub struct Waiter {
    pub ctx: u32,
    pub format: Format,
    pub request_id: Option<String>,
    pub deadline: u64,
    /// Where the request is redirected if its host's answer says `https`
    /// (`https_location`, read in the request's own callback before it
    /// pauses; the verdict is applied from the root context); `None` when
    /// it is not, or `tls.redirect_http` is off.
    pub location: Option<String>,
}

struct Call {
    host: String,
    started: u64,
    locked: bool,
    /// Its slot of `lookup.max_in_flight` in shared data.
    slot: u64,
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
    /// Lookups this worker made: the tag of the next one's slot.
    lookups: u32,
    tick: Duration,
    feed: Feed,
    /// Counters of the cached path, added to the metrics on the next slow
    /// path or tick (at most a second late): three host calls saved on
    /// nearly every request.
    tally: Tally,
    /// Answers to paused requests beyond what one callback may give.
    backlog: Backlog<(u32, Act)>,
}

#[derive(Default)]
struct Tally {
    requests: i64,
    hits: i64,
    allowed: i64,
}

pub fn now_ms() -> u64 {
    hostcalls::get_current_time().map_or(0, clock::unix_ms)
}

impl Worker {
    fn new(cfg: Config) -> Worker {
        let seed = ray::seed(now_ms());
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
            metrics: metrics::define(),
            queue,
            waiting: HashMap::new(),
            ctx_host: HashMap::new(),
            calls: HashMap::new(),
            remote: HashMap::new(),
            rng: RayGen::new(seed),
            lookups: 0,
            tick: TICK_IDLE,
            feed: Feed::new(),
            tally: Tally::default(),
            backlog: Backlog::default(),
        }
    }

    /// Counts a request; the hot path's only bookkeeping.
    pub fn count_request(&mut self) {
        self.tally.requests += 1;
    }

    /// A fresh allow for `host` in the worker's own map: its account, and
    /// whether a plain HTTP request for it is redirected (its answer says
    /// `https` and `tls.redirect_http` is on). The cached path, with no
    /// host call and no allocation. Only a hit counts as a use here (and
    /// in the tally); anything else is counted by `cached`. The caller
    /// counts the request allowed (`count_allowed`) or redirected.
    pub fn local_allow(&mut self, host: &str, now: u64) -> Option<(&str, bool)> {
        let fresh_allow = |e: &Entry| matches!(e.verdict, Some(Verdict::Allow { .. })) && now < e.fresh_until;
        match self.local.find_used(host, fresh_allow) {
            Some((Entry { verdict: Some(Verdict::Allow { account, https }), .. }, news)) => {
                self.tally.hits += 1;
                if let Some(uses) = news {
                    shared::note_uses(self.slots, host, uses, now);
                }
                Some((account, *https && self.cfg.redirect_http))
            }
            _ => None,
        }
    }

    /// Counts a request the cached path allowed (deferred, as its hit).
    pub fn count_allowed(&mut self) {
        self.tally.allowed += 1;
    }

    /// Adds the deferred counters to the metrics.
    pub fn flush(&mut self) {
        let t = std::mem::take(&mut self.tally);
        for (id, n) in
            [(self.metrics.requests, t.requests), (self.metrics.cache_hits, t.hits), (self.metrics.allowed, t.allowed)]
        {
            if n > 0 {
                metrics::add(id, n);
            }
        }
    }

    /// The cached entry for `host`: the worker's map, then shared data.
    pub fn cached(&mut self, host: &str, now: u64) -> Lookup {
        if let Some((e, news)) = self.local.find_used(host, |_| true) {
            if let Some(uses) = news {
                shared::note_uses(self.slots, host, uses, now);
            }
            if now < e.fresh_until {
                return Lookup::Fresh(e.clone());
            }
        }
        match shared::read(self.slots, host) {
            Some(e) => {
                let found = e.clone().classify(now);
                if let Lookup::Fresh(_) = found {
                    self.local.insert(host, e, now);
                }
                found
            }
            None => Lookup::Absent,
        }
    }

    /// Core's host: the metrics and this VM's ray ids.
    pub fn host(&mut self) -> Wasm<'_> {
        Wasm { metrics: &self.metrics, rays: &mut self.rng }
    }

    /// What a cached verdict means for a request; `location`: where the
    /// request is redirected if the verdict says `https` (`https_location`).
    pub fn act(
        &mut self,
        verdict: Option<&Verdict>,
        host: &str,
        format: Format,
        request_id: Option<&str>,
        location: Option<&str>,
    ) -> Act {
        let cfg = self.cfg.clone();
        request::act(
            &cfg,
            verdict,
            Asker { host, format, request_id },
            || location.map(str::to_string),
            &mut self.host(),
        )
    }

    /// The answer to a request whose lookup failed, per `failure_mode`.
    pub fn failure(&mut self, host: &str, format: Format, request_id: Option<&str>) -> Act {
        let cfg = self.cfg.clone();
        request::failure(&cfg, Asker { host, format, request_id }, &mut self.host())
    }

    /// The 308 to `location`, counted.
    pub fn redirect(&mut self, location: &str) -> Reply {
        let cfg = self.cfg.clone();
        request::redirect(&cfg, location, &mut self.host())
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
        let stale = if verdict.is_none() { self.stale(host, now) } else { None };
        let acts = waiters.iter().map(|w| (w.ctx, self.answer(host, verdict.as_ref(), stale.as_ref(), w))).collect();
        self.update_tick();
        acts
    }

    /// A paused request's act: the lookup's verdict (`Some(None)`: a cached
    /// failure), or for a failed lookup the stale verdict, else the failure mode.
    fn answer(&mut self, host: &str, verdict: Option<&Option<Verdict>>, stale: Option<&Verdict>, w: &Waiter) -> Act {
        let cfg = self.cfg.clone();
        let asker = Asker { host, format: w.format, request_id: w.request_id.as_deref() };
        let location = || w.location.clone();
        match verdict {
            Some(v) => request::act(&cfg, v.as_ref(), asker, location, &mut self.host()),
            None => request::failed(&cfg, stale, asker, location, &mut self.host()),
        }
    }

    /// The verdict of an expired entry still within `stale_if_error_seconds`.
    fn stale(&self, host: &str, now: u64) -> Option<Verdict> {
        let entry = self.local.peek(host).cloned().or_else(|| shared::read(self.slots, host))?;
        match entry.classify(now) {
            Lookup::Stale(e) | Lookup::Fresh(e) => e.verdict,
            _ => None,
        }
    }

    fn store(&mut self, host: &str, entry: Entry, now: u64) {
        if entry.stale_until <= now {
            return;
        }
        // The map first: it counts the use the slot table's admission weighs.
        self.local.insert(host, entry.clone(), now);
        let local = &self.local;
        let written = shared::write(self.slots, host, &entry, now, |h| local.frequency(h));
        if written.filled_empty {
            metrics::inc(self.metrics.cache_entries);
        }
        if written.evicted {
            metrics::inc(self.metrics.cache_evictions);
        }
    }

    fn update_tick(&mut self) {
        let idle = self.waiting.is_empty() && self.backlog.is_empty();
        let mut tick = if idle { TICK_IDLE } else { TICK_WAITING };
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
        let mut h = Wasm { metrics: &self.metrics, rays: &mut self.rng };
        self.feed.tick(&self.cfg, me, now, &mut h);
        self.update_tick();
    }

    /// Applies what the feed named: the shared table now, every worker's
    /// map (ours included) through the queues.
    fn apply_eviction(&mut self, e: &Eviction, now: u64) {
        if e.is_empty() {
            return;
        }
        let gone = shared::evict(self.slots, e);
        core_feed::Feed::applied(gone as u64, &mut self.host());
        metrics::add(self.metrics.cache_entries, -(gone as i64));
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

    /// A host callback begins: its allowance of answers.
    fn begin(&self) {
        self.with(|w| w.backlog.begin());
    }

    /// Answers paused requests, as many as this callback may (`Backlog`);
    /// the rest after a reminder through our own queue.
    fn apply(&self, acts: Vec<(u32, Act)>) {
        let Some((header, now, remind)) = self.with(|w| {
            let now = w.backlog.admit(acts);
            let remind = w.queue.filter(|_| w.backlog.ask_later());
            (w.cfg.account_header.clone(), now, remind)
        }) else {
            return;
        };
        // Not queued: the next callback asks again, the tick drains meanwhile.
        if remind.is_some_and(|q| hostcalls::enqueue_shared_queue(q, Some(&[MSG_RESUME])).is_err()) {
            self.with(|w| w.backlog.later_came());
        }
        for (ctx, act) in &now {
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
            w.lookups = w.lookups.wrapping_add(1);
            let slot = inflight::tag(w.queue.unwrap_or(0), w.lookups);
            if !shared::take_slot(slot, now, now + w.lock_for_ms(), w.cfg.max_in_flight) {
                // Over `lookup.max_in_flight`: the answer of a failed lookup, at once.
                request::lookup_shed(&mut w.host());
                if locked {
                    wake(shared::release_lock(w.slots, host), MSG_FAILED, host);
                }
                return w.settle(host, None, now);
            }
            let request_id = w.waiting.get(host).and_then(|l| l.first()).and_then(|wt| wt.request_id.clone());
            match dispatch(&w.cfg, host, request_id.as_deref()) {
                Ok(token) => {
                    request::lookup_started(&mut w.host());
                    let call = Call { host: host.to_string(), started: now, locked, slot, superseded: false };
                    w.calls.insert(token, call);
                    Vec::new()
                }
                Err(e) => {
                    shared::release_slot(slot, now);
                    let cfg = w.cfg.clone();
                    request::lookup_not_started(&cfg, host, &e, &mut w.host());
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
        if kind == MSG_RESUME {
            self.with(|w| w.backlog.later_came());
            self.apply(Vec::new());
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
    let headers = lookup::request_headers(&cfg.authority, &path, request_id);
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
        self.begin();
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
            let mut h = Wasm { metrics: &w.metrics, rays: &mut w.rng };
            let e = w.feed.answered(&cfg, me, status.as_deref(), body_size, body.as_deref().unwrap_or(&[]), &mut h);
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
            shared::release_slot(call.slot, now);
            let host = call.host;
            let status = response_status(num_headers);
            let status = status.as_deref();
            let body = if body_size == 0 || body_size > lookup::MAX_BODY {
                None
            } else {
                hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten()
            };
            let cfg = w.cfg.clone();
            let body = body.as_deref().unwrap_or(&[]);
            let answered =
                request::lookup_answered(&cfg, &host, status, body_size, body, call.started, now, &mut w.host());
            let stale_usable = answered.verdict.is_none() && matches!(w.stale_peek(&host, now), Some(true));
            if let Some(entry) = answered.to_store(stale_usable, now).filter(|_| !call.superseded) {
                w.store(&host, entry.clone(), now);
            }
            let verdict = answered.verdict.map(Some);
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
        let e = self.local.peek(host).cloned().or_else(|| shared::read(self.slots, host))?;
        Some(e.verdict.is_some() && now < e.stale_until)
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
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
        self.begin();
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
                            late.push((host.clone(), wt.ctx, wt.format, wt.request_id.clone(), wt.location.clone()));
                            false
                        } else {
                            true
                        }
                    });
                }
                for (host, ctx, format, rid, location) in late {
                    w.ctx_host.remove(&ctx);
                    metrics::inc(w.metrics.lookups_timed_out);
                    let stale = w.stale(&host, now);
                    let waiter = Waiter { ctx, format, request_id: rid, deadline: now, location };
                    let act = w.answer(&host, None, stale.as_ref(), &waiter);
                    acts.push((ctx, act));
                }
                let retry: Vec<String> =
                    w.remote.iter().filter(|(_, &deadline)| now >= deadline).map(|(h, _)| h.clone()).collect();
                for h in &retry {
                    w.remote.remove(h);
                }
                w.waiting.retain(|h, list| {
                    !list.is_empty() || w.calls.values().any(|c| &c.host == h) || w.remote.contains_key(h)
                });
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
        self.begin();
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
