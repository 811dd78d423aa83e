//! The HTTP context: one per request, thin over the worker's state.

use crate::accept::Format;
use crate::authority::{self, Authority};
use crate::config::{Config, FailureMode};
use crate::cache::Lookup;
use crate::metrics;
use crate::page::Problem;
use crate::respond;
use crate::verdict::ErrorCode;
use crate::worker::{self, now_ms, request_id, requested_format, stamp, Act, Waiter, Worker};
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
                    Act::Reply(respond::error(&self.cfg, Problem::Unavailable, "-", &ray, now_ms() / 1000, Format::Html))
                }
            };
            return perform(&act, &self.cfg.account_header);
        };
        w.count_request();
        let raw = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":authority")
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = now_ms();
        // The hot path: a fresh allow in the worker's own map. Only canonical
        // names are keys and normalizing one gives it back, so an authority
        // sent in canonical form (as browsers send it) is looked up as it
        // came; any other form is normalized first. Beyond the authority and
        // the clock, one host call: the account header.
        if let Some(account) = std::str::from_utf8(&raw).ok().and_then(|h| w.local_allow(h, now)) {
            return stamp(&self.cfg.account_header, account);
        }
        let host = match authority::normalize(raw) {
            Ok(Authority::Name(host)) => host,
            Ok(Authority::IpLiteral(ip)) => {
                w.flush();
                let reply = w.deny(Problem::Code(ErrorCode::DirectIp), &ip, requested_format(), request_id().as_deref());
                worker::send(&reply);
                return Action::Pause;
            }
            Err(e) => {
                w.flush();
                metrics::inc(w.metrics.bad_request);
                let reply = respond::bad_request(&w.cfg, e.reason());
                worker::send(&reply);
                return Action::Pause;
            }
        };
        if let Some(account) = w.local_allow(&host, now) {
            return stamp(&self.cfg.account_header, account);
        }
        w.flush();
        if let Lookup::Fresh(entry) = w.cached(&host, now) {
            metrics::inc(w.metrics.cache_hits);
            let act = w.act(entry.verdict.as_ref(), &host, requested_format(), request_id().as_deref());
            return perform(&act, &self.cfg.account_header);
        }
        metrics::inc(w.metrics.cache_misses);
        let format = requested_format();
        let rid = request_id();
        let deadline = now + w.cfg.timeout.as_millis() as u64 + worker::GRACE_MS;
        let waiter = Waiter { ctx: self.ctx, format, request_id: rid.clone(), deadline };
        if w.wait(&host, waiter) {
            self.paused = true;
            return Action::Pause;
        }
        let act = w.failure(&host, format, rid.as_deref());
        perform(&act, &w.cfg.account_header)
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
