//! Plugin configuration: parsed and validated once, in `on_configure`.

use crate::json::{self, Value};
use crate::verdict::ErrorCode;
use std::fmt;
use std::time::Duration;

/// A configuration the filter refuses, with the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key, e.g. `lookup.timeout_ms`; empty for the document.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration at `{}`: {}", self.key, self.message)
        }
    }
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    #[default]
    Deny,
    Allow,
}

/// `cache.*`: how long answers are kept, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl_seconds: u32,
    pub negative_ttl_seconds: u32,
    pub failure_ttl_seconds: u32,
    pub stale_if_error_seconds: u32,
    pub max_entries: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl_seconds: 60,
            negative_ttl_seconds: 30,
            failure_ttl_seconds: 0,
            stale_if_error_seconds: 0,
            max_entries: 10_000,
        }
    }
}

/// `changes.*`: the lookup service's change feed (contract v1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesConfig {
    pub path: String,
    /// 0: no feed, entries live to their TTL.
    pub interval_ms: u32,
    /// The long poll's `wait`; 0 asks and returns at once.
    pub wait_seconds: u32,
    pub max_backoff_ms: u32,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig { path: "/v1/changes".into(), interval_ms: 1000, wait_seconds: 0, max_backoff_ms: 30_000 }
    }
}

impl ChangesConfig {
    pub fn enabled(&self) -> bool {
        self.interval_ms > 0
    }
}

/// The ray-id suffix when `ray.colo` is not set: three capital letters, the
/// shape of Cloudflare's location codes (`7d8e9f0a1b2c3456-ARN`), naming no
/// real location.
/// `lookup.max_in_flight` by default (docs/configuration.md says why).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 256;

pub const DEFAULT_COLO: &str = "EDG";

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout: Duration,
    /// `lookup.max_in_flight`: lookups out at once per Envoy (`inflight`).
    pub max_in_flight: u32,
    pub cache: CacheConfig,
    pub changes: ChangesConfig,
    pub failure_mode: FailureMode,
    pub status_on_error: u16,
    pub retry_after_seconds: u32,
    pub ray_header: String,
    pub colo: String,
    pub server_header: String,
    pub account_header: String,
    /// `tls.require_sni_match`: answer 421 when a TLS request's authority
    /// names another host than the connection's SNI (`crate::tls`).
    pub require_sni_match: bool,
    /// `tls.redirect_http`: answer plain HTTP for a host whose answer says
    /// `https` with a 308 to HTTPS (`crate::tls::https_location`).
    pub redirect_http: bool,
    statuses: [u16; ErrorCode::ALL.len()],
}

/// One JSON object of the configuration, with its path for error messages.
struct Section<'a> {
    path: String,
    members: &'a [(String, Value)],
}

impl<'a> Section<'a> {
    /// `value` as an object whose keys are all in `known`.
    fn new(value: &'a Value, path: String, known: &[&str]) -> Result<Section<'a>, ConfigError> {
        let Value::Object(members) = value else {
            return Err(err(&path, format!("expected an object, found {}", value.kind())));
        };
        let section = Section { path, members };
        if let Some((key, _)) = members.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            let expected = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            return Err(err(&section.key(key), format!("unknown key (expected one of {expected})")));
        }
        Ok(section)
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn section(&self, key: &str, known: &[&str]) -> Result<Option<Section<'a>>, ConfigError> {
        self.get(key).map(|v| Section::new(v, self.key(key), known)).transpose()
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(err(&self.key(key), format!("expected a string, found {}", v.kind()))),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(err(&self.key(key), format!("expected a boolean, found {}", v.kind()))),
        }
    }

    /// An integer in `range`, or `default` when absent.
    fn uint(&self, key: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let n = v
            .as_u64()
            .ok_or_else(|| err(&self.key(key), format!("expected a non-negative integer, found {}", v.kind())))?;
        match u32::try_from(n) {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(err(&self.key(key), format!("must be between {} and {}", range.start(), range.end()))),
        }
    }
}

