//! The audit log: every change, who made it and why, written in the
//! transaction of the change itself; entries past the retention are pruned
//! in the background (`crate::retention`).

use super::{col, hex, now, Store, StoreError};
use sqlx::{Any, Transaction};
use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest reason an entry keeps, in bytes. Reasons are written by the
/// service, but some quote what a customer's DNS answered (a CNAME chain of
/// up to 8 hops of up to 253 bytes each, and the verification token); past
/// this the reason is cut at a character boundary and ends with `…`.
pub const MAX_REASON: usize = 1024;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator, with the admin token.
    Admin,
    /// An account, with one of its API tokens.
    Token { account: String, token_id: String },
    /// The background verifier.
    Verifier,
    /// `cname-guard-lookup import FILE`.
    Import,
    /// The certificate issuer (ACME).
    Issuer,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Token { account, token_id } => format!("account:{account} token:{token_id}"),
            Actor::Verifier => "verifier".into(),
            Actor::Import => "import".into(),
            Actor::Issuer => "issuer".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
}

/// The first 24 hex digits of every id written at `t` or later: ids start
/// with their time, so "written before `t`" is a range of the primary key.
fn time_prefix(t: SystemTime) -> String {
    format!("{:024x}", t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))
}

/// Nanoseconds since the epoch then 64 random bits, in hex (40 bytes): ids
/// sort in the order the entries were written, and two replicas writing in
/// the same nanosecond collide with odds of 2^-64. (Older ids have 128
/// random bits; the time prefix, and so the order, is the same.)
fn ordered_id() -> Result<String, StoreError> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| StoreError::Conflict(format!("no randomness: {e}")))?;
    Ok(format!("{}{}", time_prefix(SystemTime::now()), hex(&random)))
}

/// `reason`, cut to at most [`MAX_REASON`] bytes.
fn bounded(reason: &str) -> Cow<'_, str> {
    if reason.len() <= MAX_REASON {
        return Cow::Borrowed(reason);
    }
    const MARK: &str = "…";
    let mut end = MAX_REASON - MARK.len();
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{MARK}", &reason[..end]))
}

pub(crate) async fn record(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    action: &str,
    subject: &str,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (id, at, actor, action, subject, reason) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(ordered_id()?)
        .bind(now())
        .bind(actor.label())
        .bind(action)
        .bind(subject)
        .bind(bounded(reason).into_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The history of one subject (`account:X`, `zone:X`, `hostname:X`,
    /// `token:X`), oldest first.
    pub async fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT at, actor, action, subject, reason FROM audit_log WHERE subject = $1 ORDER BY id")
                .bind(subject)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: col(r, "at")?,
                    actor: col(r, "actor")?,
                    action: col(r, "action")?,
                    subject: col(r, "subject")?,
                    reason: col(r, "reason")?,
                })
            })
            .collect()
    }

    /// Deletes at most `batch` entries written before `before`, oldest
    /// first, in one short statement (its own transaction): a range of the
    /// primary key, never a long write lock. Returns how many it deleted;
    /// fewer than `batch` means none is left (or another replica is
    /// pruning the same rows: deleting is idempotent).
    pub async fn prune_audit(&self, before: SystemTime, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE id < $1 ORDER BY id LIMIT $2)",
        )
        .bind(time_prefix(before))
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("proven by DNS"), "proven by DNS");
        let exact = "x".repeat(MAX_REASON);
        assert!(matches!(bounded(&exact), Cow::Borrowed(_)));
        let long = format!("a{}", "é".repeat(MAX_REASON));
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_REASON && cut.ends_with('…'), "{} bytes", cut.len());
        assert!(cut.starts_with("aé"));
    }

    #[test]
    fn ids_sort_by_time_and_the_prefix_bounds_them() {
        let before = time_prefix(SystemTime::now());
        let id = ordered_id().expect("id");
        assert_eq!(id.len(), 40);
        assert!(before.as_str() <= id.as_str());
        let later = time_prefix(SystemTime::now() + Duration::from_secs(1));
        assert!(id.as_str() < later.as_str());
    }
}
