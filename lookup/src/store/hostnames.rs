//! Custom hostnames: one hostname, one account, across the platform.

use super::accounts::conflict_on_unique;
use super::audit::{self, Actor};
use super::changes::{self, Pending};
use super::ssl::{self, ssl_from_row, Ssl};
use super::{col, is_foreign_key_violation, now, random_hex, Store, StoreError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};
use std::fmt;

/// The largest page `list_hostnames` serves.
pub const MAX_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Active,
    Moved,
    Blocked,
    TimedOut,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Pending, Status::Active, Status::Moved, Status::Blocked, Status::TimedOut];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Moved => "moved",
            Status::Blocked => "blocked",
            Status::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHostname {
    pub id: String,
    pub hostname: String,
    pub account: String,
    pub status: Status,
    pub verification_token: String,
    pub verification_errors: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_checked_at: Option<i64>,
    pub ssl: Ssl,
}

#[derive(Debug, Clone, Default)]
pub struct HostnameFilter {
    pub hostname: Option<String>,
    pub status: Option<Status>,
    /// From 1.
    pub page: u32,
    /// 1..=MAX_PER_PAGE.
    pub per_page: u32,
    /// By hostname, Z to A.
    pub descending: bool,
}

impl HostnameFilter {
    /// The conditions on `account = $1` and the filter's values, from `$2`
    /// on; the number of the last placeholder used.
    fn conditions(&self) -> (String, usize) {
        // Only the placeholders vary; every value is bound.
        let mut conds = String::from("account = $1");
        let mut n = 1;
        if self.hostname.is_some() {
            n += 1;
            conds.push_str(&format!(" AND hostname = ${n}"));
        }
        if self.status.is_some() {
            n += 1;
            conds.push_str(&format!(" AND status = ${n}"));
        }
        (conds, n)
    }

    fn bind<'q>(&'q self, account: &'q str, sql: &'q str) -> Query<'q, Any, AnyArguments<'q>> {
        let mut q = sqlx::query(sql).bind(account);
        if let Some(h) = &self.hostname {
            q = q.bind(h.as_str());
        }
        if let Some(s) = self.status {
            q = q.bind(s.as_str());
        }
        q
    }

    fn order(&self) -> &'static str {
        if self.descending {
            "hostname DESC"
        } else {
            "hostname"
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostnamePage {
    pub result: Vec<CustomHostname>,
    pub total_count: u64,
}

/// A page by cursor: no total (counting costs as much as the account is
/// large), only whether more follow.
#[derive(Debug, Clone)]
pub struct HostnameSlice {
    pub result: Vec<CustomHostname>,
    pub more: bool,
}

/// The outcome of a check, applied only if the status is still `from`: of
/// two replicas checking at once, the second finds the row changed and
/// writes nothing.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub from: Status,
    pub to: Status,
    pub verification_errors: Vec<String>,
    pub reason: String,
}

pub(super) const COLUMNS: &str = "id, hostname, account, status, verification_token, verification_errors, \
    created_at, updated_at, last_checked_at, ssl_method, ssl_status, ssl_errors, ssl_next_at, ssl_attempts, \
    ssl_since, ssl_order_url, ssl_order_cert, ssl_order_key, ssl_http_token, ssl_http_body, ssl_txt_value, \
    ssl_certificate";

pub(super) fn from_row(row: &AnyRow) -> Result<CustomHostname, StoreError> {
    let status: String = col(row, "status")?;
    let errors: String = col(row, "verification_errors")?;
    Ok(CustomHostname {
        id: col(row, "id")?,
        hostname: col(row, "hostname")?,
        account: col(row, "account")?,
        status: Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        verification_token: col(row, "verification_token")?,
        verification_errors: serde_json::from_str(&errors)
            .map_err(|e| StoreError::Corrupt(format!("verification_errors: {e}")))?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        last_checked_at: col(row, "last_checked_at")?,
        ssl: ssl_from_row(row)?,
    })
}

