//! Token buckets on new orders, in all and per account, so a burst of
//! sign-ups or one broken hostname cannot burn the CA's rate limits; and
//! the per-hostname backoff.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Unix seconds of the last refill.
    at: f64,
}

/// Orders per hour: `all` for the service, `per_account` for each account.
#[derive(Debug)]
pub struct Limits {
    all_per_hour: f64,
    account_per_hour: f64,
    all: Bucket,
    accounts: HashMap<String, Bucket>,
}

/// Why an order must wait, and until when (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub until: i64,
    pub sentence: String,
}

/// Accounts tracked at most; full buckets are dropped first (they hold no state).
const MAX_ACCOUNTS: usize = 100_000;

impl Limits {
    pub fn new(all_per_hour: u32, account_per_hour: u32) -> Limits {
        let all_per_hour = f64::from(all_per_hour.max(1));
        Limits {
            all_per_hour,
            account_per_hour: f64::from(account_per_hour.max(1)),
            all: Bucket { tokens: all_per_hour, at: 0.0 },
            accounts: HashMap::new(),
        }
    }

    /// Takes one order from both buckets at `now`, or says how long to wait.
    pub fn take(&mut self, account: &str, now: f64) -> Result<(), Wait> {
        refill(&mut self.all, self.all_per_hour, now);
        if self.accounts.len() >= MAX_ACCOUNTS && !self.accounts.contains_key(account) {
            let (cap, rate) = (self.account_per_hour, self.account_per_hour);
            self.accounts.retain(|_, b| {
                refill(b, rate, now);
                b.tokens < cap
            });
        }
        let rate = self.account_per_hour;
        let mine = self.accounts.entry(account.to_string()).or_insert(Bucket { tokens: rate, at: now });
        refill(mine, rate, now);
        if self.all.tokens < 1.0 {
            return Err(wait(
                self.all,
                self.all_per_hour,
                now,
                "the issuer's limit of",
                "new orders an hour (all accounts)",
            ));
        }
        if mine.tokens < 1.0 {
            return Err(wait(*mine, rate, now, "this account's limit of", "new orders an hour"));
        }
        self.all.tokens -= 1.0;
        mine.tokens -= 1.0;
        Ok(())
    }
}

fn refill(b: &mut Bucket, per_hour: f64, now: f64) {
    if now > b.at {
        b.tokens = (b.tokens + (now - b.at) * per_hour / 3600.0).min(per_hour);
        b.at = now;
    }
}

fn wait(b: Bucket, per_hour: f64, now: f64, what: &str, unit: &str) -> Wait {
    let secs = ((1.0 - b.tokens) * 3600.0 / per_hour).ceil().max(1.0);
    let until = (now + secs) as i64;
    Wait {
        until,
        sentence: format!(
            "waiting: {what} {per_hour} {unit} is reached; the next attempt is at {}",
            crate::store::rfc3339(until)
        ),
    }
}

/// The delay before attempt `attempts + 1`: `min` doubled per failure up
/// to `max`, with up to a tenth more at random so retries spread out.
pub fn backoff(attempts: i64, min: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    let base = min.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => base.mul_f64(f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 10.0),
        Err(_) => Duration::ZERO,
    };
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_per_hour() {
        let mut l = Limits::new(3, 2);
        assert!(l.take("a", 0.0).is_ok());
        assert!(l.take("a", 0.0).is_ok());
        let w = l.take("a", 0.0).expect_err("account limit");
        assert!(w.sentence.contains("this account's limit of 2"), "{}", w.sentence);
        assert_eq!(w.until, 1800);
        assert!(l.take("b", 0.0).is_ok());
        let w = l.take("c", 0.0).expect_err("global limit");
        assert!(w.sentence.contains("(all accounts)"), "{}", w.sentence);
        assert!(l.take("c", 1200.0).is_ok(), "a third of an hour refills one of three");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(60));
        assert!(backoff(0, min, max) >= min && backoff(0, min, max) <= min.mul_f64(1.1));
        assert!(backoff(2, min, max) >= Duration::from_secs(40));
        assert!(backoff(50, min, max) <= max.mul_f64(1.1));
    }
}