impl Config {
    pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
        let doc = json::parse(text).map_err(|e| err("", format!("not JSON: {e}")))?;
        let root = Section::new(
            &doc,
            String::new(),
            &[
                "lookup",
                "cache",
                "changes",
                "failure_mode",
                "status_on_error",
                "retry_after_seconds",
                "ray",
                "server_header",
                "account_header",
                "status",
                "tls",
            ],
        )?;
        let lookup = root
            .section("lookup", &["cluster", "authority", "path", "timeout_ms", "max_in_flight"])?
            .ok_or_else(|| err("lookup", "required (at least `lookup.cluster`)"))?;
        let cluster = lookup.string("cluster")?.ok_or_else(|| err("lookup.cluster", "required"))?;
        if cluster.is_empty() || !cluster.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("lookup.cluster", "must be a non-empty cluster name"));
        }
        let authority = lookup.string("authority")?.unwrap_or_else(|| cluster.clone());
        if authority.is_empty() || !authority.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("lookup.authority", "must be a non-empty host name"));
        }
        let path = lookup.string("path")?.unwrap_or_else(|| "/v1/ownership".into());
        check_path("lookup.path", &path)?;
        let timeout_ms = lookup.uint("timeout_ms", 500, 1..=60_000)?;
        // The Wasm build keeps 16 bytes a slot in one shared-data value.
        let max_in_flight = lookup.uint("max_in_flight", DEFAULT_MAX_IN_FLIGHT, 1..=4_096)?;

        const DAY: std::ops::RangeInclusive<u32> = 0..=86_400;
        let known = ["ttl_seconds", "negative_ttl_seconds", "failure_ttl_seconds", "stale_if_error_seconds", "max_entries"];
        let cache = match root.section("cache", &known)? {
            None => CacheConfig::default(),
            Some(c) => {
                let d = CacheConfig::default();
                CacheConfig {
                    ttl_seconds: c.uint("ttl_seconds", d.ttl_seconds, DAY)?,
                    negative_ttl_seconds: c.uint("negative_ttl_seconds", d.negative_ttl_seconds, DAY)?,
                    failure_ttl_seconds: c.uint("failure_ttl_seconds", d.failure_ttl_seconds, DAY)?,
                    stale_if_error_seconds: c.uint("stale_if_error_seconds", d.stale_if_error_seconds, DAY)?,
                    max_entries: c.uint("max_entries", d.max_entries, 0..=1_000_000)?,
                }
            }
        };

        let changes = match root.section("changes", &["path", "interval_ms", "wait_seconds", "max_backoff_ms"])? {
            None => ChangesConfig::default(),
            Some(c) => {
                let d = ChangesConfig::default();
                let path = c.string("path")?.unwrap_or(d.path);
                check_path("changes.path", &path)?;
                let interval_ms = c.uint("interval_ms", d.interval_ms, 0..=60_000)?;
                let max_backoff_ms = c.uint("max_backoff_ms", d.max_backoff_ms, 1_000..=600_000)?;
                if max_backoff_ms < interval_ms {
                    return Err(err("changes.max_backoff_ms", "must not be below `changes.interval_ms`"));
                }
                ChangesConfig { path, interval_ms, wait_seconds: c.uint("wait_seconds", d.wait_seconds, 0..=30)?, max_backoff_ms }
            }
        };

        let failure_mode = match root.string("failure_mode")?.as_deref() {
            None | Some("deny") => FailureMode::Deny,
            Some("allow") => FailureMode::Allow,
            Some(_) => return Err(err("failure_mode", "must be `deny` or `allow`")),
        };
        let status_on_error = root.uint("status_on_error", 503, 400..=599)? as u16;
        let retry_after_seconds = root.uint("retry_after_seconds", 5, DAY)?;

        let ray = root.section("ray", &["header", "colo"])?;
        let ray_header = match &ray {
            Some(r) => r.string("header")?,
            None => None,
        }
        .unwrap_or_else(|| "cf-ray".into());
        check_header_name("ray.header", &ray_header)?;
        let colo = match &ray {
            Some(r) => r.string("colo")?,
            None => None,
        }
        .unwrap_or_else(|| DEFAULT_COLO.into());
        if colo.is_empty() || colo.len() > 8 || !colo.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err("ray.colo", "must be 1 to 8 letters or digits"));
        }

        let server_header = root.string("server_header")?.unwrap_or_else(|| "cloudflare".into());
        if server_header.is_empty() || !server_header.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(err("server_header", "must be non-empty printable ASCII"));
        }
        let account_header = root.string("account_header")?.unwrap_or_else(|| "x-cname-guard-account".into());
        check_header_name("account_header", &account_header)?;

        let tls = root.section("tls", &["require_sni_match", "redirect_http"])?;
        let require_sni_match = tls.as_ref().map_or(Ok(true), |t| t.boolean("require_sni_match", true))?;
        let redirect_http = tls.as_ref().map_or(Ok(false), |t| t.boolean("redirect_http", false))?;

        let mut statuses = ErrorCode::ALL.map(ErrorCode::default_status);
        if let Some(v) = root.get("status") {
            let Value::Object(members) = v else {
                return Err(err("status", format!("expected an object, found {}", v.kind())));
            };
            let section = Section { path: "status".into(), members };
            for (key, _) in members {
                let code = key.parse().ok().and_then(ErrorCode::from_number).ok_or_else(|| {
                    err(&section.key(key), "unknown error code (known: 1001, 1003, 1004, 1014, 1016)")
                })?;
                statuses[code.index()] = section.uint(key, 0, 400..=599)? as u16;
            }
        }

        Ok(Config {
            cluster,
            authority,
            path,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            max_in_flight,
            cache,
            changes,
            failure_mode,
            status_on_error,
            retry_after_seconds,
            ray_header: ray_header.to_ascii_lowercase(),
            colo,
            server_header,
            account_header: account_header.to_ascii_lowercase(),
            require_sni_match,
            redirect_http,
            statuses,
        })
    }

    pub fn status(&self, code: ErrorCode) -> u16 {
        self.statuses[code.index()]
    }
}

