//! The lookup routes (`/v1/ownership`, `/ext_authz*`) behind a concurrency
//! limit that sheds instead of queueing (tower's `ConcurrencyLimit` under
//! `LoadShed`): past the limit a lookup is answered 503 `overloaded` at once,
//! with `retry-after`, so the filter applies its failure mode and
//! stale-if-error. Health, readiness, metrics and the change feed are not limited.

use crate::api::{host_param, request_id, OWNERSHIP_PATH};
use crate::ext_authz;
use crate::http::{self, Body};
use crate::server::Handler;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::limit::{ConcurrencyLimit, ConcurrencyLimitLayer};
use tower::load_shed::{LoadShed, LoadShedLayer};
use tower::{Layer, Service, ServiceExt};

pub const DEFAULT_MAX_CONCURRENT_LOOKUPS: usize = 256;
/// The `error` of the 503 body when a lookup is shed.
pub const OVERLOADED: &str = "overloaded";
/// Seconds a shed client is told to wait; the filter's own retry-after applies to its clients.
const RETRY_AFTER_SECONDS: &str = "1";

/// `service` behind at most `max` calls in flight; one more is refused
/// (`tower::load_shed::error::Overloaded`), never queued.
pub fn limit<S>(service: S, max: usize) -> LoadShed<ConcurrencyLimit<S>> {
    LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(max).layer(service))
}

/// A [`Handler`] as a tower service.
struct Route<H>(Arc<H>);

impl<H> Clone for Route<H> {
    fn clone(&self) -> Self {
        Route(self.0.clone())
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<H: Handler> Service<Request<Incoming>> for Route<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Answer {
        let handler = self.0.clone();
        Box::pin(async move { Ok(handler.handle(req).await) })
    }
}

/// `inner` with its lookup routes limited.
pub struct Shedding<H> {
    inner: Arc<H>,
    limited: LoadShed<ConcurrencyLimit<Route<H>>>,
    max: usize,
}

impl<H: Handler> Shedding<H> {
    pub fn new(inner: H, max: usize) -> Shedding<H> {
        let inner = Arc::new(inner);
        Shedding { limited: limit(Route(inner.clone()), max), inner, max }
    }
}

/// Whether `path` costs a lookup (DNS and the store).
fn is_lookup(path: &str) -> bool {
    path == OWNERSHIP_PATH || path.starts_with(ext_authz::PATH_PREFIX)
}

/// The contract's unavailable body, with its own `error`.
#[derive(Serialize)]
struct Overloaded<'a> {
    host: Option<&'a str>,
    error: &'static str,
    detail: String,
}

impl<H: Handler> Handler for Shedding<H> {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if !is_lookup(req.uri().path()) {
            return self.inner.handle(req).await;
        }
        let started = std::time::Instant::now();
        // Read before the request moves; a bad host gets the route's own 400 when not shed.
        let host = host_param(req.uri().query()).ok();
        let authz = req.uri().path().starts_with(ext_authz::PATH_PREFIX);
        let id = request_id(&req);
        match self.limited.clone().oneshot(req).await {
            Ok(response) => response,
            // LoadShed's only error here: the inner service is Infallible.
            Err(_) => {
                crate::metrics::lookup(crate::metrics::Lookup::Overloaded, started.elapsed());
                let host = host.as_deref();
                let detail = format!("{} lookups in flight (--max-concurrent-lookups)", self.max);
                tracing::warn!(host, status = 503, error = OVERLOADED, detail, request_id = id, "lookup failed");
                // ext_authz answers in its own style: a short text page Envoy passes on.
                let mut r = if authz {
                    http::text(StatusCode::SERVICE_UNAVAILABLE, "503 overloaded\n")
                } else {
                    http::json(StatusCode::SERVICE_UNAVAILABLE, &Overloaded { host, error: OVERLOADED, detail })
                };
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
                r
            }
        }
    }

    fn shutting_down(&self) {
        self.inner.shutting_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;
    use tower::load_shed::error::Overloaded as Shed;

    #[test]
    fn calls_past_the_limit_are_refused_at_once_and_served_again_after() {
        let gate = Arc::new(Semaphore::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let service = {
            let (gate, entered) = (gate.clone(), entered.clone());
            tower::service_fn(move |n: u32| {
                let (gate, entered) = (gate.clone(), entered.clone());
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    // Closed: let everything through.
                    let _ = gate.acquire().await;
                    Ok::<_, Infallible>(n)
                }
            })
        };
        let limited = limit(service, 2);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let held: Vec<_> = (0..2).map(|n| tokio::spawn(limited.clone().oneshot(n))).collect();
            while entered.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            for n in 10..15 {
                let e = limited.clone().oneshot(n).await.expect_err("past the limit");
                assert!(e.is::<Shed>(), "{e}");
            }
            gate.close();
            for (n, h) in held.into_iter().enumerate() {
                assert_eq!(h.await.expect("task").expect("served"), n as u32);
            }
            assert_eq!(limited.clone().oneshot(7).await.expect("served again"), 7);
        });
    }

    #[test]
    fn only_lookups_are_limited() {
        assert!(is_lookup("/v1/ownership"));
        assert!(is_lookup("/ext_authz/anything"));
        for path in ["/healthz", "/readyz", "/metrics", "/v1/changes", "/.well-known/acme-challenge/t"] {
            assert!(!is_lookup(path), "{path}");
        }
    }
}
