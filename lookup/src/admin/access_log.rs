//! One `tracing` event per management call: method, route template,
//! status, the account the call is about, who called, latency and request id.

use crate::logs::clean;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Who called, filled in by the `Caller` extractor once the token is
/// checked (the middleware runs before the handler knows).
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<String>>);

impl CallerSlot {
    pub fn set(&self, label: String) {
        // Set once per request; a second extraction is the same caller.
        let _ = self.0.set(label);
    }
}

pub async fn log_call(
    route: Option<MatchedPath>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str).to_owned();
    // The `{account}` segment as the client sent it (decoded): sanitized.
    let account = params.ok().and_then(|p| p.iter().find(|(k, _)| *k == "account").map(|(_, v)| clean(v.as_bytes())));
    let request_id = req.headers().get("x-request-id").map(|v| clean(v.as_bytes()));
    let caller = CallerSlot::default();
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    // Microseconds are plenty, and print short.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let caller = caller.0.get().map(String::as_str);
    let (method, account, request_id) = (method.as_str(), account.as_deref(), request_id.as_deref());
    if status >= 500 {
        tracing::warn!(method, route, status, account, caller, latency_ms, request_id, "management call");
    } else {
        tracing::info!(method, route, status, account, caller, latency_ms, request_id, "management call");
    }
    response
}