pub(super) fn errors_json(errors: &[String]) -> String {
    serde_json::Value::from(errors.to_vec()).to_string()
}

impl Store {
    /// A fresh verification token, for `create_hostname`.
    pub fn new_verification_token() -> Result<String, StoreError> {
        random_hex()
    }

    /// Stores a new custom hostname of `account` with the outcome of its
    /// first check. `Conflict` if any account already holds the hostname.
    pub async fn create_hostname(
        &self,
        actor: &Actor,
        account: &str,
        hostname: &str,
        token: &str,
        status: Status,
        errors: &[String],
    ) -> Result<CustomHostname, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut pending = Pending::default();
        let id = insert_hostname(&mut tx, actor, account, hostname, token, status, errors, &mut pending).await?;
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        self.hostname(account, &id).await?.ok_or(StoreError::NotFound("custom hostname"))
    }

    /// The hostname `id` if `account` holds it: another account's is `None`.
    pub async fn hostname(&self, account: &str, id: &str) -> Result<Option<CustomHostname>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM custom_hostnames WHERE id = $1 AND account = $2"))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The record of `hostname`, whichever account holds it.
    pub async fn hostname_by_name(&self, hostname: &str) -> Result<Option<CustomHostname>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM custom_hostnames WHERE hostname = $1"))
            .bind(hostname)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// One page of `account`'s hostnames by number, by hostname.
    pub async fn list_hostnames(&self, account: &str, filter: &HostnameFilter) -> Result<HostnamePage, StoreError> {
        let (conds, n) = filter.conditions();
        let count_sql = format!("SELECT COUNT(*) AS n FROM custom_hostnames WHERE {conds}");
        let page_sql = format!(
            "SELECT {COLUMNS} FROM custom_hostnames WHERE {conds} ORDER BY {} LIMIT ${} OFFSET ${}",
            filter.order(),
            n + 1,
            n + 2
        );
        let per_page = filter.per_page.clamp(1, MAX_PER_PAGE);
        let offset = i64::from(filter.page.max(1) - 1) * i64::from(per_page);
        let total: i64 = col(&filter.bind(account, &count_sql).fetch_one(&self.pool).await?, "n")?;
        let rows = filter.bind(account, &page_sql).bind(i64::from(per_page)).bind(offset).fetch_all(&self.pool).await?;
        Ok(HostnamePage {
            result: rows.iter().map(from_row).collect::<Result<_, _>>()?,
            total_count: u64::try_from(total).unwrap_or(0),
        })
    }

    /// Up to `per_page` of `account`'s hostnames after `after` in the
    /// filter's order: a range of the (account, hostname) index, the same
    /// cost at any depth. A hostname created or deleted during a walk may or
    /// may not be seen; every other is seen exactly once.
    pub async fn list_hostnames_after(
        &self,
        account: &str,
        filter: &HostnameFilter,
        after: &str,
    ) -> Result<HostnameSlice, StoreError> {
        let (conds, n) = filter.conditions();
        let sql = format!(
            "SELECT {COLUMNS} FROM custom_hostnames WHERE {conds} AND hostname {} ${} ORDER BY {} LIMIT ${}",
            if filter.descending { "<" } else { ">" },
            n + 1,
            filter.order(),
            n + 2
        );
        let per_page = filter.per_page.clamp(1, MAX_PER_PAGE);
        // One more than asked: whether more follow, without counting.
        let rows = filter.bind(account, &sql).bind(after).bind(i64::from(per_page) + 1).fetch_all(&self.pool).await?;
        let more = rows.len() > per_page as usize;
        let result = rows.iter().take(per_page as usize).map(from_row).collect::<Result<_, _>>()?;
        Ok(HostnameSlice { result, more })
    }

    pub async fn delete_hostname(&self, actor: &Actor, account: &str, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("DELETE FROM custom_hostnames WHERE id = $1 AND account = $2 RETURNING hostname")
            .bind(id)
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("custom hostname"))?;
        let hostname: String = col(&row, "hostname")?;
        audit::record(&mut tx, actor, "hostname.delete", &format!("hostname:{hostname}"), "deleted").await?;
        let mut pending = Pending::default();
        // Its certificate and keys go with it.
        ssl::withdraw(&mut tx, id, &hostname, "deleted", &mut pending).await?;
        pending.host(&hostname);
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(())
    }

    /// Applies a status change if the row is still in `change.from`; the
    /// updated record, or `None` if it is gone or changed meanwhile.
    pub async fn change_status(
        &self,
        actor: &Actor,
        account: &str,
        id: &str,
        change: &StatusChange,
    ) -> Result<Option<CustomHostname>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut pending = Pending::default();
        if !update_status(&mut tx, actor, account, id, change, &mut pending).await? {
            return Ok(None);
        }
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        self.hostname(account, id).await
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_hostname(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    account: &str,
    hostname: &str,
    token: &str,
    status: Status,
    errors: &[String],
    pending: &mut Pending,
) -> Result<String, StoreError> {
    let id = random_hex()?;
    sqlx::query(
        "INSERT INTO custom_hostnames (id, hostname, account, status, verification_token, \
         verification_errors, created_at, updated_at, last_checked_at, next_check_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, 0)",
    )
    .bind(&id)
    .bind(hostname)
    .bind(account)
    .bind(status.as_str())
    .bind(token)
    .bind(errors_json(errors))
    .bind(now())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::NotFound("account")
        } else {
            conflict_on_unique(e, &format!("{hostname} is already a custom hostname (one hostname, one account)"))
        }
    })?;
    audit::record(tx, actor, "hostname.create", &format!("hostname:{hostname}"), &format!("status={status}")).await?;
    pending.host(hostname);
    Ok(id)
}

