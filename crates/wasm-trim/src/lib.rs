//! Which Proxy-Wasm callbacks cname-guard implements, read from its source,
//! and the `.wasm` without the exports of the others.
//!
//! The Rust SDK (proxy-wasm) exports every callback of the ABI with
//! `#[no_mangle]`, whatever the filter implements, and has no switch to do
//! otherwise. Envoy (proxy-wasm-cpp-host) calls each callback a module
//! exports: for one the filter leaves to the SDK's default, that is a call into
//! V8 and a context lookup for nothing. A callback a module does not export is
//! skipped with the result the SDK's default gives (continue; done; started).
//!
//! "Implemented" is read from the code, never kept in a list: every
//! `impl Context|RootContext|HttpContext|StreamContext for T` under the filter's
//! `src/` (parsed with `syn`, as the compiler reads it) names the callbacks it
//! overrides, and [`CALLBACKS`] says which export delivers each one (the SDK's
//! dispatcher, proxy-wasm 0.2). Everything the tool cannot read for sure fails
//! loudly instead of dropping an export: a method `on_*` of those traits that
//! the table does not know, an impl of them inside a macro, a `proxy_on_*`
//! export of the module that the table does not know.
//!
//! `make wasm` runs the binary after cargo; the test `tests/artifact.rs` checks
//! that the built `.wasm` exports exactly these callbacks.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub mod artifact;
mod source;
mod wasm;

pub use source::{implemented, implemented_in, Implemented};
pub use wasm::{callback_exports, exports, trim};

/// One export of the SDK that delivers a callback to the filter.
#[derive(Debug)]
pub struct Callback {
    /// The export's name.
    pub export: &'static str,
    /// The trait methods it is dispatched to; implementing one keeps the export.
    pub methods: &'static [&'static str],
    /// Host calls whose answer it delivers and whose bookkeeping in the SDK's
    /// dispatcher it completes (a token is removed): using one keeps the export.
    pub answers: &'static [&'static str],
}

