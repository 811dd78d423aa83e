//! Lookup contract v1: the request we send and how we read the answer.

use crate::json::{self, Value};
use std::fmt;

/// Answers bigger than this are failures, read no further.
pub const MAX_BODY: usize = 64 * 1024;
const MAX_ACCOUNT: usize = 128;

/// The facts of a 200 answer that the verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub account: Option<String>,
    pub target_account: Option<String>,
    pub custom_hostname: Option<String>,
    pub origin_resolves: bool,
    pub suspended: bool,
    pub ttl: Option<u64>,
    /// `https` (optional, default false): the host has a certificate in
    /// service, so plain HTTP may be redirected to it (`tls.redirect_http`).
    pub https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a valid record.
    Found(Record),
    /// 404: the host is unknown to the platform.
    Unknown,
}

/// Why a lookup counts as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// Timeout, reset, unknown cluster: the host gave us no response.
    NoResponse,
    /// The callout could not be dispatched at all.
    Dispatch,
    Status(u16),
    TooLarge,
    Malformed(String),
    HostMismatch,
    BadAccount,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoResponse => f.write_str("no response (timeout, reset or no healthy upstream)"),
            LookupError::Dispatch => f.write_str("callout could not be dispatched"),
            LookupError::Status(s) => write!(f, "unexpected status {s}"),
            LookupError::TooLarge => write!(f, "body over {MAX_BODY} bytes"),
            LookupError::Malformed(e) => write!(f, "malformed body: {e}"),
            LookupError::HostMismatch => f.write_str("answer is for another host"),
            LookupError::BadAccount => f.write_str("account identifier outside the safe alphabet"),
        }
    }
}

/// The path and query of the callout for `host` (already a safe DNS name).
pub fn request_path(path: &str, host: &str) -> String {
    let mut p = String::with_capacity(path.len() + host.len() + 6);
    p.push_str(path);
    p.push_str("?host=");
    p.push_str(host);
    p
}

/// The headers of every call to the lookup service, lookup and feed poll
/// alike, in both builds: Envoy's `dispatch_http_call` and the dynamic
/// module's `http_callout` both require `:method`, `:path` and the
/// authority (`:authority`, which HTTP/1.1 sends as `Host`).
pub fn request_headers<'a>(
    authority: &'a str,
    path: &'a str,
    request_id: Option<&'a str>,
) -> Vec<(&'static str, &'a str)> {
    let mut h = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", authority),
        (":scheme", "http"),
        ("accept", "application/json"),
    ];
    if let Some(id) = request_id {
        h.push(("x-request-id", id));
    }
    h
}

/// Reads a callout answer. `status` is `None` when the host delivered no
/// response headers (Envoy's way of saying timeout, reset or no upstream).
pub fn parse_answer(status: Option<&str>, body_len: usize, body: &[u8], asked: &str) -> Result<Answer, LookupError> {
    let status = status.ok_or(LookupError::NoResponse)?;
    let code: u16 = status.parse().map_err(|_| LookupError::Malformed(format!("status {status:?}")))?;
    match code {
        404 => return Ok(Answer::Unknown),
        200 => {}
        other => return Err(LookupError::Status(other)),
    }
    if body_len > MAX_BODY || body.len() > MAX_BODY {
        return Err(LookupError::TooLarge);
    }
    let doc = json::parse(body).map_err(|e| LookupError::Malformed(e.to_string()))?;
    if !matches!(doc, Value::Object(_)) {
        return Err(LookupError::Malformed(format!("expected an object, found {}", doc.kind())));
    }
    let host = match doc.get("host") {
        Some(Value::String(h)) => h,
        _ => return Err(malformed("host", "a string")),
    };
    if !host.eq_ignore_ascii_case(asked) {
        return Err(LookupError::HostMismatch);
    }
    let record = Record {
        account: nullable_string(&doc, "account")?,
        target_account: nullable_string(&doc, "target_account")?,
        custom_hostname: nullable_string(&doc, "custom_hostname")?,
        origin_resolves: match doc.get("origin_resolves") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(malformed("origin_resolves", "a boolean")),
        },
        suspended: match doc.get("suspended") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(malformed("suspended", "a boolean")),
        },
        ttl: match doc.get("ttl") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| malformed("ttl", "a non-negative integer"))?),
        },
        https: match doc.get("https") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(malformed("https", "a boolean")),
        },
    };
    nullable_string(&doc, "cname_target")?;
    for id in [&record.account, &record.target_account].into_iter().flatten() {
        if !safe_account(id) {
            return Err(LookupError::BadAccount);
        }
    }
    Ok(Answer::Found(record))
}

fn malformed(field: &str, expected: &str) -> LookupError {
    LookupError::Malformed(format!("`{field}` must be {expected}"))
}

