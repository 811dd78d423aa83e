//! The admission rule: whether a new entry may take a resident's place.
//! One rule for the native map, the Wasm worker's map and the Wasm slot table.

use super::Entry;
use crate::verdict::Verdict;

/// What a cached entry is worth keeping, compared in field order: a live
/// entry before an expired one, a frequently used one before a rare one,
/// and at equal use an allow before a denial before a failure, so that
/// negative answers cannot crowd out the names that carry traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Worth {
    pub live: bool,
    pub frequency: u8,
    pub kind: u8,
}

impl Worth {
    pub fn of(entry: &Entry, frequency: u8, now: u64) -> Worth {
        let kind = match entry.verdict {
            Some(Verdict::Allow { .. }) => 2,
            Some(Verdict::Deny(_)) => 1,
            None => 0,
        };
        Worth { live: now < entry.stale_until.max(entry.fresh_until), frequency, kind }
    }
}

/// A newcomer replaces a resident only if it is worth more: an expired
/// resident always goes, a live one only to a name used more often (or
/// as often, and of a better kind). A name seen once never pushes out one
/// in steady use.
pub fn admit(candidate: Worth, victim: Worth) -> bool {
    candidate > victim
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::ErrorCode;

    fn entry(verdict: Option<Verdict>, until: u64) -> Entry {
        Entry { verdict, fresh_until: until, stale_until: until }
    }

    #[test]
    fn use_first_then_kind() {
        let allow = entry(Some(Verdict::Allow { account: "a".into(), https: false }), 100);
        let deny = entry(Some(Verdict::Deny(ErrorCode::DnsResolution)), 100);
        let failure = entry(None, 100);
        let w = |e: &Entry, f| Worth::of(e, f, 50);
        assert!(!admit(w(&deny, 1), w(&allow, 1)), "a denial does not push out an allow used as often");
        assert!(!admit(w(&failure, 3), w(&allow, 3)));
        assert!(admit(w(&allow, 1), w(&deny, 1)));
        assert!(!admit(w(&allow, 1), w(&allow, 1)), "a tie keeps the resident");
        assert!(admit(w(&deny, 5), w(&allow, 4)), "what is used more wins, whatever it is");
        assert!(!admit(w(&allow, 1), w(&deny, 9)));
        let expired = Worth::of(&allow, 16, 100);
        assert!(admit(w(&failure, 0), expired), "an expired entry always makes room");
    }
}
