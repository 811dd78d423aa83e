//! cname-guard: a Proxy-Wasm HTTP filter that checks who owns the request's
//! hostname before routing, and answers like Cloudflare's edge when a
//! hostname CNAMEs into an account that has not authorized it (Error 1014).
//!
//! The decision logic lives in `cname-guard-core` (crates/core), shared with
//! the native dynamic module (crates/native); this crate is the Proxy-Wasm
//! glue (`worker`, `filter`, `shared`, `metrics`, `host`), compiled for wasm32 only.

#[cfg(target_arch = "wasm32")]
mod feed;
#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod shared;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<worker::Root>::default()
    });
}}
