//! The HTTP context: one per request, thin over the worker's state.

use crate::host::Req;
use crate::metrics;
use crate::worker::{self, now_ms, stamp, Waiter, Worker};
use cname_guard_core::accept::Format;
use cname_guard_core::cache::Lookup;
use cname_guard_core::config::{Config, FailureMode};
use cname_guard_core::incoming;
use cname_guard_core::page::Problem;
use cname_guard_core::request::Act;
use cname_guard_core::respond;
use cname_guard_core::tls;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::cell::RefCell;
use std::rc::Rc;

pub struct Filter {
    ctx: u32,
    worker: Rc<RefCell<Worker>>,
    cfg: Rc<Config>,
    /// Set when the request was paused for a lookup: only then is there
    /// anything in the worker to forget or to hold a body back for.
    paused: bool,
}

impl Filter {
    pub fn new(ctx: u32, worker: Rc<RefCell<Worker>>, cfg: Rc<Config>) -> Filter {
        Filter { ctx, worker, cfg, paused: false }
    }

    fn waiting(&self) -> bool {
        self.paused && self.worker.try_borrow().map(|w| w.is_waiting(self.ctx)).unwrap_or(false)
    }
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Ok(mut w) = self.worker.try_borrow_mut() else {
            // Unreachable in practice (callbacks never nest); if it ever
            // happens, it is a lookup failure like any other.
            let act = match self.cfg.failure_mode {
                FailureMode::Allow => Act::FailOpen,
                FailureMode::Deny => {
                    let ray = format!("{:016x}-{}", self.ctx, self.cfg.colo);
                    Act::Reply(respond::error(
                        &self.cfg,
                        Problem::Unavailable,
                        "-",
                        &ray,
                        now_ms() / 1000,
                        Format::Html,
                    ))
                }
            };
            return perform(&act, &self.cfg.account_header);
        };
        w.count_request();
        let raw = incoming::authority(&Req);
        let sni = incoming::sni(&self.cfg, &Req);
        let now = now_ms();
        // The hot path: a fresh allow in the worker's own map. Only canonical
        // names are keys and normalizing one gives it back, so an authority
        // sent in canonical form (as browsers send it) is looked up as it
        // came (and, being canonical, checked against the SNI as it came);
        // any other form is normalized first. Beyond the authority, the SNI
        // and the clock, one host call: the account header.
        if let Some(action) = std::str::from_utf8(&raw)
            .ok()
            .filter(|h| !tls::misdirected(sni.as_deref(), h))
            .and_then(|h| from_local(&mut w, h, now, &self.cfg.account_header))
        {
            return action;
        }
        slow_path(&self.cfg, self.ctx, &mut self.paused, &mut w, raw, sni, now)
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        // Hold the body back while the verdict is pending, or it would
        // carry the headers upstream with it.
        if self.waiting() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.waiting() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

/// Everything but a fresh allow of a canonical authority: kept out of
/// the callback so that the cached path stays as small as it was.
#[inline(never)]
fn slow_path(
    cfg: &Config,
    ctx: u32,
    paused: &mut bool,
    w: &mut Worker,
    raw: Vec<u8>,
    sni: Option<Vec<u8>>,
    now: u64,
) -> Action {
    // Checked before the cache: 400, 421 or 1003 answer here.
    let host = match incoming::admit(cfg, raw, sni.as_deref(), &Req, &mut w.host()) {
        Ok(host) => host,
        Err(reply) => {
            w.flush();
            worker::send(&reply);
            return Action::Pause;
        }
    };
    if let Some(action) = from_local(w, &host, now, &cfg.account_header) {
        return action;
    }
    w.flush();
    if let Lookup::Fresh(entry) = w.cached(&host, now) {
        metrics::inc(w.metrics.cache_hits);
        let https = entry.verdict.as_ref().is_some_and(|v| v.https()) && cfg.redirect_http;
        let location = if https { incoming::https_location(&Req, &host) } else { None };
        let rid = incoming::request_id(&Req);
        let act = w.act(entry.verdict.as_ref(), &host, incoming::format(&Req), rid.as_deref(), location.as_deref());
        return perform(&act, &cfg.account_header);
    }
    metrics::inc(w.metrics.cache_misses);
    let format = incoming::format(&Req);
    let rid = incoming::request_id(&Req);
    let deadline = now + w.cfg.timeout.as_millis() as u64 + worker::GRACE_MS;
    // The verdict is not known yet: where the request would go if it says `https`.
    let location = if cfg.redirect_http { incoming::https_location(&Req, &host) } else { None };
    let waiter = Waiter { ctx, format, request_id: rid.clone(), deadline, location };
    if w.wait(&host, waiter) {
        *paused = true;
        return Action::Pause;
    }
    let act = w.failure(&host, format, rid.as_deref());
    perform(&act, &w.cfg.account_header)
}

impl Drop for Filter {
    fn drop(&mut self) {
        if !self.paused {
            return;
        }
        if let Ok(mut w) = self.worker.try_borrow_mut() {
            w.forget(self.ctx);
        }
    }
}

/// The cached path: a fresh allow for `host` (canonical) in the worker's
/// own map, stamped with its account; or, when its answer says `https`
/// with `tls.redirect_http` on and the request came over plain HTTP, its
/// 308. `None` when the map holds no fresh allow for `host`.
fn from_local(w: &mut Worker, host: &str, now: u64, account_header: &str) -> Option<Action> {
    let (account, redirects) = w.local_allow(host, now)?;
    if let Some(location) = redirects.then(|| incoming::https_location(&Req, host)).flatten() {
        let reply = w.redirect(&location);
        worker::send(&reply);
        return Some(Action::Pause);
    }
    let action = stamp(account_header, account);
    w.count_allowed();
    Some(action)
}

/// Performs an act from the request's own callback.
fn perform(act: &Act, account_header: &str) -> Action {
    match act {
        Act::Allow(account) => stamp(account_header, account),
        Act::FailOpen => {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, account_header);
            Action::Continue
        }
        Act::Reply(reply) => {
            worker::send(reply);
            Action::Pause
        }
    }
}
