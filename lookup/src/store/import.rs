//! The registry JSON as an import format: accounts, zones and custom
//! hostnames, validated by the registry's rules, applied in one transaction
//! or not at all. Importing the same file twice changes nothing the second
//! time; what the store holds beyond the file is left alone.

use super::accounts::Upsert;
use super::audit::Actor;
use super::changes::{self, Pending};
use super::hostnames::{find_in, insert_hostname, update_status, Status, StatusChange};
use super::{accounts, check_account, check_hostname, zones, Store, StoreError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

const MAX_TTL: u64 = 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Accepted for the file's sake; the answer TTL is service configuration.
    #[serde(default)]
    ttl: Option<u64>,
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

#[derive(Debug)]
pub enum ImportError {
    /// Not JSON, or the wrong shape (unknown key, wrong type).
    Syntax(String),
    /// Every problem found, each at a path like `zones["x"]`.
    Invalid(Vec<String>),
    Store(StoreError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Syntax(m) => f.write_str(m),
            ImportError::Invalid(ps) => f.write_str(&ps.join("; ")),
            ImportError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> ImportError {
        ImportError::Store(e)
    }
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> ImportError {
        ImportError::Store(e.into())
    }
}

/// What an import created or changed (zero everywhere on a re-import).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub accounts_created: usize,
    pub zones_created: usize,
    pub hostnames_created: usize,
    pub hostnames_changed: usize,
}

/// A validated file: hostnames canonical, statuses parsed.
struct Plan {
    accounts: Vec<(String, bool)>,
    zones: Vec<(String, String)>,
    hostnames: Vec<(String, String, Status)>,
}

fn validate(bytes: &[u8]) -> Result<Plan, ImportError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ImportError::Syntax(e.to_string()))?;
    // Serde would read a struct from an array; the file format does not.
    let Some(root) = value.as_object() else {
        return Err(ImportError::Syntax("expected a JSON object at the top level".into()));
    };
    if let Some(accounts) = root.get("accounts").and_then(|a| a.as_object()) {
        if let Some((id, _)) = accounts.iter().find(|(_, v)| !v.is_object()) {
            return Err(ImportError::Syntax(format!("accounts[{id:?}]: expected a JSON object")));
        }
    }
    if root.contains_key("records") {
        return Err(ImportError::Syntax("records: DNS serves the records now; remove this section".into()));
    }
    let file: File = serde_path_to_error::deserialize(value)
        .map_err(|e| ImportError::Syntax(format!("{}: {}", e.path(), e.inner())))?;

    let mut problems = Vec::new();
    if let Some(t) = file.ttl.filter(|&t| t > MAX_TTL) {
        problems.push(format!("ttl: {t} is outside 0..={MAX_TTL}"));
    }
    for id in file.accounts.keys() {
        if let Err(e) = check_account(id) {
            problems.push(format!("accounts[{id:?}]: {e}"));
        }
    }
    let declared = |id: &str| file.accounts.contains_key(id);
    let mut zones = Vec::new();
    for (zone, owner) in &file.zones {
        match check_hostname(zone) {
            Ok(z) if z == *zone => zones.push((z, owner.clone())),
            Ok(_) => problems.push(format!("zones[{zone:?}]: invalid zone name: upper case")),
            Err(e) => problems.push(format!("zones[{zone:?}]: invalid zone name: {e}")),
        }
        if !declared(owner) {
            problems.push(format!("zones[{zone:?}]: unknown account {owner:?}"));
        }
    }
    let mut hostnames = Vec::new();
    for (account, hosts) in &file.custom_hostnames {
        if !declared(account) {
            problems.push(format!("custom_hostnames[{account:?}]: unknown account {account:?}"));
        }
        for (host, status) in hosts {
            let path = format!("custom_hostnames[{account:?}][{host:?}]");
            let name = match check_hostname(host) {
                Ok(h) if h == *host => Some(h),
                Ok(_) => {
                    problems.push(format!("{path}: invalid host name: upper case"));
                    None
                }
                Err(e) => {
                    problems.push(format!("{path}: {e}"));
                    None
                }
            };
            let parsed = Status::parse(status);
            if parsed.is_none() {
                let all: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                problems.push(format!("{path}: unknown status {status:?} (one of {})", all.join(", ")));
            }
            if let (Some(h), Some(s)) = (name, parsed) {
                hostnames.push((h, account.clone(), s));
            }
        }
    }
    // One hostname, one account: the same name under two accounts.
    let mut seen = BTreeMap::new();
    for (host, account, _) in &hostnames {
        if let Some(first) = seen.insert(host.clone(), account.clone()) {
            problems.push(format!("custom_hostnames: {host:?} is listed under both {first:?} and {account:?}"));
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    Ok(Plan { accounts: file.accounts.into_iter().map(|(id, a)| (id, a.suspended)).collect(), zones, hostnames })
}

/// Imports a registry file into the store, whole or not at all.
pub async fn import_registry(store: &Store, bytes: &[u8]) -> Result<ImportCounts, ImportError> {
    let plan = validate(bytes)?;
    let actor = Actor::Import;
    let mut counts = ImportCounts::default();
    let mut tx = store.pool.begin().await?;
    let mut pending = Pending::default();
    for (id, suspended) in &plan.accounts {
        let done = accounts::upsert_account(&mut tx, &actor, id, *suspended, &mut pending).await?;
        counts.accounts_created += usize::from(done == Upsert::Created);
    }
    for (zone, account) in &plan.zones {
        let done = zones::upsert_zone(&mut tx, &actor, zone, account, &mut pending).await?;
        counts.zones_created += usize::from(done == Upsert::Created);
    }
    let mut problems = Vec::new();
    for (host, account, status) in &plan.hostnames {
        match find_in(&mut tx, host).await? {
            None => {
                let token = Store::new_verification_token()?;
                insert_hostname(&mut tx, &actor, account, host, &token, *status, &[], &mut pending).await?;
                counts.hostnames_created += 1;
            }
            Some((_, holder, _)) if holder != *account => {
                problems.push(format!("custom_hostnames[{account:?}][{host:?}]: already held by account {holder:?}"));
            }
            Some((_, _, current)) if current == *status => {}
            Some((id, _, current)) => {
                let change = StatusChange {
                    from: current,
                    to: *status,
                    verification_errors: Vec::new(),
                    reason: "imported".into(),
                };
                update_status(&mut tx, &actor, account, &id, &change, &mut pending).await?;
                counts.hostnames_changed += 1;
            }
        }
    }
    if !problems.is_empty() {
        tx.rollback().await?;
        return Err(ImportError::Invalid(problems));
    }
    let seq = changes::record(&mut tx, pending).await?;
    tx.commit().await?;
    store.announce(seq);
    Ok(counts)
}
