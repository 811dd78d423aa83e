//! The slice of platform data one lookup needs, read fresh on every request
//! (changes show at once): the zones owning a chain's names or their
//! parents, their accounts' suspension, and the host's custom hostname
//! with whether it has a certificate in service.

use super::{col, Store, StoreError};
use crate::dns;
use crate::registry::Registry;

impl Store {
    /// The platform data for `host` and its CNAME chain `names` (which
    /// include `host`), as a registry the pure lookup reads.
    pub async fn platform_slice(&self, host: &str, names: &[String]) -> Result<Registry, StoreError> {
        let mut zones: Vec<&str> = Vec::new();
        for name in names {
            for zone in dns::self_and_parents(name) {
                if !zones.contains(&zone) {
                    zones.push(zone);
                }
            }
        }
        let mut registry = Registry::default();
        if !zones.is_empty() {
            // Only the placeholders vary with the chain; every name is bound.
            let placeholders: Vec<String> = (1..=zones.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT z.name AS name, z.account AS account, a.suspended AS suspended \
                 FROM zones z JOIN accounts a ON a.id = z.account WHERE z.name IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for zone in &zones {
                query = query.bind(*zone);
            }
            for row in query.fetch_all(&self.pool).await? {
                let account: String = col(&row, "account")?;
                registry.add_zone(&col::<String>(&row, "name")?, &account);
                registry.add_account(&account, col::<i64>(&row, "suspended")? != 0);
            }
        }
        // `ssl_certificate` is set while a certificate is in service (store/ssl.rs).
        let row = sqlx::query("SELECT account, status, ssl_certificate FROM custom_hostnames WHERE hostname = $1")
            .bind(host)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            registry.add_custom_hostname(&col::<String>(&row, "account")?, host, &col::<String>(&row, "status")?);
            if col::<Option<String>>(&row, "ssl_certificate")?.is_some() {
                registry.add_certificate(host);
            }
        }
        Ok(registry)
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
