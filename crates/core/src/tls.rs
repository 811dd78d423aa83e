//! TLS at the edge, the decisions both front ends share.
//!
//! The SNI check: a request on a TLS connection must name the host the
//! connection was opened for (its SNI), or it is answered `421 Misdirected
//! Request` (RFC 9110 §15.5.20) before any lookup. Without it, a connection
//! made for one hostname (and its certificate) could carry requests for
//! another account's site: HTTP/2 clients reuse connections across names.
//!
//! HTTP to HTTPS (`tls.redirect_http`): a plain HTTP request for a host
//! whose answer says `https` is answered `308 Permanent Redirect` to the
//! same path on `https://<host>`, except the ACME challenge path.

/// Whether a request for `host` may be served on a connection whose TLS
/// SNI is `sni`. `host` is a normalized authority (`authority::normalize`:
/// lower case, no port, no trailing dot); the SNI is compared as the
/// authority is normalized: case ignored, one trailing dot ignored. An SNI
/// that is not a host name (junk bytes, longer than 253 bytes, a port)
/// never equals a normalized authority, so it never matches.
pub fn sni_matches(sni: &[u8], host: &str) -> bool {
    let sni = sni.strip_suffix(b".").unwrap_or(sni);
    sni.eq_ignore_ascii_case(host.as_bytes())
}

/// Whether a request for `host` (normalized) is misdirected: the
/// connection has an SNI (`None` or empty: plain HTTP, or TLS without SNI)
/// and it names another host.
pub fn misdirected(sni: Option<&[u8]>, host: &str) -> bool {
    match sni {
        Some(sni) if !sni.is_empty() => !sni_matches(sni, host),
        _ => false,
    }
}

/// Where a CA fetches an ACME HTTP-01 challenge, over plain HTTP (RFC 8555
/// §8.3): never redirected, whatever the host's answer (the certificate
/// being issued or renewed is the one HTTPS would need).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// Whether a request came over plain HTTP: its downstream connection has
/// no TLS (`tls_version`, Envoy's `connection.tls_version`: absent or empty)
/// and its `:scheme` is not `https`. Both must say so: behind a load
/// balancer that terminates TLS, the connection to Envoy is always plain
/// and only `:scheme` (which Envoy takes from a trusted
/// `x-forwarded-proto`) tells an HTTPS request apart; on a TLS connection
/// a `:scheme` of `http` is the client's own word, and a redirect would
/// send it back where it already is. A request either signal calls HTTPS
/// is never redirected: no redirect loop either way.
pub fn plain_http(tls_version: Option<&[u8]>, scheme: Option<&[u8]>) -> bool {
    tls_version.is_none_or(<[u8]>::is_empty) && !scheme.is_some_and(|s| s.eq_ignore_ascii_case(b"https"))
}

