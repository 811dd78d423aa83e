//! Zones: a zone name and every name under it belong to one account.

use super::accounts::{conflict_on_unique, Upsert};
use super::audit::{self, Actor};
use super::changes::{self, Pending};
use super::{col, is_foreign_key_violation, now, Store, StoreError};
use sqlx::{Any, Transaction};

impl Store {
    /// Assigns `zone` to `account` (which must exist).
    pub async fn put_zone(&self, actor: &Actor, zone: &str, account: &str) -> Result<Upsert, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut pending = Pending::default();
        let created = upsert_zone(&mut tx, actor, zone, account, &mut pending).await?;
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(created)
    }

    pub async fn delete_zone(&self, actor: &Actor, zone: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("DELETE FROM zones WHERE name = $1 RETURNING account")
            .bind(zone)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("zone"))?;
        let mut pending = Pending::default();
        pending.zone(zone);
        pending.hostnames_of(&mut tx, &col::<String>(&row, "account")?).await?;
        audit::record(&mut tx, actor, "zone.delete", &format!("zone:{zone}"), "deleted").await?;
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(())
    }

    /// The owner of the longest zone equal to `name` or a parent of it.
    pub async fn zone_owner(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.zone_of(name).await?.map(|(_, account)| account))
    }

    /// The longest zone equal to `name` or a parent of it, and its account.
    pub async fn zone_of(&self, name: &str) -> Result<Option<(String, String)>, StoreError> {
        let mut candidate = Some(name);
        while let Some(zone) = candidate {
            let row =
                sqlx::query("SELECT account FROM zones WHERE name = $1").bind(zone).fetch_optional(&self.pool).await?;
            if let Some(row) = row {
                return Ok(Some((zone.to_string(), col(&row, "account")?)));
            }
            candidate = zone.split_once('.').map(|(_, parent)| parent);
        }
        Ok(None)
    }
}

pub(super) async fn upsert_zone(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    zone: &str,
    account: &str,
    pending: &mut Pending,
) -> Result<Upsert, StoreError> {
    let t = now();
    let fk = |e: sqlx::Error| {
        if is_foreign_key_violation(&e) {
            StoreError::NotFound("account")
        } else {
            conflict_on_unique(e, "the zone was created concurrently; retry")
        }
    };
    let current = sqlx::query("SELECT account FROM zones WHERE name = $1").bind(zone).fetch_optional(&mut **tx).await?;
    let done = match current {
        Some(row) if col::<String>(&row, "account")? == account => return Ok(Upsert::Unchanged),
        Some(row) => {
            pending.hostnames_of(tx, &col::<String>(&row, "account")?).await?;
            sqlx::query("UPDATE zones SET account = $1, updated_at = $2 WHERE name = $3")
                .bind(account)
                .bind(t)
                .bind(zone)
                .execute(&mut **tx)
                .await
                .map_err(fk)?;
            Upsert::Updated
        }
        None => {
            sqlx::query("INSERT INTO zones (name, account, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(zone)
                .bind(account)
                .bind(t)
                .execute(&mut **tx)
                .await
                .map_err(fk)?;
            Upsert::Created
        }
    };
    // Names in the zone, and custom hostnames whose CNAMEs lead into it.
    pending.zone(zone);
    pending.hostnames_of(tx, account).await?;
    let action = if done == Upsert::Created { "zone.create" } else { "zone.update" };
    audit::record(tx, actor, action, &format!("zone:{zone}"), &format!("account={account}")).await?;
    Ok(done)
}