fn check_path(key: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
        return Err(err(key, "must start with `/` and hold no query, fragment or spaces"));
    }
    Ok(())
}

/// An HTTP token, and not a pseudo-header.
fn check_header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(err(key, "must be a valid HTTP header name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s.as_bytes())
    }
    fn key_of(s: &str) -> String {
        match parse(s) {
            Ok(_) => panic!("accepted: {s}"),
            Err(e) => e.key,
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(r#"{"lookup":{"cluster":"ownership"}}"#).expect("valid");
        assert_eq!(c.cluster, "ownership");
        assert_eq!(c.authority, "ownership");
        assert_eq!(c.path, "/v1/ownership");
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.max_in_flight, 256);
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.changes, ChangesConfig::default());
        assert!(c.changes.enabled());
        assert_eq!(c.failure_mode, FailureMode::Deny);
        assert_eq!(c.status_on_error, 503);
        assert_eq!(c.ray_header, "cf-ray");
        assert_eq!(c.colo, "EDG");
        assert!(c.colo.len() == 3 && c.colo.bytes().all(|b| b.is_ascii_uppercase()));
        assert_eq!(c.server_header, "cloudflare");
        assert_eq!(c.account_header, "x-cname-guard-account");
        assert!(c.require_sni_match);
        assert!(!c.redirect_http, "off unless asked: it changes what clients see");
        assert_eq!(c.status(ErrorCode::CnameCrossUser), 409);
        assert_eq!(c.status(ErrorCode::OriginDns), 530);
        assert_eq!(c.status(ErrorCode::DirectIp), 403);
    }

    #[test]
    fn full_config() {
        let c = parse(
            r#"{"lookup":{"cluster":"o","authority":"ownership.internal","path":"/check","timeout_ms":250,"max_in_flight":8},
                "cache":{"ttl_seconds":5,"negative_ttl_seconds":1,"failure_ttl_seconds":2,"stale_if_error_seconds":30,"max_entries":100},
                "failure_mode":"allow","status_on_error":502,"retry_after_seconds":1,
                "ray":{"header":"X-Ray","colo":"ARN"},"server_header":"edge","account_header":"X-Account",
                "status":{"1014":403,"1016":502},"tls":{"require_sni_match":false,"redirect_http":true}}"#,
        )
        .expect("valid");
        assert_eq!(c.authority, "ownership.internal");
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.max_in_flight, 8);
        assert_eq!(c.cache.max_entries, 100);
        assert_eq!(c.failure_mode, FailureMode::Allow);
        assert_eq!(c.ray_header, "x-ray");
        assert_eq!(c.account_header, "x-account");
        assert!(!c.require_sni_match);
        assert!(c.redirect_http);
        assert_eq!(c.status(ErrorCode::CnameCrossUser), 403);
        assert_eq!(c.status(ErrorCode::OriginDns), 502);
        assert_eq!(c.status(ErrorCode::DnsResolution), 409);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of(r#"{}"#), "lookup");
        assert_eq!(key_of(r#"{"lookup":{}}"#), "lookup.cluster");
        assert_eq!(key_of(r#"{"lookup":{"cluster":7}}"#), "lookup.cluster");
        assert_eq!(key_of(r#"{"lookup":"o"}"#), "lookup");
        assert_eq!(key_of(r#"{"lookup":{"cluster":""}}"#), "lookup.cluster");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"bogus":1}"#), "bogus");
        assert!(parse(r#"{"lookup":{"cluster":"o"},"bogus":1}"#).unwrap_err().message.contains("`lookup`"));
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":1.5}}"#), "lookup.timeout_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":60001}}"#), "lookup.timeout_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"cache":{"ttl_seconds":null}}"#), "cache.ttl_seconds");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"status":{"1014":"409"}}"#), "status.1014");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"status":[]}"#), "status");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"lookup":{"cluster":"p"}}"#), "");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":"5"}}"#), "lookup.timeout_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":0}}"#), "lookup.timeout_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","max_in_flight":0}}"#), "lookup.max_in_flight");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","max_in_flight":4097}}"#), "lookup.max_in_flight");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","max_in_flight":"8"}}"#), "lookup.max_in_flight");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","max_in_flight":null}}"#), "lookup.max_in_flight");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","path":"v1"}}"#), "lookup.path");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"cache":{"ttl":1}}"#), "cache.ttl");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"cache":{"max_entries":-1}}"#), "cache.max_entries");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"failure_mode":"open"}"#), "failure_mode");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"ray":{"colo":"a b"}}"#), "ray.colo");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"ray":{"header":"bad header"}}"#), "ray.header");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"account_header":":authority"}"#), "account_header");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"status":{"1015":409}}"#), "status.1015");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"status":{"1014":200}}"#), "status.1014");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"status_on_error":99}"#), "status_on_error");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"server_header":""}"#), "server_header");
        assert_eq!(key_of(r#"[]"#), "");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":{"every":1}}"#), "changes.every");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":{"path":"v1"}}"#), "changes.path");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":{"interval_ms":-1}}"#), "changes.interval_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":{"wait_seconds":31}}"#), "changes.wait_seconds");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":{"max_backoff_ms":999}}"#), "changes.max_backoff_ms");
        assert_eq!(
            key_of(r#"{"lookup":{"cluster":"o"},"changes":{"interval_ms":5000,"max_backoff_ms":2000}}"#),
            "changes.max_backoff_ms"
        );
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"changes":[]}"#), "changes");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"require_sni_match":"true"}}"#), "tls.require_sni_match");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"require_sni_match":1}}"#), "tls.require_sni_match");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"require_sni_match":null}}"#), "tls.require_sni_match");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"sni":true}}"#), "tls.sni");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"redirect_http":"true"}}"#), "tls.redirect_http");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"redirect_http":0}}"#), "tls.redirect_http");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":{"redirect_http":null}}"#), "tls.redirect_http");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"tls":true}"#), "tls");
        assert_eq!(key_of(""), "");
        assert!(parse("").unwrap_err().to_string().starts_with("invalid configuration: not JSON"));
    }

    #[test]
    fn display_names_the_key() {
        let e = parse(r#"{"lookup":{"cluster":"o","timeout_ms":"5"}}"#).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("`lookup.timeout_ms`"), "{shown}");
        let e = parse(r#"{"lookup":{"cluster":"o"},"tls":{"require_sni_match":"yes"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration at `tls.require_sni_match`: expected a boolean, found a string"
        );
        let e = parse(r#"{"lookup":{"cluster":"o"},"tls":{"redirect_http":1}}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid configuration at `tls.redirect_http`: expected a boolean, found a number");
    }
}
