//! What core reads of a request, and the rules for reading it: each read
//! is a host call, so each is made only where a decision needs it.

use crate::accept::{self, Format};
use crate::authority::{self, Authority};
use crate::config::Config;
use crate::host::Host;
use crate::page::Problem;
use crate::policy;
use crate::request::{self, Asker};
use crate::respond::Reply;
use crate::tls;
use crate::verdict::ErrorCode;

/// A request's headers and connection, as the front end reads them.
pub trait Incoming {
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// The connection's TLS version: `Some(None)` on plain HTTP, `None`
    /// when it could not be read.
    fn tls_version(&self) -> Option<Option<Vec<u8>>>;
    /// The connection's SNI; `None` on plain HTTP and on TLS without SNI.
    fn server_name(&self) -> Option<Vec<u8>>;
}

/// The request's `:authority`, raw (empty when absent).
#[inline(always)] // on the cached path: as cheap as the host call itself
pub fn authority(r: &impl Incoming) -> Vec<u8> {
    r.header(":authority").unwrap_or_default()
}

/// The SNI to check the authority against, read only when the 421 check is on.
#[inline(always)]
pub fn sni(cfg: &Config, r: &impl Incoming) -> Option<Vec<u8>> {
    if cfg.require_sni_match {
        r.server_name()
    } else {
        None
    }
}

/// The page format the request asks for.
pub fn format(r: &impl Incoming) -> Format {
    accept::negotiate(r.header("accept").as_deref())
}

/// The request's `x-request-id`, if fit to log and forward.
pub fn request_id(r: &impl Incoming) -> Option<String> {
    r.header("x-request-id").and_then(policy::request_id)
}

/// Where a plain HTTP request for `host` (normalized) would be redirected
/// to HTTPS (`tls::https_location`); `None` when the request came over
/// HTTPS (TLS on the connection, or `:scheme` https) or its path is not
/// redirected (the ACME challenge path). A failed read of the TLS version
/// is no answer: a redirect could loop, none costs nothing.
pub fn https_location(r: &impl Incoming, host: &str) -> Option<String> {
    let tls_version = r.tls_version()?;
    if !tls::plain_http(tls_version.as_deref(), r.header(":scheme").as_deref()) {
        return None;
    }
    tls::https_location(host, &r.header(":path")?)
}

/// A request checked before the cache: its normalized host, or the page
/// that answers it (400 for a malformed authority, 421 for another host
/// than the SNI, 1003 for an IP literal).
pub fn admit(
    cfg: &Config,
    raw: Vec<u8>,
    sni: Option<&[u8]>,
    r: &impl Incoming,
    h: &mut impl Host,
) -> Result<String, Reply> {
    let (host, ip_literal) = match authority::normalize(raw) {
        Ok(Authority::Name(host)) => (host, false),
        Ok(Authority::IpLiteral(ip)) => (ip, true),
        Err(e) => return Err(request::bad_request(cfg, e.reason(), h)),
    };
    let problem = if tls::misdirected(sni, &host) {
        Problem::Misdirected
    } else if ip_literal {
        Problem::Code(ErrorCode::DirectIp)
    } else {
        return Ok(host);
    };
    let rid = request_id(r);
    Err(request::deny(cfg, problem, Asker { host: &host, format: format(r), request_id: rid.as_deref() }, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::Fake;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Req {
        headers: HashMap<&'static str, &'static str>,
        tls: Option<Option<Vec<u8>>>,
    }

    impl Incoming for Req {
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            self.headers.get(name).map(|v| v.as_bytes().to_vec())
        }
        fn tls_version(&self) -> Option<Option<Vec<u8>>> {
            self.tls.clone()
        }
        fn server_name(&self) -> Option<Vec<u8>> {
            None
        }
    }

    fn cfg() -> Config {
        Config::parse(br#"{"lookup": {"cluster": "lookup"}}"#).expect("config")
    }

    #[test]
    fn admits_names_and_answers_the_rest() {
        let (c, r) = (cfg(), Req::default());
        let mut h = Fake::new(0);
        assert_eq!(admit(&c, b"Shop.Example:8080".to_vec(), None, &r, &mut h), Ok("shop.example".into()));
        let e = admit(&c, b"".to_vec(), None, &r, &mut h).expect_err("400");
        assert_eq!(e.status, 400);
        assert_eq!(h.count("cname_guard.bad_request"), 1);
        admit(&c, b"10.0.0.1".to_vec(), None, &r, &mut h).expect_err("1003");
        assert_eq!(h.count("cname_guard.denied_1003"), 1);
        let e = admit(&c, b"shop.example".to_vec(), Some(b"other.example"), &r, &mut h).expect_err("421");
        assert_eq!(e.status, 421);
        assert_eq!(h.count("cname_guard.misdirected"), 1);
    }

    #[test]
    fn https_location_only_for_plain_http() {
        let mut r = Req { tls: Some(None), ..Req::default() };
        r.headers.insert(":path", "/a?b");
        assert_eq!(https_location(&r, "h.example").as_deref(), Some("https://h.example/a?b"));
        r.headers.insert(":scheme", "https");
        assert_eq!(https_location(&r, "h.example"), None);
        r.headers.remove(":scheme");
        r.tls = None;
        assert_eq!(https_location(&r, "h.example"), None, "unreadable: no redirect");
        r.tls = Some(Some(b"TLSv1.3".to_vec()));
        assert_eq!(https_location(&r, "h.example"), None);
        r.headers.insert("x-request-id", "a b");
        assert_eq!(request_id(&r), None);
        r.headers.insert("x-request-id", "ab");
        assert_eq!(request_id(&r).as_deref(), Some("ab"));
    }
}
