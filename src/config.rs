//! Plugin configuration: parsed and validated once, in `on_configure`.

use crate::verdict::ErrorCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A configuration the filter refuses, with the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() || self.key == "." {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration at `{}`: {}", self.key, self.message)
        }
    }
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    #[default]
    Deny,
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    lookup: RawLookup,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    failure_mode: FailureMode,
    #[serde(default = "default_status_on_error")]
    status_on_error: u16,
    #[serde(default = "default_retry_after")]
    retry_after_seconds: u32,
    #[serde(default)]
    ray: RayConfig,
    #[serde(default = "default_server")]
    server_header: String,
    #[serde(default = "default_account_header")]
    account_header: String,
    #[serde(default)]
    status: BTreeMap<String, u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

/// `cache.*`: how long answers are kept, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

/// `ray.*`: the ray-id header on error responses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RayConfig {
    pub header: String,
    pub colo: String,
}

impl Default for RayConfig {
    fn default() -> Self {
        RayConfig { header: "cf-ray".into(), colo: "EDGE".into() }
    }
}

fn default_status_on_error() -> u16 {
    503
}
fn default_retry_after() -> u32 {
    5
}
fn default_server() -> String {
    "cloudflare".into()
}
fn default_account_header() -> String {
    "x-cname-guard-account".into()
}
fn default_path() -> String {
    "/v1/ownership".into()
}
fn default_timeout_ms() -> u32 {
    500
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout: Duration,
    pub cache: CacheConfig,
    pub failure_mode: FailureMode,
    pub status_on_error: u16,
    pub retry_after_seconds: u32,
    pub ray_header: String,
    pub colo: String,
    pub server_header: String,
    pub account_header: String,
    statuses: [u16; ErrorCode::ALL.len()],
}

