//! The audit log: every change, who made it and why, written in the
//! transaction of the change itself.

use super::{col, now, random_hex, Store, StoreError};
use sqlx::{Any, Transaction};
use std::time::{SystemTime, UNIX_EPOCH};

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
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Token { account, token_id } => format!("account:{account} token:{token_id}"),
            Actor::Verifier => "verifier".into(),
            Actor::Import => "import".into(),
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

/// Nanoseconds since the epoch then randomness, in hex: ids sort in the
/// order the entries were written, and two replicas never collide.
fn ordered_id() -> Result<String, StoreError> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(format!("{:024x}{}", nanos, random_hex()?))
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
        .bind(reason)
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
}
