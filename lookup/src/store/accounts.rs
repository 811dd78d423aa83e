//! Accounts: created or updated by the operator, removed once empty.

use super::audit::{self, Actor};
use super::changes::{self, Pending};
use super::{col, is_foreign_key_violation, now, Store, StoreError};
use sqlx::{Any, Transaction};

impl Store {
    /// Creates the account or sets its `suspended`.
    pub async fn put_account(&self, actor: &Actor, id: &str, suspended: bool) -> Result<Upsert, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut pending = Pending::default();
        let created = upsert_account(&mut tx, actor, id, suspended, &mut pending).await?;
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(created)
    }

    /// `Some(suspended)` for a known account.
    pub async fn account(&self, id: &str) -> Result<Option<bool>, StoreError> {
        let row =
            sqlx::query("SELECT suspended FROM accounts WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| col::<i64>(&r, "suspended").map(|s| s != 0)).transpose()
    }

    /// Removes an account and its tokens; refused while it holds zones or
    /// custom hostnames.
    pub async fn delete_account(&self, actor: &Actor, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::Conflict(format!("account {id} still has zones or custom hostnames; delete them first"))
                } else {
                    e.into()
                }
            })?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound("account"));
        }
        audit::record(&mut tx, actor, "account.delete", &format!("account:{id}"), "deleted").await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(super) fn conflict_on_unique(e: sqlx::Error, message: &str) -> StoreError {
    if super::is_unique_violation(&e) {
        StoreError::Conflict(message.to_string())
    } else {
        e.into()
    }
}

/// What an upsert did; an unchanged row writes no audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

pub(super) async fn upsert_account(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    id: &str,
    suspended: bool,
    pending: &mut Pending,
) -> Result<Upsert, StoreError> {
    let t = now();
    let flag = i64::from(suspended);
    let current =
        sqlx::query("SELECT suspended FROM accounts WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    let done = match current {
        Some(row) if col::<i64>(&row, "suspended")? == flag => return Ok(Upsert::Unchanged),
        Some(_) => {
            sqlx::query("UPDATE accounts SET suspended = $1, updated_at = $2 WHERE id = $3")
                .bind(flag)
                .bind(t)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            // A new account has nothing to answer for yet; a suspension
            // changes the answer of its zones and custom hostnames.
            pending.account(tx, id).await?;
            Upsert::Updated
        }
        None => {
            sqlx::query("INSERT INTO accounts (id, suspended, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(id)
                .bind(flag)
                .bind(t)
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_on_unique(e, "the account was created concurrently; retry"))?;
            Upsert::Created
        }
    };
    let action = if done == Upsert::Created { "account.create" } else { "account.update" };
    audit::record(tx, actor, action, &format!("account:{id}"), &format!("suspended={suspended}")).await?;
    Ok(done)
}
