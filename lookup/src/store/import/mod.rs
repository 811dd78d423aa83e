//! The registry JSON as an import format (its only reader): accounts, zones
//! and custom hostnames, checked, applied in one transaction or not at all.
//! Importing the same file twice changes nothing the second time; what the
//! store holds beyond the file is left alone.

mod parse;

use super::accounts::Upsert;
use super::audit::Actor;
use super::changes::{self, Pending};
use super::hostnames::{find_in, insert_hostname, update_status, StatusChange};
use super::{accounts, zones, Store, StoreError};
use crate::registry::Registry;
use parse::{Item, Problems};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;

#[derive(Debug)]
pub enum ImportError {
    /// Not JSON, or the wrong shape (unknown key, wrong type).
    Syntax(String),
    /// Every problem found, each at a path like `zones["x"]`.
    Invalid(Vec<String>),
    Store(StoreError),
    /// The file could not be read.
    Io(std::io::Error),
    /// The reader stopped because the writer failed (its error is the one
    /// reported).
    Stopped,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Syntax(m) => f.write_str(m),
            ImportError::Invalid(ps) => f.write_str(&ps.join("; ")),
            ImportError::Store(e) => write!(f, "{e}"),
            ImportError::Io(e) => write!(f, "cannot read: {e}"),
            ImportError::Stopped => f.write_str("import stopped"),
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

/// A registry file as the platform data it holds, checked as an import
/// is: for tests and tools that answer lookups without a database.
pub fn parse_registry(bytes: &[u8]) -> Result<Registry, ImportError> {
    let mut registry = Registry::default();
    let mut holders: HashMap<String, String> = HashMap::new();
    let mut twice = Vec::new();
    let problems = parse::read(bytes, &mut |item| {
        match item {
            Item::Account { id, suspended } => registry.add_account(&id, suspended),
            Item::Zone { zone, account } => registry.add_zone(&zone, &account),
            Item::Hostname { host, account, status } => match holders.get(&host) {
                Some(first) => {
                    twice.push(format!("custom_hostnames: {host:?} is listed under both {first:?} and {account:?}"))
                }
                None => {
                    registry.add_custom_hostname(&account, &host, status.as_str());
                    holders.insert(host, account);
                }
            },
        }
        true
    })?;
    finish(problems, twice)?;
    Ok(registry)
}

fn finish(mut problems: Problems, more: Vec<String>) -> Result<(), ImportError> {
    for p in more {
        problems.push(p);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_error())
    }
}

/// Imports a registry file held in memory (tests, `serve --import` of a
/// small file): [`import_reader`].
pub async fn import_registry(store: &Store, bytes: &[u8]) -> Result<ImportCounts, ImportError> {
    import_reader(store, std::io::Cursor::new(bytes.to_vec())).await
}

/// Imports the registry file at `path` (`-`: standard input), streamed:
/// [`import_reader`].
pub async fn import_file(store: &Store, path: &std::path::Path) -> Result<ImportCounts, ImportError> {
    if path.as_os_str() == "-" {
        return import_reader(store, std::io::stdin()).await;
    }
    let file = std::fs::File::open(path).map_err(ImportError::Io)?;
    import_reader(store, file).await
}

/// Items in flight between the reader and the writer.
const QUEUE: usize = 1024;
/// Names collected for the feed before they are written (in the import's
/// transaction): the feed's share of memory stays bounded too.
const FEED_FLUSH: usize = 10 * changes::MAX_NAMES;

/// Imports a registry file into the store, whole or not at all, reading it
/// as a stream: a thread parses and checks each entry and hands it to the
/// writer through a bounded queue, so memory does not grow with the file.
pub async fn import_reader(store: &Store, reader: impl Read + Send + 'static) -> Result<ImportCounts, ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(QUEUE);
    let parser = tokio::task::spawn_blocking(move || parse::read(reader, &mut |item| tx.blocking_send(item).is_ok()));
    let written = write(store, &mut rx).await;
    // A reader still sending after a failed write gets an error and stops.
    drop(rx);
    let parsed = parser.await.map_err(|e| ImportError::Syntax(format!("the file reader failed: {e}")))?;
    let (w, problems) = (written?, parsed?);
    if let Err(e) = finish(problems, w.held) {
        w.tx.rollback().await?;
        return Err(e);
    }
    w.tx.commit().await?;
    store.announce(w.seq);
    Ok(w.counts)
}

