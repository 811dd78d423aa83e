//! ext_authz mode applies the filter's own verdict table
//! (`cname_guard_core::verdict`) to a registry answer: one table for both.

use crate::registry::{Answer, Ownership};
use cname_guard_core::lookup::{Answer as Wire, Record};
pub use cname_guard_core::verdict::{ErrorCode, Verdict};

/// The verdict the filter would reach on this answer.
pub fn decide(answer: &Answer) -> Verdict {
    let wire = match answer {
        Answer::Unknown => Wire::Unknown,
        Answer::Found(o) => Wire::Found(record(o)),
    };
    cname_guard_core::verdict::decide(&wire)
}

fn record(o: &Ownership) -> Record {
    Record {
        account: o.account.clone(),
        target_account: o.target_account.clone(),
        custom_hostname: o.custom_hostname.clone(),
        origin_resolves: o.origin_resolves,
        suspended: o.suspended,
        ttl: Some(u64::from(o.ttl)),
        https: o.https,
    }
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
            https: false,
        }
    }

    #[test]
    fn registry_answers_reach_the_filters_verdicts() {
        assert_eq!(decide(&Answer::Unknown), Verdict::Deny(ErrorCode::DnsResolution));
        assert_eq!(decide(&Answer::Found(own(Some("a"), Some("b"), None))), Verdict::Deny(ErrorCode::CnameCrossUser));
        assert_eq!(
            decide(&Answer::Found(own(Some("a"), Some("b"), Some("pending")))),
            Verdict::Deny(ErrorCode::OriginDns)
        );
        assert_eq!(
            decide(&Answer::Found(own(None, Some("b"), Some("active")))),
            Verdict::Allow { account: "b".into(), https: false }
        );
        let mut o = own(Some("a"), None, None);
        o.suspended = true;
        assert_eq!(decide(&Answer::Found(o)), Verdict::Deny(ErrorCode::NotServing));
    }
}
