//! The SSL state of custom hostnames (issue 21): what the issuer claims
//! under a lease, the steps of an order, the issued certificate, and its
//! withdrawal when the hostname stops being active.

use super::audit::{self, Actor};
use super::changes::{self, Pending};
use super::hostnames::{errors_json, CustomHostname};
use super::lease::Lease;
use super::{col, now, random_hex, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::fmt;

/// Cloudflare for SaaS's certificate statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslStatus {
    Initializing,
    PendingValidation,
    PendingIssuance,
    Active,
    PendingExpiration,
    Expired,
    ValidationTimedOut,
    IssuanceTimedOut,
    Deleted,
}

impl SslStatus {
    pub const ALL: [SslStatus; 9] = [
        SslStatus::Initializing,
        SslStatus::PendingValidation,
        SslStatus::PendingIssuance,
        SslStatus::Active,
        SslStatus::PendingExpiration,
        SslStatus::Expired,
        SslStatus::ValidationTimedOut,
        SslStatus::IssuanceTimedOut,
        SslStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslStatus::Initializing => "initializing",
            SslStatus::PendingValidation => "pending_validation",
            SslStatus::PendingIssuance => "pending_issuance",
            SslStatus::Active => "active",
            SslStatus::PendingExpiration => "pending_expiration",
            SslStatus::Expired => "expired",
            SslStatus::ValidationTimedOut => "validation_timed_out",
            SslStatus::IssuanceTimedOut => "issuance_timed_out",
            SslStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<SslStatus> {
        SslStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for SslStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Domain control validation: HTTP-01 at the edge, or DNS-01 delegated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMethod {
    Http,
    Txt,
}

impl SslMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMethod::Http => "http",
            SslMethod::Txt => "txt",
        }
    }

    pub fn parse(s: &str) -> Option<SslMethod> {
        [SslMethod::Http, SslMethod::Txt].into_iter().find(|m| m.as_str() == s)
    }
}

/// A hostname's SSL columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssl {
    pub method: SslMethod,
    pub status: SslStatus,
    pub errors: Vec<String>,
    /// When the issuer acts next; `None`: only an API call restarts it.
    pub next_at: Option<i64>,
    pub attempts: i64,
    pub since: Option<i64>,
    pub order_url: Option<String>,
    pub order_cert: Option<String>,
    /// Sealed, `cert:<order_cert>` as associated data.
    pub order_key: Option<String>,
    pub http_token: Option<String>,
    pub http_body: Option<String>,
    pub txt_value: Option<String>,
    /// The certificate in service.
    pub certificate: Option<String>,
}

impl Default for Ssl {
    /// A new hostname's: nothing ordered, due as soon as it is active.
    fn default() -> Ssl {
        Ssl {
            method: SslMethod::Http,
            status: SslStatus::Initializing,
            errors: Vec::new(),
            next_at: Some(0),
            attempts: 0,
            since: None,
            order_url: None,
            order_cert: None,
            order_key: None,
            http_token: None,
            http_body: None,
            txt_value: None,
            certificate: None,
        }
    }
}

pub(super) fn ssl_from_row(row: &AnyRow) -> Result<Ssl, StoreError> {
    let method: String = col(row, "ssl_method")?;
    let status: String = col(row, "ssl_status")?;
    let errors: String = col(row, "ssl_errors")?;
    Ok(Ssl {
        method: SslMethod::parse(&method).ok_or_else(|| StoreError::Corrupt(format!("ssl_method {method:?}")))?,
        status: SslStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("ssl_status {status:?}")))?,
        errors: serde_json::from_str(&errors).map_err(|e| StoreError::Corrupt(format!("ssl_errors: {e}")))?,
        next_at: col(row, "ssl_next_at")?,
        attempts: col(row, "ssl_attempts")?,
        since: col(row, "ssl_since")?,
        order_url: col(row, "ssl_order_url")?,
        order_cert: col(row, "ssl_order_cert")?,
        order_key: col(row, "ssl_order_key")?,
        http_token: col(row, "ssl_http_token")?,
        http_body: col(row, "ssl_http_body")?,
        txt_value: col(row, "ssl_txt_value")?,
        certificate: col(row, "ssl_certificate")?,
    })
}

/// What an issued certificate is, as shown and as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    pub hostname_id: String,
    pub hostname: String,
    pub chain_pem: String,
    /// Sealed, `cert:<id>` as associated data.
    pub key_sealed: String,
    pub certificate_authority: String,
    pub issuer: String,
    pub serial_number: String,
    pub not_before: i64,
    pub expires_on: i64,
    pub renew_at: i64,
}

