//! The names and ids the store accepts, checked before any query.

use cname_guard_core::authority::{self, Authority};
use std::fmt;

const MAX_ACCOUNT: usize = 128;
const ID_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Account,
    Id,
    /// A host name the filter would refuse, with the filter's reason.
    Hostname(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Account => f.write_str("invalid account id (1-128 of A-Za-z0-9._:-)"),
            NameError::Id => f.write_str("invalid id (32 lowercase hex digits)"),
            NameError::Hostname(reason) => write!(f, "invalid host name: {reason}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Account ids become a request header: 1-128 of `A-Za-z0-9._:-`, the rule
/// of the registry file.
pub fn check_account(id: &str) -> Result<(), NameError> {
    let ok = (1..=MAX_ACCOUNT).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then_some(()).ok_or(NameError::Account)
}

/// Row ids are 32 lowercase hex digits (see `random_hex`).
pub fn check_id(id: &str) -> Result<(), NameError> {
    let ok = id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(()).ok_or(NameError::Id)
}

/// A host or zone name by the filter's authority rules, lower-cased. What an
/// authority may carry but a stored name may not (a port, a trailing dot, an
/// IP literal, a wildcard) is refused too.
pub fn check_hostname(raw: &str) -> Result<String, NameError> {
    let refuse = |reason: &str| Err(NameError::Hostname(reason.to_string()));
    if raw.contains(':') || raw.starts_with('[') {
        return refuse("a port or an IP literal is not a host name");
    }
    if raw.ends_with('.') {
        return refuse("trailing dot");
    }
    if raw.starts_with("*.") {
        return refuse("wildcards are not supported");
    }
    match authority::normalize(raw.as_bytes().to_vec()) {
        Ok(Authority::Name(name)) => Ok(name),
        Ok(Authority::IpLiteral(_)) => refuse("an IP address is not a host name"),
        Err(e) => refuse(e.reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_the_filters_rules() {
        assert_eq!(check_hostname("Shop.Brand.Example"), Ok("shop.brand.example".into()));
        for bad in [
            "",
            "shop.example:443",
            "shop.example.",
            "*.shop.example",
            "192.0.2.1",
            "[::1]",
            "a\r\nb.example",
            "a b.example",
            "x'; DROP TABLE accounts; --.example",
            "a..b",
            "é.example",
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_hostname(&format!("{}.example", "a".repeat(64))).is_err());
        let long = vec!["abcdefghi"; 30].join(".");
        assert_eq!(long.len(), 299);
        assert!(check_hostname(&long).is_err());
    }

    #[test]
    fn accounts_and_ids() {
        assert!(check_account("acct-saas").is_ok());
        assert!(check_account("").is_err());
        assert!(check_account("a/b").is_err());
        assert!(check_account(&"a".repeat(129)).is_err());
        assert!(check_id(&"0f".repeat(16)).is_ok());
        assert!(check_id(&"0F".repeat(16)).is_err());
        assert!(check_id("1' OR '1'='1").is_err());
    }
}
