//! Answers to paused requests, at most `PER_CALL` from one host callback.
//!
//! A Proxy-Wasm host runs what `resume_http_request` and
//! `send_http_response` ask after the VM call that asked, and Envoy runs
//! each inside the VM call of the one before (proxy-wasm-cpp-host drains
//! its after-VM-call actions at the end of every VM call, the nested ones
//! included): N answers given in one callback nest N VM calls deep on the
//! native stack, and a few hundred overflow V8's ("Maximum call stack size
//! exceeded"), which kills the VM. The rest wait for a later callback,
//! which starts on a fresh stack.

use std::collections::VecDeque;

/// Measured: 600 answers from one callback overflowed V8's stack in Envoy
/// 1.40 (tests/e2e_cache.rs); 32 keeps far below it.
pub const PER_CALL: usize = 32;

#[derive(Debug)]
pub struct Backlog<T> {
    waiting: VecDeque<T>,
    /// Answers the current callback may still give.
    left: usize,
    /// A later callback has been asked for and has not come yet.
    asked: bool,
}

impl<T> Default for Backlog<T> {
    fn default() -> Self {
        Backlog { waiting: VecDeque::new(), left: 0, asked: false }
    }
}

impl<T> Backlog<T> {
    /// A host callback begins: its own allowance.
    pub fn begin(&mut self) {
        self.left = PER_CALL;
    }

    /// Queues `answers` and returns those this callback gives now, oldest first.
    pub fn admit(&mut self, answers: impl IntoIterator<Item = T>) -> Vec<T> {
        self.waiting.extend(answers);
        let n = self.left.min(self.waiting.len());
        self.left -= n;
        self.waiting.drain(..n).collect()
    }

    /// Whether the glue must ask for a later callback now: answers are left
    /// and none has been asked for since the last one came.
    pub fn ask_later(&mut self) -> bool {
        let ask = !self.waiting.is_empty() && !self.asked;
        self.asked |= ask;
        ask
    }

    /// The callback asked for has come.
    pub fn later_came(&mut self) {
        self.asked = false;
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_callback_gives_at_most_per_call_and_the_rest_in_order_later() {
        let mut b = Backlog::default();
        b.begin();
        let now = b.admit(0..100);
        assert_eq!(now, (0..PER_CALL).collect::<Vec<_>>());
        assert!(b.ask_later());
        assert!(!b.ask_later(), "asked once until it comes");
        // Later answers of the same callback queue behind.
        assert!(b.admit([1000]).is_empty());
        let mut given = now;
        while !b.is_empty() {
            b.later_came();
            b.begin();
            given.extend(b.admit([]));
            b.ask_later();
        }
        let mut expected: Vec<usize> = (0..100).collect();
        expected.push(1000);
        assert_eq!(given, expected);
        assert!(!b.ask_later());
    }

    #[test]
    fn nothing_is_given_outside_a_callback() {
        let mut b = Backlog::default();
        assert!(b.admit([1, 2]).is_empty());
        assert_eq!(b.len(), 2);
        assert!(b.ask_later());
    }
}
