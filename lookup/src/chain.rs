//! The CNAME chain of a host, hop by hop: a CNAME question per name, then
//! A and AAAA at the end of the chain.

use crate::dns;
use crate::resolve::{Dns, DnsError, Reply, Rtype};

/// CNAMEs followed at most; a longer chain does not resolve.
pub const MAX_HOPS: usize = 8;

/// How the chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At least one A or AAAA record.
    Addresses,
    /// NXDOMAIN, or neither A nor AAAA (NODATA), at the last name.
    NoAddress,
    /// A name came back twice.
    Loop,
    /// More than [`MAX_HOPS`] CNAMEs.
    TooLong,
    /// A CNAME target outside the name rules (the raw target, for logs).
    BadTarget(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The host, then each CNAME target in order, all canonical.
    pub names: Vec<String>,
    pub end: End,
    /// The smallest TTL of the DNS answers the outcome rests on: every
    /// CNAME, then the addresses, or the negative answers (SOA minimum).
    pub ttl: u32,
}

impl Chain {
    pub fn resolves(&self) -> bool {
        self.end == End::Addresses
    }
}

/// Follows the chain of a canonical `host`. Any question DNS cannot answer
/// (SERVFAIL, REFUSED, timeout, malformed reply) fails the whole chain.
pub async fn follow(dns: &impl Dns, host: &str) -> Result<Chain, DnsError> {
    let mut names = vec![host.to_string()];
    let mut ttl = u32::MAX;
    let end = loop {
        let current = names.last().map(String::as_str).unwrap_or(host);
        match dns.query(current, Rtype::Cname).await? {
            Reply::Cname { target, ttl: t } => {
                ttl = ttl.min(t);
                let Ok(target) = dns::canonical(&target) else { break End::BadTarget(target) };
                if names.contains(&target) {
                    break End::Loop;
                }
                if names.len() > MAX_HOPS {
                    break End::TooLong;
                }
                names.push(target);
            }
            Reply::NxDomain { ttl: t } => {
                ttl = ttl.min(t);
                break End::NoAddress;
            }
            no_cname @ (Reply::NoData { .. } | Reply::Addresses { .. } | Reply::Txt { .. } | Reply::Caa { .. }) => {
                let (end, t) = addresses(dns, current).await?;
                ttl = ttl.min(t);
                // Addresses rule out a CNAME at the same name; without them,
                // a CNAME may appear once the negative answer expires.
                if end == End::NoAddress {
                    ttl = ttl.min(no_cname.ttl());
                }
                break end;
            }
        }
    };
    Ok(Chain { names, end, ttl })
}

/// A first; AAAA only when there is no A. The TTL is that of the records
/// found, or the smaller negative TTL when there are none.
async fn addresses(dns: &impl Dns, name: &str) -> Result<(End, u32), DnsError> {
    let a = dns.query(name, Rtype::A).await?;
    if let Reply::Addresses { ttl } = a {
        return Ok((End::Addresses, ttl));
    }
    let aaaa = dns.query(name, Rtype::Aaaa).await?;
    match aaaa {
        Reply::Addresses { ttl } => Ok((End::Addresses, ttl)),
        _ => Ok((End::NoAddress, a.ttl().min(aaaa.ttl()))),
    }
}

#[cfg(test)]
pub mod fake {
    //! DNS from a table, for the unit tests of the chain and the registry.
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct Zone {
        pub records: HashMap<(String, Rtype), Reply>,
        /// Names whose questions fail (SERVFAIL).
        pub broken: Vec<String>,
        pub queries: AtomicUsize,
    }

    pub const NEG_TTL: u32 = 30;

    impl Zone {
        pub fn cname(mut self, name: &str, target: &str, ttl: u32) -> Zone {
            self.records.insert((name.into(), Rtype::Cname), Reply::Cname { target: target.into(), ttl });
            self
        }
        pub fn a(mut self, name: &str, ttl: u32) -> Zone {
            self.records.insert((name.into(), Rtype::A), Reply::Addresses { ttl });
            self
        }
        pub fn aaaa(mut self, name: &str, ttl: u32) -> Zone {
            self.records.insert((name.into(), Rtype::Aaaa), Reply::Addresses { ttl });
            self
        }
        pub fn broken(mut self, name: &str) -> Zone {
            self.broken.push(name.into());
            self
        }
        fn exists(&self, name: &str) -> bool {
            self.records.keys().any(|(n, _)| n == name)
        }
    }

