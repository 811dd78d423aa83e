//! The local responses the filter sends: headers and body, host-independent.

use crate::accept::Format;
use crate::config::Config;
use crate::page::{self, Page, Problem, MISDIRECTED_STATUS};

/// A local response ready to hand to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sent for HEAD too: Envoy drops it and keeps its content-length.
    pub body: String,
}

const CACHE_CONTROL: &str = "private, max-age=0, no-store, no-cache, must-revalidate";

/// The page for a denial or a lookup failure, as the seed shows it.
pub fn error(cfg: &Config, problem: Problem, host: &str, ray: &str, now_secs: u64, format: Format) -> Reply {
    let status = match problem {
        Problem::Code(code) => cfg.status(code),
        Problem::Unavailable => cfg.status_on_error,
        Problem::Misdirected => MISDIRECTED_STATUS,
    };
    let page = Page { problem, host, status, ray, now_secs };
    let (content_type, body) = page::render(&page, format);
    let mut headers = vec![
        ("server".to_string(), cfg.server_header.clone()),
        (cfg.ray_header.clone(), ray.to_string()),
        ("content-type".to_string(), content_type.to_string()),
        ("cache-control".to_string(), CACHE_CONTROL.to_string()),
        ("x-frame-options".to_string(), "SAMEORIGIN".to_string()),
        ("referrer-policy".to_string(), "same-origin".to_string()),
    ];
    if problem == Problem::Unavailable {
        headers.push(("retry-after".to_string(), cfg.retry_after_seconds.to_string()));
    }
    Reply { status, headers, body }
}

/// The status of the redirect to HTTPS: 308 Permanent Redirect (RFC 9110
/// §15.4.9), which, unlike 301, keeps the method and body: a POST is sent
/// again as a POST over HTTPS.
pub const REDIRECT_STATUS: u16 = 308;

/// The redirect of a plain HTTP request to `location` (`tls::https_location`):
/// no body, the `server` and ray headers of every local response, and the
/// error pages' `cache-control`, so that no browser keeps it: it holds only
/// while the host's certificate is in service, which can end at any time
/// (a 308 without caching headers may be kept indefinitely).
pub fn redirect(cfg: &Config, location: &str, ray: &str) -> Reply {
    Reply {
        status: REDIRECT_STATUS,
        headers: vec![
            ("location".to_string(), location.to_string()),
            ("server".to_string(), cfg.server_header.clone()),
            (cfg.ray_header.clone(), ray.to_string()),
            ("cache-control".to_string(), CACHE_CONTROL.to_string()),
        ],
        body: String::new(),
    }
}

/// The short plain 400 for an authority that is not a hostname.
pub fn bad_request(cfg: &Config, reason: &str) -> Reply {
    Reply {
        status: 400,
        headers: vec![
            ("server".to_string(), cfg.server_header.clone()),
            ("content-type".to_string(), "text/plain; charset=UTF-8".to_string()),
            ("cache-control".to_string(), CACHE_CONTROL.to_string()),
        ],
        body: page::bad_request(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::ErrorCode;

    fn cfg() -> Config {
        Config::parse(br#"{"lookup":{"cluster":"o"},"ray":{"colo":"ARN"},"status":{"1016":502}}"#).expect("valid")
    }
    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    const HTML: Format = Format::Html;

    #[test]
    fn seed_headers() {
        let r = error(&cfg(), Problem::Code(ErrorCode::CnameCrossUser), "custom.myclientsite.com", "00ff00ff00ff00ff-ARN", 0, HTML);
        assert_eq!(r.status, 409);
        assert_eq!(header(&r, "server"), Some("cloudflare"));
        assert_eq!(header(&r, "cf-ray"), Some("00ff00ff00ff00ff-ARN"));
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=UTF-8"));
        assert_eq!(header(&r, "cache-control"), Some(CACHE_CONTROL));
        assert_eq!(header(&r, "x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(header(&r, "referrer-policy"), Some("same-origin"));
        assert_eq!(header(&r, "retry-after"), None);
        assert!(r.body.contains("Error 1014: CNAME cross-user banned"));
    }

    #[test]
    fn statuses_follow_config() {
        let r = error(&cfg(), Problem::Code(ErrorCode::OriginDns), "h", "r", 0, Format::Json);
        assert_eq!(r.status, 502);
        assert_eq!(header(&r, "content-type"), Some("application/problem+json"));
        let r = error(&cfg(), Problem::Unavailable, "h", "r", 0, HTML);
        assert_eq!(r.status, 503);
        assert_eq!(header(&r, "retry-after"), Some("5"));
    }

    #[test]
    fn misdirected_is_421_whatever_the_statuses() {
        let cfg =
            Config::parse(br#"{"lookup":{"cluster":"o"},"status_on_error":500,"status":{"1014":403}}"#).expect("valid");
        let r = error(&cfg, Problem::Misdirected, "b.example", "00ff00ff00ff00ff-EDG", 0, HTML);
        assert_eq!(r.status, 421);
        assert_eq!(header(&r, "server"), Some("cloudflare"));
        assert_eq!(header(&r, "cf-ray"), Some("00ff00ff00ff00ff-EDG"));
        assert_eq!(header(&r, "cache-control"), Some(CACHE_CONTROL));
        assert_eq!(header(&r, "retry-after"), None);
        assert!(r.body.contains("<h1>Error 421: Misdirected Request</h1>"));
    }

    #[test]
    fn redirect_is_308_without_a_body() {
        let r = redirect(&cfg(), "https://shop.customer.example/a?b=1", "00ff00ff00ff00ff-ARN");
        assert_eq!(r.status, 308);
        assert_eq!(header(&r, "location"), Some("https://shop.customer.example/a?b=1"));
        assert_eq!(header(&r, "server"), Some("cloudflare"));
        assert_eq!(header(&r, "cf-ray"), Some("00ff00ff00ff00ff-ARN"));
        assert_eq!(header(&r, "cache-control"), Some(CACHE_CONTROL));
        assert_eq!(header(&r, "content-type"), None);
        assert_eq!(r.body, "");
    }

    #[test]
    fn bad_request_is_plain() {
        let r = bad_request(&cfg(), "empty host");
        assert_eq!(r.status, 400);
        assert_eq!(header(&r, "content-type"), Some("text/plain; charset=UTF-8"));
        assert_eq!(r.body, "400 Bad Request: invalid Host header (empty host)\n");
    }
}