const CERT_COLUMNS: &str = "id, hostname_id, hostname, chain_pem, key_sealed, certificate_authority, issuer, \
    serial_number, not_before, expires_on, renew_at";

fn cert_from_row(row: &AnyRow) -> Result<Certificate, StoreError> {
    Ok(Certificate {
        id: col(row, "id")?,
        hostname_id: col(row, "hostname_id")?,
        hostname: col(row, "hostname")?,
        chain_pem: col(row, "chain_pem")?,
        key_sealed: col(row, "key_sealed")?,
        certificate_authority: col(row, "certificate_authority")?,
        issuer: col(row, "issuer")?,
        serial_number: col(row, "serial_number")?,
        not_before: col(row, "not_before")?,
        expires_on: col(row, "expires_on")?,
        renew_at: col(row, "renew_at")?,
    })
}

/// An order placed: what the edge or DNS must show, and the key to come.
#[derive(Debug, Clone)]
pub struct OrderStarted {
    pub order_url: String,
    pub order_cert: String,
    pub order_key: String,
    pub http_token: Option<String>,
    pub http_body: Option<String>,
    pub txt_value: Option<String>,
}

/// Where a failed or waiting attempt leaves the hostname.
#[derive(Debug, Clone)]
pub struct SslSetback {
    pub status: SslStatus,
    pub errors: Vec<String>,
    /// `None`: stop until an API call (a timeout).
    pub next_at: Option<i64>,
    /// Forget the order (it is invalid, or its key is gone).
    pub drop_order: bool,
    /// Count it as a failed attempt (backoff); a wait for a rate limit is not.
    pub failed: bool,
}

/// Due for the issuer at `$1` (new, renewal, retry) and not leased.
const ORDERS: Lease = Lease {
    due: "status = 'active' AND ssl_next_at <= $1 AND (ssl_lease_until IS NULL OR ssl_lease_until < $1)",
    order_by: "ssl_next_at",
    owner: "ssl_lease_owner",
    until: "ssl_lease_until",
};

/// The lease and the hostname still active: every issuer write checks both.
const HELD: &str = "ssl_lease_owner = $1 AND status = 'active'";

impl Store {
    /// A fresh id for a certificate-to-be.
    pub fn new_certificate_id() -> Result<String, StoreError> {
        random_hex()
    }

    /// Leases up to `limit` active hostnames whose issuer work is due.
    pub async fn claim_ssl_due(
        &self,
        owner: &str,
        now: i64,
        lease_secs: i64,
        limit: u32,
    ) -> Result<Vec<CustomHostname>, StoreError> {
        self.claim(&ORDERS, owner, now, lease_secs, limit).await
    }

