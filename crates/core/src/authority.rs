//! Normalization of the request authority into the lookup key.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// What the `:authority` of a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// A normalized DNS name: lower case, no port, no trailing dot.
    Name(String),
    /// An IPv4 literal or a bracketed IPv6 literal (Error 1003), port stripped.
    IpLiteral(String),
}

/// Why an authority was refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    Empty,
    NonAscii,
    InvalidChar,
    InvalidPort,
    EmptyLabel,
    LabelTooLong,
    NameTooLong,
}

impl AuthorityError {
    pub fn reason(self) -> &'static str {
        match self {
            AuthorityError::Empty => "empty host",
            AuthorityError::NonAscii => "non-ASCII host",
            AuthorityError::InvalidChar => "invalid character in host",
            AuthorityError::InvalidPort => "invalid port",
            AuthorityError::EmptyLabel => "empty label in host",
            AuthorityError::LabelTooLong => "label longer than 63 characters",
            AuthorityError::NameTooLong => "host longer than 253 characters",
        }
    }
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Normalizes a raw authority in place: lower case, port stripped, one
/// trailing dot stripped. Works on the buffer the host handed us so the
/// cached path allocates nothing more.
pub fn normalize(mut raw: Vec<u8>) -> Result<Authority, AuthorityError> {
    if raw.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if !raw.is_ascii() {
        return Err(AuthorityError::NonAscii);
    }
    if raw[0] == b'[' {
        return bracketed(&raw);
    }
    if let Some(colon) = raw.iter().position(|&b| b == b':') {
        if !valid_port(&raw[colon + 1..]) {
            return Err(AuthorityError::InvalidPort);
        }
        raw.truncate(colon);
    }
    if raw.last() == Some(&b'.') {
        raw.pop();
    }
    if raw.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if raw.len() > MAX_NAME {
        return Err(AuthorityError::NameTooLong);
    }
    raw.make_ascii_lowercase();
    let mut label = 0usize;
    for &b in &raw {
        match b {
            b'.' => {
                if label == 0 {
                    return Err(AuthorityError::EmptyLabel);
                }
                label = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {
                label += 1;
                if label > MAX_LABEL {
                    return Err(AuthorityError::LabelTooLong);
                }
            }
            _ => return Err(AuthorityError::InvalidChar),
        }
    }
    if label == 0 {
        return Err(AuthorityError::EmptyLabel);
    }
    let name = String::from_utf8(raw).map_err(|_| AuthorityError::NonAscii)?;
    // A numeric last label is never a hostname: browsers read it as IPv4.
    let last = name.rsplit('.').next().unwrap_or("");
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return match name.parse::<Ipv4Addr>() {
            Ok(_) => Ok(Authority::IpLiteral(name)),
            Err(_) => Err(AuthorityError::InvalidChar),
        };
    }
    Ok(Authority::Name(name))
}

fn bracketed(raw: &[u8]) -> Result<Authority, AuthorityError> {
    let close = raw
        .iter()
        .position(|&b| b == b']')
        .ok_or(AuthorityError::InvalidChar)?;
    let rest = &raw[close + 1..];
    if !(rest.is_empty() || (rest[0] == b':' && valid_port(&rest[1..]))) {
        return Err(AuthorityError::InvalidPort);
    }
    let inner = std::str::from_utf8(&raw[1..close]).map_err(|_| AuthorityError::NonAscii)?;
    match inner.parse::<Ipv6Addr>() {
        Ok(ip) => Ok(Authority::IpLiteral(format!("[{ip}]"))),
        Err(_) => Err(AuthorityError::InvalidChar),
    }
}

/// An empty port is allowed (`host:` is legal in RFC 3986); otherwise 1-5 digits up to 65535.
fn valid_port(port: &[u8]) -> bool {
    if port.is_empty() {
        return true;
    }
    if port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<Authority, AuthorityError> {
        normalize(s.as_bytes().to_vec())
    }
    fn name(s: &str) -> Result<Authority, AuthorityError> {
        Ok(Authority::Name(s.to_string()))
    }

    #[test]
    fn lowercases_strips_port_and_one_trailing_dot() {
        assert_eq!(norm("Custom.MyClientSite.com"), name("custom.myclientsite.com"));
        assert_eq!(norm("example.com:8080"), name("example.com"));
        assert_eq!(norm("example.com."), name("example.com"));
        assert_eq!(norm("EXAMPLE.com.:443"), name("example.com"));
        assert_eq!(norm("localhost"), name("localhost"));
        assert_eq!(norm("a-b.c-d.example:"), name("a-b.c-d.example"));
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(norm(""), Err(AuthorityError::Empty));
        assert_eq!(norm("."), Err(AuthorityError::Empty));
        assert_eq!(norm(":80"), Err(AuthorityError::Empty));
        assert_eq!(norm("example.com.."), Err(AuthorityError::EmptyLabel));
        assert_eq!(norm("a..b"), Err(AuthorityError::EmptyLabel));
        assert_eq!(norm(".a.b"), Err(AuthorityError::EmptyLabel));
        assert_eq!(norm("exämple.com"), Err(AuthorityError::NonAscii));
        assert_eq!(norm("ex_ample.com"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("ex ample.com"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("<script>.com"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("a.com\r\nx: y"), Err(AuthorityError::InvalidPort));
        assert_eq!(norm("a.com\r\n"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("example.com:http"), Err(AuthorityError::InvalidPort));
        assert_eq!(norm("example.com:65536"), Err(AuthorityError::InvalidPort));
        assert_eq!(norm("user@example.com"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("::1"), Err(AuthorityError::InvalidPort));
    }

    #[test]
    fn label_and_name_limits() {
        let label63 = "a".repeat(63);
        assert_eq!(norm(&format!("{label63}.com")), name(&format!("{label63}.com")));
        assert_eq!(norm(&format!("{}a.com", label63)), Err(AuthorityError::LabelTooLong));
        let long = format!("{0}.{0}.{0}.{1}", label63, "b".repeat(61)); // 253
        assert_eq!(long.len(), 253);
        assert_eq!(norm(&long), name(&long));
        assert_eq!(norm(&format!("{long}.")), name(&long));
        assert_eq!(norm(&format!("x{long}")), Err(AuthorityError::NameTooLong));
    }

    #[test]
    fn ip_literals() {
        let ip = |s: &str| Ok(Authority::IpLiteral(s.to_string()));
        assert_eq!(norm("192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(norm("192.0.2.1:8080"), ip("192.0.2.1"));
        assert_eq!(norm("[::1]"), ip("[::1]"));
        assert_eq!(norm("[2001:DB8:0::1]:443"), ip("[2001:db8::1]"));
        assert_eq!(norm("[nonsense]"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("[::1]x"), Err(AuthorityError::InvalidPort));
        assert_eq!(norm("[::1"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("1.2.3.4.5"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("300.1.1.1"), Err(AuthorityError::InvalidChar));
        assert_eq!(norm("1.2.3.4a"), name("1.2.3.4a"));
    }
}
