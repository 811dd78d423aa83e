//! The verdict table: what a lookup answer means for the request.

use crate::lookup::{Answer, Record};

/// The Cloudflare-style error codes cname-guard answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    DnsResolution,     // 1001
    DirectIp,          // 1003
    NotServing,        // 1004
    CnameCrossUser,    // 1014
    OriginDns,         // 1016
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 5] = [
        ErrorCode::DnsResolution,
        ErrorCode::DirectIp,
        ErrorCode::NotServing,
        ErrorCode::CnameCrossUser,
        ErrorCode::OriginDns,
    ];

    pub const fn number(self) -> u16 {
        match self {
            ErrorCode::DnsResolution => 1001,
            ErrorCode::DirectIp => 1003,
            ErrorCode::NotServing => 1004,
            ErrorCode::CnameCrossUser => 1014,
            ErrorCode::OriginDns => 1016,
        }
    }

    pub fn from_number(n: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.number() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::DnsResolution => "DNS resolution error",
            ErrorCode::DirectIp => "Direct IP access not allowed",
            ErrorCode::NotServing => "Host not configured to serve web traffic",
            ErrorCode::CnameCrossUser => "CNAME cross-user banned",
            ErrorCode::OriginDns => "Origin DNS error",
        }
    }

    pub fn default_status(self) -> u16 {
        match self {
            ErrorCode::DnsResolution | ErrorCode::CnameCrossUser => 409,
            ErrorCode::DirectIp | ErrorCode::NotServing => 403,
            ErrorCode::OriginDns => 530,
        }
    }

    /// Index into per-code tables (statuses, metrics).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The decision for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Continue to routing, stamped with the serving account. `https`: the
    /// answer said the host has a certificate in service, so a plain HTTP
    /// request may be redirected to HTTPS instead (`tls.redirect_http`).
    Allow {
        account: String,
        https: bool,
    },
    Deny(ErrorCode),
}

impl Verdict {
    /// An allow whose answer says the host is served over HTTPS.
    pub fn https(&self) -> bool {
        matches!(self, Verdict::Allow { https: true, .. })
    }
}

/// Applies the verdict table, in order, to a lookup answer.
pub fn decide(answer: &Answer) -> Verdict {
    match answer {
        Answer::Unknown => Verdict::Deny(ErrorCode::DnsResolution),
        Answer::Found(record) => decide_record(record),
    }
}

fn decide_record(r: &Record) -> Verdict {
    let cross = match (&r.target_account, &r.account) {
        (Some(target), Some(account)) => target != account,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let serving = if cross { &r.target_account } else { &r.account };
    let Some(serving) = serving else {
        return Verdict::Deny(ErrorCode::DnsResolution);
    };
    if cross {
        match r.custom_hostname.as_deref() {
            Some("active") => {}
            Some("pending") | Some("moved") => return Verdict::Deny(ErrorCode::OriginDns),
            _ => return Verdict::Deny(ErrorCode::CnameCrossUser),
        }
    }
    if !r.origin_resolves {
        return Verdict::Deny(ErrorCode::OriginDns);
    }
    if r.suspended {
        return Verdict::Deny(ErrorCode::NotServing);
    }
    Verdict::Allow { account: serving.clone(), https: r.https }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(account: Option<&str>, target: Option<&str>, ch: Option<&str>) -> Record {
        Record {
            account: account.map(String::from),
            target_account: target.map(String::from),
            custom_hostname: ch.map(String::from),
            origin_resolves: true,
            suspended: false,
            ttl: None,
            https: false,
        }
    }
    fn allow(account: &str) -> Verdict {
        Verdict::Allow { account: account.into(), https: false }
    }
    fn found(r: Record) -> Verdict {
        decide(&Answer::Found(r))
    }
    const DENY_1001: Verdict = Verdict::Deny(ErrorCode::DnsResolution);
    const DENY_1014: Verdict = Verdict::Deny(ErrorCode::CnameCrossUser);
    const DENY_1016: Verdict = Verdict::Deny(ErrorCode::OriginDns);

    #[test]
    fn rule1_unknown_or_nobody() {
        assert_eq!(decide(&Answer::Unknown), DENY_1001);
        assert_eq!(found(rec(None, None, None)), DENY_1001);
        assert_eq!(found(rec(None, None, Some("active"))), DENY_1001);
    }

    #[test]
    fn rule2_cross_without_authorization_is_1014() {
        assert_eq!(found(rec(Some("a"), Some("b"), None)), DENY_1014);
        assert_eq!(found(rec(Some("a"), Some("b"), Some("blocked"))), DENY_1014);
        assert_eq!(found(rec(Some("a"), Some("b"), Some("Active"))), DENY_1014);
        assert_eq!(found(rec(None, Some("b"), Some("whatever"))), DENY_1014);
    }

    #[test]
    fn rule3_cross_pending_or_moved_is_1016() {
        assert_eq!(found(rec(Some("a"), Some("b"), Some("pending"))), DENY_1016);
        assert_eq!(found(rec(None, Some("b"), Some("moved"))), DENY_1016);
    }

    #[test]
    fn rule4_origin_not_resolving_is_1016() {
        let mut r = rec(Some("a"), None, None);
        r.origin_resolves = false;
        assert_eq!(found(r), DENY_1016);
        // Rule 2 comes first.
        let mut r = rec(Some("a"), Some("b"), None);
        r.origin_resolves = false;
        assert_eq!(found(r), DENY_1014);
    }

    #[test]
    fn rule5_suspended_is_1004() {
        let mut r = rec(Some("a"), Some("b"), Some("active"));
        r.suspended = true;
        assert_eq!(found(r.clone()), Verdict::Deny(ErrorCode::NotServing));
        // Rule 4 comes first.
        r.origin_resolves = false;
        assert_eq!(found(r), DENY_1016);
    }

    #[test]
    fn rule6_allow_with_serving_account() {
        assert_eq!(found(rec(Some("a"), None, None)), allow("a"));
        assert_eq!(found(rec(Some("a"), Some("a"), None)), allow("a"));
        assert_eq!(found(rec(Some("a"), Some("b"), Some("active"))), allow("b"));
        assert_eq!(found(rec(None, Some("b"), Some("active"))), allow("b"));
    }

    #[test]
    fn https_rides_on_an_allow_only() {
        let mut r = rec(Some("a"), Some("b"), Some("active"));
        r.https = true;
        let v = found(r.clone());
        assert_eq!(v, Verdict::Allow { account: "b".into(), https: true });
        assert!(v.https());
        // A denial has nothing to redirect to, whatever the answer says.
        r.custom_hostname = Some("blocked".into());
        assert_eq!(found(r.clone()), DENY_1014);
        assert!(!found(r).https());
        assert!(!allow("a").https());
        assert!(!decide(&Answer::Unknown).https());
    }

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_number(c.number()), Some(c));
        }
        assert_eq!(ErrorCode::from_number(1000), None);
    }
}
