//! CAA (RFC 8659) before an order: a record that forbids the CA is a
//! sentence the customer can act on, not a failed order at the CA.

use crate::resolve::{Dns, Reply, Rtype};

/// What the CAA records at or above a hostname say of our CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caa {
    Allowed,
    /// A sentence naming the record and what to change.
    Forbidden(String),
}

/// Climbs from `hostname` to the first name with CAA records (the
/// relevant set; top-level domains excluded) and checks that one `issue` names one of `identities`.
/// No identities configured: nothing is checked. DNS failure: `Err`.
pub async fn check<D: Dns>(dns: &D, hostname: &str, identities: &[String]) -> Result<Caa, String> {
    if identities.is_empty() {
        return Ok(Caa::Allowed);
    }
    let mut name = hostname;
    loop {
        match dns.query(name, Rtype::Caa).await {
            Ok(Reply::Caa { issue, critical_unknown, .. }) => {
                return Ok(judge(hostname, name, &issue, critical_unknown, identities))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("the CAA records of {name} could not be read: {}", e.detail)),
        }
        match name.split_once('.') {
            // Top-level domains are not asked: none carries CAA in practice.
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => return Ok(Caa::Allowed),
        }
    }
}

fn judge(hostname: &str, at: &str, issue: &[String], critical_unknown: bool, identities: &[String]) -> Caa {
    if critical_unknown {
        return Caa::Forbidden(format!(
            "a CAA record at {at} carries a critical tag no CA understands, so no certificate can be issued for {hostname}; remove it"
        ));
    }
    // Only issuewild or iodef records: issue is not restricted.
    if issue.is_empty() || issue.iter().any(|i| identities.iter().any(|id| id.eq_ignore_ascii_case(i))) {
        return Caa::Allowed;
    }
    let allowed: Vec<&str> = issue.iter().filter(|i| !i.is_empty()).map(String::as_str).collect();
    let said = if allowed.is_empty() { "no certificate authority".to_string() } else { allowed.join(", ") };
    Caa::Forbidden(format!(
        "the CAA records at {at} allow only {said} to issue for {hostname}; add `{at}. CAA 0 issue \"{}\"` to allow this platform's certificate authority",
        identities[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["letsencrypt.org".into()]
    }

    #[test]
    fn judges_the_relevant_set() {
        assert_eq!(judge("a.b.example", "b.example", &[], false, &ids()), Caa::Allowed);
        assert_eq!(judge("a.b.example", "b.example", &["LetsEncrypt.org".into()], false, &ids()), Caa::Allowed);
        let Caa::Forbidden(m) = judge("a.b.example", "b.example", &["pki.goog".into()], false, &ids()) else {
            panic!("allowed")
        };
        assert!(m.contains("allow only pki.goog") && m.contains("0 issue \"letsencrypt.org\""), "{m}");
        let Caa::Forbidden(m) = judge("a.b.example", "b.example", &[String::new()], false, &ids()) else { panic!() };
        assert!(m.contains("no certificate authority"), "{m}");
        assert!(matches!(judge("h", "h", &[], true, &ids()), Caa::Forbidden(_)));
    }
}
