//! Fuel (≈ wasm instructions) per request, deterministic run to run. Prints the figures:
//! `cargo test -p cname-guard-host --release fuel -- --nocapture`

mod common;
use cname_guard_host::{Action, Host};
use common::*;
use serde_json::json;

const H: &str = "shop.customer.example";

struct Figures {
    cached: u64,
    cached_stream: u64,
    /// Mean over a name's first 64 hits (the use counting is batched).
    cached_first64: u64,
    /// One hit of a name in steady use (its use counters saturated).
    cached_steady: u64,
    lookup: u64,
    lookup_stream: u64,
    denied_cached: u64,
}

fn measure() -> Figures {
    let mut h: Host = host();
    // Lookup path: everything worker 0 runs for one request whose host is not cached
    // (headers, the queued dispatch on the root, the answer, resume, response, log, delete).
    let before = h.fuel(0);
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Pause);
    answer_record(&mut h, H, json!({"account": "acct-saas"}));
    assert!(r.continued(&h));
    let lookup = h.fuel(0) - before;
    let lookup_stream = r.fuel(&h);
    // Warm path: the verdict is cached; allowed with the account header.
    let before = h.fuel(0);
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Continue);
    let cached = h.fuel(0) - before;
    let cached_stream = r.fuel(&h);
    // The same host's next hits: the first 64 in all, then one in steady use.
    let before = h.fuel(0);
    for _ in 1..64 {
        assert_eq!(h.worker(0).get(H).action(), Action::Continue);
    }
    let cached_first64 = (h.fuel(0) - before + cached) / 64;
    for _ in 64..199 {
        h.worker(0).get(H);
    }
    let before = h.fuel(0);
    assert_eq!(h.worker(0).get(H).action(), Action::Continue);
    let cached_steady = h.fuel(0) - before;
    // A cached denial renders an HTML page.
    looked_up(&mut h, "bad.customer.example", json!({"account": "a", "target_account": "b"}));
    let before = h.fuel(0);
    let r = h.worker(0).get("bad.customer.example");
    assert_eq!(r.status(&h), Some(409));
    let denied_cached = h.fuel(0) - before;
    Figures { cached, cached_stream, cached_first64, cached_steady, lookup, lookup_stream, denied_cached }
}

#[test]
fn fuel_per_request() {
    let f = measure();
    println!("fuel per request (wasmtime fuel units, ~ wasm instructions):");
    println!("  allowed from cache : {:>8}  (stream callbacks only: {})", f.cached, f.cached_stream);
    println!("  allowed from cache, mean of a name's first 64 hits : {:>8}", f.cached_first64);
    println!("  allowed from cache, a name in steady use (hit 200)  : {:>8}", f.cached_steady);
    println!("  allowed via lookup : {:>8}  (stream callbacks and call response: {})", f.lookup, f.lookup_stream);
    println!("  denied from cache  : {:>8}  (HTML 1014 page)", f.denied_cached);
    let again = measure();
    assert_eq!(
        (f.cached, f.cached_first64, f.cached_steady, f.lookup, f.denied_cached),
        (again.cached, again.cached_first64, again.cached_steady, again.lookup, again.denied_cached),
        "fuel is deterministic"
    );
    assert!(f.cached < f.lookup);
}

/// The no-op filter's cached request (configuration B of `make bench`), for
/// the accounting of C − B in BENCHMARKS.md. Ignored in `make test`: it needs
/// the no-op build, which `make fuel` makes and names in CNAME_GUARD_NOOP_WASM
/// (once as the SDK exports it, once with the callbacks cname-guard does not
/// implement unexported, by crates/wasm-trim).
#[test]
#[ignore = "needs the no-op filter's .wasm: run by `make fuel`"]
fn fuel_noop() {
    let Some(wasm) = std::env::var_os("CNAME_GUARD_NOOP_WASM") else {
        panic!("CNAME_GUARD_NOOP_WASM is not set: `make fuel` builds the no-op filter and sets it");
    };
    let name = std::path::Path::new(&wasm).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut h = Host::builder().wasm(&wasm).config(json!({})).build().expect("the no-op filter starts");
    let mut per_request = Vec::new();
    for _ in 0..3 {
        let before = h.fuel(0);
        let r = h.worker(0).get(H);
        assert_eq!(r.action(), Action::Continue);
        per_request.push(h.fuel(0) - before);
    }
    println!("fuel per request of the no-op filter (wasmtime fuel units, ~ wasm instructions):");
    println!("  {name} : {:>8}", per_request[2]);
    assert_eq!(per_request[1], per_request[2], "fuel is deterministic");
}
