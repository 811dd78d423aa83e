//! Proof that a customer controls a hostname, and the status it leads to.
//!
//! A hostname is proven for an account by either the TXT record
//! `_cname-guard.<hostname>` holding its token (pre-validation) or a CNAME
//! chain from the hostname into a zone of the account (only the hostname's
//! owner can set that CNAME). DNS is reached through `OwnershipProbe`, so
//! the rules here are pure and the resolver of the DNS issue plugs in.

use crate::chain::Chain;
use crate::store::{Status, Store, StoreError};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// The TXT record that carries a hostname's token.
pub const TXT_PREFIX: &str = "_cname-guard.";

pub type ProbeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProbeError>> + Send + 'a>>;

/// DNS did not answer (timeout, SERVFAIL, refused). A name that does not
/// exist, or has no record of the type, is an answer: an empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError(pub String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

/// What the verifier asks DNS.
pub trait OwnershipProbe: Send + Sync {
    /// The TXT strings at `name` (each record's strings joined).
    fn txt<'a>(&'a self, name: &'a str) -> ProbeFuture<'a, Vec<String>>;
    /// The chain of `host` as `crate::chain::follow` walks it (the host
    /// first), with how it ends.
    fn chain<'a>(&'a self, host: &'a str) -> ProbeFuture<'a, Chain>;
    /// The CNAME targets from `host`, hop by hop; empty if it has no CNAME.
    fn cname_chain<'a>(&'a self, host: &'a str) -> ProbeFuture<'a, Vec<String>> {
        Box::pin(async move { Ok(self.chain(host).await?.names.into_iter().skip(1).collect()) })
    }
}

/// The outcome of one check of a hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A proof is in place.
    Proven,
    /// No proof: sentences the customer can act on.
    Unproven(Vec<String>),
    /// DNS did not answer; nothing may change.
    DnsFailed(String),
}

/// One CNAME hop and the account whose zone holds it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub name: String,
    pub account: Option<String>,
}

/// The rules, without I/O: `txt` at `_cname-guard.<host>`, `chain` from
/// `host` with each hop's owner.
pub fn judge(host: &str, account: &str, token: &str, txt: &[String], chain: &[Hop]) -> Check {
    let by_txt = txt.iter().any(|t| t == token);
    let by_cname = chain.iter().any(|h| h.account.as_deref() == Some(account));
    if by_txt || by_cname {
        return Check::Proven;
    }
    let txt_name = format!("{TXT_PREFIX}{host}");
    let txt_error = if txt.is_empty() {
        format!("there is no TXT record {txt_name}; create it with the value {token}")
    } else {
        format!("TXT {txt_name} does not hold the verification token; set it to {token}")
    };
    let where_to = match chain {
        [] => "it has no CNAME".to_string(),
        hops => {
            let names: Vec<_> = hops.iter().map(|h| h.name.as_str()).collect();
            format!("it CNAMEs to {}", names.join(" -> "))
        }
    };
    Check::Unproven(vec![txt_error, format!("{host} has no CNAME into a zone of {account} ({where_to})")])
}

/// Asks DNS whether `account` controls `host` (with `token`), finds each
/// hop's owner in the store, and judges.
pub async fn check(
    store: &Store,
    probe: &dyn OwnershipProbe,
    host: &str,
    account: &str,
    token: &str,
) -> Result<Check, StoreError> {
    Ok(check_counted(store, probe, host, account, token).await?.0)
}

/// [`check`], with the DNS questions it asked: the TXT, a CNAME for each
/// name of the chain, then the A of its end (and an AAAA when there is no
/// A, not counted; answers from a cache cost less).
pub async fn check_counted(
    store: &Store,
    probe: &dyn OwnershipProbe,
    host: &str,
    account: &str,
    token: &str,
) -> Result<(Check, u32), StoreError> {
    let txt_name = format!("{TXT_PREFIX}{host}");
    let (txt, chain) = match (probe.txt(&txt_name).await, probe.cname_chain(host).await) {
        (Ok(txt), Ok(chain)) => (txt, chain),
        (Err(e), _) | (_, Err(e)) => return Ok((Check::DnsFailed(format!("DNS lookup for {host} failed: {e}")), 2)),
    };
    let queries = u32::try_from(chain.len()).unwrap_or(u32::MAX).saturating_add(3);
    let mut hops = Vec::with_capacity(chain.len());
    for name in chain {
        let account = store.zone_owner(&name).await?;
        hops.push(Hop { name, account });
    }
    Ok((judge(host, account, token, &txt, &hops), queries))
}

/// Where a proven or unproven check takes a hostname; `None`: it stays.
/// `pending_expired`: the pending time limit has passed.
pub fn next_status(current: Status, proven: bool, pending_expired: bool) -> Option<Status> {
    match (current, proven) {
        (Status::Blocked, _) => None,
        (Status::Pending | Status::Moved | Status::TimedOut, true) => Some(Status::Active),
        (Status::Active, false) => Some(Status::Moved),
        (Status::Pending, false) if pending_expired => Some(Status::TimedOut),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(name: &str, account: Option<&str>) -> Hop {
        Hop { name: name.into(), account: account.map(str::to_string) }
    }

    #[test]
    fn either_proof_is_enough() {
        assert_eq!(judge("shop.brand.example", "acct-saas", "tok", &["tok".into()], &[]), Check::Proven);
        let chain = [hop("edge.saas.example", Some("acct-saas"))];
        assert_eq!(judge("shop.brand.example", "acct-saas", "tok", &[], &chain), Check::Proven);
    }

    #[test]
    fn missing_proofs_are_named() {
        let chain = [hop("x.other.example", Some("acct-other"))];
        let Check::Unproven(errors) = judge("shop.brand.example", "acct-saas", "tok", &["old".into()], &chain) else {
            panic!("proven without a proof");
        };
        assert_eq!(
            errors,
            [
                "TXT _cname-guard.shop.brand.example does not hold the verification token; set it to tok",
                "shop.brand.example has no CNAME into a zone of acct-saas (it CNAMEs to x.other.example)",
            ]
        );
        let Check::Unproven(errors) = judge("a.example", "acct-saas", "tok", &[], &[]) else { panic!() };
        assert!(errors[0].starts_with("there is no TXT record _cname-guard.a.example"));
        assert!(errors[1].ends_with("(it has no CNAME)"));
    }

    #[test]
    fn transitions() {
        use Status::*;
        assert_eq!(next_status(Pending, true, false), Some(Active));
        assert_eq!(next_status(Pending, false, false), None);
        assert_eq!(next_status(Pending, false, true), Some(TimedOut));
        assert_eq!(next_status(Active, false, false), Some(Moved));
        assert_eq!(next_status(Active, true, false), None);
        assert_eq!(next_status(Moved, true, false), Some(Active));
        assert_eq!(next_status(Moved, false, true), None);
        assert_eq!(next_status(Blocked, true, false), None);
        assert_eq!(next_status(TimedOut, true, false), Some(Active));
    }
}