const fn cb(export: &'static str, methods: &'static [&'static str], answers: &'static [&'static str]) -> Callback {
    Callback { export, methods, answers }
}

/// Every callback export of proxy-wasm 0.2 (src/dispatcher.rs) and what it is
/// dispatched to. An SDK upgrade that adds one makes [`trim`] fail until it is here.
pub const CALLBACKS: &[Callback] = &[
    cb("proxy_on_vm_start", &["on_vm_start"], &[]),
    cb("proxy_on_configure", &["on_configure"], &[]),
    cb("proxy_on_tick", &["on_tick"], &[]),
    cb("proxy_on_queue_ready", &["on_queue_ready"], &[]),
    cb("proxy_on_foreign_function", &["on_foreign_function"], &[]),
    cb("proxy_on_done", &["on_done"], &[]),
    cb("proxy_on_log", &["on_log"], &[]),
    cb("proxy_on_request_headers", &["on_http_request_headers"], &[]),
    cb("proxy_on_request_body", &["on_http_request_body"], &[]),
    cb("proxy_on_request_trailers", &["on_http_request_trailers"], &[]),
    cb("proxy_on_response_headers", &["on_http_response_headers"], &[]),
    cb("proxy_on_response_body", &["on_http_response_body"], &[]),
    cb("proxy_on_response_trailers", &["on_http_response_trailers"], &[]),
    cb("proxy_on_new_connection", &["on_new_connection"], &[]),
    cb("proxy_on_downstream_data", &["on_downstream_data"], &[]),
    cb("proxy_on_downstream_connection_close", &["on_downstream_close"], &[]),
    cb("proxy_on_upstream_data", &["on_upstream_data"], &[]),
    cb("proxy_on_upstream_connection_close", &["on_upstream_close"], &[]),
    cb("proxy_on_http_call_response", &["on_http_call_response"], &["dispatch_http_call"]),
    cb("proxy_on_grpc_receive_initial_metadata", &["on_grpc_stream_initial_metadata"], &[]),
    cb("proxy_on_grpc_receive", &["on_grpc_call_response", "on_grpc_stream_message"], &["dispatch_grpc_call"]),
    cb("proxy_on_grpc_receive_trailing_metadata", &["on_grpc_stream_trailing_metadata"], &[]),
    cb(
        "proxy_on_grpc_close",
        &["on_grpc_call_response", "on_grpc_stream_close"],
        &["dispatch_grpc_call", "open_grpc_stream"],
    ),
];

/// The SDK's own plumbing, kept whatever the filter implements: the host
/// creates and deletes every context through them (the SDK builds the filter's
/// contexts and drops them there) and allocates in the module's memory.
pub const ALWAYS: &[&str] = &["proxy_on_context_create", "proxy_on_delete", "proxy_on_memory_allocate"];

/// The SDK's traits whose methods are callbacks.
pub const TRAITS: &[&str] = &["Context", "RootContext", "HttpContext", "StreamContext"];

/// The `proxy_on_*` exports a module of the filter must have: [`ALWAYS`] and
/// those of the callbacks implemented.
pub fn wanted(implemented: &Implemented) -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = ALWAYS.iter().copied().collect();
    for c in CALLBACKS {
        if c.methods.iter().any(|m| implemented.methods.contains(*m))
            || c.answers.iter().any(|a| implemented.host_calls.contains(*a))
        {
            out.insert(c.export);
        }
    }
    out
}

/// Whether an export is one of the ABI's callbacks into the module.
pub fn is_callback_export(name: &str) -> bool {
    name.starts_with("proxy_on_")
}

/// The filter's source directory in this checkout (`src/` of the workspace root).
pub fn filter_src() -> PathBuf {
    artifact::workspace_dir().join("src")
}

/// What `make wasm` does after cargo: the callbacks implemented under `src`
/// read, and `module` rewritten in place (through a renamed temporary file)
/// without the exports of the others. Returns the names removed; none when
/// the module is already trimmed.
pub fn trim_file(module: &Path, src: &Path) -> Result<Vec<String>, Error> {
    let keep = wanted(&implemented(src)?);
    let bytes = std::fs::read(module).map_err(|e| Error::Io(module.to_path_buf(), e))?;
    let (out, removed) = trim(&bytes, &keep)?;
    if !removed.is_empty() {
        let tmp = module.with_extension("wasm.tmp");
        std::fs::write(&tmp, &out).map_err(|e| Error::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, module).map_err(|e| Error::Io(module.to_path_buf(), e))?;
    }
    Ok(removed)
}

/// Why the callbacks could not be read or the module not trimmed.
#[derive(Debug)]
pub enum Error {
    Io(PathBuf, std::io::Error),
    /// A source file that does not parse as Rust.
    Parse(PathBuf, String),
    /// No `.rs` file under the source directory.
    NoSource(PathBuf),
    /// A method `on_*` in an impl of an SDK trait that [`CALLBACKS`] does not know.
    UnknownMethod {
        file: PathBuf,
        imp: String,
        method: String,
    },
    /// An impl of an SDK trait written inside a macro, which is not read.
    ImplInMacro {
        file: PathBuf,
        mac: String,
    },
    /// Not a WebAssembly module (or a malformed one).
    Wasm(String),
    /// A `proxy_on_*` export that [`CALLBACKS`] does not know (a newer SDK?).
    UnknownExport(String),
    /// An export the filter needs but the module does not have.
    Missing(Vec<String>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Error::Parse(p, e) => write!(f, "{}: not Rust that syn parses: {e}", p.display()),
            Error::NoSource(p) => write!(f, "{}: no .rs file", p.display()),
            Error::UnknownMethod { file, imp, method } => write!(
                f,
                "{}: `{imp}` implements `{method}`, a callback crates/wasm-trim does not know: \
                 add it to CALLBACKS with the export that delivers it",
                file.display()
            ),
            Error::ImplInMacro { file, mac } => write!(
                f,
                "{}: an impl of a Proxy-Wasm context trait inside `{mac}!`, where its callbacks \
                 cannot be read: write the impl outside the macro",
                file.display()
            ),
            Error::Wasm(e) => write!(f, "not a valid WebAssembly module: {e}"),
            Error::UnknownExport(name) => write!(
                f,
                "the module exports `{name}`, a callback crates/wasm-trim does not know \
                 (a newer proxy-wasm?): add it to CALLBACKS"
            ),
            Error::Missing(names) => {
                write!(f, "not the Proxy-Wasm filter expected: no export {}", names.join(", "))
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, e) => Some(e),
            _ => None,
        }
    }
}
