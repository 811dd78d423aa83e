//! The lookup service's endpoints: `/v1/ownership` (lookup contract v1),
//! `/healthz`, `/readyz`, `/metrics`, `/ext_authz*`, and with a store
//! `/v1/changes` (the change feed, contract v1.1).

use crate::certs;
use crate::dns;
use crate::ext_authz;
use crate::feed::{self, Feed, Wire};
use crate::http::{self, Body};
use crate::metrics::{self, Lookup, Poll};
use crate::ownership::Ownerships;
use crate::registry::Answer;
use crate::resolve::Dns;
use crate::server::Handler;
use crate::store::Changes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::sync::Arc;

pub const OWNERSHIP_PATH: &str = "/v1/ownership";

pub struct LookupApi<D> {
    pub ownerships: Arc<Ownerships<D>>,
    /// No line per request (for benchmarks); reloads and errors still log.
    pub quiet: bool,
}

impl<D: Dns> Handler for LookupApi<D> {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if path.starts_with(ext_authz::PATH_PREFIX) {
            return ext_authz::check(&self.ownerships, &req, self.quiet).await;
        }
        let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
        if let Some(token) = path.strip_prefix(certs::CHALLENGE_PREFIX) {
            if !read_only {
                return http::method_not_allowed("GET, HEAD");
            }
            return certs::challenge::answer(&self.ownerships.store, &req, token).await;
        }
        match path {
            OWNERSHIP_PATH if read_only => self.ownership(&req).await,
            "/healthz" if read_only => http::text(StatusCode::OK, "ok\n"),
            "/readyz" if read_only => self.ready().await,
            metrics::PATH if read_only => self.metrics().await,
            OWNERSHIP_PATH | "/healthz" | "/readyz" | metrics::PATH => http::method_not_allowed("GET, HEAD"),
            _ => http::not_found(),
        }
    }
}

impl<D: Dns> LookupApi<D> {
    /// Ready while the store answers: Envoy's health checks take a replica
    /// whose database is unreachable out of the cluster.
    async fn ready(&self) -> Response<Body> {
        match self.ownerships.ready().await {
            Ok(()) => {
                metrics::ready(true);
                http::text(StatusCode::OK, "ok\n")
            }
            Err(e) => {
                metrics::ready(false);
                tracing::warn!(status = 503, error = %e, "readyz: store unavailable");
                http::text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
            }
        }
    }

    /// The exposition text, with the gauges read at scrape time refreshed.
    async fn metrics(&self) -> Response<Body> {
        metrics::dns_cache_entries(self.ownerships.dns.entries().await);
        http::with_type(StatusCode::OK, metrics::CONTENT_TYPE, metrics::render())
    }

    async fn ownership(&self, req: &Request<Incoming>) -> Response<Body> {
        let started = std::time::Instant::now();
        let request_id = request_id(req);
        let host = match host_param(req.uri().query()) {
            Ok(h) => h,
            Err(message) => {
                metrics::lookup(Lookup::BadRequest, started.elapsed());
                if !self.quiet {
                    // The host as asked, sanitized: it failed the name rules.
                    let host = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                        .find(|(k, _)| k == "host")
                        .map(|(_, v)| crate::logs::clean(v.as_bytes()));
                    tracing::info!(host, status = 400, reason = message, request_id, "lookup failed");
                }
                return http::json_error(StatusCode::BAD_REQUEST, message);
            }
        };
        let answer = match self.ownerships.lookup(&host).await {
            Ok(answer) => answer,
            Err(e) => {
                metrics::lookup(e.metric(), started.elapsed());
                tracing::warn!(host, status = 503, error = e.kind(), detail = %e, request_id, "lookup failed");
                let body = Unavailable { host: &host, error: e.kind(), detail: &e.to_string() };
                return http::json(StatusCode::SERVICE_UNAVAILABLE, &body);
            }
        };
        let result = match &answer {
            Answer::Found(_) if matches!(crate::verdict::decide(&answer), crate::verdict::Verdict::Allow { .. }) => {
                Lookup::Allowed
            }
            Answer::Found(_) => Lookup::Denied,
            Answer::Unknown => Lookup::NotFound,
        };
        metrics::lookup(result, started.elapsed());
        if !self.quiet {
            match &answer {
                Answer::Found(o) => tracing::info!(
                    host,
                    status = 200,
                    account = o.account.as_deref(),
                    target_account = o.target_account.as_deref(),
                    custom_hostname = o.custom_hostname.as_deref().map(|c| crate::logs::clean(c.as_bytes())),
                    origin_resolves = o.origin_resolves,
                    suspended = o.suspended,
                    request_id,
                    "lookup"
                ),
                Answer::Unknown => tracing::info!(host, status = 404, request_id, "lookup"),
            }
        }
        match answer {
            Answer::Found(o) => http::json(StatusCode::OK, &o),
            Answer::Unknown => http::json(StatusCode::NOT_FOUND, &Unknown { host: &host, error: "unknown host" }),
        }
    }
}

