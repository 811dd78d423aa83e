//! The host itself, on tiny hand-written modules: refused imports, traps with the guest's
//! log, ABI misuse noticed, header maps and shared data as Envoy exposes them.

use cname_guard_host::{Action, Host};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A module's text in the temp dir, removed when the test is done with it.
struct Wat(PathBuf);

impl AsRef<Path> for Wat {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Wat {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wat_file(name: &str, wat: &str) -> Wat {
    let p = std::env::temp_dir().join(format!("cname-guard-host-{name}-{}.wat", std::process::id()));
    std::fs::write(&p, wat).unwrap();
    Wat(p)
}

/// A minimal filter: `$body` is the body of proxy_on_request_headers (returns an action).
fn module(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 16) "about to trap")
  (data (i32.const 48) "x-added")
  (data (i32.const 64) "yes")
  (data (i32.const 80) ":authority")
  (data (i32.const 96) "request\00id")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (local i32)
    global.get $heap local.set 1
    global.get $heap local.get 0 i32.add global.set $heap
    local.get 1)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {body})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_delete") (param i32))
)"#
    )
}

#[test]
fn an_import_the_host_lacks_is_named() {
    let p = wat_file("import", &module(r#"(import "env" "proxy_foo" (func (param i32)))"#, "i32.const 0"));
    let err = Host::builder().wasm(&p).build().err().expect("refused");
    assert!(err.to_string().contains("unsupported import env.proxy_foo"), "{err}");
    let p = wat_file("import2", &module(r#"(import "other" "thing" (func))"#, "i32.const 0"));
    let err = Host::builder().wasm(&p).build().err().expect("refused");
    assert!(err.to_string().contains("unsupported import other.thing"), "{err}");
}

#[test]
fn a_trap_fails_the_test_with_the_guest_log() {
    let p = wat_file("trap", &module("", "(drop (call $log (i32.const 2) (i32.const 16) (i32.const 13))) unreachable"));
    let mut h = Host::builder().wasm(&p).build().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| {
        h.worker(0).get("a.example");
    }))
    .expect_err("the trap surfaces as a panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("guest trapped in proxy_on_request_headers"), "{msg}");
    assert!(msg.contains("unreachable"), "{msg}");
    assert!(msg.contains("about to trap"), "the guest log is shown: {msg}");
}

#[test]
fn headers_are_writable_during_on_request_headers_and_continue_forwards_them() {
    let imports = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;
    let body = "(drop (call $add (i32.const 0) (i32.const 48) (i32.const 7) (i32.const 64) (i32.const 3))) i32.const 0";
    let p = wat_file("headers", &module(imports, body));
    let mut h = Host::builder().wasm(&p).build().unwrap();
    let r = h.worker(0).get("a.example");
    assert_eq!(r.action(), Action::Continue);
    assert_eq!(r.forwarded_header(&h, "x-added"), Some("yes"));
    assert_eq!(r.forwarded_header(&h, ":authority"), Some("a.example"));
    assert_eq!(r.status(&h), Some(200));
    h.assert_no_anomalies();
}

#[test]
fn continuing_from_inside_on_request_headers_is_flagged() {
    let imports = r#"(import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))"#;
    let p = wat_file("continue", &module(imports, "(drop (call $cont (i32.const 0))) i32.const 0"));
    let mut h = Host::builder().wasm(&p).build().unwrap();
    h.worker(0).get("a.example");
    let a = h.anomalies();
    assert!(a.iter().any(|l| l.contains("from inside proxy_on_request_headers")), "{a:?}");
}

#[test]
fn writing_request_headers_after_continue_is_bad_argument() {
    // Envoy drops the request header map when the stream continues; a write then fails.
    let imports = r#"(import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;
    // Returns the status of the write as the action: 2 (BadArgument) reads as Pause.
    let body = "(drop (call $cont (i32.const 0))) (call $add (i32.const 0) (i32.const 48) (i32.const 7) (i32.const 64) (i32.const 3))";
    let p = wat_file("late-write", &module(imports, body));
    let mut h = Host::builder().wasm(&p).build().unwrap();
    let r = h.worker(0).get("a.example");
    assert_eq!(r.action(), Action::Pause);
    assert!(r.continued(&h));
    assert_eq!(r.forwarded_header(&h, "x-added"), None);
    assert!(h.anomalies().iter().any(|l| l.contains("not writable")), "{:?}", h.anomalies());
}

#[test]
fn shared_data_cas_across_workers() {
    // Each worker sets key "k" with cas 1 (only valid for the first writer after the
    // initial unconditional set done by the test).
    let imports = r#"(import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#;
    let body = "(call $set (i32.const 48) (i32.const 1) (i32.const 64) (i32.const 3) (i32.const 1))";
    let p = wat_file("cas", &module(imports, body));
    let mut h = Host::builder().wasm(&p).workers(2).build().unwrap();
    h.set_shared_data("x", b"v0");
    assert_eq!(h.shared_data("x"), Some((b"v0".to_vec(), 1)));
    // The module writes key "x" (first byte of "x-added") with cas 1.
    let r0 = h.worker(0).get("a.example");
    assert_eq!(r0.action(), Action::Continue, "cas 1 matched");
    assert_eq!(h.shared_data("x"), Some((b"yes".to_vec(), 2)));
    let r1 = h.worker(1).get("a.example");
    assert_eq!(r1.action(), Action::Pause, "status 8 CasMismatch reads as Pause");
    assert_eq!(h.shared_data("x").unwrap().1, 2);
}

#[test]
fn properties_come_from_the_stream_then_the_host() {
    // proxy_get_property("request.id"): Ok (0, Continue) when set, NotFound (1, Pause) when not.
    let imports = r#"(import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))"#;
    let p = wat_file("prop", &module(imports, "(call $prop (i32.const 96) (i32.const 10) (i32.const 200) (i32.const 204))"));
    let mut h = Host::builder().wasm(&p).build().unwrap();
    assert_eq!(h.worker(0).get("a.example").action(), Action::Pause);
    let r = h.worker(0).send(cname_guard_host::Req::get("a.example").property(&["request", "id"], "r-1"));
    assert_eq!(r.action(), Action::Continue);
    let mut h = Host::builder().wasm(&p).property(&["request", "id"], "host-wide").build().unwrap();
    assert_eq!(h.worker(0).get("a.example").action(), Action::Continue);
}
