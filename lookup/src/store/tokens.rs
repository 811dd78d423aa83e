//! API tokens of accounts. A token is `<id>.<secret>`; only the SHA-256 of
//! the secret is stored, and it is compared in constant time.

use super::audit::{self, Actor};
use super::{check_id, col, hex, is_foreign_key_violation, now, random_hex, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token as issued: the clear text is shown this once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: String,
    pub account: String,
    pub token: String,
    pub created_at: i64,
}

/// Whom a presented token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub account: String,
    pub token_id: String,
}

pub(crate) fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

impl Store {
    pub async fn issue_token(&self, actor: &Actor, account: &str) -> Result<IssuedToken, StoreError> {
        let id = random_hex()?;
        let secret = format!("{}{}", random_hex()?, random_hex()?);
        let t = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO api_tokens (id, account, secret_sha256, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(account)
            .bind(sha256_hex(&secret))
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_foreign_key_violation(&e) { StoreError::NotFound("account") } else { e.into() })?;
        audit::record(&mut tx, actor, "token.issue", &format!("token:{id}"), &format!("account={account}")).await?;
        tx.commit().await?;
        Ok(IssuedToken { token: format!("{id}.{secret}"), id, account: account.to_string(), created_at: t })
    }

    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound("token"));
        }
        audit::record(&mut tx, actor, "token.revoke", &format!("token:{id}"), "revoked").await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account a presented token speaks for; `None` for a malformed,
    /// unknown, revoked or wrong token (the caller cannot tell which).
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenOwner>, StoreError> {
        let Some((id, secret)) = token.split_once('.') else {
            return Ok(None);
        };
        if check_id(id).is_err() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT account, secret_sha256 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = col(&row, "secret_sha256")?;
        let presented = sha256_hex(secret);
        if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
            return Ok(None);
        }
        Ok(Some(TokenOwner { account: col(&row, "account")?, token_id: id.to_string() }))
    }
}
