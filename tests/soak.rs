//! A bounded load run against real Envoy (`--concurrency 2`) with the
//! reference lookup service over the demo registry: cached, new, denied,
//! invalid and IP-literal hosts at a fixed concurrency, plus a flood of
//! unique unknown hostnames. Every response is checked against what its
//! host must get, connection errors must be 0, and Envoy's memory (heap
//! from admin `/memory`, RSS from /proc) may grow from the start of the run
//! to its end by no more than the cache bound's documented size.
//!
//! Not part of `make test`:
//! `make soak` = `SOAK_SECONDS=60 cargo test --release --test soak -- --ignored --nocapture`

use cname_guard_testkit as common;

use common::load::{self, mib, Gen, Load, Memory, Reply, Target};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `cache.max_entries` of the run.
const MAX_ENTRIES: u64 = 10_000;
/// docs/cache-and-feed.md: the shared table of the default 10,000 entries costs at most ~5 MB
/// per Envoy, and each worker's map ~2 MB for names like these (3 MB allowed).
const CACHE_BOUND: u64 = (5 + 3 * WORKERS as u64) * 1024 * 1024;
const WORKERS: u32 = 2;
const MIXED_CLIENTS: usize = 8;
const FLOOD_CLIENTS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Demo-registry hosts that stay cached during the run, and their status.
const CACHED: [(&str, u16); 7] = [
    ("www.saas.example", 200),
    ("shop.customer.example", 200),
    ("app.saas.example", 200),
    ("blocked.customer.example", 409),
    ("pending.customer.example", 530),
    ("www.frozen.example", 403),
    ("orphan.example", 409),
];

/// Authorities the filter refuses with 400 (Envoy's codec lets them through).
fn invalid() -> Vec<String> {
    vec![
        "exa_mple.example".into(),
        "a..b.example".into(),
        "1.2.3.4.5".into(),
        "host.example:99999".into(),
        format!("{}.example", "a".repeat(64)),
        format!("{}.example", vec!["a".repeat(60); 5].join(".")),
    ]
}

fn mixed(salt: u64) -> Arc<Gen> {
    let invalid = invalid();
    Arc::new(move |t, i| {
        let k = (i as usize).wrapping_mul(7).wrapping_add(t) % 20;
        match k {
            0..=9 => Target::new("cached", CACHED[(i as usize + t) % CACHED.len()].0),
            10 | 11 => Target::new("denied", "custom.myclientsite.com"),
            12 | 13 => Target::new("invalid", invalid[(i as usize) % invalid.len()].clone()),
            14 => Target::new("ip", "192.0.2.1"),
            _ => Target::new("new", format!("{}.tenants.saas.example", load::unique_label(t, i, salt))),
        }
    })
}

fn flood(salt: u64) -> Arc<Gen> {
    Arc::new(move |t, i| Target::new("flood", format!("{}.flood.example", load::unique_label(t + 100, i, salt))))
}

fn page(r: &Reply, status: u16, code: &str) -> Result<(), String> {
    if r.status != status {
        return Err(format!("status {}, expected {status}", r.status));
    }
    if r.header("server") != Some("cloudflare") || r.header("cf-ray").is_none() {
        return Err("not a filter page".into());
    }
    if !r.body_text().contains(code) {
        return Err(format!("no {code:?} on the page"));
    }
    Ok(())
}

fn allowed(r: &Reply) -> Result<(), String> {
    if r.status != 200 {
        return Err(format!("status {}, expected 200", r.status));
    }
    let v = r.try_json().ok_or("origin echo is not JSON")?;
    if v["account"] != "acct-saas" || v["account_headers"] != 1 {
        return Err(format!("origin saw account {} ({} headers)", v["account"], v["account_headers"]));
    }
    Ok(())
}

fn check(t: &Target, r: &Reply) -> Result<(), String> {
    match t.class {
        "cached" => match CACHED.iter().find(|(h, _)| *h == t.host).map(|(_, s)| *s) {
            Some(200) => allowed(r),
            Some(403) => page(r, 403, "Error 1004"),
            Some(530) => page(r, 530, "Error 1016"),
            Some(409) if t.host == "orphan.example" => page(r, 409, "Error 1001"),
            Some(409) => page(r, 409, "Error 1014"),
            _ => Err("unknown cached host".into()),
        },
        "denied" => page(r, 409, "Error 1014"),
        "invalid" => {
            if r.status == 400 && r.body_text().starts_with("400 Bad Request: invalid Host header") {
                Ok(())
            } else {
                Err(format!("status {}, expected the filter's 400", r.status))
            }
        }
        "ip" => page(r, 403, "Error 1003"),
        "new" => allowed(r),
        "flood" => page(r, 409, "Error 1001"),
        _ => Err("unknown class".into()),
    }
}

fn growth(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", mib(to - from))
    } else {
        format!("-{}", mib(from - to))
    }
}

