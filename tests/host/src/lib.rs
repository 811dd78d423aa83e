//! A small Proxy-Wasm (ABI 0.2.1) host on wasmtime that loads the compiled `cname_guard.wasm`
//! and drives it as Envoy does: N worker VMs sharing data, queues and metrics, a test clock,
//! HTTP callouts the test answers, and fuel metering per call.
//!
//! ```no_run
//! use cname_guard_host::{Host, Action};
//! let mut h = Host::builder().config(serde_json::json!({})).cluster("lookup").build().unwrap();
//! let r = h.worker(0).get("shop.customer.example");
//! if r.action() == Action::Pause {
//!     let token = h.pending_calls().last().unwrap().token;
//!     h.answer(token, 404, &[], b"");
//! }
//! println!("{:?}", r.status(&h));
//! ```

pub mod abi;
pub mod artifact;
pub mod host;
pub mod http;
pub mod maps;
pub mod metrics;
pub mod shared;
pub mod stream;
pub mod vm;

pub use abi::{Action, LogLevel, Status};
pub use artifact::{default_wasm_path, filter_wasm};
pub use host::{property_path, Host, HostBuilder, Req, Request, Worker, EPOCH_SECS};
pub use http::{Call, CallOutcome};
pub use maps::HeaderMap;
pub use metrics::{Metric, MetricType};
pub use stream::{LocalResponse, Response};
pub use vm::{GuestError, LogEntry};
