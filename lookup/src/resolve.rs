//! Asking DNS one question: the small trait the chain rules run on, and its
//! implementation with hickory-resolver on tokio.

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::caa::Property;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The record types the chain rules ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rtype {
    Cname,
    A,
    Aaaa,
    /// Asked by ownership verification only (`crate::probe`).
    Txt,
    /// Asked by the certificate issuer only (`crate::certs::caa`).
    Caa,
}

impl Rtype {
    pub fn label(self) -> &'static str {
        match self {
            Rtype::Cname => "CNAME",
            Rtype::A => "A",
            Rtype::Aaaa => "AAAA",
            Rtype::Txt => "TXT",
            Rtype::Caa => "CAA",
        }
    }
}

/// What DNS said about one (name, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The name has a CNAME; the target as it came off the wire.
    Cname { target: String, ttl: u32 },
    /// At least one A (or AAAA) record.
    Addresses { ttl: u32 },
    /// TXT records at the name: each record's strings joined into one.
    Txt { texts: Vec<String>, ttl: u32 },
    /// CAA records: the `issue` values (the CA's domain; empty for `;`)
    /// and whether any tag was not understood with the critical flag.
    Caa { issue: Vec<String>, critical_unknown: bool, ttl: u32 },
    /// NOERROR without records of this type. `ttl`: the negative TTL.
    NoData { ttl: u32 },
    /// NXDOMAIN: the name does not exist. `ttl`: the negative TTL.
    NxDomain { ttl: u32 },
}

impl Reply {
    pub fn ttl(&self) -> u32 {
        match self {
            Reply::Cname { ttl, .. }
            | Reply::Addresses { ttl }
            | Reply::Txt { ttl, .. }
            | Reply::Caa { ttl, .. }
            | Reply::NoData { ttl }
            | Reply::NxDomain { ttl } => *ttl,
        }
    }
}

/// DNS could not answer: the service must not turn this into a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError {
    pub name: String,
    pub detail: String,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl std::error::Error for DnsError {}

/// One DNS question. `name` is canonical (lowercase, no trailing dot).
pub trait Dns: Send + Sync + 'static {
    fn query(&self, name: &str, rtype: Rtype) -> impl Future<Output = Result<Reply, DnsError>> + Send;
}

/// Where the resolver sends its questions and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Empty: the nameservers of /etc/resolv.conf.
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
    /// Tries per question, the first included.
    pub attempts: usize,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
pub const DEFAULT_ATTEMPTS: usize = 2;

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig { servers: Vec::new(), timeout: DEFAULT_TIMEOUT, attempts: DEFAULT_ATTEMPTS }
    }
}

/// hickory-resolver, with its own cache off: answers are cached (and
/// coalesced) by [`crate::dns_cache`], by their TTL.
pub struct Hickory {
    resolver: TokioResolver,
}

impl Hickory {
    pub fn new(config: &DnsConfig) -> Result<Hickory, String> {
        let (resolver_config, mut opts) = if config.servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system resolver configuration (/etc/resolv.conf): {e}"))?
        } else {
            let mut group = NameServerConfigGroup::new();
            for server in &config.servers {
                // UDP and TCP on the same address; TCP is used when a reply is truncated.
                group.merge(NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true));
            }
            (ResolverConfig::from_parts(None, vec![], group), ResolverOpts::default())
        };
        opts.timeout = config.timeout;
        // hickory's `attempts` counts retries after the first try.
        opts.attempts = config.attempts.saturating_sub(1);
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.edns0 = true;
        opts.preserve_intermediates = true;
        opts.num_concurrent_reqs = 1;
        let resolver = TokioResolver::builder_with_config(resolver_config, TokioConnectionProvider::default())
            .with_options(opts)
            .build();
        Ok(Hickory { resolver })
    }
}

