//! DNS names: the one rule the registry file, the `host` query parameter,
//! the ext_authz `host` header and every name in a DNS answer are checked
//! against, in one normalized form.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

pub const MAX_NAME: usize = 253;
pub const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    EmptyLabel,
    LabelTooLong,
    Uppercase,
    BadChar,
    /// The last label is all digits: an IPv4 address or nonsense, not a name.
    NumericTld,
    Wildcard,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty name",
            NameError::TooLong => "name longer than 253 characters",
            NameError::EmptyLabel => "empty label",
            NameError::LabelTooLong => "label longer than 63 characters",
            NameError::Uppercase => "must be lowercase",
            NameError::BadChar => "labels may only hold a-z, 0-9 and '-'",
            NameError::NumericTld => "last label is all digits (an IP address is not a host name)",
            NameError::Wildcard => "a wildcard '*.' is not a host name",
        })
    }
}

impl std::error::Error for NameError {}

/// Checks a lowercase DNS name: labels of 1..=63 of `a-z0-9-`, at most 253
/// characters, no trailing dot, and a last label that is not all digits.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if name.starts_with("*.") {
        return Err(NameError::Wildcard);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(NameError::LabelTooLong);
        }
        for b in label.bytes() {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' => {}
                b'A'..=b'Z' => return Err(NameError::Uppercase),
                _ => return Err(NameError::BadChar),
            }
        }
    }
    let last = name.rsplit('.').next().unwrap_or("");
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NameError::NumericTld);
    }
    Ok(())
}

/// `name` and each of its parents, on label boundaries, longest first:
/// `a.b.c`, `b.c`, `c`.
pub fn self_and_parents(name: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(name);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.split_once('.').map(|(_, rest)| rest);
        Some(current)
    })
}

/// A wire name made canonical: ASCII-lowercased, one trailing dot removed,
/// then checked.
pub fn canonical(raw: &str) -> Result<String, NameError> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    check_name(&name)?;
    Ok(name)
}

/// What a `Host` header (or `:authority`) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    Name(String),
    Ip(IpAddr),
    Invalid(&'static str),
}

/// Reads a `Host` header the way the filter does: lower-case it, strip the
/// port and one trailing dot; IP literals are told apart from names.
pub fn parse_host_header(raw: &str) -> HostHeader {
    if raw.is_empty() {
        return HostHeader::Invalid("empty host");
    }
    if !raw.is_ascii() {
        return HostHeader::Invalid("non-ASCII host");
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return HostHeader::Invalid("unclosed '[' in host");
        };
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return HostHeader::Invalid("invalid port");
        }
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => HostHeader::Ip(IpAddr::V6(ip)),
            Err(_) => HostHeader::Invalid("invalid IPv6 literal"),
        };
    }
    let host = match raw.split_once(':') {
        Some((host, port)) if valid_port(port) => host,
        Some(_) => return HostHeader::Invalid("invalid port"),
        None => raw,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return HostHeader::Ip(ip);
    }
    match canonical(host) {
        Ok(name) => HostHeader::Name(name),
        Err(NameError::NumericTld) => HostHeader::Invalid("numeric host that is not an IPv4 address"),
        Err(_) => HostHeader::Invalid("not a DNS name"),
    }
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "example.com", "a-b.c0.example", "xn--bcher-kva.example", &format!("{}.x", "a".repeat(63))] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = vec!["a".repeat(60); 5].join(".");
        for (bad, err) in [
            ("", NameError::Empty),
            ("a..b", NameError::EmptyLabel),
            ("a.", NameError::EmptyLabel),
            (".a", NameError::EmptyLabel),
            ("Example.com", NameError::Uppercase),
            ("exa_mple.com", NameError::BadChar),
            ("a b.com", NameError::BadChar),
            ("1.2.3.4", NameError::NumericTld),
            ("*.a.com", NameError::Wildcard),
            ("a.*.com", NameError::BadChar),
            (long.as_str(), NameError::TooLong),
        ] {
            assert_eq!(check_name(bad), Err(err), "{bad:?}");
        }
        assert_eq!(check_name(&format!("{}.x", "a".repeat(64))), Err(NameError::LabelTooLong));
    }

    #[test]
    fn parents() {
        let all: Vec<&str> = self_and_parents("a.b.c").collect();
        assert_eq!(all, ["a.b.c", "b.c", "c"]);
        assert_eq!(self_and_parents("c").collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("Shop.Example.COM.").as_deref(), Ok("shop.example.com"));
        assert!(canonical("a..").is_err());
        assert!(canonical("").is_err());
    }

    #[test]
    fn host_headers() {
        let name = |s: &str| HostHeader::Name(s.to_string());
        assert_eq!(parse_host_header("Shop.Example.com"), name("shop.example.com"));
        assert_eq!(parse_host_header("shop.example.com:8443"), name("shop.example.com"));
        assert_eq!(parse_host_header("SHOP.example.com.:80"), name("shop.example.com"));
        assert!(matches!(parse_host_header("192.0.2.7:8080"), HostHeader::Ip(_)));
        assert!(matches!(parse_host_header("[::1]:443"), HostHeader::Ip(_)));
        assert!(matches!(parse_host_header("[2001:db8::1]"), HostHeader::Ip(_)));
        for bad in [
            "",
            "a..b",
            "example.com:http",
            "example.com:",
            "example.com:99999",
            "bücher.example",
            "1.2.3.4.5",
            "[::1",
            "[zz]",
        ] {
            assert!(matches!(parse_host_header(bad), HostHeader::Invalid(_)), "{bad:?}");
        }
    }
}
