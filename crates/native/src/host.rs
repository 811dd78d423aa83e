//! `cname_guard_core::host::Host` over the dynamic module ABI: what core's
//! rules count, log and read the clock with, against one stream or the
//! filter config; `Incoming` over a stream's request.

use crate::ffi::{self, Handle, OnConfig, OnStream, Scope, Stream};
use crate::metrics::Metrics;
use crate::module::{now_ms, ray_id};
use cname_guard_core::host::{Host, Level};
use cname_guard_core::incoming::Incoming;
use std::fmt;

pub struct Native<'a, S> {
    pub h: Handle<S>,
    pub m: &'a Metrics,
}

/// Histograms are recorded on a stream only (the config has no such call).
pub trait Histogram {
    fn record(&self, id: Option<usize>, v: u64);
}

impl Histogram for Handle<OnStream> {
    fn record(&self, id: Option<usize>, v: u64) {
        Handle::<OnStream>::record(self, id, v);
    }
}

impl Histogram for Handle<OnConfig> {
    fn record(&self, _: Option<usize>, _: u64) {}
}

impl<S: Scope> Host for Native<'_, S>
where
    Handle<S>: Histogram,
{
    type Id = Option<usize>;

    fn ids(&self) -> &Metrics {
        self.m
    }

    fn add(&mut self, id: Option<usize>, n: i64) {
        // Gauges are set, never added to, in this build.
        self.h.count(id, n.max(0) as u64);
    }

    fn set(&mut self, id: Option<usize>, value: u64) {
        self.h.gauge_set(id, value);
    }

    fn record(&mut self, id: Option<usize>, value: u64) {
        Histogram::record(&self.h, id, value);
    }

    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        let level = match level {
            Level::Info => ffi::Level::Info,
            Level::Warn => ffi::Level::Warn,
            Level::Error => ffi::Level::Error,
        };
        ffi::log(level, &msg.to_string());
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn ray_id(&mut self, colo: &str) -> String {
        ray_id(colo)
    }
}

// Inlined: the cached path reads the authority (and the SNI) through here.
impl Incoming for Stream {
    #[inline(always)]
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.request_header(name)
    }

    fn tls_version(&self) -> Option<Option<Vec<u8>>> {
        Some(Handle::<OnStream>::tls_version(self))
    }

    #[inline(always)]
    fn server_name(&self) -> Option<Vec<u8>> {
        self.requested_server_name()
    }
}