    impl Dns for Zone {
        async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            if self.broken.iter().any(|b| b == name) {
                return Err(DnsError { name: name.into(), detail: "SERVFAIL".into() });
            }
            if let Some(r) = self.records.get(&(name.to_string(), rtype)) {
                return Ok(r.clone());
            }
            // A CNAME answers every type at its name.
            if let Some(r @ Reply::Cname { .. }) = self.records.get(&(name.to_string(), Rtype::Cname)) {
                return Ok(r.clone());
            }
            Ok(if self.exists(name) { Reply::NoData { ttl: NEG_TTL } } else { Reply::NxDomain { ttl: NEG_TTL } })
        }
    }

    /// Runs a future to completion on a current-thread runtime.
    pub fn block<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => panic!("runtime: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{block, Zone, NEG_TTL};
    use super::*;

    fn chain(zone: &Zone, host: &str) -> Chain {
        match block(follow(zone, host)) {
            Ok(c) => c,
            Err(e) => panic!("{host}: {e}"),
        }
    }

    #[test]
    fn a_host_with_addresses_is_its_own_chain() {
        let z = Zone::default().a("a.example", 120);
        let c = chain(&z, "a.example");
        assert_eq!(c, Chain { names: vec!["a.example".into()], end: End::Addresses, ttl: 120 });
        let z = Zone::default().aaaa("v6.example", 10);
        assert_eq!(chain(&z, "v6.example").end, End::Addresses);
        assert_eq!(chain(&z, "v6.example").ttl, 10);
    }

    #[test]
    fn chains_are_followed_and_normalized() {
        let z = Zone::default()
            .cname("x.client.example", "Hop.Other.Example.", 300)
            .cname("hop.other.example", "edge.saas.example", 60)
            .a("edge.saas.example", 600);
        let c = chain(&z, "x.client.example");
        assert_eq!(c.names, ["x.client.example", "hop.other.example", "edge.saas.example"]);
        assert_eq!((c.end, c.ttl), (End::Addresses, 60));
    }

    #[test]
    fn nxdomain_and_nodata_end_without_addresses() {
        let z = Zone::default().cname("b.example", "nx.example", 60).cname("c.example", "txt-only.example", 60);
        let mut z = z;
        z.records.insert(("txt-only.example".into(), Rtype::Cname), Reply::NoData { ttl: 5 });
        assert_eq!(chain(&z, "b.example").end, End::NoAddress);
        assert_eq!(chain(&z, "b.example").ttl, NEG_TTL);
        let c = chain(&z, "c.example");
        assert_eq!((c.end, c.ttl), (End::NoAddress, 5));
        assert_eq!(chain(&z, "nothing.example").names, ["nothing.example"]);
        // Nothing at the end: the negative answers count, so a record
        // added later is seen within the negative TTL.
        let z = Zone::default().cname("d.example", "e.example", 600).a("e.example", 0);
        let mut z = z;
        z.records.remove(&("e.example".to_string(), Rtype::A));
        z.records.insert(("e.example".into(), Rtype::Aaaa), Reply::NoData { ttl: 7 });
        assert_eq!((chain(&z, "d.example").end, chain(&z, "d.example").ttl), (End::NoAddress, 7));
    }

    #[test]
    fn loops_and_long_chains_do_not_resolve() {
        let z = Zone::default().cname("l1.example", "l2.example", 60).cname("l2.example", "L1.example.", 60);
        assert_eq!(chain(&z, "l1.example").end, End::Loop);
        let z = Zone::default().cname("self.example", "self.example", 60);
        assert_eq!(chain(&z, "self.example").end, End::Loop);
        for (hops, end) in [(MAX_HOPS, End::Addresses), (MAX_HOPS + 1, End::TooLong)] {
            let mut z = Zone::default().a(&format!("h{hops}.example"), 60);
            for i in 0..hops {
                z = z.cname(&format!("h{i}.example"), &format!("h{}.example", i + 1), 60);
            }
            assert_eq!(chain(&z, "h0.example").end, end, "{hops} hops");
        }
    }

    #[test]
    fn a_target_outside_the_name_rules_ends_the_chain() {
        for bad in ["_svc.example", "a..b", "", "*.example", "xn--\u{e9}.example", "1.2.3.4"] {
            let z = Zone::default().cname("odd.example", bad, 60);
            assert_eq!(chain(&z, "odd.example").end, End::BadTarget(bad.into()), "{bad:?}");
        }
    }

    #[test]
    fn a_failed_question_fails_the_chain() {
        let z = Zone::default().cname("x.example", "y.example", 60).broken("y.example");
        let e = block(follow(&z, "x.example")).expect_err("SERVFAIL on the second hop");
        assert_eq!(e.name, "y.example");
    }
}
