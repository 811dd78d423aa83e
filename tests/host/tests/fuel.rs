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
    // A cached denial renders an HTML page.
    looked_up(&mut h, "bad.customer.example", json!({"account": "a", "target_account": "b"}));
    let before = h.fuel(0);
    let r = h.worker(0).get("bad.customer.example");
    assert_eq!(r.status(&h), Some(409));
    let denied_cached = h.fuel(0) - before;
    Figures { cached, cached_stream, lookup, lookup_stream, denied_cached }
}

#[test]
fn fuel_per_request() {
    let f = measure();
    println!("fuel per request (wasmtime fuel units, ~ wasm instructions):");
    println!("  allowed from cache : {:>8}  (stream callbacks only: {})", f.cached, f.cached_stream);
    println!("  allowed via lookup : {:>8}  (stream callbacks and call response: {})", f.lookup, f.lookup_stream);
    println!("  denied from cache  : {:>8}  (HTML 1014 page)", f.denied_cached);
    let again = measure();
    assert_eq!(
        (f.cached, f.lookup, f.denied_cached),
        (again.cached, again.lookup, again.denied_cached),
        "fuel is deterministic"
    );
    assert!(f.cached < f.lookup);
}
