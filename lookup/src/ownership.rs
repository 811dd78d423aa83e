//! Answering lookup contract v1: the host's chain from DNS (cached), read
//! against the registry's platform data.

use crate::chain::{self, End};
use crate::dns_cache::CachedDns;
use crate::registry::Answer;
use crate::reload::Current;
use crate::resolve::{Dns, DnsError};
use std::sync::Arc;

pub const DEFAULT_MAX_TTL: u32 = 300;

pub struct Ownerships<D> {
    pub registry: Arc<Current>,
    pub dns: CachedDns<D>,
    pub max_ttl: u32,
}

impl<D: Dns> Ownerships<D> {
    /// The answer for a canonical host, or why DNS could not give one.
    pub async fn lookup(&self, host: &str) -> Result<Answer, DnsError> {
        let chain = chain::follow(&self.dns, host).await?;
        if let End::BadTarget(target) = &chain.end {
            crate::warn!(
                "dns host={host} cname target {:?} is not a host name: origin does not resolve",
                crate::log::clean(target.as_bytes())
            );
        }
        Ok(self.registry.get().lookup(host, &chain, self.max_ttl))
    }
}
