//! Leases on custom hostnames: the verifier's checks and the issuer's
//! orders each claim due rows, so of several replicas one works on each.

use super::hostnames::{from_row, CustomHostname, COLUMNS};
use super::{col, Store, StoreError};

/// One kind of lease: which rows are due at `$1` (and not leased), in
/// which order, and the columns that hold the lease.
pub(crate) struct Lease {
    pub due: &'static str,
    pub order_by: &'static str,
    pub owner: &'static str,
    pub until: &'static str,
}

impl Store {
    /// Leases up to `limit` rows due at `now` to `owner` until
    /// `now + lease_secs`. Each claim is a compare-and-set that checks
    /// due-ness again (another replica may have worked on the row and
    /// released it since the SELECT), so two replicas never hold one row.
    pub(crate) async fn claim(
        &self,
        lease: &Lease,
        owner: &str,
        now: i64,
        lease_secs: i64,
        limit: u32,
    ) -> Result<Vec<CustomHostname>, StoreError> {
        let Lease { due, order_by, owner: owner_col, until } = lease;
        let rows = sqlx::query(&format!("SELECT id FROM custom_hostnames WHERE {due} ORDER BY {order_by} LIMIT $2"))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let id: String = col(&row, "id")?;
            let row = sqlx::query(&format!(
                "UPDATE custom_hostnames SET {owner_col} = $3, {until} = $4 WHERE id = $2 AND {due} RETURNING {COLUMNS}"
            ))
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
}
