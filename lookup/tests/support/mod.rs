//! Shared by the store and admin API tests.
#![allow(dead_code)]

pub mod api;
#[path = "../../../tests/common/dns.rs"]
pub mod dns;
#[allow(unused_imports)] // not every test binary builds zones
pub use dns::zone;
pub mod postgres;
pub mod service;

use std::path::PathBuf;

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(dns::fresh_dir(tag))
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite:{}", self.0.join("store.db").display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl postgres::Postgres {
    /// A fresh database, to keep tests sharing one server apart.
    pub async fn create_database(&self, database: &str) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.url()).await.expect("connect to postgres");
        // A name chosen by the test, not input: CREATE DATABASE takes no parameters.
        sqlx::query(&format!("CREATE DATABASE {database}")).execute(&pool).await.expect("create database");
        pool.close().await;
        self.url_of(database)
    }
}

/// The service's resolver, uncached, asking only `server`.
pub fn resolver(server: &str) -> cname_guard_lookup::resolve::Hickory {
    let config = cname_guard_lookup::resolve::DnsConfig {
        servers: vec![server.parse().expect("server address")],
        timeout: std::time::Duration::from_millis(300),
        attempts: 2,
    };
    cname_guard_lookup::resolve::Hickory::new(&config).expect("resolver")
}