/// `/v1/changes` in front of another handler; without it the path is a 404,
/// which tells the filter the service has no feed.
pub struct WithChanges<H> {
    pub feed: Arc<Feed>,
    pub inner: H,
}

impl<H: Handler> Handler for WithChanges<H> {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() != feed::PATH {
            return self.inner.handle(req).await;
        }
        if req.method() != Method::GET {
            return http::method_not_allowed("GET");
        }
        let query = match feed::parse_query(req.uri().query()) {
            Ok(q) => q,
            Err(message) => {
                metrics::feed_poll(Poll::BadRequest);
                return http::json_error(StatusCode::BAD_REQUEST, message);
            }
        };
        match self.feed.changes(query).await {
            Ok(changes) => {
                metrics::feed_poll(match &changes {
                    Changes::Reset { .. } => Poll::Reset,
                    c if c.is_empty() => Poll::Empty,
                    _ => Poll::Changes,
                });
                if let (Changes::Reset { seq }, Some(since)) = (&changes, query.since) {
                    tracing::info!(since, seq, request_id = request_id(&req), "changes: reset");
                }
                http::json(StatusCode::OK, &Wire::from(&changes))
            }
            Err(e) => {
                metrics::feed_poll(Poll::Unavailable);
                metrics::store_error(metrics::StoreOp::Feed);
                tracing::warn!(status = 503, error = %e, request_id = request_id(&req), "changes: store unavailable");
                let body = serde_json::json!({ "error": "store unavailable", "detail": e.to_string() });
                http::json(StatusCode::SERVICE_UNAVAILABLE, &body)
            }
        }
    }

    fn shutting_down(&self) {
        self.feed.close();
        self.inner.shutting_down();
    }
}

/// The 404 body, keys in contract order.
#[derive(Serialize)]
struct Unknown<'a> {
    host: &'a str,
    error: &'static str,
}

/// The 503 body when DNS or the store cannot answer.
#[derive(Serialize)]
struct Unavailable<'a> {
    host: &'a str,
    error: &'static str,
    detail: &'a str,
}

/// The canonical name in `?host=`: percent-decoded, exactly one, a DNS name.
pub fn host_param(query: Option<&str>) -> Result<String, &'static str> {
    let mut hosts = form_urlencoded::parse(query.unwrap_or("").as_bytes()).filter(|(k, _)| k == "host");
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => return Err("missing host parameter"),
        (Some(_), Some(_)) => return Err("more than one host parameter"),
        (Some((_, h)), None) => h,
    };
    if host.is_empty() {
        return Err("empty host parameter");
    }
    dns::canonical(&host).map_err(|_| "host is not a valid DNS name")
}

/// The request's `x-request-id`, sanitized for the log.
pub fn request_id<B>(req: &Request<B>) -> Option<String> {
    req.headers().get("x-request-id").map(|v| crate::logs::clean(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_params() {
        assert_eq!(host_param(Some("host=shop.example.com")).as_deref(), Ok("shop.example.com"));
        assert_eq!(host_param(Some("x=1&host=Shop%2EExample.com.")).as_deref(), Ok("shop.example.com"));
        for bad in [None, Some(""), Some("host="), Some("hosts=a.example"), Some("host=a.example&host=b.example")] {
            assert!(host_param(bad).is_err(), "{bad:?}");
        }
        for bad in ["a..b", "exa_mple.com", "bad%20host.example", "1.2.3.4", "%3Cscript%3E.example", "%FF.example"] {
            assert!(host_param(Some(&format!("host={bad}"))).is_err(), "{bad}");
        }
    }
}
