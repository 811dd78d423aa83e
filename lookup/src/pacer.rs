//! The verifier's DNS budget: checks start no faster than the budget
//! allows. Each check reserves its expected cost in queries when it starts
//! and settles the difference when its real cost is known, so the rate
//! holds over time without a burst after an idle spell.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Queries a check is expected to cost before any has run: TXT, the
/// host's CNAME, its target's CNAME, then the target's A.
const FIRST_ESTIMATE: f64 = 4.0;

pub struct Pacer {
    qps: f64,
    state: Mutex<State>,
}

struct State {
    /// When the next check may start.
    next: Instant,
    /// Queries per check, a moving average.
    per_check: f64,
}

impl Pacer {
    /// `qps`: DNS queries a second (at least 1).
    pub fn new(qps: u32) -> Pacer {
        Pacer {
            qps: f64::from(qps.max(1)),
            state: Mutex::new(State { next: Instant::now(), per_check: FIRST_ESTIMATE }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain numbers behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn secs(&self, queries: f64) -> Duration {
        Duration::from_secs_f64((queries / self.qps).max(0.0))
    }

    /// Waits for a check's turn; answers the cost reserved for it.
    pub async fn turn(&self) -> f64 {
        let (at, reserved) = {
            let mut s = self.lock();
            let at = s.next.max(Instant::now());
            s.next = at + self.secs(s.per_check);
            (at, s.per_check)
        };
        tokio::time::sleep_until(at).await;
        reserved
    }

    /// A check that reserved `reserved` queries sent `queries`.
    pub fn settle(&self, reserved: f64, queries: u32) {
        let mut s = self.lock();
        let actual = f64::from(queries);
        if actual >= reserved {
            s.next += self.secs(actual - reserved);
        } else {
            let back = self.secs(reserved - actual);
            s.next = s.next.checked_sub(back).unwrap_or(s.next);
        }
        s.per_check = 0.9 * s.per_check + 0.1 * actual;
    }

    /// Queries a check costs, as measured so far.
    pub fn per_check(&self) -> f64 {
        self.lock().per_check
    }

    /// How long checking `hostnames` takes at this budget.
    pub fn pass(&self, hostnames: u64) -> Duration {
        self.secs(hostnames as f64 * self.per_check())
    }

    /// Checks that fit in `within` at this budget (at least 1).
    pub fn checks_in(&self, within: Duration) -> u32 {
        let n = within.as_secs_f64() * self.qps / self.per_check().max(1.0);
        (n as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_near(took: Duration, ms: u64) {
        let want = Duration::from_millis(ms);
        assert!(took.abs_diff(want) < Duration::from_millis(1), "{took:?}, want {want:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_spaced_by_the_cost_at_the_budget() {
        let p = Pacer::new(10);
        let t0 = Instant::now();
        for _ in 0..4 {
            let r = p.turn().await;
            p.settle(r, 5);
        }
        // Each check settled at 5 questions: 0.5 s apart at 10 a second.
        assert_near(Instant::now() - t0, 1500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cheaper_check_gives_its_time_back_and_the_estimate_follows() {
        let p = Pacer::new(10);
        let t0 = Instant::now();
        let r = p.turn().await;
        p.settle(r, 1);
        p.turn().await;
        // Reserved 4 (0.4 s), cost 1: the next turn at 0.1 s.
        assert_near(Instant::now() - t0, 100);
        assert!((p.per_check() - 3.7).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_saved_up_for_a_burst() {
        let p = Pacer::new(10);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let t0 = Instant::now();
        for _ in 0..3 {
            let r = p.turn().await;
            p.settle(r, 5);
        }
        assert_near(Instant::now() - t0, 1000);
    }

    #[test]
    fn pass_and_batch_sizes() {
        let p = Pacer::new(100);
        assert_eq!(p.pass(1_000_000), Duration::from_secs(40_000));
        assert_eq!(p.checks_in(Duration::from_secs(60)), 1_500);
        assert_eq!(Pacer::new(1).checks_in(Duration::from_secs(1)), 1);
    }
}
