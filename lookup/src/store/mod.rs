//! The store: accounts, zones, custom hostnames, API tokens and the audit
//! log, in SQLite (embedded default) or PostgreSQL, through one code path
//! (`sqlx::Any`) and one schema (`lookup/migrations/`).
//!
//! Every query is parameterised; every change is written with its audit
//! entry, and the names it affects for the change feed, in one transaction.

mod accounts;
mod audit;
mod changes;
mod checks;
mod hostnames;
mod import;
mod lease;
mod migrations;
mod names;
mod platform;
mod ssl;
mod tokens;
mod zones;

pub use accounts::Upsert;
pub use audit::{Actor, AuditEntry};
pub use changes::{Changes, FeedHead, MAX_NAMES};
pub use hostnames::{CustomHostname, HostnameFilter, HostnamePage, HostnameSlice, Status, StatusChange, MAX_PER_PAGE};
pub use import::{import_file, import_reader, import_registry, parse_registry, ImportCounts, ImportError};
pub use names::{check_account, check_hostname, check_id, NameError};
pub use ssl::{Certificate, OrderStarted, Ssl, SslMethod, SslSetback, SslStatus};
pub use tokens::{IssuedToken, TokenOwner};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Connections per pool; SQLite serialises writers anyway.
const POOL_SIZE: u32 = 8;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone (a pool).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The newest change sequence number this process knows of (the feed).
    head: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Debug)]
pub enum StoreError {
    /// The database URL is neither `sqlite:` nor `postgres://`.
    Url(String),
    /// The database answered with an error or could not be reached.
    Database(sqlx::Error),
    Migrate(sqlx::migrate::MigrateError),
    /// The thing named does not exist.
    NotFound(&'static str),
    /// The change conflicts with what is stored (duplicate, still in use).
    Conflict(String),
    /// A stored value the code cannot read (a corrupted row).
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Url(u) => write!(f, "database URL must start with sqlite: or postgres:// (got {u:?})"),
            StoreError::Database(e) => write!(f, "database: {e}"),
            StoreError::Migrate(e) => write!(f, "database migration: {e}"),
            StoreError::NotFound(what) => write!(f, "{what} not found"),
            StoreError::Conflict(m) => f.write_str(m),
            StoreError::Corrupt(m) => write!(f, "corrupt row: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError::Database(e)
    }
}

impl Store {
    /// Opens `sqlite:PATH` (created if missing, WAL) or `postgres://...`,
    /// and applies the migrations that have not run yet.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") { url.to_string() } else { format!("{url}{sep}mode=rwc") };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let pool =
            AnyPoolOptions::new().max_connections(POOL_SIZE).acquire_timeout(ACQUIRE_TIMEOUT).connect(&url).await?;
        if backend == Backend::Sqlite {
            // Persistent in the file: readers never wait on the writer.
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
        }
        migrations::run(&pool).await?;
        let store = Store { pool, backend, head: Arc::new(tokio::sync::watch::Sender::new(0)) };
        store.refresh_head().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (a restart, a test).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Unix seconds as RFC 3339 (`2026-12-01T22:30:00Z`).
pub fn rfc3339(secs: i64) -> String {
    // Clamped to what RFC 3339 can write: a certificate may say year 10000.
    const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = UNIX_EPOCH + Duration::from_secs(secs.clamp(0, LAST) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// 16 random bytes as 32 lowercase hex digits: row ids and token parts.
pub(crate) fn random_hex() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Conflict(format!("no randomness: {e}")))?;
    Ok(hex(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A column of a row, with the column named in the error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Whether an error is the unique constraint refusing a duplicate.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_clamps_to_what_it_can_write() {
        assert_eq!(super::rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(-1), "1970-01-01T00:00:00Z");
    }
}
