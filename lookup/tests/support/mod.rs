//! Shared by the store and admin API tests.
#![allow(dead_code)]

pub mod api;
#[path = "../../../tests/common/dns.rs"]
pub mod dns;
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
