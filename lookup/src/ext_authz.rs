//! ext_authz mode: Envoy's HTTP ext_authz filter asks `/ext_authz<path>` with
//! the original `host`; the answer is the same verdict the Wasm filter gives.

use crate::dns::{self, HostHeader};
use crate::http::{self, Body};
use crate::metrics::{self, Lookup};
use crate::ownership::{LookupError, Ownerships};
use crate::resolve::Dns;
use crate::verdict::{decide, ErrorCode, Verdict};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};

pub const PATH_PREFIX: &str = "/ext_authz";
pub const ACCOUNT_HEADER: &str = "x-cname-guard-account";

pub async fn check<B, D: Dns>(ownerships: &Ownerships<D>, req: &Request<B>, quiet: bool) -> Response<Body> {
    let started = std::time::Instant::now();
    let raw = req.headers().get(HOST).map(|v| v.as_bytes()).or_else(|| req.uri().host().map(str::as_bytes));
    let parsed = match raw.map(std::str::from_utf8) {
        Some(Ok(raw)) => dns::parse_host_header(raw),
        Some(Err(_)) => HostHeader::Invalid("non-ASCII host"),
        None => HostHeader::Invalid("no host header"),
    };
    let (shown, verdict) = match parsed {
        HostHeader::Name(name) => match ownerships.lookup(&name).await {
            Ok(answer) => {
                let verdict = decide(&answer);
                (name, verdict)
            }
            Err(e) => {
                metrics::lookup(e.metric(), started.elapsed());
                tracing::warn!(host = name, status = 503, error = e.kind(), detail = %e, request_id = crate::api::request_id(req), "ext_authz failed");
                let page = match e {
                    LookupError::Dns(_) => "503 DNS unavailable\n",
                    LookupError::Store(_) => "503 store unavailable\n",
                };
                return http::text(StatusCode::SERVICE_UNAVAILABLE, page);
            }
        },
        HostHeader::Ip(ip) => (ip.to_string(), Verdict::Deny(ErrorCode::DirectIp)),
        HostHeader::Invalid(reason) => {
            metrics::lookup(Lookup::BadRequest, started.elapsed());
            if !quiet {
                tracing::info!(status = 400, reason, request_id = crate::api::request_id(req), "ext_authz failed");
            }
            return http::with_type(StatusCode::BAD_REQUEST, http::TEXT, "400 Bad Request\n");
        }
    };
    let result = if matches!(verdict, Verdict::Allow { .. }) { Lookup::Allowed } else { Lookup::Denied };
    metrics::lookup(result, started.elapsed());
    if !quiet {
        let request_id = crate::api::request_id(req);
        match &verdict {
            Verdict::Allow { account, .. } => {
                tracing::info!(host = shown, verdict = "allow", account = account.as_str(), request_id, "ext_authz")
            }
            Verdict::Deny(d) => {
                tracing::info!(host = shown, verdict = "deny", error = d.number(), request_id, "ext_authz")
            }
        }
    }
    respond(&verdict)
}

pub fn respond(verdict: &Verdict) -> Response<Body> {
    match verdict {
        Verdict::Allow { account, .. } => match HeaderValue::from_str(account) {
            Ok(value) => {
                let mut r = http::with_type(StatusCode::OK, http::TEXT, "");
                r.headers_mut().insert(ACCOUNT_HEADER, value);
                r
            }
            // Unreachable for a validated registry; refuse rather than pass.
            Err(_) => http::text(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error\n"),
        },
        Verdict::Deny(d) => {
            let status = StatusCode::from_u16(d.default_status()).unwrap_or(StatusCode::FORBIDDEN);
            http::with_type(status, http::HTML, format!("<h1>Error {}: {}</h1>\n", d.number(), d.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    use crate::chain::fake::{block, Zone};
    use crate::dns_cache::CachedDns;
    use crate::store::{import_registry, Store};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const REGISTRY: &str = r#"{
        "accounts": {"saas": {}, "client": {}},
        "zones": {"saas.example": "saas", "client.example": "client"}
    }"#;

    fn ask(host: Option<&str>) -> Response<Body> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cname-guard-ext-authz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let url = format!("sqlite:{}", dir.join("store.db").display());
        let zone = Zone::default()
            .a("edge.saas.example", 60)
            .cname("x.client.example", "edge.saas.example", 60)
            .broken("down.client.example");
        let mut req = Request::builder().uri("/ext_authz/some/path");
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let response = block(async {
            let store = Store::open(&url).await.expect("store");
            import_registry(&store, REGISTRY.as_bytes()).await.expect("import");
            let ownerships = Ownerships {
                store: store.clone(),
                dns: CachedDns::new(zone, 1 << 20, 300),
                max_ttl: 300,
                unlisted: Default::default(),
            };
            let response = check(&ownerships, &req.body(()).expect("request"), true).await;
            store.close().await;
            response
        });
        let _ = std::fs::remove_dir_all(&dir);
        response
    }

    fn body(r: Response<Body>) -> String {
        let bytes = futures_body(r);
        String::from_utf8(bytes).expect("utf-8")
    }

    fn futures_body(r: Response<Body>) -> Vec<u8> {
        // `Full` is always ready: poll it once without a runtime.
        let mut fut = std::pin::pin!(r.into_body().collect());
        let waker = std::task::Waker::noop();
        match fut.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(Ok(c)) => c.to_bytes().to_vec(),
            _ => panic!("body not ready"),
        }
    }

    use std::future::Future;

    #[test]
    fn allow_carries_the_serving_account() {
        let r = ask(Some("Edge.Saas.Example.:443"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers().get(ACCOUNT_HEADER).map(|v| v.as_bytes()), Some(&b"saas"[..]));
    }

    #[test]
    fn denials_have_status_and_page() {
        let r = ask(Some("x.client.example"));
        assert_eq!(r.status(), 409);
        assert!(r.headers().get(ACCOUNT_HEADER).is_none());
        assert_eq!(body(r), "<h1>Error 1014: CNAME cross-user banned</h1>\n");
        let r = ask(Some("nobody.example"));
        assert_eq!(r.status(), 409);
        assert_eq!(body(r), "<h1>Error 1001: DNS resolution error</h1>\n");
        let r = ask(Some("192.0.2.1:80"));
        assert_eq!(r.status(), 403);
        assert!(body(r).contains("Error 1003"));
        assert_eq!(ask(Some("a..b")).status(), 400);
        assert_eq!(ask(None).status(), 400);
        // DNS down is not a verdict.
        assert_eq!(ask(Some("down.client.example")).status(), 503);
    }

    #[test]
    fn every_denial_renders() {
        for d in [ErrorCode::NotServing, ErrorCode::OriginDns] {
            let r = respond(&Verdict::Deny(d));
            assert_eq!(r.status().as_u16(), d.default_status());
            assert_eq!(body(r), format!("<h1>Error {}: {}</h1>\n", d.number(), d.name()));
        }
    }
}
