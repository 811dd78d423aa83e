//! The registry: platform data only. Who owns which zone, which accounts
//! are suspended, which custom hostnames each account has authorized. The
//! service fetches the slice a request needs from the store
//! (`Store::platform_slice`) and answers lookup contract v1 with the pure
//! `lookup(host, chain)`; the registry JSON file is an import format
//! (`store::parse_registry`).

use crate::chain::Chain;
use crate::dns;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;

// --- the model ----------------------------------------------------------------

/// A validated registry, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    suspended: HashMap<String, bool>,
    zones: HashMap<String, String>,
    custom_hostnames: HashMap<String, HashMap<String, String>>,
    /// Custom hostnames with a certificate in service.
    certified: HashSet<String>,
}

/// Sizes of a registry, for the reload log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accounts: usize,
    pub zones: usize,
    pub custom_hostnames: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "accounts={} zones={} custom_hostnames={}", self.accounts, self.zones, self.custom_hostnames)
    }
}

/// The answer to `GET /v1/ownership?host=NAME` (lookup contract v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ownership {
    pub host: String,
    pub account: Option<String>,
    pub cname_target: Option<String>,
    pub target_account: Option<String>,
    pub custom_hostname: Option<String>,
    pub origin_resolves: bool,
    pub suspended: bool,
    pub ttl: u32,
    /// The custom hostname is `active` with a certificate in service.
    /// Written only when true, so answers without one are byte for byte
    /// those of before the field existed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found(Ownership),
    /// Neither the host nor its chain is in a platform zone (404).
    Unknown,
}

// --- building ----------------------------------------------------------------

impl Registry {
    /// An account and its suspension.
    pub fn add_account(&mut self, id: &str, suspended: bool) {
        self.suspended.insert(id.to_string(), suspended);
    }

    /// `zone` and every name under it belong to `account`.
    pub fn add_zone(&mut self, zone: &str, account: &str) {
        self.zones.insert(zone.to_string(), account.to_string());
    }

    /// `account` holds `host` with `status` (contract v1's `custom_hostname`).
    pub fn add_custom_hostname(&mut self, account: &str, host: &str, status: &str) {
        self.custom_hostnames.entry(account.to_string()).or_default().insert(host.to_string(), status.to_string());
    }

    /// `host`, a custom hostname, has a certificate in service.
    pub fn add_certificate(&mut self, host: &str) {
        self.certified.insert(host.to_string());
    }

    pub fn counts(&self) -> Counts {
        Counts {
            accounts: self.suspended.len(),
            zones: self.zones.len(),
            custom_hostnames: self.custom_hostnames.values().map(HashMap::len).sum(),
        }
    }
}

// --- lookup -------------------------------------------------------------------

impl Registry {
    /// The owner of the longest zone equal to `name` or a parent of it.
    pub fn zone_owner(&self, name: &str) -> Option<&str> {
        dns::self_and_parents(name).find_map(|zone| self.zones.get(zone)).map(String::as_str)
    }

    /// Whether `host` is under a platform zone or is a custom hostname of
    /// any account: else its answer is 1001 or 1014, never an allow.
    pub fn lists(&self, host: &str) -> bool {
        self.zone_owner(host).is_some() || self.custom_hostnames.values().any(|hosts| hosts.contains_key(host))
    }

    /// Lookup contract v1 for a canonical host, from its chain in DNS.
    /// `max_ttl` caps the chain's TTL.
    pub fn lookup(&self, host: &str, chain: &Chain, max_ttl: u32) -> Answer {
        let account = self.zone_owner(host);
        let targets = chain.names.get(1..).unwrap_or_default();
        // The first name of the chain on the platform, else the first target.
        let cname_target = targets.iter().find(|n| self.zone_owner(n).is_some()).or(targets.first());
        let target_account = cname_target.and_then(|t| self.zone_owner(t));
        if account.is_none() && target_account.is_none() {
            return Answer::Unknown;
        }
        let custom_hostname =
            target_account.and_then(|t| self.custom_hostnames.get(t)).and_then(|hosts| hosts.get(host));
        let cross = target_account.is_some() && target_account != account;
        let serving = if cross { target_account } else { account };
        let suspended = serving.and_then(|s| self.suspended.get(s)).copied().unwrap_or(false);
        Answer::Found(Ownership {
            host: host.to_string(),
            account: account.map(String::from),
            cname_target: cname_target.cloned(),
            target_account: target_account.map(String::from),
            custom_hostname: custom_hostname.cloned(),
            origin_resolves: chain.resolves(),
            suspended,
            ttl: chain.ttl.min(max_ttl),
            https: custom_hostname.is_some_and(|s| s == "active") && self.certified.contains(host),
        })
    }
}

#[cfg(test)]
mod tests;