impl Dns for Hickory {
    async fn query(&self, name: &str, rtype: Rtype) -> Result<Reply, DnsError> {
        let fail = |detail: String| DnsError { name: name.to_string(), detail };
        // Fully qualified: no search domains, no ndots.
        let fqdn = Name::from_ascii(format!("{name}.")).map_err(|e| fail(format!("not a DNS name: {e}")))?;
        let wanted = match rtype {
            Rtype::Cname => RecordType::CNAME,
            Rtype::A => RecordType::A,
            Rtype::Aaaa => RecordType::AAAA,
            Rtype::Txt => RecordType::TXT,
            Rtype::Caa => RecordType::CAA,
        };
        let started = std::time::Instant::now();
        let answered = self.resolver.lookup(fqdn.clone(), wanted).await;
        crate::metrics::dns_query(rtype.label(), rcode(&answered), started.elapsed());
        match answered {
            Ok(lookup) => {
                let mine = lookup.records().iter().filter(|r| r.name() == &fqdn && r.record_type() == wanted);
                let ttl = mine.clone().map(|r| r.ttl()).min();
                match (rtype, ttl) {
                    (_, None) => Ok(Reply::NoData { ttl: lookup.records().iter().map(|r| r.ttl()).min().unwrap_or(0) }),
                    (Rtype::Cname, Some(ttl)) => {
                        let target = mine.clone().find_map(|r| match r.data() {
                            RData::CNAME(c) => Some(c.0.to_ascii()),
                            _ => None,
                        });
                        match target {
                            Some(target) => Ok(Reply::Cname { target, ttl }),
                            None => Err(fail("a CNAME record without a target".into())),
                        }
                    }
                    (Rtype::Txt, Some(ttl)) => {
                        // A record's strings are one text (RFC 7208 3.3); not UTF-8 is kept lossily.
                        let texts = mine
                            .filter_map(|r| match r.data() {
                                RData::TXT(t) => Some(String::from_utf8_lossy(&t.txt_data().concat()).into_owned()),
                                _ => None,
                            })
                            .collect();
                        Ok(Reply::Txt { texts, ttl })
                    }
                    (Rtype::Caa, Some(ttl)) => {
                        let mut issue = Vec::new();
                        let mut critical_unknown = false;
                        for r in mine {
                            let RData::CAA(caa) = r.data() else { continue };
                            match caa.tag() {
                                Property::Issue => {
                                    // A value that does not parse names no CA: it allows none.
                                    let name = caa.value_as_issue().ok().and_then(|(name, _)| name);
                                    issue.push(
                                        name.map(|n| n.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                                            .unwrap_or_default(),
                                    )
                                }
                                Property::IssueWild | Property::Iodef => {}
                                _ => critical_unknown |= caa.issuer_critical(),
                            }
                        }
                        Ok(Reply::Caa { issue, critical_unknown, ttl })
                    }
                    (_, Some(ttl)) => Ok(Reply::Addresses { ttl }),
                }
            }
            Err(e) => negative(&e).ok_or_else(|| fail(describe(&e, rtype))),
        }
    }
}

/// NXDOMAIN and NODATA are answers; every other failure is not.
fn negative(e: &ResolveError) -> Option<Reply> {
    let ProtoErrorKind::NoRecordsFound { response_code, negative_ttl, soa, .. } = e.proto()?.kind() else {
        return None;
    };
    // RFC 2308: the smaller of the SOA's own TTL and its MINIMUM field.
    let ttl = negative_ttl.or_else(|| soa.as_ref().map(|s| s.ttl().min(s.data().minimum()))).unwrap_or(0);
    match *response_code {
        ResponseCode::NXDomain => Some(Reply::NxDomain { ttl }),
        ResponseCode::NoError => Some(Reply::NoData { ttl }),
        _ => None,
    }
}

/// The answer code as a metrics label: a fixed word.
fn rcode<T>(answered: &Result<T, ResolveError>) -> &'static str {
    let Err(e) = answered else { return "noerror" };
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => match *response_code {
            ResponseCode::NoError => "noerror",
            ResponseCode::NXDomain => "nxdomain",
            ResponseCode::ServFail => "servfail",
            ResponseCode::Refused => "refused",
            ResponseCode::FormErr => "formerr",
            ResponseCode::NotImp => "notimp",
            _ => "other",
        },
        Some(ProtoErrorKind::Timeout) => "timeout",
        _ => "error",
    }
}

fn describe(e: &ResolveError, rtype: Rtype) -> String {
    let kind = match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => format!("{response_code}"),
        Some(ProtoErrorKind::Timeout) => "timeout".into(),
        Some(ProtoErrorKind::NoConnections) => "no nameserver reachable".into(),
        _ => e.to_string(),
    };
    format!("{} query: {kind}", rtype.label())
}
