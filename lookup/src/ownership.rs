//! Answering lookup contract v1: the host's chain from DNS (cached), read
//! against the platform data the store holds for it (never cached: a change
//! is served by the next request).

use crate::chain::{self, End};
use crate::dns_cache::CachedDns;
use crate::registry::{Answer, Registry};
use crate::resolve::{Dns, DnsError};
use crate::store::Store;
use std::fmt;
use std::time::Duration;

pub const DEFAULT_MAX_TTL: u32 = 300;
/// A lookup waits this long for the database, then answers 503: the filter
/// applies its failure mode rather than time out.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Ownerships<D> {
    pub store: Store,
    pub dns: CachedDns<D>,
    pub max_ttl: u32,
    pub unlisted: Unlisted,
}

/// What a lookup does for a host that is neither under a platform zone nor a
/// custom hostname (`--unlisted-hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Unlisted {
    /// Follow its chain in DNS: 1014 when it CNAMEs into the platform, else 1001.
    #[default]
    Resolve,
    /// Answer 404 (1001) from the store alone, no DNS question.
    Refuse,
}

/// Why a lookup has no answer (503, never a verdict).
#[derive(Debug)]
pub enum LookupError {
    Dns(DnsError),
    Store(String),
}

impl LookupError {
    /// The `error` of the 503 body.
    pub fn kind(&self) -> &'static str {
        match self {
            LookupError::Dns(_) => "dns unavailable",
            LookupError::Store(_) => "store unavailable",
        }
    }

    /// The lookup's result in the metrics.
    pub fn metric(&self) -> crate::metrics::Lookup {
        match self {
            LookupError::Dns(_) => crate::metrics::Lookup::DnsUnavailable,
            LookupError::Store(_) => crate::metrics::Lookup::StoreUnavailable,
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Dns(e) => write!(f, "{e}"),
            LookupError::Store(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for LookupError {}

impl<D: Dns> Ownerships<D> {
    /// The answer for a canonical host, or why DNS or the store could not
    /// give one.
    pub async fn lookup(&self, host: &str) -> Result<Answer, LookupError> {
        if self.unlisted == Unlisted::Refuse && !self.platform(host, &[]).await?.lists(host) {
            return Ok(Answer::Unknown);
        }
        let chain = chain::follow(&self.dns, host).await.map_err(LookupError::Dns)?;
        if let End::BadTarget(target) = &chain.end {
            let target = crate::logs::clean(target.as_bytes());
            tracing::warn!(host, target, "dns: a CNAME target is not a host name: origin does not resolve");
        }
        let platform = self.platform(host, &chain.names).await?;
        Ok(platform.lookup(host, &chain, self.max_ttl))
    }

    /// The store's slice for `host` and the zones of `names`, in bounded time.
    async fn platform(&self, host: &str, names: &[String]) -> Result<Registry, LookupError> {
        let own = [host.to_string()];
        let names = if names.is_empty() { &own[..] } else { names };
        let started = std::time::Instant::now();
        let slice = tokio::time::timeout(STORE_TIMEOUT, self.store.platform_slice(host, names)).await;
        crate::metrics::store_query(started.elapsed());
        let failed = match slice {
            Ok(Ok(p)) => return Ok(p),
            Ok(Err(e)) => LookupError::Store(e.to_string()),
            Err(_) => LookupError::Store(format!("no answer from the database in {STORE_TIMEOUT:?}")),
        };
        crate::metrics::store_error(crate::metrics::StoreOp::Lookup);
        Err(failed)
    }

    /// Whether the store answers now (`/readyz`).
    pub async fn ready(&self) -> Result<(), String> {
        match tokio::time::timeout(STORE_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from the database in {STORE_TIMEOUT:?}")),
        }
    }
}
