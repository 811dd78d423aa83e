//! The verifier's side of custom hostnames: due checks claimed under a
//! lease, so of several replicas one checks each hostname per round.

use super::audit::Actor;
use super::changes::{self, Pending};
use super::hostnames::{audit_transition, errors_json, withdraw_unless_active, CustomHostname, StatusChange};
use super::lease::Lease;
use super::{col, Store, StoreError};

/// Due for a check at `$1` and not leased: every status but blocked and
/// timed out (pending, active, moved). The status term is the one of the
/// partial index `custom_hostnames_due` (migration 0004), so a round reads
/// the due rows only.
const CHECKS: Lease = Lease {
    due: "status IN ('pending', 'active', 'moved') AND next_check_at <= $1 \
          AND (lease_until IS NULL OR lease_until < $1)",
    order_by: "next_check_at",
    owner: "lease_owner",
    until: "lease_until",
};

impl Store {
    /// Leases up to `limit` hostnames due for a check at `now` to `owner`
    /// until `now + lease_secs`.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_secs: i64,
        limit: u32,
    ) -> Result<Vec<CustomHostname>, StoreError> {
        self.claim(&CHECKS, owner, now, lease_secs, limit).await
    }

    /// Active and moved hostnames: what a full re-check pass covers.
    pub async fn count_rechecked(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM custom_hostnames WHERE status IN ('active', 'moved')")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = col(&row, "n")?;
        Ok(u64::try_from(n).unwrap_or(0))
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
                withdraw_unless_active(&mut tx, id, &hostname, c.to, &mut pending).await?;
            }
        }
        let seq = changes::record(&mut tx, pending).await?;
        tx.commit().await?;
        self.announce(seq);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::CHECKS;
    use crate::store::Store;
    use sqlx::Row;

    /// A round reads the due rows through the partial index, not the table.
    #[test]
    fn a_round_claims_through_the_index() {
        let dir = std::env::temp_dir().join(format!("cname-guard-checks-plan-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let url = format!("sqlite:{}", dir.join("store.db").display());
        let plan = crate::chain::fake::block(async {
            let store = Store::open(&url).await.expect("open the store");
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT id FROM custom_hostnames WHERE {} ORDER BY next_check_at",
                CHECKS.due
            );
            let rows = sqlx::query(&sql).bind(0_i64).fetch_all(&store.pool).await.expect("plan");
            rows.iter().map(|r| r.try_get::<String, _>("detail").unwrap_or_default()).collect::<Vec<_>>().join("\n")
        });
        let _ = std::fs::remove_dir_all(&dir);
        // SEARCH: a range of the index (SCAN would read all of it).
        assert!(plan.contains("SEARCH custom_hostnames USING INDEX custom_hostnames_due (next_check_at<?)"), "{plan}");
    }
}