    /// Records a placed order (pending validation). False: the lease or
    /// the hostname's activity was lost.
    pub async fn ssl_order_started(&self, owner: &str, id: &str, o: &OrderStarted) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_status = 'pending_validation', ssl_order_url = $3, ssl_order_cert = $4, \
             ssl_order_key = $5, ssl_http_token = $6, ssl_http_body = $7, ssl_txt_value = $8, \
             ssl_since = COALESCE(ssl_since, $9) WHERE id = $2 AND {HELD}"
        ))
        .bind(owner)
        .bind(id)
        .bind(&o.order_url)
        .bind(&o.order_cert)
        .bind(&o.order_key)
        .bind(o.http_token.clone())
        .bind(o.http_body.clone())
        .bind(o.txt_value.clone())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A status step within the lease (pending_issuance), errors cleared.
    pub async fn ssl_step(&self, owner: &str, id: &str, status: SslStatus) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_status = $3, ssl_errors = '[]' WHERE id = $2 AND {HELD}"
        ))
        .bind(owner)
        .bind(id)
        .bind(status.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the lease on a failed or waiting attempt.
    pub async fn ssl_setback(&self, owner: &str, id: &str, s: &SslSetback) -> Result<bool, StoreError> {
        let order = if s.drop_order {
            ", ssl_order_url = NULL, ssl_order_cert = NULL, ssl_order_key = NULL, ssl_http_token = NULL, \
             ssl_http_body = NULL, ssl_txt_value = NULL"
        } else {
            ""
        };
        let done = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_status = $3, ssl_errors = $4, ssl_next_at = $5, \
             ssl_attempts = ssl_attempts + $6, ssl_since = COALESCE(ssl_since, $7), \
             ssl_lease_owner = NULL, ssl_lease_until = NULL{order} WHERE id = $2 AND {HELD}"
        ))
        .bind(owner)
        .bind(id)
        .bind(s.status.as_str())
        .bind(errors_json(&s.errors))
        .bind(s.next_at)
        .bind(i64::from(s.failed))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts `cert` in service in place of the hostname's previous one
    /// (destroyed), ends the order and the lease, and tells the feed.
    /// `next_at`: when the issuer looks at it again (its renewal, or
    /// sooner to ask the CA for its renewal window).
    pub async fn ssl_issued(
        &self,
        owner: &str,
        cert: &Certificate,
        renewal: bool,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_status = 'active', ssl_errors = '[]', ssl_next_at = $3, \
             ssl_attempts = 0, ssl_since = NULL, ssl_certificate = $4, ssl_order_url = NULL, ssl_order_cert = NULL, \
             ssl_order_key = NULL, ssl_http_token = NULL, ssl_http_body = NULL, ssl_txt_value = NULL, \
             ssl_lease_owner = NULL, ssl_lease_until = NULL WHERE id = $2 AND {HELD} RETURNING hostname"
        ))
        .bind(owner)
        .bind(&cert.hostname_id)
        .bind(next_at)
        .bind(&cert.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            return Ok(false);
        };
        let hostname: String = col(&row, "hostname")?;
        sqlx::query("DELETE FROM certificates WHERE hostname_id = $1")
            .bind(&cert.hostname_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO certificates ({CERT_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&cert.id)
        .bind(&cert.hostname_id)
        .bind(&hostname)
        .bind(&cert.chain_pem)
        .bind(&cert.key_sealed)
        .bind(&cert.certificate_authority)
        .bind(&cert.issuer)
        .bind(&cert.serial_number)
        .bind(cert.not_before)
        .bind(cert.expires_on)
        .bind(cert.renew_at)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let action = if renewal { "certificate.renew" } else { "certificate.issue" };
        let reason =
            format!("serial {} by {}, expires {}", cert.serial_number, cert.issuer, super::rfc3339(cert.expires_on));
        self.commit_cert_change(tx, &hostname, action, &reason).await
    }

    /// The CA's renewal window looked at, no renewal due yet: when to renew
    /// and when to look again; the lease ends. False: the lease was lost.
    pub async fn ssl_renewal_planned(
        &self,
        owner: &str,
        id: &str,
        cert_id: &str,
        renew_at: i64,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_next_at = $3, ssl_lease_owner = NULL, ssl_lease_until = NULL \
             WHERE id = $2 AND ssl_certificate = $4 AND {HELD}"
        ))
        .bind(owner)
        .bind(id)
        .bind(next_at)
        .bind(cert_id)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE certificates SET renew_at = $2 WHERE id = $1")
            .bind(cert_id)
            .bind(renew_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The certificate has expired: out of service, its key destroyed.
    pub async fn ssl_expired(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE custom_hostnames SET ssl_status = 'expired', ssl_certificate = NULL WHERE id = $2 AND {HELD} \
             RETURNING hostname"
        ))
        .bind(owner)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let hostname: String = col(&row, "hostname")?;
        sqlx::query("DELETE FROM certificates WHERE hostname_id = $1").bind(id).execute(&mut *tx).await?;
        self.commit_cert_change(tx, &hostname, "certificate.expire", "expired").await
    }

    /// The issuer's audit entry and the feed's `cert` name for `hostname`,
    /// then the commit.
    async fn commit_cert_change(
        &self,
        mut tx: Transaction<'_, Any>,
        hostname: &str,
        action: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        audit::record(&mut tx, &Actor::Issuer, action, &format!("hostname:{hostname}"), reason).await?;
        let mut pending = Pending::default();
        pending.cert(hostname);
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(true)
    }

    /// Gives up every lease `owner` holds (a replica stopping).
    pub async fn ssl_release_all(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE custom_hostnames SET ssl_lease_owner = NULL, ssl_lease_until = NULL WHERE ssl_lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A certificate by id.
    pub async fn certificate(&self, id: &str) -> Result<Option<Certificate>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CERT_COLUMNS} FROM certificates WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// The certificate in service for `hostname`, if the hostname is active.
    pub async fn certificate_for(&self, hostname: &str) -> Result<Option<Certificate>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE id = \
             (SELECT ssl_certificate FROM custom_hostnames WHERE hostname = $1 AND status = 'active')"
        ))
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// Every sealed value in the database (a test that no key is in clear,
    /// and a future key rotation).
    pub async fn sealed_values(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for sql in [
            "SELECT key_sealed AS v FROM certificates",
            "SELECT ssl_order_key AS v FROM custom_hostnames WHERE ssl_order_key IS NOT NULL",
            "SELECT credentials AS v FROM acme_accounts",
        ] {
            for row in sqlx::query(sql).fetch_all(&self.pool).await? {
                out.push(col(&row, "v")?);
            }
        }
        Ok(out)
    }

    /// The HTTP-01 answer for `token` at `hostname`, while the hostname is
    /// pending or active.
    pub async fn http_challenge(&self, hostname: &str, token: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT ssl_http_body FROM custom_hostnames WHERE hostname = $1 AND ssl_http_token = $2 \
             AND status IN ('pending', 'active')",
        )
        .bind(hostname)
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => col(&row, "ssl_http_body"),
            None => Ok(None),
        }
    }

    /// The sealed ACME account of `directory`, if one was created.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT credentials FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| col(r, "credentials")).transpose()
    }

    /// Drops the account of `directory` (the CA no longer knows it).
    pub async fn delete_acme_account(&self, directory: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM acme_accounts WHERE directory = $1").bind(directory).execute(&self.pool).await?;
        Ok(())
    }

    /// Keeps the first account stored for `directory` (of two replicas
    /// creating at once, both use the one that won); answers it.
    pub async fn put_acme_account(&self, directory: &str, sealed: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory) DO NOTHING",
        )
        .bind(directory)
        .bind(sealed)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.acme_account(directory).await?.ok_or(StoreError::NotFound("acme account"))
    }

    /// Asks the issuer to act now: a forced renewal, or a retry after a
    /// timeout. `Conflict` unless the hostname is active.
    pub async fn ssl_retry_now(&self, actor: &Actor, account: &str, id: &str, why: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE custom_hostnames SET ssl_next_at = $3, ssl_attempts = 0, \
             ssl_since = CASE WHEN ssl_certificate IS NULL THEN NULL ELSE ssl_since END \
             WHERE id = $1 AND account = $2 AND status = 'active' RETURNING hostname",
        )
        .bind(id)
        .bind(account)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Conflict("only an active custom hostname gets a certificate".into()));
        };
        let hostname: String = col(&row, "hostname")?;
        // A certificate in service is due now, whatever the CA's window says.
        sqlx::query(
            "UPDATE certificates SET renew_at = $2 WHERE id = (SELECT ssl_certificate FROM custom_hostnames WHERE id = $1)",
        )
        .bind(id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        audit::record(&mut tx, actor, "certificate.retry", &format!("hostname:{hostname}"), why).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the validation method; an order in flight is dropped and
    /// the issuer starts over at once.
    pub async fn set_ssl_method(
        &self,
        actor: &Actor,
        account: &str,
        id: &str,
        method: SslMethod,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE custom_hostnames SET ssl_method = $3, ssl_order_url = NULL, ssl_order_cert = NULL, \
             ssl_order_key = NULL, ssl_http_token = NULL, ssl_http_body = NULL, ssl_txt_value = NULL, \
             ssl_attempts = 0, ssl_since = NULL, ssl_next_at = CASE WHEN ssl_certificate IS NULL THEN $4 ELSE ssl_next_at END, \
             ssl_status = CASE WHEN ssl_certificate IS NULL THEN 'initializing' ELSE ssl_status END, \
             ssl_errors = CASE WHEN ssl_certificate IS NULL THEN '[]' ELSE ssl_errors END \
             WHERE id = $1 AND account = $2 AND ssl_method <> $3 RETURNING hostname",
        )
        .bind(id)
        .bind(account)
        .bind(method.as_str())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let hostname: String = col(&row, "hostname")?;
        audit::record(&mut tx, actor, "certificate.method", &format!("hostname:{hostname}"), method.as_str()).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Takes a hostname's certificate out of service and destroys its keys,
/// in the transaction that made it inactive (block, move, delete).
pub(super) async fn withdraw(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    hostname: &str,
    reason: &str,
    pending: &mut Pending,
) -> Result<(), StoreError> {
    let gone = sqlx::query("DELETE FROM certificates WHERE hostname_id = $1").bind(id).execute(&mut **tx).await?;
    let errors = errors_json(&[reason.to_string()]);
    sqlx::query(
        "UPDATE custom_hostnames SET ssl_status = 'initializing', ssl_errors = $2, ssl_next_at = 0, ssl_attempts = 0, \
         ssl_since = NULL, ssl_certificate = NULL, ssl_order_url = NULL, ssl_order_cert = NULL, ssl_order_key = NULL, \
         ssl_http_token = NULL, ssl_http_body = NULL, ssl_txt_value = NULL, ssl_lease_owner = NULL, \
         ssl_lease_until = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(errors)
    .execute(&mut **tx)
    .await?;
    if gone.rows_affected() > 0 {
        pending.cert(hostname);
    }
    Ok(())
}