/// The `location` of the 308 for a plain HTTP request for `host` (a
/// normalized authority: no port, so HTTPS is on its default port) with
/// `:path` `path`: `https://<host><path>`, the path and query kept byte for
/// byte, except bytes outside visible ASCII, percent-encoded so that the
/// header stays one clean line. `None` (not redirected) for the ACME
/// challenge path, whatever its case, and for a path not in origin form
/// (`*` of `OPTIONS *`, none at all). A path starting with `//` cannot
/// lead elsewhere: the scheme and host come first.
pub fn https_location(host: &str, path: &[u8]) -> Option<String> {
    if path.first() != Some(&b'/') || acme_challenge(path) {
        return None;
    }
    let mut out = String::with_capacity(8 + host.len() + path.len());
    out.push_str("https://");
    out.push_str(host);
    for &b in path {
        if (0x21..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    Some(out)
}

/// `path` is the ACME challenge directory or under it (ASCII case ignored,
/// with or without its trailing slash, a query or not).
fn acme_challenge(path: &[u8]) -> bool {
    let dir = ACME_CHALLENGE_PATH.trim_end_matches('/').as_bytes();
    path.get(..dir.len()).is_some_and(|p| p.eq_ignore_ascii_case(dir))
        && matches!(path.get(dir.len()), None | Some(b'/' | b'?'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::{normalize, Authority};

    /// The check as a front end makes it: the authority normalized first.
    fn check(sni: Option<&str>, authority: &str) -> bool {
        let host = match normalize(authority.as_bytes().to_vec()).expect("a valid authority") {
            Authority::Name(h) | Authority::IpLiteral(h) => h,
        };
        misdirected(sni.map(str::as_bytes), &host)
    }

    #[test]
    fn the_same_host_passes_after_normalization() {
        assert!(!check(Some("a.example"), "a.example"));
        assert!(!check(Some("a.example"), "A.Example:443"));
        assert!(!check(Some("A.EXAMPLE"), "a.example"));
        assert!(!check(Some("a.example."), "a.example"));
        assert!(!check(Some("a.example"), "a.example.:8443"));
        assert!(!check(Some("localhost"), "localhost"));
    }

    #[test]
    fn another_host_is_misdirected() {
        assert!(check(Some("a.example"), "b.example"));
        assert!(check(Some("a.example"), "sub.a.example"));
        assert!(check(Some("sub.a.example"), "a.example"));
        assert!(check(Some("a.example"), "a.example.com"));
        assert!(check(Some("a.example"), "192.0.2.1"));
        assert!(check(Some("a.example"), "[::1]:443"));
    }

    #[test]
    fn no_sni_is_not_checked() {
        assert!(!check(None, "b.example"));
        assert!(!check(Some(""), "b.example"));
    }

    #[test]
    fn junk_sni_never_matches() {
        // Two trailing dots, a port, a wildcard, bytes that are not a name.
        assert!(check(Some("a.example.."), "a.example"));
        assert!(check(Some("a.example:443"), "a.example"));
        assert!(check(Some("*.example"), "a.example"));
        assert!(check(Some("."), "a.example"));
        assert!(misdirected(Some(b"a.example\0"), "a.example"));
        assert!(misdirected(Some(&[0xff, 0xfe]), "a.example"));
        assert!(misdirected(Some("ä.example".as_bytes()), "a.example"));
        // Longer than a name can be: it never equals a normalized host,
        // even one that is a prefix of it.
        let label = "a".repeat(63);
        let host = format!("{0}.{0}.{0}.{1}", label, "b".repeat(61));
        assert_eq!(host.len(), 253);
        assert!(!misdirected(Some(host.as_bytes()), &host));
        assert!(misdirected(Some(format!("{host}x").as_bytes()), &host));
        assert!(misdirected(Some(&vec![b'a'; 100_000]), &host));
    }

    #[test]
    fn any_bytes_are_answered_without_panic() {
        for len in [0usize, 1, 2, 253, 254, 255, 4096] {
            for b in [0u8, b'.', b'A', 0x80, 0xff] {
                let sni = vec![b; len];
                let _ = misdirected(Some(&sni), "a.example");
                let _ = misdirected(Some(&sni), "");
            }
        }
    }

    #[test]
    fn plain_http_needs_both_signals() {
        assert!(plain_http(None, Some(b"http")));
        assert!(plain_http(Some(b""), Some(b"http")));
        assert!(plain_http(None, None), "no :scheme: nothing says HTTPS");
        // TLS on the connection, whatever the scheme says.
        assert!(!plain_http(Some(b"TLSv1.3"), Some(b"http")));
        assert!(!plain_http(Some(b"TLSv1.2"), None));
        // A TLS-terminating load balancer's request: plain to Envoy, https by its scheme.
        assert!(!plain_http(None, Some(b"https")));
        assert!(!plain_http(None, Some(b"HTTPS")));
        assert!(plain_http(None, Some(b"junk")));
    }

    #[test]
    fn the_location_keeps_path_and_query() {
        let at = |path: &str| https_location("shop.customer.example", path.as_bytes());
        assert_eq!(at("/").as_deref(), Some("https://shop.customer.example/"));
        assert_eq!(at("/a/b?x=1&y=%20z#f").as_deref(), Some("https://shop.customer.example/a/b?x=1&y=%20z#f"));
        assert_eq!(at("//evil.example/x").as_deref(), Some("https://shop.customer.example//evil.example/x"));
        assert_eq!(at("/.well-known/other").as_deref(), Some("https://shop.customer.example/.well-known/other"));
        assert_eq!(
            at("/.well-known/acme-challengex/t").as_deref(),
            Some("https://shop.customer.example/.well-known/acme-challengex/t")
        );
        // Bytes that do not belong in a header line are percent-encoded.
        assert_eq!(
            https_location("h.example", b"/a b\r\n\x00\x7f\xc3\xa4").as_deref(),
            Some("https://h.example/a%20b%0D%0A%00%7F%C3%A4")
        );
    }

    #[test]
    fn acme_and_odd_paths_are_not_redirected() {
        for path in [
            "/.well-known/acme-challenge/token-1",
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge",
            "/.well-known/acme-challenge?x",
            "/.Well-Known/ACME-Challenge/t",
            "*",
            "",
            "shop.customer.example/",
            "https://shop.customer.example/",
        ] {
            assert_eq!(https_location("shop.customer.example", path.as_bytes()), None, "{path:?}");
        }
    }

    #[test]
    fn any_path_bytes_make_a_clean_header_or_none() {
        for len in [0usize, 1, 2, 30, 4096] {
            for b in [0u8, b'/', b'\r', b'\n', b' ', 0x7f, 0x80, 0xff] {
                let mut path = vec![b; len];
                if let Some(p) = path.first_mut() {
                    *p = b'/';
                }
                let Some(loc) = https_location("h.example", &path) else { continue };
                assert!(loc.starts_with("https://h.example/"), "{loc}");
                assert!(loc.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{loc:?}");
            }
        }
    }
}
