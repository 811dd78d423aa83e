//! `cname_guard_core::host::Host` over Proxy-Wasm host calls: what core's
//! rules count, log and read the clock with; `Incoming` over the request
//! of the running callback.

use crate::metrics::{self, Metrics};
use crate::worker::now_ms;
use cname_guard_core::host::{Host, Level};
use cname_guard_core::incoming::Incoming;
use cname_guard_core::ray::RayGen;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use std::fmt;

pub struct Wasm<'a> {
    pub metrics: &'a Metrics,
    pub rays: &'a mut RayGen,
}

impl Host for Wasm<'_> {
    type Id = Option<u32>;

    fn ids(&self) -> &Metrics {
        self.metrics
    }

    fn add(&mut self, id: Option<u32>, n: i64) {
        metrics::add(id, n);
    }

    fn set(&mut self, id: Option<u32>, value: u64) {
        metrics::set(id, value);
    }

    fn record(&mut self, id: Option<u32>, value: u64) {
        metrics::record(id, value);
    }

    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        let level = match level {
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        // The message as it came: `info!("{msg}")` would format it twice over.
        if level <= log::max_level() {
            log::logger().log(&log::Record::builder().level(level).args(msg).build());
        }
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn ray_id(&mut self, colo: &str) -> String {
        self.rays.ray_id(colo)
    }
}

/// The request of the running HTTP callback.
pub struct Req;

// Inlined: the cached path reads the authority (and the SNI) through here.
impl Incoming for Req {
    #[inline(always)]
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten()
    }

    fn tls_version(&self) -> Option<Option<Vec<u8>>> {
        // Envoy reports `connection.tls_version` as absent on plain HTTP.
        hostcalls::get_property(vec!["connection", "tls_version"]).ok()
    }

    #[inline(always)]
    fn server_name(&self) -> Option<Vec<u8>> {
        // Envoy gives an empty string on plain HTTP and on TLS without SNI.
        hostcalls::get_property(vec!["connection", "requested_server_name"]).ok().flatten().filter(|s| !s.is_empty())
    }
}