/// A string field that may be null or missing (both read as null).
fn nullable_string(doc: &Value, field: &str) -> Result<Option<String>, LookupError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(field, "a string or null")),
    }
}

/// Account identifiers become a request header: 1-128 of `A-Za-z0-9._:-`.
pub fn safe_account(id: &str) -> bool {
    (1..=MAX_ACCOUNT).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "custom.myclientsite.com";
    const SEED: &str = r#"{"host": "custom.myclientsite.com", "account": "acct-1", "cname_target": "edge.saas.example",
        "target_account": "acct-2", "custom_hostname": null, "origin_resolves": true, "suspended": false, "ttl": 60}"#;

    fn parse(status: &str, body: &str) -> Result<Answer, LookupError> {
        parse_answer(Some(status), body.len(), body.as_bytes(), HOST)
    }

    #[test]
    fn reads_a_full_record() {
        let Ok(Answer::Found(r)) = parse("200", SEED) else { panic!("not found") };
        assert_eq!(r.account.as_deref(), Some("acct-1"));
        assert_eq!(r.target_account.as_deref(), Some("acct-2"));
        assert_eq!(r.custom_hostname, None);
        assert!(r.origin_resolves && !r.suspended);
        assert_eq!(r.ttl, Some(60));
        assert!(!r.https, "absent: no certificate in service");
    }

    #[test]
    fn reads_https() {
        let body = SEED.replace("\"ttl\": 60", "\"ttl\": 60, \"https\": true");
        let Ok(Answer::Found(r)) = parse("200", &body) else { panic!("not found") };
        assert!(r.https);
        let body = SEED.replace("\"ttl\": 60", "\"ttl\": 60, \"https\": false");
        let Ok(Answer::Found(r)) = parse("200", &body) else { panic!("not found") };
        assert!(!r.https);
        for bad in ["null", "\"true\"", "1", "[]"] {
            let body = SEED.replace("\"ttl\": 60", &format!("\"ttl\": 60, \"https\": {bad}"));
            assert!(matches!(parse("200", &body), Err(LookupError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn optional_fields_default() {
        let body = r#"{"host":"custom.myclientsite.com","account":"a","cname_target":null,"target_account":null,"custom_hostname":null,"origin_resolves":false,"extra":[1]}"#;
        let Ok(Answer::Found(r)) = parse("200", body) else { panic!() };
        assert!(!r.suspended && !r.origin_resolves);
        assert_eq!(r.ttl, None);
    }

    #[test]
    fn statuses() {
        assert_eq!(parse("404", "whatever"), Ok(Answer::Unknown));
        assert_eq!(parse("500", SEED), Err(LookupError::Status(500)));
        assert_eq!(parse("302", SEED), Err(LookupError::Status(302)));
        assert!(matches!(parse("2x0", SEED), Err(LookupError::Malformed(_))));
        assert_eq!(parse_answer(None, 0, b"", HOST), Err(LookupError::NoResponse));
    }

    #[test]
    fn malformed_bodies_fail() {
        for body in [
            "",
            "null",
            "[]",
            "{}",
            "not json",
            r#"{"host":"custom.myclientsite.com"}"#,
            r#"{"host":"custom.myclientsite.com","origin_resolves":"yes"}"#,
            r#"{"host":"custom.myclientsite.com","origin_resolves":true,"account":5}"#,
            r#"{"host":"custom.myclientsite.com","origin_resolves":true,"ttl":-1}"#,
            r#"{"host":"custom.myclientsite.com","origin_resolves":true,"suspended":null}"#,
        ] {
            assert!(matches!(parse("200", body), Err(LookupError::Malformed(_))), "{body}");
        }
    }

    #[test]
    fn oversized_and_mismatched() {
        let big = format!("{},\"pad\":\"{}\"}}", &SEED[..SEED.len() - 1], "x".repeat(MAX_BODY));
        assert_eq!(parse("200", &big), Err(LookupError::TooLarge));
        assert_eq!(parse_answer(Some("200"), MAX_BODY + 1, b"{}", HOST), Err(LookupError::TooLarge));
        let other = SEED.replace("custom.myclientsite.com", "other.example");
        assert_eq!(parse("200", &other), Err(LookupError::HostMismatch));
    }

    #[test]
    fn unsafe_accounts_fail() {
        for bad in ["acct\r\nx-evil: 1", "", "a b", "acct/1", "ä", &"a".repeat(129)] {
            let body = SEED.replace("acct-2", &bad.replace('\r', "\\r").replace('\n', "\\n"));
            assert_eq!(parse("200", &body), Err(LookupError::BadAccount), "{bad:?}");
        }
        assert!(safe_account("Acct_1.eu:prod-2"));
        assert!(safe_account(&"a".repeat(128)));
    }

    #[test]
    fn request_path_has_host_query() {
        assert_eq!(request_path("/v1/ownership", HOST), "/v1/ownership?host=custom.myclientsite.com");
    }
}
