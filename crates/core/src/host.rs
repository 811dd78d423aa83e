//! All that core asks of a front end: the clock, the metrics, a log and
//! the ray ids. Each build implements it over its own ABI.

use crate::stats::Ids;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

pub trait Host {
    /// The host's metric id (`None` where the host refused one).
    type Id: Copy;
    fn ids(&self) -> &Ids<Self::Id>;
    /// Adds `n` to a counter (or, in the Wasm build, a gauge).
    fn add(&mut self, id: Self::Id, n: i64);
    /// Sets a gauge.
    fn set(&mut self, id: Self::Id, value: u64);
    /// Records a histogram value.
    fn record(&mut self, id: Self::Id, value: u64);
    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>);
    fn now_ms(&self) -> u64;
    /// A fresh ray id for an error page or a redirect.
    fn ray_id(&mut self, colo: &str) -> String;
}

/// A recording host for the tests of the machines in core.
#[cfg(test)]
pub mod fake {
    use super::*;

    pub struct Fake {
        pub ids: Ids<&'static str>,
        pub counts: std::collections::HashMap<&'static str, i64>,
        pub logs: Vec<(Level, String)>,
        pub now: u64,
        rays: u64,
    }

    impl Fake {
        pub fn new(now: u64) -> Fake {
            let ids = Ids::define(|_, name| &*String::leak(name.to_string()));
            Fake { ids, counts: Default::default(), logs: Vec::new(), now, rays: 0 }
        }

        pub fn count(&self, name: &str) -> i64 {
            self.counts.get(name).copied().unwrap_or(0)
        }

        pub fn logged(&self, part: &str) -> bool {
            self.logs.iter().any(|(_, l)| l.contains(part))
        }
    }

    impl Host for Fake {
        type Id = &'static str;
        fn ids(&self) -> &Ids<&'static str> {
            &self.ids
        }
        fn add(&mut self, id: &'static str, n: i64) {
            *self.counts.entry(id).or_default() += n;
        }
        fn set(&mut self, id: &'static str, value: u64) {
            self.counts.insert(id, value as i64);
        }
        fn record(&mut self, id: &'static str, value: u64) {
            self.counts.insert(id, value as i64);
        }
        fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
            self.logs.push((level, msg.to_string()));
        }
        fn now_ms(&self) -> u64 {
            self.now
        }
        fn ray_id(&mut self, colo: &str) -> String {
            self.rays += 1;
            format!("{:016x}-{colo}", self.rays)
        }
    }
}
