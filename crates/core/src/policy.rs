//! What a lookup result means for the cache, and the small per-request
//! rules both front ends apply the same way.

use crate::cache::Entry;
use crate::config::CacheConfig;
use crate::lookup::{Answer, LookupError};
use crate::verdict::{self, ErrorCode, Verdict};

/// The verdict of a lookup result; `None` for a failed lookup.
pub fn verdict_of(result: &Result<Answer, LookupError>) -> Option<Verdict> {
    result.as_ref().ok().map(verdict::decide)
}

/// The entry to cache for a lookup result, or `None` when its TTL is 0.
pub fn entry_for(c: &CacheConfig, result: &Result<Answer, LookupError>, now: u64) -> Option<Entry> {
    let (verdict, ttl) = match result {
        Ok(answer @ Answer::Found(r)) => {
            let ttl = r.ttl.unwrap_or(u64::from(c.ttl_seconds)).min(u64::from(c.ttl_seconds));
            (Some(verdict::decide(answer)), ttl)
        }
        Ok(Answer::Unknown) => (Some(Verdict::Deny(ErrorCode::DnsResolution)), u64::from(c.negative_ttl_seconds)),
        Err(_) => (None, u64::from(c.failure_ttl_seconds)),
    };
    if ttl == 0 {
        return None;
    }
    let fresh_until = now + ttl * 1000;
    let stale = if verdict.is_some() { u64::from(c.stale_if_error_seconds) * 1000 } else { 0 };
    Some(Entry { verdict, fresh_until, stale_until: fresh_until + stale })
}

/// Whether a failed lookup counts as a timeout: Envoy answers a callout
/// that ran out of time with its own 504, or with no response at all.
pub fn timed_out(e: &LookupError, elapsed_ms: u64, timeout_ms: u64) -> bool {
    matches!(e, LookupError::NoResponse | LookupError::Status(504)) && elapsed_ms >= timeout_ms
}

/// An `x-request-id` fit to log and forward: printable ASCII, at most 128 bytes.
pub fn request_id(raw: Vec<u8>) -> Option<String> {
    String::from_utf8(raw).ok().filter(|s| s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
}

/// Beyond the lookup timeout, how long a paused request may wait at most.
pub const GRACE_MS: u64 = 250;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::Record;

    /// Owned by `a`, its origin resolving; each test changes what it tests.
    fn found() -> Record {
        Record {
            account: Some("a".into()),
            target_account: None,
            custom_hostname: None,
            origin_resolves: true,
            suspended: false,
            ttl: None,
            https: false,
        }
    }

    fn cfg() -> CacheConfig {
        CacheConfig { ttl_seconds: 60, negative_ttl_seconds: 5, failure_ttl_seconds: 0, stale_if_error_seconds: 30, max_entries: 10 }
    }

    #[test]
    fn ttls_per_kind() {
        let found = Record { ttl: Some(600), ..found() };
        let e = entry_for(&cfg(), &Ok(Answer::Found(found)), 1_000).expect("cached");
        assert_eq!((e.fresh_until, e.stale_until), (61_000, 91_000));
        let e = entry_for(&cfg(), &Ok(Answer::Unknown), 1_000).expect("cached");
        assert_eq!(e.verdict, Some(Verdict::Deny(ErrorCode::DnsResolution)));
        assert_eq!(e.fresh_until, 6_000);
        assert_eq!(entry_for(&cfg(), &Err(LookupError::NoResponse), 1_000), None);
    }

    #[test]
    fn the_cached_entry_keeps_https() {
        let found = Record { https: true, ..found() };
        let e = entry_for(&cfg(), &Ok(Answer::Found(found)), 1_000).expect("cached");
        assert_eq!(e.verdict, Some(Verdict::Allow { account: "a".into(), https: true }));
        // Through the slot table too.
        assert_eq!(Entry::decode(&e.encode("h.example"), "h.example"), Some(e));
    }

    #[test]
    fn request_ids() {
        assert_eq!(request_id(b"abc-1".to_vec()).as_deref(), Some("abc-1"));
        assert_eq!(request_id(b"a b".to_vec()), None);
        assert_eq!(request_id(vec![b'x'; 129]), None);
        assert!(timed_out(&LookupError::Status(504), 500, 500));
        assert!(!timed_out(&LookupError::Status(504), 10, 500));
    }
}
