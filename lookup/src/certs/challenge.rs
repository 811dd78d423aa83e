//! HTTP-01 answered on the lookup listener: Envoy routes
//! `/.well-known/acme-challenge/` here ahead of the filter, with the
//! customer's hostname as the authority.

use crate::dns;
use crate::http::{self, Body};
use crate::store::Store;
use hyper::{Request, Response, StatusCode};

/// A token is base64url (RFC 8555 8.1); anything else is not one of ours.
fn token_ok(token: &str) -> bool {
    (1..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The authority without its port, canonical, or `None`.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    let raw = req.uri().authority().map(|a| a.host().to_string()).or_else(|| {
        let h = req.headers().get(hyper::header::HOST)?.to_str().ok()?;
        Some(
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map(|(h, _)| h)
                .unwrap_or(h)
                .to_string(),
        )
    })?;
    dns::canonical(&raw).ok()
}

/// 200 with the key authorization for a token the issuer published for
/// this very hostname while it is pending or active; 404 otherwise.
pub async fn answer<B>(store: &Store, req: &Request<B>, token: &str) -> Response<Body> {
    let Some(host) = host_of(req).filter(|_| token_ok(token)) else {
        return http::text(StatusCode::NOT_FOUND, "no such challenge\n");
    };
    match store.http_challenge(&host, token).await {
        Ok(Some(body)) => {
            tracing::info!(host, status = 200, "acme http-01");
            http::with_type(StatusCode::OK, "application/octet-stream", body)
        }
        Ok(None) => {
            tracing::info!(host, status = 404, "acme http-01");
            http::text(StatusCode::NOT_FOUND, "no such challenge\n")
        }
        Err(e) => {
            tracing::warn!(host, status = 503, error = %e, "acme http-01: store unavailable");
            http::text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_hosts() {
        assert!(token_ok("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        for bad in ["", "../v1/changes", "a b", "a%2F", &"a".repeat(129)] {
            assert!(!token_ok(bad), "{bad}");
        }
        let req = |h: &str| Request::builder().uri("/x").header("host", h).body(()).expect("request");
        assert_eq!(host_of(&req("Shop.Example:80")).as_deref(), Some("shop.example"));
        assert_eq!(host_of(&req("shop.example")).as_deref(), Some("shop.example"));
        assert_eq!(host_of(&req("1.2.3.4")), None);
        assert_eq!(host_of(&req("bad_host")), None);
    }
}
