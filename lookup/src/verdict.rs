//! The verdict table the filter applies to a lookup answer, for ext_authz mode.

use crate::registry::{Answer, Ownership};

/// The Cloudflare-style errors a request can be refused with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    DnsResolution,  // 1001
    DirectIp,       // 1003
    NotServing,     // 1004
    CnameCrossUser, // 1014
    OriginDns,      // 1016
}

impl Denial {
    pub const fn number(self) -> u16 {
        match self {
            Denial::DnsResolution => 1001,
            Denial::DirectIp => 1003,
            Denial::NotServing => 1004,
            Denial::CnameCrossUser => 1014,
            Denial::OriginDns => 1016,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Denial::DnsResolution => "DNS resolution error",
            Denial::DirectIp => "Direct IP access not allowed",
            Denial::NotServing => "Host not configured to serve web traffic",
            Denial::CnameCrossUser => "CNAME cross-user banned",
            Denial::OriginDns => "Origin DNS error",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            Denial::DnsResolution | Denial::CnameCrossUser => 409,
            Denial::DirectIp | Denial::NotServing => 403,
            Denial::OriginDns => 530,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve, on behalf of this account.
    Allow(String),
    Deny(Denial),
}

/// Applies the rules, in order, to an answer.
pub fn decide(answer: &Answer) -> Verdict {
    match answer {
        Answer::Unknown => Verdict::Deny(Denial::DnsResolution),
        Answer::Found(o) => decide_found(o),
    }
}

fn decide_found(o: &Ownership) -> Verdict {
    let cross = o.target_account.is_some() && o.target_account != o.account;
    let serving = if cross { &o.target_account } else { &o.account };
    // 1. Nobody on the platform owns it.
    let Some(serving) = serving else {
        return Verdict::Deny(Denial::DnsResolution);
    };
    if cross {
        match o.custom_hostname.as_deref() {
            Some("active") => {}
            // 3. Authorized, but not (or no longer) pointed here.
            Some("pending") | Some("moved") => return Verdict::Deny(Denial::OriginDns),
            // 2. Another account's target, not authorized there.
            _ => return Verdict::Deny(Denial::CnameCrossUser),
        }
    }
    // 4.
    if !o.origin_resolves {
        return Verdict::Deny(Denial::OriginDns);
    }
    // 5.
    if o.suspended {
        return Verdict::Deny(Denial::NotServing);
    }
    // 6.
    Verdict::Allow(serving.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(account: Option<&str>, target: Option<&str>, ch: Option<&str>) -> Ownership {
        Ownership {
            host: "h.example".into(),
            account: account.map(String::from),
            cname_target: target.map(|_| "t.example".into()),
            target_account: target.map(String::from),
            custom_hostname: ch.map(String::from),
            origin_resolves: true,
            suspended: false,
            ttl: 60,
        }
    }
    fn found(o: Ownership) -> Verdict {
        decide(&Answer::Found(o))
    }
    const D1001: Verdict = Verdict::Deny(Denial::DnsResolution);
    const D1014: Verdict = Verdict::Deny(Denial::CnameCrossUser);
    const D1016: Verdict = Verdict::Deny(Denial::OriginDns);

    #[test]
    fn rule1_unknown_or_nobody() {
        assert_eq!(decide(&Answer::Unknown), D1001);
        assert_eq!(found(own(None, None, None)), D1001);
        assert_eq!(found(own(None, None, Some("active"))), D1001);
    }

    #[test]
    fn rule2_cross_not_authorized_is_1014() {
        assert_eq!(found(own(Some("a"), Some("b"), None)), D1014);
        assert_eq!(found(own(Some("a"), Some("b"), Some("blocked"))), D1014);
        assert_eq!(found(own(Some("a"), Some("b"), Some("Active"))), D1014);
        assert_eq!(found(own(None, Some("b"), Some("anything"))), D1014);
    }

    #[test]
    fn rule3_cross_pending_or_moved_is_1016() {
        assert_eq!(found(own(Some("a"), Some("b"), Some("pending"))), D1016);
        assert_eq!(found(own(None, Some("b"), Some("moved"))), D1016);
    }

    #[test]
    fn rule4_origin_not_resolving_is_1016_after_rule2() {
        let mut o = own(Some("a"), None, None);
        o.origin_resolves = false;
        assert_eq!(found(o), D1016);
        let mut o = own(Some("a"), Some("b"), None);
        o.origin_resolves = false;
        assert_eq!(found(o), D1014);
    }

    #[test]
    fn rule5_suspended_is_1004_after_rule4() {
        let mut o = own(Some("a"), Some("b"), Some("active"));
        o.suspended = true;
        assert_eq!(found(o.clone()), Verdict::Deny(Denial::NotServing));
        o.origin_resolves = false;
        assert_eq!(found(o), D1016);
    }

    #[test]
    fn rule6_allow_names_the_serving_account() {
        assert_eq!(found(own(Some("a"), None, None)), Verdict::Allow("a".into()));
        assert_eq!(found(own(Some("a"), Some("a"), None)), Verdict::Allow("a".into()));
        assert_eq!(found(own(Some("a"), Some("b"), Some("active"))), Verdict::Allow("b".into()));
        assert_eq!(found(own(None, Some("b"), Some("active"))), Verdict::Allow("b".into()));
    }

    #[test]
    fn statuses_and_names() {
        let table = [
            (Denial::DnsResolution, 1001, 409),
            (Denial::DirectIp, 1003, 403),
            (Denial::NotServing, 1004, 403),
            (Denial::CnameCrossUser, 1014, 409),
            (Denial::OriginDns, 1016, 530),
        ];
        for (d, number, status) in table {
            assert_eq!((d.number(), d.status()), (number, status));
            assert!(!d.name().is_empty());
        }
    }
}
