//! The verifier's side of custom hostnames: due checks claimed under a
//! lease, so of several replicas one checks each hostname per round.

use super::audit::Actor;
use super::changes::{self, Pending};
use super::hostnames::{audit_transition, errors_json, from_row, CustomHostname, Status, StatusChange, COLUMNS};
use super::{col, Store, StoreError};

/// Statuses the verifier re-checks (not blocked, not timed out).
const CHECKED: [Status; 3] = [Status::Pending, Status::Active, Status::Moved];

/// Due at `$4` and not leased, for `$1..$3` bound to `CHECKED`.
const DUE: &str = "status IN ($1, $2, $3) AND (next_check_at IS NULL OR next_check_at <= $4) \
                   AND (lease_until IS NULL OR lease_until < $4)";

impl Store {
    /// Leases up to `limit` hostnames due at `now` to `owner` until
    /// `now + lease_secs`; a hostname leased to another, unexpired, is
    /// skipped. Each claim is a compare-and-set, so two replicas never hold
    /// one hostname.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_secs: i64,
        limit: u32,
    ) -> Result<Vec<CustomHostname>, StoreError> {
        let due = sqlx::query(&format!("SELECT id FROM custom_hostnames WHERE {DUE} ORDER BY next_check_at LIMIT $5"))
            .bind(CHECKED[0].as_str())
            .bind(CHECKED[1].as_str())
            .bind(CHECKED[2].as_str())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = Vec::new();
        for row in due {
            let id: String = col(&row, "id")?;
            // Due-ness is checked again: another replica may have checked
            // it and released it since the SELECT.
            let row = sqlx::query(&format!(
                "UPDATE custom_hostnames SET lease_owner = $6, lease_until = $7 \
                 WHERE id = $5 AND {DUE} RETURNING {COLUMNS}"
            ))
            .bind(CHECKED[0].as_str())
            .bind(CHECKED[1].as_str())
            .bind(CHECKED[2].as_str())
            .bind(now)
            .bind(&id)
            .bind(owner)
            .bind(now + lease_secs)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                claimed.push(from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// Ends `owner`'s lease on `id`: records the check, applies `change`
    /// if the status is still `change.from`, and schedules the next check.
    /// `change: None` (DNS failed) only reschedules. False if the lease was
    /// lost or the status changed meanwhile: nothing is written.
    pub async fn finish_check(
        &self,
        owner: &str,
        id: &str,
        now: i64,
        next_check_at: i64,
        change: Option<&StatusChange>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = match change {
            None => {
                sqlx::query(
                    "UPDATE custom_hostnames SET next_check_at = $1, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $2 AND lease_owner = $3 RETURNING hostname",
                )
                .bind(next_check_at)
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?
            }
            Some(c) => {
                sqlx::query(
                    "UPDATE custom_hostnames SET status = $1, verification_errors = $2, last_checked_at = $3, \
                     updated_at = CASE WHEN status = $1 THEN updated_at ELSE $3 END, \
                     next_check_at = $4, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $5 AND lease_owner = $6 AND status = $7 RETURNING hostname",
                )
                .bind(c.to.as_str())
                .bind(errors_json(&c.verification_errors))
                .bind(now)
                .bind(next_check_at)
                .bind(id)
                .bind(owner)
                .bind(c.from.as_str())
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(row) = row else {
            return Ok(false);
        };
        let mut pending = Pending::default();
        if let Some(c) = change {
            let hostname: String = col(&row, "hostname")?;
            audit_transition(&mut tx, &Actor::Verifier, &hostname, c).await?;
            if c.from != c.to {
                pending.host(&hostname);
            }
        }
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(true)
    }
}
