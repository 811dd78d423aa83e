//! The demo origin: echoes what reached it, so end-to-end tests can check what
//! Envoy forwarded upstream.

use crate::ext_authz::ACCOUNT_HEADER;
use crate::http::{self, Body};
use crate::server::Handler;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

/// Request bodies are read (so the connection can be reused) up to this size.
const MAX_BODY: usize = 8 * 1024 * 1024;

pub struct Origin {
    pub name: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Echo {
    pub origin: String,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub account: Option<String>,
    pub account_headers: usize,
}

impl Handler for Origin {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == "/healthz" {
            return http::text(StatusCode::OK, "ok\n");
        }
        let echo = echo(&self.name, &req);
        // Drain the body; a client that sends too much just loses keep-alive.
        let _ = Limited::new(req.into_body(), MAX_BODY).collect().await;
        http::json(StatusCode::OK, &echo)
    }
}

pub fn echo<B>(name: &str, req: &Request<B>) -> Echo {
    let text = |v: &hyper::header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let accounts = req.headers().get_all(ACCOUNT_HEADER);
    Echo {
        origin: name.to_string(),
        method: req.method().to_string(),
        path: req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.to_string()),
        host: req.headers().get(HOST).map(text).or_else(|| req.uri().authority().map(|a| a.to_string())),
        account: accounts.iter().next().map(text),
        account_headers: accounts.iter().count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_host_path_and_account_headers() {
        let req = Request::builder()
            .method("POST")
            .uri("/a/b?c=d")
            .header("host", "shop.example")
            .header(ACCOUNT_HEADER, "acct-1")
            .header("X-Cname-Guard-Account", "acct-2")
            .body(())
            .expect("request");
        let e = echo("o1", &req);
        assert_eq!(
            e,
            Echo {
                origin: "o1".into(),
                method: "POST".into(),
                path: "/a/b?c=d".into(),
                host: Some("shop.example".into()),
                account: Some("acct-1".into()),
                account_headers: 2,
            }
        );
        let req = Request::builder().uri("/").body(()).expect("request");
        let e = echo("o1", &req);
        assert_eq!((e.account, e.account_headers, e.host), (None, 0, None));
    }
}
