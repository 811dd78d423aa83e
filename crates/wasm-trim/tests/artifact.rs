//! The `.wasm` as `make wasm` leaves it exports exactly the callbacks the filter
//! implements (read from `src/`) and the SDK's plumbing: a callback implemented
//! but not exported would never be called, one exported but not implemented
//! costs Envoy a call into the VM per request for nothing.

use std::collections::BTreeSet;

use cname_guard_wasm_trim::{artifact, callback_exports, exports, filter_src, implemented, wanted, ALWAYS, CALLBACKS};

#[test]
fn the_built_filter_exports_exactly_the_callbacks_it_implements() {
    let path = artifact::filter_wasm().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (build it: make wasm)", path.display()));
    let exported = callback_exports(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let implemented = implemented(&filter_src()).unwrap_or_else(|e| panic!("{e}"));
    let want: BTreeSet<String> = wanted(&implemented).into_iter().map(String::from).collect();

    let not_exported: Vec<_> = want.difference(&exported).collect();
    let not_implemented: Vec<_> = exported.difference(&want).collect();
    assert!(
        not_exported.is_empty() && not_implemented.is_empty(),
        "{}:\n  implemented (src/) but not exported, never called by Envoy: {not_exported:?}\n  \
         exported but not implemented, a call per request for nothing: {not_implemented:?}\n\
         build it with `make wasm` (cargo build, then cargo run -p cname-guard-wasm-trim)",
        path.display()
    );

    // What makes it a Proxy-Wasm module Envoy loads is never removed.
    let all = exports(&bytes).unwrap_or_else(|e| panic!("{e}"));
    for name in ["memory", "_initialize", "proxy_abi_version_0_2_1"].iter().chain(ALWAYS) {
        assert!(all.iter().any(|e| e == name), "{}: no export {name}: {all:?}", path.display());
    }
}

/// The reader finds the filter's impls at all (a moved or renamed `src/`, or an
/// impl it cannot see, would otherwise read as "implements nothing").
#[test]
fn the_reader_sees_the_filters_context_impls() {
    let implemented = implemented(&filter_src()).unwrap_or_else(|e| panic!("{e}"));
    for method in ["on_http_request_headers", "on_configure", "on_http_call_response"] {
        assert!(implemented.methods.contains(method), "{method} not found in src/: {implemented:?}");
    }
    assert!(CALLBACKS.iter().all(|c| c.export.starts_with("proxy_on_")));
}
