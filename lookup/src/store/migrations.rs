//! The migrations in `lookup/migrations/`, embedded in the binary so a
//! deployed service needs no files beside it.

use super::StoreError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use std::future::Future;
use std::pin::Pin;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/0001_initial.sql")),
    (2, "changes", include_str!("../../migrations/0002_changes.sql")),
    (3, "certificates", include_str!("../../migrations/0003_certificates.sql")),
    (4, "checks due", include_str!("../../migrations/0004_checks_due.sql")),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    #[allow(clippy::type_complexity)]
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 'static>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(version, name.into(), MigrationType::Simple, sql.into(), false)
                })
                .collect())
        })
    }
}

pub(super) async fn run(pool: &AnyPool) -> Result<(), StoreError> {
    let migrator = Migrator::new(Embedded).await.map_err(StoreError::Migrate)?;
    migrator.run(pool).await.map_err(StoreError::Migrate)
}
