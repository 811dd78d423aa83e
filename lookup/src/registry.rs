//! The registry: platform data only. Who owns which zone, which accounts
//! are suspended, which custom hostnames each account has authorized.
//! Loading, validation, and the pure `lookup(host, chain)` that answers
//! lookup contract v1 from a host's CNAME chain as DNS gave it.

use crate::chain::Chain;
use crate::dns;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

const MAX_ACCOUNT: usize = 128;

/// Keys of older registry files, refused with where their data now comes from.
const MOVED: &[(&str, &str)] = &[
    (
        "records",
        "DNS records are no longer read from the registry: cname-guard-lookup resolves every host in DNS \
         (--dns-server, or /etc/resolv.conf); remove this section and serve the records from a DNS zone",
    ),
    ("ttl", "answer TTLs now come from DNS (the smallest TTL of the chain), capped by --max-ttl; remove this key"),
];

// --- the file ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    #[serde(default)]
    accounts: BTreeMap<String, FileAccount>,
    #[serde(default)]
    zones: BTreeMap<String, String>,
    #[serde(default)]
    custom_hostnames: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccount {
    #[serde(default)]
    suspended: bool,
}

// --- errors -----------------------------------------------------------------

/// One thing wrong with a registry, at a path like `zones["x"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug)]
pub enum RegistryError {
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Not JSON, or the wrong shape (unknown key, wrong type).
    Syntax(Problem),
    /// Well-formed but inconsistent: every problem found.
    Invalid(Vec<Problem>),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Read { file, source } => write!(f, "cannot read {}: {source}", file.display()),
            RegistryError::Syntax(p) => write!(f, "{p}"),
            RegistryError::Invalid(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RegistryError {}

impl RegistryError {
    /// The problems of a file that was read, for tests and logs.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            RegistryError::Read { .. } => Vec::new(),
            RegistryError::Syntax(p) => vec![p.clone()],
            RegistryError::Invalid(ps) => ps.clone(),
        }
    }
}

// --- the model ----------------------------------------------------------------

/// A validated registry, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    suspended: HashMap<String, bool>,
    zones: HashMap<String, String>,
    custom_hostnames: HashMap<String, HashMap<String, String>>,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found(Ownership),
    /// Neither the host nor its chain is in a platform zone (404).
    Unknown,
}

// --- loading and validation -------------------------------------------------------

impl Registry {
    pub fn load(file: &Path) -> Result<Registry, RegistryError> {
        let bytes = std::fs::read(file).map_err(|source| RegistryError::Read { file: file.to_path_buf(), source })?;
        Registry::from_slice(&bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Registry, RegistryError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Syntax(Problem { path: String::new(), message: e.to_string() }))?;
        objects_where_structs_go(&value)?;
        moved_keys(&value)?;
        let root: FileRoot = serde_path_to_error::deserialize(value).map_err(syntax_error)?;
        Registry::validate(root)
    }

    fn validate(root: FileRoot) -> Result<Registry, RegistryError> {
        let mut problems = Vec::new();
        let mut bad = |path: String, message: String| problems.push(Problem { path, message });

        for id in root.accounts.keys() {
            if !valid_account(id) {
                bad(format!("accounts[{id:?}]"), "invalid account id (1-128 of A-Za-z0-9._:-)".into());
            }
        }
        let declared = |id: &str| root.accounts.contains_key(id);

        for (zone, owner) in &root.zones {
            if let Err(e) = dns::check_name(zone) {
                bad(format!("zones[{zone:?}]"), format!("invalid zone name: {e}"));
            }
            if !declared(owner) {
                bad(format!("zones[{zone:?}]"), format!("unknown account {owner:?}"));
            }
        }

        let mut custom_hostnames = HashMap::new();
        for (account, hosts) in root.custom_hostnames {
            if !declared(&account) {
                bad(format!("custom_hostnames[{account:?}]"), format!("unknown account {account:?}"));
            }
            for host in hosts.keys() {
                if let Err(e) = dns::check_name(host) {
                    bad(format!("custom_hostnames[{account:?}][{host:?}]"), format!("invalid host name: {e}"));
                }
            }
            custom_hostnames.insert(account, hosts.into_iter().collect());
        }

        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        Ok(Registry {
            suspended: root.accounts.into_iter().map(|(id, a)| (id, a.suspended)).collect(),
            zones: root.zones.into_iter().collect(),
            custom_hostnames,
        })
    }

    pub fn counts(&self) -> Counts {
        Counts {
            accounts: self.suspended.len(),
            zones: self.zones.len(),
            custom_hostnames: self.custom_hostnames.values().map(HashMap::len).sum(),
        }
    }
}

/// Serde lets a struct be written as an array (`"accounts": {"a": []}`);
/// the file format does not.
fn objects_where_structs_go(value: &serde_json::Value) -> Result<(), RegistryError> {
    let not_object = |path: String| RegistryError::Syntax(Problem { path, message: "expected a JSON object".into() });
    let Some(root) = value.as_object() else {
        return Err(not_object("(top level)".into()));
    };
    for section in ["accounts"] {
        if let Some(entries) = root.get(section).and_then(|v| v.as_object()) {
            if let Some((key, _)) = entries.iter().find(|(_, v)| !v.is_object()) {
                return Err(not_object(format!("{section}[{key:?}]")));
            }
        }
    }
    Ok(())
}

/// `records` and `ttl` moved out of the file; say where to.
fn moved_keys(value: &serde_json::Value) -> Result<(), RegistryError> {
    match MOVED.iter().find(|(key, _)| value.get(key).is_some()) {
        Some((key, message)) => Err(RegistryError::Syntax(Problem { path: (*key).into(), message: (*message).into() })),
        None => Ok(()),
    }
}

/// Account ids become a request header: 1-128 of `A-Za-z0-9._:-`.
pub fn valid_account(id: &str) -> bool {
    (1..=MAX_ACCOUNT).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A serde error with its path written the way validation errors are:
/// `records["a.example"].ttl`, `zones["x"]`.
fn syntax_error(e: serde_path_to_error::Error<serde_json::Error>) -> RegistryError {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    let mut section = String::new();
    for (depth, seg) in e.path().iter().enumerate() {
        match seg {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                // Depth 0 is a top-level key; depth 2 of accounts is a field.
                let is_field = depth == 0 || (depth == 2 && section == "accounts");
                if depth == 0 {
                    section = key.clone();
                }
                if is_field {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                } else {
                    path.push_str(&format!("[{key:?}]"));
                }
            }
            Segment::Enum { variant } => path.push_str(&format!(".{variant}")),
            Segment::Unknown => path.push_str(".?"),
        }
    }
    let message = e.into_inner().to_string();
    RegistryError::Syntax(Problem { path: if path == "." { String::new() } else { path }, message })
}

// --- lookup -------------------------------------------------------------------

impl Registry {
    /// The owner of the longest zone equal to `name` or a parent of it.
    pub fn zone_owner(&self, name: &str) -> Option<&str> {
        dns::self_and_parents(name).find_map(|zone| self.zones.get(zone)).map(String::as_str)
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
        })
    }
}

#[cfg(test)]
mod tests;
