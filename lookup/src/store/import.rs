//! The registry JSON as an import format (its only reader): accounts, zones
//! and custom hostnames, validated, applied in one transaction
//! or not at all. Importing the same file twice changes nothing the second
//! time; what the store holds beyond the file is left alone.

use super::accounts::Upsert;
use super::audit::Actor;
use super::changes::{self, Pending};
use super::hostnames::{find_in, insert_hostname, update_status, Status, StatusChange};
use super::{accounts, check_account, check_hostname, zones, NameError, Store, StoreError};
use crate::registry::Registry;
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
    let file: File = serde_path_to_error::deserialize(value).map_err(syntax_error)?;

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
            Err(NameError::Hostname(why)) => problems.push(format!("zones[{zone:?}]: invalid zone name: {why}")),
            Err(e) => problems.push(format!("zones[{zone:?}]: {e}")),
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

/// A registry file as the platform data it holds, validated as an import
/// is: for tests and tools that answer lookups without a database.
pub fn parse_registry(bytes: &[u8]) -> Result<Registry, ImportError> {
    let plan = validate(bytes)?;
    let mut registry = Registry::default();
    for (id, suspended) in &plan.accounts {
        registry.add_account(id, *suspended);
    }
    for (zone, account) in &plan.zones {
        registry.add_zone(zone, account);
    }
    for (host, account, status) in &plan.hostnames {
        registry.add_custom_hostname(account, host, status.as_str());
    }
    Ok(registry)
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

/// A serde error with its path written the way validation errors are:
/// `accounts["a"].suspended`, `zones["x"]`.
fn syntax_error(e: serde_path_to_error::Error<serde_json::Error>) -> ImportError {
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
    ImportError::Syntax(if path.is_empty() || path == "." { message } else { format!("{path}: {message}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered problems of `json`; panics if it is accepted.
    fn problems(json: &str) -> Vec<String> {
        match parse_registry(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(ImportError::Invalid(ps)) => ps,
            Err(e) => vec![e.to_string()],
        }
    }

    fn assert_problem(json: &str, expected: &str) {
        let ps = problems(json);
        assert!(ps.iter().any(|p| p.starts_with(expected)), "{json}\nwanted {expected:?}, got {ps:#?}");
    }

    #[test]
    fn zones_and_hostnames_name_declared_accounts_and_valid_names() {
        assert_problem(
            r#"{"accounts": {"a": {}}, "zones": {"x.example": "b"}}"#,
            r#"zones["x.example"]: unknown account "b""#,
        );
        assert_problem(
            r#"{"accounts": {"a": {}}, "zones": {"X.example": "a"}}"#,
            r#"zones["X.example"]: invalid zone name"#,
        );
        assert_problem(
            r#"{"accounts": {"a": {}}, "zones": {"*.x.example": "a"}}"#,
            r#"zones["*.x.example"]: invalid zone name"#,
        );
        assert_problem(
            r#"{"custom_hostnames": {"acct-9": {"a.example": "active"}}}"#,
            r#"custom_hostnames["acct-9"]: unknown account "acct-9""#,
        );
        assert_problem(
            r#"{"accounts": {"a": {}}, "custom_hostnames": {"a": {"bad_host.example": "active"}}}"#,
            r#"custom_hostnames["a"]["bad_host.example"]: invalid host name"#,
        );
        assert_problem(
            r#"{"accounts": {"a": {}}, "custom_hostnames": {"a": {"x.example": "Weird"}}}"#,
            r#"custom_hostnames["a"]["x.example"]: unknown status "Weird""#,
        );
    }

    #[test]
    fn shapes_and_account_ids() {
        assert_problem(r#"{"accounts": {"acct 1": {}}}"#, r#"accounts["acct 1"]: invalid account id"#);
        assert_problem(&format!(r#"{{"accounts": {{"{}": {{}}}}}}"#, "a".repeat(129)), "accounts[\"aaaa");
        assert_problem(r#"{"accounts": {"a": {"suspended": "yes"}}}"#, r#"accounts["a"].suspended: invalid type"#);
        assert_problem(r#"{"accounts": {"a": {"owner": "x"}}}"#, r#"accounts["a"].owner: unknown field `owner`"#);
        assert_problem(r#"{"zone": {}}"#, "zone: unknown field `zone`");
        assert_problem(r#"{"accounts": {"a": []}}"#, r#"accounts["a"]: expected a JSON object"#);
        assert_problem("[]", "expected a JSON object at the top level");
        assert_problem(r#"{"records": {}}"#, "records: DNS serves the records now");
        assert!(problems("{")[0].contains("EOF"));
    }

    #[test]
    fn every_problem_is_reported() {
        let ps = problems(
            r#"{"accounts": {"a": {}}, "zones": {"x.example": "b", "y.example": "c"}, "custom_hostnames": {"d": {}}}"#,
        );
        assert_eq!(ps.len(), 3, "{ps:#?}");
        assert!(parse_registry(br#"{"accounts": {"A.b_c:d-1": {}}}"#).is_ok());
    }
}
