//! Why a host gets its verdict, step by step, and what its owner does next:
//! the seed's remedies made concrete. Pure: the facts come from DNS and the
//! store (`admin::diagnose`), the verdict from the filter's own table.

use crate::chain::{Chain, End, MAX_HOPS};
use crate::registry::Answer;
use crate::store::{CustomHostname, Status};
use crate::verdict::{decide, ErrorCode, Verdict};
use crate::verification::TXT_PREFIX;

/// One name of the chain and the platform zone (and account) it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub name: String,
    pub zone: Option<String>,
    pub account: Option<String>,
}

/// What is known about a host.
pub struct Facts<'a> {
    pub host: &'a str,
    pub chain: &'a Chain,
    /// One per name of `chain`, the host first.
    pub hops: &'a [Hop],
    /// Lookup contract v1's answer for the host.
    pub answer: &'a Answer,
    pub custom_hostname: Option<&'a CustomHostname>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub verdict: Verdict,
    pub steps: Vec<String>,
    pub next_action: String,
}

pub fn diagnose(f: &Facts) -> Diagnosis {
    let verdict = decide(f.answer);
    Diagnosis { steps: steps(f, &verdict), next_action: next_action(f, &verdict), verdict }
}

fn last(chain: &Chain) -> &str {
    chain.names.last().map(String::as_str).unwrap_or_default()
}

fn verify_path(h: &CustomHostname) -> String {
    format!("POST /v1/accounts/{}/custom_hostnames/{}/verify", h.account, h.id)
}

fn txt_proof(h: &CustomHostname) -> String {
    format!("create TXT {TXT_PREFIX}{} with value {}", h.hostname, h.verification_token)
}

/// The account that serves the host (the chain's target account when it
/// crosses accounts), as the verdict table reads it.
fn serving(answer: &Answer) -> Option<(&str, bool)> {
    let Answer::Found(o) = answer else { return None };
    match (o.target_account.as_deref(), o.account.as_deref()) {
        (Some(t), a) if Some(t) != a => Some((t, true)),
        (_, Some(a)) => Some((a, false)),
        _ => None,
    }
}

fn steps(f: &Facts, verdict: &Verdict) -> Vec<String> {
    let host = f.host;
    let mut steps = Vec::new();
    match f.chain.names.get(1..) {
        Some(targets) if !targets.is_empty() => steps.push(format!("{host} CNAMEs to {}", targets.join(" -> "))),
        _ => steps.push(format!("{host} has no CNAME")),
    }
    let end = last(f.chain);
    steps.push(match &f.chain.end {
        End::Addresses => format!("{end} has an address (A or AAAA)"),
        End::NoAddress => format!("{end} has no address (NXDOMAIN, or neither A nor AAAA)"),
        End::Loop => format!("the chain loops: {end} points back to an earlier name"),
        End::TooLong => format!("the chain is longer than {MAX_HOPS} CNAMEs"),
        End::BadTarget(t) => format!("{end} CNAMEs to {t:?}, which is not a host name"),
    });
    for hop in f.hops {
        match (&hop.zone, &hop.account) {
            (Some(zone), Some(account)) => steps.push(format!("{} is in zone {zone} of {account}", hop.name)),
            _ if hop.name == host => steps.push(format!("{host} is in no zone on the platform")),
            _ => {}
        }
    }
    match (f.answer, serving(f.answer)) {
        (Answer::Unknown, _) | (_, None) => {
            steps.push(format!("neither {host} nor a name of its chain is in a zone on the platform"))
        }
        (Answer::Found(o), Some((target, true))) => {
            let via = o.cname_target.as_deref().unwrap_or_default();
            steps.push(format!(
                "its chain reaches {via}, a zone of {target}: {target} serves {host} only as a custom hostname"
            ));
        }
        (Answer::Found(_), Some((account, false))) => steps.push(format!("{host} is served as {account}'s own")),
    }
    steps.push(match f.custom_hostname {
        None => format!("{host} is no account's custom hostname"),
        Some(h) => {
            let mut s = format!("{host} is a custom hostname of {}, status {}", h.account, h.status);
            if !h.verification_errors.is_empty() {
                s.push_str(&format!(" ({})", h.verification_errors.join("; ")));
            }
            s
        }
    });
    if let (Answer::Found(o), Some((account, _))) = (f.answer, serving(f.answer)) {
        if o.suspended {
            steps.push(format!("{account} is suspended"));
        }
    }
    steps.push(match verdict {
        Verdict::Allow { account, .. } => format!("verdict: allowed, served by {account}"),
        Verdict::Deny(code) => format!("verdict: {} {}", code.number(), code.name()),
    });
    steps
}

