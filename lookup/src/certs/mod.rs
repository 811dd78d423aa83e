//! Certificates for custom hostnames (issue 21): ACME orders once a
//! hostname is proven, HTTP-01 answered at the edge, keys sealed at rest,
//! renewal, and the limits that keep the CA's rate limits safe.

pub mod account;
pub mod caa;
pub mod challenge;
pub mod dcv;
pub mod issued;
pub mod issuer;
pub mod limits;
pub mod renewal;
pub mod seal;

pub use issuer::Issuer;
pub use seal::Kek;

use std::path::PathBuf;
use std::time::Duration;

/// The path prefix Envoy routes to the service ahead of the filter.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub directory: String,
    /// Email addresses for the ACME account.
    pub contacts: Vec<String>,
    /// External account binding: key id and HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// Trust this CA root for the directory's TLS instead of the system's.
    pub ca_root: Option<PathBuf>,
    /// The CA's CAA issuer domain names; empty: CAA is not checked here.
    pub caa_identities: Vec<String>,
    /// Between rounds of claiming due work.
    pub tick: Duration,
    /// Orders worked on at once by this replica.
    pub concurrency: u32,
    /// How long a replica holds a hostname it works on.
    pub lease: Duration,
    /// The CA's validation, and its issuance, each within this.
    pub poll_timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Failing this long without a certificate: `*_timed_out`, no more retries.
    pub give_up_after: Duration,
    pub orders_per_hour: u32,
    pub account_orders_per_hour: u32,
    /// Delegated DNS-01 (`ssl.method` `txt`); `None`: only HTTP-01.
    pub dcv: Option<dcv::DcvConfig>,
}

impl IssuerConfig {
    pub fn new(directory: String) -> IssuerConfig {
        IssuerConfig {
            directory,
            contacts: Vec::new(),
            eab: None,
            ca_root: None,
            caa_identities: Vec::new(),
            tick: Duration::from_secs(1),
            concurrency: 4,
            lease: Duration::from_secs(300),
            poll_timeout: Duration::from_secs(60),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            give_up_after: Duration::from_secs(7 * 86_400),
            orders_per_hour: 100,
            account_orders_per_hour: 30,
            dcv: None,
        }
    }

    /// Cloudflare's short name of the CA where it is a well-known one,
    /// else the directory's host.
    pub fn authority_name(&self) -> String {
        let d = self.directory.to_ascii_lowercase();
        for (needle, name) in [("letsencrypt", "lets_encrypt"), ("pki.goog", "google"), ("zerossl", "zerossl")] {
            if d.contains(needle) {
                return name.into();
            }
        }
        let rest = d.split_once("://").map(|(_, r)| r).unwrap_or(&d);
        rest.split('/').next().unwrap_or(rest).to_string()
    }
}