/// The compare-and-set of `change_status`; false if nothing matched.
pub(super) async fn update_status(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    account: &str,
    id: &str,
    change: &StatusChange,
    pending: &mut Pending,
) -> Result<bool, StoreError> {
    let t = now();
    let row = sqlx::query(
        "UPDATE custom_hostnames SET status = $1, verification_errors = $2, updated_at = $3, last_checked_at = $3 \
         WHERE id = $4 AND account = $5 AND status = $6 RETURNING hostname",
    )
    .bind(change.to.as_str())
    .bind(errors_json(&change.verification_errors))
    .bind(t)
    .bind(id)
    .bind(account)
    .bind(change.from.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let hostname: String = col(&row, "hostname")?;
    audit_transition(tx, actor, &hostname, change).await?;
    if change.from != change.to {
        pending.host(&hostname);
        withdraw_unless_active(tx, id, &hostname, change.to, pending).await?;
    }
    Ok(true)
}

/// A hostname that stops being active loses its certificate at once.
pub(super) async fn withdraw_unless_active(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    hostname: &str,
    to: Status,
    pending: &mut Pending,
) -> Result<(), StoreError> {
    if to == Status::Active {
        return Ok(());
    }
    let reason = format!("the custom hostname is {to}: no certificate is issued or served until it is active again");
    ssl::withdraw(tx, id, hostname, &reason, pending).await
}

/// The audit entry of a status change; none if the status stays.
pub(super) async fn audit_transition(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    hostname: &str,
    change: &StatusChange,
) -> Result<(), StoreError> {
    if change.from == change.to {
        return Ok(());
    }
    let reason = format!("{} -> {}: {}", change.from, change.to, change.reason);
    audit::record(tx, actor, "hostname.status", &format!("hostname:{hostname}"), &reason).await
}

/// `hostname`'s (id, account, status) inside a transaction.
pub(super) async fn find_in(
    tx: &mut Transaction<'_, Any>,
    hostname: &str,
) -> Result<Option<(String, String, Status)>, StoreError> {
    let row = sqlx::query("SELECT id, account, status FROM custom_hostnames WHERE hostname = $1")
        .bind(hostname)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status: String = col(&row, "status")?;
    let status = Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?;
    Ok(Some((col(&row, "id")?, col(&row, "account")?, status)))
}