/// An import written but not committed.
struct Written {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    counts: ImportCounts,
    /// The feed's last sequence number written.
    seq: Option<u64>,
    /// Hostnames already held by another account: problems.
    held: Vec<String>,
}

/// Applies items as they come, in one transaction left open for the caller
/// to commit or roll back; also answers the hostnames already held by
/// another account.
async fn write(store: &Store, rx: &mut tokio::sync::mpsc::Receiver<Item>) -> Result<Written, ImportError> {
    let actor = Actor::Import;
    let mut counts = ImportCounts::default();
    let mut tx = store.pool.begin().await?;
    let mut pending = Pending::default();
    let mut seq = None;
    let mut held = Vec::new();
    while let Some(item) = rx.recv().await {
        match item {
            Item::Account { id, suspended } => {
                let done = accounts::upsert_account(&mut tx, &actor, &id, suspended, &mut pending).await?;
                counts.accounts_created += usize::from(done == Upsert::Created);
            }
            Item::Zone { zone, account } => {
                let done = zones::upsert_zone(&mut tx, &actor, &zone, &account, &mut pending).await?;
                counts.zones_created += usize::from(done == Upsert::Created);
            }
            Item::Hostname { host, account, status } => match find_in(&mut tx, &host).await? {
                None => {
                    let token = Store::new_verification_token()?;
                    insert_hostname(&mut tx, &actor, &account, &host, &token, status, &[], &mut pending).await?;
                    counts.hostnames_created += 1;
                }
                Some((_, holder, _)) if holder != account => {
                    held.push(format!("custom_hostnames[{account:?}][{host:?}]: already held by account {holder:?}"));
                }
                Some((_, _, current)) if current == status => {}
                Some((id, _, current)) => {
                    let change = StatusChange {
                        from: current,
                        to: status,
                        verification_errors: Vec::new(),
                        reason: "imported".into(),
                    };
                    update_status(&mut tx, &actor, &account, &id, &change, &mut pending).await?;
                    counts.hostnames_changed += 1;
                }
            },
        }
        if pending.len() >= FEED_FLUSH {
            seq = changes::record(&mut tx, std::mem::take(&mut pending)).await?.or(seq);
        }
    }
    seq = changes::record(&mut tx, pending).await?.or(seq);
    Ok(Written { tx, counts, seq, held })
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
        assert_problem(
            r#"{"accounts": {"a": []}}"#,
            r#"accounts["a"]: invalid type: sequence, expected a JSON object"#,
        );
        assert_problem("[]", "invalid type: sequence, expected a JSON object at the top level");
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

    #[test]
    fn accounts_come_before_the_sections_that_name_them() {
        assert_problem(
            r#"{"zones": {"x.example": "a"}, "accounts": {"a": {}}}"#,
            r#"zones["x.example"]: unknown account "a" (declare it in "accounts", before this section)"#,
        );
    }

    #[test]
    fn problems_are_listed_up_to_a_bound_then_counted() {
        let hosts: Vec<String> = (0..1_500).map(|i| format!(r#""h{i}.example": "weird""#)).collect();
        let json = format!(r#"{{"accounts": {{"a": {{}}}}, "custom_hostnames": {{"a": {{{}}}}}}}"#, hosts.join(","));
        let ps = problems(&json);
        assert_eq!(ps.len(), 1_001);
        assert_eq!(ps[1_000], "and 500 more problems");
    }

    #[test]
    fn the_same_hostname_under_two_accounts() {
        assert_problem(
            r#"{"accounts": {"a": {}, "b": {}}, "custom_hostnames": {"a": {"x.example": "active"}, "b": {"x.example": "active"}}}"#,
            r#"custom_hostnames: "x.example" is listed under both "a" and "b""#,
        );
    }
}