fn next_action(f: &Facts, verdict: &Verdict) -> String {
    let host = f.host;
    let ch = f.custom_hostname;
    let code = match verdict {
        Verdict::Allow { account, .. } => return format!("nothing: {host} is served by {account}"),
        Verdict::Deny(code) => *code,
    };
    let blocked = |h: &CustomHostname| {
        format!(
            "ask the platform's operator to lift the block on {host} \
             (PATCH /v1/accounts/{}/custom_hostnames/{} with {{\"status\": \"active\"}})",
            h.account, h.id
        )
    };
    match code {
        ErrorCode::DnsResolution => match ch {
            Some(h) if h.status == Status::Blocked => blocked(h),
            Some(h) if h.status == Status::Active => format!("point {host} with a CNAME into a zone of {}", h.account),
            Some(h) => format!(
                "{}, then {} (no downtime: the old address keeps serving); then point {host} with a CNAME into a \
                 zone of {}",
                txt_proof(h),
                verify_path(h),
                h.account
            ),
            None => format!(
                "point {host} with a CNAME at the name your provider gave you (in a zone on the platform), and ask \
                 that account to add {host} as a custom hostname"
            ),
        },
        ErrorCode::CnameCrossUser => {
            let target = serving(f.answer).map(|(t, _)| t).unwrap_or_default();
            match ch {
                None => format!(
                    "ask {target} to add {host} as a custom hostname (POST /v1/accounts/{target}/custom_hostnames)"
                ),
                Some(h) if h.account != target => format!(
                    "{host} is {}'s custom hostname: point it back into a zone of {}, or ask {} to delete it and \
                     {target} to add it",
                    h.account, h.account, h.account
                ),
                Some(h) if h.status == Status::Blocked => blocked(h),
                Some(h) => format!(
                    "ask {target} to verify {host} again ({}): its CNAME into {target}'s zone is the proof",
                    verify_path(h)
                ),
            }
        }
        ErrorCode::OriginDns => match (ch, serving(f.answer)) {
            (Some(h), Some((target, true)))
                if h.account == target && matches!(h.status, Status::Pending | Status::Moved) =>
            {
                format!(
                    "ask {target} to verify {host} ({}), or wait for the verifier's next round: its CNAME into a \
                     zone of {target} is the proof",
                    verify_path(h)
                )
            }
            _ => {
                let end = last(f.chain);
                match &f.chain.end {
                    End::Loop => format!("break the CNAME loop at {end}"),
                    End::TooLong => format!("shorten the chain of {host} to at most {MAX_HOPS} CNAMEs"),
                    End::BadTarget(t) => format!("fix the CNAME of {end}: {t:?} is not a host name"),
                    End::NoAddress | End::Addresses => format!("point {end} at an address (an A or AAAA record)"),
                }
            }
        },
        ErrorCode::NotServing => {
            let account = serving(f.answer).map(|(a, _)| a).unwrap_or_default();
            format!(
                "{account} is suspended: the platform's operator lifts it (PUT /v1/accounts/{account} with \
                 {{\"suspended\": false}})"
            )
        }
        ErrorCode::DirectIp => "use a host name, not an IP address".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Ownership;

    fn chain(names: &[&str], end: End) -> Chain {
        Chain { names: names.iter().map(|s| s.to_string()).collect(), end, ttl: 60 }
    }

    fn found(account: Option<&str>, target: Option<&str>, ch: Option<&str>, resolves: bool) -> Answer {
        Answer::Found(Ownership {
            host: "shop.brand.example".into(),
            account: account.map(String::from),
            cname_target: target.map(|_| "edge.saas.example".into()),
            target_account: target.map(String::from),
            custom_hostname: ch.map(String::from),
            origin_resolves: resolves,
            suspended: false,
            ttl: 60,
            https: false,
        })
    }

    fn hostname(account: &str, status: Status) -> CustomHostname {
        CustomHostname {
            id: "id1".into(),
            hostname: "shop.brand.example".into(),
            account: account.into(),
            status,
            verification_token: "tok".into(),
            verification_errors: vec![],
            created_at: 0,
            updated_at: 0,
            last_checked_at: None,
            ssl: Default::default(),
        }
    }

    fn run(c: &Chain, answer: &Answer, ch: Option<&CustomHostname>) -> Diagnosis {
        diagnose(&Facts { host: "shop.brand.example", chain: c, hops: &[], answer, custom_hostname: ch })
    }

    #[test]
    fn remedies_per_verdict() {
        let into_saas = chain(&["shop.brand.example", "edge.saas.example"], End::Addresses);
        let d = run(&into_saas, &found(None, Some("acct-saas"), None, true), None);
        assert_eq!(d.verdict, Verdict::Deny(ErrorCode::CnameCrossUser));
        assert!(d.next_action.starts_with("ask acct-saas to add shop.brand.example as a custom hostname"));

        let pending = hostname("acct-saas", Status::Pending);
        let old_host = chain(&["shop.brand.example"], End::Addresses);
        let d = run(&old_host, &Answer::Unknown, Some(&pending));
        assert_eq!(d.verdict, Verdict::Deny(ErrorCode::DnsResolution));
        assert!(d.next_action.starts_with("create TXT _cname-guard.shop.brand.example with value tok"), "{d:?}");

        let d = run(&into_saas, &found(None, Some("acct-saas"), Some("pending"), true), Some(&pending));
        assert_eq!(d.verdict, Verdict::Deny(ErrorCode::OriginDns));
        assert!(d.next_action.contains("/custom_hostnames/id1/verify"), "{d:?}");

        let dangling = chain(&["shop.brand.example", "gone.saas.example"], End::NoAddress);
        let d = run(&dangling, &found(Some("acct-saas"), Some("acct-saas"), None, false), None);
        assert_eq!(d.next_action, "point gone.saas.example at an address (an A or AAAA record)");

        let active = hostname("acct-saas", Status::Active);
        let d = run(&into_saas, &found(None, Some("acct-saas"), Some("active"), true), Some(&active));
        assert_eq!(d.verdict, Verdict::Allow { account: "acct-saas".into(), https: false });
        assert_eq!(d.steps.last().map(String::as_str), Some("verdict: allowed, served by acct-saas"));
    }
}