impl Config {
    pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: Raw = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            err(&key, e.into_inner().to_string())
        })?;
        Config::validate(raw)
    }

    pub fn status(&self, code: ErrorCode) -> u16 {
        self.statuses[code.index()]
    }

    fn validate(raw: Raw) -> Result<Config, ConfigError> {
        let l = raw.lookup;
        if l.cluster.is_empty() || !l.cluster.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("lookup.cluster", "must be a non-empty cluster name"));
        }
        let authority = l.authority.unwrap_or_else(|| l.cluster.clone());
        if authority.is_empty() || !authority.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("lookup.authority", "must be a non-empty host name"));
        }
        if !l.path.starts_with('/') || !l.path.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
            return Err(err("lookup.path", "must start with `/` and hold no query, fragment or spaces"));
        }
        if !(1..=60_000).contains(&l.timeout_ms) {
            return Err(err("lookup.timeout_ms", "must be between 1 and 60000"));
        }
        if raw.cache.max_entries > 1_000_000 {
            return Err(err("cache.max_entries", "must be at most 1000000"));
        }
        for (key, value) in [
            ("cache.ttl_seconds", raw.cache.ttl_seconds),
            ("cache.negative_ttl_seconds", raw.cache.negative_ttl_seconds),
            ("cache.failure_ttl_seconds", raw.cache.failure_ttl_seconds),
            ("cache.stale_if_error_seconds", raw.cache.stale_if_error_seconds),
        ] {
            if value > 86_400 {
                return Err(err(key, "must be at most 86400"));
            }
        }
        if !(400..=599).contains(&raw.status_on_error) {
            return Err(err("status_on_error", "must be an HTTP status between 400 and 599"));
        }
        if raw.retry_after_seconds > 86_400 {
            return Err(err("retry_after_seconds", "must be at most 86400"));
        }
        check_header_name("ray.header", &raw.ray.header)?;
        check_header_name("account_header", &raw.account_header)?;
        if raw.ray.colo.is_empty() || raw.ray.colo.len() > 8 || !raw.ray.colo.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err("ray.colo", "must be 1 to 8 letters or digits"));
        }
        if raw.server_header.is_empty() || !raw.server_header.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(err("server_header", "must be non-empty printable ASCII"));
        }
        let mut statuses = ErrorCode::ALL.map(ErrorCode::default_status);
        for (key, status) in &raw.status {
            let code = key.parse().ok().and_then(ErrorCode::from_number).ok_or_else(|| {
                err(&format!("status.{key}"), "unknown error code (known: 1001, 1003, 1004, 1014, 1016)")
            })?;
            if !(400..=599).contains(status) {
                return Err(err(&format!("status.{key}"), "must be an HTTP status between 400 and 599"));
            }
            statuses[code.index()] = *status;
        }
        Ok(Config {
            cluster: l.cluster,
            authority,
            path: l.path,
            timeout: Duration::from_millis(u64::from(l.timeout_ms)),
            cache: raw.cache,
            failure_mode: raw.failure_mode,
            status_on_error: raw.status_on_error,
            retry_after_seconds: raw.retry_after_seconds,
            ray_header: raw.ray.header.to_ascii_lowercase(),
            colo: raw.ray.colo,
            server_header: raw.server_header,
            account_header: raw.account_header.to_ascii_lowercase(),
            statuses,
        })
    }
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
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.failure_mode, FailureMode::Deny);
        assert_eq!(c.status_on_error, 503);
        assert_eq!(c.ray_header, "cf-ray");
        assert_eq!(c.server_header, "cloudflare");
        assert_eq!(c.account_header, "x-cname-guard-account");
        assert_eq!(c.status(ErrorCode::CnameCrossUser), 409);
        assert_eq!(c.status(ErrorCode::OriginDns), 530);
        assert_eq!(c.status(ErrorCode::DirectIp), 403);
    }

    #[test]
    fn full_config() {
        let c = parse(
            r#"{"lookup":{"cluster":"o","authority":"ownership.internal","path":"/check","timeout_ms":250},
                "cache":{"ttl_seconds":5,"negative_ttl_seconds":1,"failure_ttl_seconds":2,"stale_if_error_seconds":30,"max_entries":100},
                "failure_mode":"allow","status_on_error":502,"retry_after_seconds":1,
                "ray":{"header":"X-Ray","colo":"ARN"},"server_header":"edge","account_header":"X-Account",
                "status":{"1014":403,"1016":502}}"#,
        )
        .expect("valid");
        assert_eq!(c.authority, "ownership.internal");
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.cache.max_entries, 100);
        assert_eq!(c.failure_mode, FailureMode::Allow);
        assert_eq!(c.ray_header, "x-ray");
        assert_eq!(c.account_header, "x-account");
        assert_eq!(c.status(ErrorCode::CnameCrossUser), 403);
        assert_eq!(c.status(ErrorCode::OriginDns), 502);
        assert_eq!(c.status(ErrorCode::DnsResolution), 409);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of(r#"{}"#), ".");
        assert!(parse("{}").unwrap_err().message.contains("lookup"));
        assert_eq!(key_of(r#"{"lookup":{}}"#), "lookup");
        assert!(parse(r#"{"lookup":{}}"#).unwrap_err().message.contains("cluster"));
        assert_eq!(key_of(r#"{"lookup":{"cluster":""}}"#), "lookup.cluster");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o"},"bogus":1}"#), "bogus");
        assert!(parse(r#"{"lookup":{"cluster":"o"},"bogus":1}"#).unwrap_err().message.contains("bogus"));
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":"5"}}"#), "lookup.timeout_ms");
        assert_eq!(key_of(r#"{"lookup":{"cluster":"o","timeout_ms":0}}"#), "lookup.timeout_ms");
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
        assert_eq!(key_of(r#"[]"#), ".");
        assert_eq!(key_of(""), ".");
    }

    #[test]
    fn display_names_the_key() {
        let e = parse(r#"{"lookup":{"cluster":"o","timeout_ms":"5"}}"#).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("`lookup.timeout_ms`"), "{shown}");
    }
}
