//! The verifier's questions (`OwnershipProbe`) asked of real DNS, through
//! the service's resolver and the one chain walker (`crate::chain`).
//!
//! Verification does not read through the answer cache (`crate::dns_cache`):
//! a customer who has just added the TXT record and calls `verify` expects
//! it seen now, not after a cached negative answer expires. Give the probe
//! its own uncached resolver (`Hickory::new`); the verifier's rate is
//! bounded by its own schedule, not by traffic.

use crate::chain::{self, Chain};
use crate::resolve::{Dns, DnsError, Reply, Rtype};
use crate::verification::{OwnershipProbe, ProbeError, ProbeFuture};

pub struct DnsProbe<D> {
    dns: D,
}

impl<D: Dns> DnsProbe<D> {
    pub fn new(dns: D) -> DnsProbe<D> {
        DnsProbe { dns }
    }

    async fn texts(&self, name: &str) -> Result<Vec<String>, ProbeError> {
        match self.dns.query(name, Rtype::Txt).await.map_err(failed)? {
            Reply::Txt { texts, .. } => Ok(texts),
            // NXDOMAIN, NODATA: an answer, and no proof.
            Reply::NoData { .. } | Reply::NxDomain { .. } => Ok(Vec::new()),
            other => Err(ProbeError(format!("{name}: unexpected answer to a TXT query: {other:?}"))),
        }
    }

    async fn walk(&self, host: &str) -> Result<Chain, ProbeError> {
        chain::follow(&self.dns, host).await.map_err(failed)
    }
}

fn failed(e: DnsError) -> ProbeError {
    ProbeError(e.to_string())
}

impl<D: Dns> OwnershipProbe for DnsProbe<D> {
    fn txt<'a>(&'a self, name: &'a str) -> ProbeFuture<'a, Vec<String>> {
        Box::pin(self.texts(name))
    }

    fn chain<'a>(&'a self, host: &'a str) -> ProbeFuture<'a, Chain> {
        Box::pin(self.walk(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fake::{block, Zone};

    #[test]
    fn chain_targets_and_failures() {
        let z = Zone::default().cname("shop.brand.example", "edge.saas.example", 60).a("edge.saas.example", 60);
        let probe = DnsProbe::new(z);
        assert_eq!(block(probe.cname_chain("shop.brand.example")), Ok(vec!["edge.saas.example".to_string()]));
        assert_eq!(block(probe.cname_chain("edge.saas.example")), Ok(vec![]));
        assert_eq!(block(probe.txt("_cname-guard.nowhere.example")), Ok(vec![]));
        let broken = DnsProbe::new(Zone::default().broken("x.example"));
        assert!(block(broken.cname_chain("x.example")).is_err());
    }
}