#[test]
#[ignore = "a bounded load run: `make soak`"]
fn soak() {
    let secs: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut args = reference_lookup_args();
    args.push("--quiet".into());
    let (_lookup, lookup_port) = start_service(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (_origin, origin_port) = origin();
    let cfg = plugin_config(json!({"cache": {"max_entries": MAX_ENTRIES}}));
    let mut opts = EnvoyOpts::new(cfg, lookup_port, origin_port);
    opts.concurrency = WORKERS;
    let mut envoy = Envoy::start(&opts);
    let ready = load::memory(&envoy);
    eprintln!("envoy ready:        {ready}");

    // Warm-up: connections, the cached hosts, a few seconds of the mix.
    for (host, status) in CACHED {
        assert_eq!(envoy.request(host).status, status, "{host}");
    }
    let salt = load::run_salt();
    let warm = Load::run_for(envoy.port, MIXED_CLIENTS, TIMEOUT, Duration::from_secs(3), mixed(salt), Arc::new(check));
    warm.assert_clean("warm-up");
    let start = load::memory(&envoy);
    let start_maps = load::mappings(envoy.proc.child.id());
    eprintln!("after warm-up:      {start} (cache.entries {})", envoy.stat("cache.entries"));

    let began = Instant::now();
    let mix = Load::start(envoy.port, MIXED_CLIENTS, TIMEOUT, mixed(salt ^ 0x5eed), Arc::new(check));
    let flooding = Load::start(envoy.port, FLOOD_CLIENTS, TIMEOUT, flood(salt), Arc::new(check));
    let mut samples: Vec<(u64, Memory)> = Vec::new();
    let end_at = began + Duration::from_secs(secs);
    while Instant::now() < end_at {
        std::thread::sleep(Duration::from_secs(5).min(end_at.saturating_duration_since(Instant::now())));
        let m = load::memory(&envoy);
        let t = began.elapsed().as_secs();
        eprintln!(
            "t={t:>3}s  {m}  served {}  cache.entries {}",
            mix.served() + flooding.served(),
            envoy.stat("cache.entries")
        );
        samples.push((t, m));
        assert!(envoy.proc.alive(), "envoy died");
    }
    let mix = mix.stop();
    let flooding = flooding.stop();
    let end = load::memory(&envoy);
    let end_maps = load::mappings(envoy.proc.child.id());

    let entries = envoy.stat("cache.entries");
    let evictions = envoy.stat("cache.evictions");
    let lookups = envoy.stat("lookup.started");
    let failed = envoy.stat("lookup.failed");
    let hits = envoy.stat("cache.hits");
    eprintln!("\n== soak: {secs} s, Envoy --concurrency {WORKERS}, cache.max_entries {MAX_ENTRIES}");
    eprintln!("mixed ({MIXED_CLIENTS} keep-alive clients):\n{mix}");
    eprintln!("flood ({FLOOD_CLIENTS} keep-alive clients):\n{flooding}");
    let served = mix.requests + flooding.requests;
    let errors = mix.errors + flooding.errors;
    let bad = mix.bad + flooding.bad;
    eprintln!(
        "requests served {served} ({:.0}/s), connection errors {errors}, bad responses {bad}",
        served as f64 / secs as f64
    );
    eprintln!("lookups {lookups} (failed {failed}), cache hits {hits}, cache.entries {entries}, evictions {evictions}");
    eprintln!("memory start {start}");
    eprintln!("memory end   {end}");
    eprintln!(
        "growth       allocated {} heap_size {} rss {}  (bound {}); since envoy was ready: allocated {} rss {}",
        growth(start.allocated, end.allocated),
        growth(start.heap_size, end.heap_size),
        growth(start.rss, end.rss),
        mib(CACHE_BOUND),
        growth(ready.allocated, end.allocated),
        growth(ready.rss, end.rss),
    );

    // Where the resident growth is: Envoy's heap (shared data lives there)
    // or the workers' Wasm linear memories (the per-worker maps), or else.
    eprintln!("resident growth by mapping (largest first):");
    for line in load::mapping_growth(&start_maps, &end_maps, 6) {
        eprintln!("  {line}");
    }

    mix.assert_clean("mixed load");
    flooding.assert_clean("hostname flood");
    assert!(entries <= MAX_ENTRIES, "cache.entries {entries} over the bound");
    assert!(flooding.requests > MAX_ENTRIES, "the flood did not exceed the cache bound: {}", flooding.requests);
    assert!(
        end.allocated <= start.allocated + CACHE_BOUND,
        "Envoy's heap grew by {}",
        growth(start.allocated, end.allocated)
    );
    assert!(
        end.rss <= start.rss + CACHE_BOUND,
        "Envoy's RSS grew by {}, over the documented cache bound {} (see the mappings above)",
        growth(start.rss, end.rss),
        mib(CACHE_BOUND)
    );
}
