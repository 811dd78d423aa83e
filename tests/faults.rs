//! The fault suite: real Envoy under load while its lookup service fails in
//! every way we know of (killed and restarted, answering after the timeout,
//! resetting mid-body, trickling, hanging, no healthy endpoint, answering
//! with unsafe identities).
//!
//! For each fault: every request gets an answer consistent with the
//! failure mode within the lookup timeout plus a margin (the clients have a
//! read timeout, so a hung request fails the test), only the configured
//! statuses appear, cached verdicts keep being served, and the service
//! recovers by itself once the lookup is back (polled with a deadline).
//! `make faults` runs just this file.

use cname_guard_testkit as common;

use common::fake::{self, FakeLookup, Reply as FakeReply};
use common::load::{self, Conn, Gen, Load, Reply, Report, Target};
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT_MS: u64 = 300;
/// What "within the timeout plus a little" means under load on a small box.
const MARGIN: Duration = Duration::from_millis(700);
/// The clients' read timeout: a request without an answer by then has hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Client threads (keep-alive connections) of each load; lookups that time
/// out hold a client for the whole timeout, so those faults get more.
const CLIENTS: usize = 4;
const CLIENTS_WAITING: usize = 16;
/// How long recovery may take once the lookup is back.
const RECOVERY: Duration = Duration::from_secs(15);
const SPOOF: (&str, &str) = ("x-cname-guard-account", "spoofed-root");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Deny,
    Allow,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Deny => "deny",
            Mode::Allow => "allow",
        }
    }
}

/// The counter of requests answered by the failure mode.
fn failure_stat(mode: Mode) -> &'static str {
    match mode {
        Mode::Deny => "failure_mode_denied",
        Mode::Allow => "failure_mode_allowed",
    }
}

fn deadline() -> Duration {
    Duration::from_millis(TIMEOUT_MS) + MARGIN
}

fn start_envoy(lookup_port: u16, origin_port: u16, mode: Mode, concurrency: u32) -> Envoy {
    let cfg = plugin_config(
        json!({"lookup": {"timeout_ms": TIMEOUT_MS}, "failure_mode": mode.name(), "retry_after_seconds": 3}),
    );
    let mut opts = EnvoyOpts::new(cfg, lookup_port, origin_port);
    opts.concurrency = concurrency;
    Envoy::start(&opts)
}

fn target(class: &'static str, host: String) -> Target {
    let mut t = Target::new(class, host);
    t.headers.push((SPOOF.0, SPOOF.1.to_string()));
    t
}

/// The origin's echo of an allowed request: which account it saw, how many.
fn echoed(r: &Reply) -> Result<(Value, u64), String> {
    let v = r.try_json().ok_or_else(|| format!("origin echo is not JSON: {}", r.body_text()))?;
    let n = v["account_headers"].as_u64().ok_or("no account_headers in the echo")?;
    Ok((v["account"].clone(), n))
}

/// An allowed request that reached the origin stamped with `account`.
fn is_allowed(r: &Reply, account: &str) -> Result<(), String> {
    if r.status != 200 {
        return Err(format!("status {}, expected 200 for {account}", r.status));
    }
    match echoed(r)? {
        (Value::String(a), 1) if a == account => Ok(()),
        other => Err(format!("origin saw account {other:?}, expected exactly {account}")),
    }
}

/// A filter error page of `status` (not one of Envoy's own).
fn is_page(r: &Reply, status: u16) -> Result<(), String> {
    if r.status != status {
        return Err(format!("status {}, expected {status}", r.status));
    }
    if r.header("server") != Some("cloudflare") || r.header("cf-ray").is_none() {
        return Err(format!("not a filter page: {:?}", r.headers));
    }
    Ok(())
}

/// The failure mode's answer: the 503 page (deny), or through to the
/// origin with no account header at all, the spoofed one removed (allow).
fn is_failure_mode(r: &Reply, mode: Mode) -> Result<(), String> {
    if r.elapsed > deadline() {
        return Err(format!("failure mode answered after {:?}", r.elapsed));
    }
    match mode {
        Mode::Deny => {
            is_page(r, 503)?;
            if r.header("retry-after") != Some("3") || !r.body_text().contains("Ownership lookup unavailable") {
                return Err("not the lookup-unavailable page".into());
            }
            Ok(())
        }
        Mode::Allow => {
            if r.status != 200 {
                return Err(format!("status {}, expected 200 without an account", r.status));
            }
            match echoed(r)? {
                (Value::Null, 0) => Ok(()),
                other => Err(format!("failure mode let an account header through: {other:?}")),
            }
        }
    }
}

/// Every answer must come within the lookup timeout plus the margin.
fn in_time(r: &Reply) -> Result<(), String> {
    if r.elapsed > deadline() {
        return Err(format!("answered after {:?}", r.elapsed));
    }
    Ok(())
}

/// `clients` keep-alive clients for `ms`, every answer checked.
fn load_for(
    port: u16,
    clients: usize,
    ms: u64,
    gen: Arc<Gen>,
    check: impl Fn(&Target, &Reply) -> Result<(), String> + Send + Sync + 'static,
) -> Report {
    Load::run_for(port, clients, CLIENT_TIMEOUT, Duration::from_millis(ms), gen, Arc::new(check))
}

/// Polls with single requests until `ok` holds for a fresh host.
fn wait_until(what: &str, port: u16, limit: Duration, host: impl Fn(u64) -> String, ok: impl Fn(&Reply) -> bool) {
    let mut conn = Conn::new(port, CLIENT_TIMEOUT);
    let mut i = 0;
    let start = Instant::now();
    wait_for(what, limit, || {
        i += 1;
        let r = conn.get(&host(i), &[SPOOF]).ok()?;
        ok(&r).then_some(())
    });
    eprintln!("{what}: after {:?}", start.elapsed());
}

// --- faults of a scripted lookup service ----------------------------------

const HEALTHY: u8 = 0;
const FAULTY: u8 = 1;

/// Hosts `c<n>.cached.example` are looked up (healthy) before the fault;
/// `<unique>.new.example` are new during it; `exa_mple.example` is a 400.
fn fake_gen(salt: u64) -> Arc<Gen> {
    Arc::new(move |t, i| match i % 8 {
        0..=2 => target("cached", format!("c{}.cached.example", (i as usize + t) % 4)),
        3 => target("refused", if i % 16 == 3 { "exa_mple.example".into() } else { "192.0.2.1".into() }),
        _ => target("new", format!("{}.new.example", load::unique_label(t, i, salt))),
    })
}

fn check_fake(t: &Target, r: &Reply, mode: Mode, faulty: bool) -> Result<(), String> {
    in_time(r)?;
    match t.class {
        "cached" => is_allowed(r, "acct-f"),
        "refused" if t.host.starts_with("192.") => is_page(r, 403),
        "refused" => (r.status == 400).then_some(()).ok_or_else(|| format!("status {}, expected 400", r.status)),
        _ if faulty => is_failure_mode(r, mode),
        _ => is_allowed(r, "acct-f"),
    }
}

/// One fault of the scripted lookup: warm the cache, load through the
/// fault, heal, wait for recovery, load again expecting the healthy answers.
fn survive(what: &str, mode: Mode, clients: usize, fault: impl Fn(&str) -> FakeReply + Send + Sync + 'static) {
    let started = Instant::now();
    let state = Arc::new(AtomicU8::new(HEALTHY));
    let s = state.clone();
    let lookup = FakeLookup::start(move |c| {
        if s.load(Ordering::SeqCst) == FAULTY && !c.host_param.ends_with(".cached.example") {
            fault(&c.host_param)
        } else {
            fake::allowed(&c.host_param, "acct-f")
        }
    });
    let (_origin, origin_port) = origin();
    let envoy = start_envoy(lookup.port, origin_port, mode, 2);
    for n in 0..4 {
        let r = envoy.send(&Request::get(&format!("c{n}.cached.example")));
        assert_eq!(r.status, 200, "{what}: warm-up: {}", r.body_text());
    }
    let salt = load::run_salt();

    state.store(FAULTY, Ordering::SeqCst);
    let during = load_for(envoy.port, clients, 1500, fake_gen(salt), move |t, r| check_fake(t, r, mode, true));
    eprintln!("{what} ({}), during the fault:\n{during}", mode.name());
    during.assert_clean(what);
    assert!(envoy.stat(failure_stat(mode)) > 0, "{what}: no request met the fault");
    assert!(envoy.stat("lookup.failed") > 0, "{what}: no lookup failed");
    assert_eq!(envoy.stat(failure_stat(mode)), during.count("new", if mode == Mode::Deny { 503 } else { 200 }));

    state.store(HEALTHY, Ordering::SeqCst);
    wait_until(
        &format!("{what}: recovery"),
        envoy.port,
        RECOVERY,
        |i| format!("heal-{i}-{salt}.new.example"),
        |r| is_allowed(r, "acct-f").is_ok(),
    );
    let after = load_for(envoy.port, clients, 1000, fake_gen(salt ^ 1), move |t, r| check_fake(t, r, mode, false));
    eprintln!("{what} ({}), after recovery:\n{after}", mode.name());
    after.assert_clean(&format!("{what}, after recovery"));
    eprintln!("{what} ({}): survived in {:?}", mode.name(), started.elapsed());
}

fn late(_: &str) -> FakeReply {
    FakeReply::Late(Duration::from_millis(TIMEOUT_MS + 500), Box::new(FakeReply::Json(500, "{}".into())))
}

fn late_but_valid(host: &str) -> FakeReply {
    FakeReply::Late(Duration::from_millis(TIMEOUT_MS + 500), Box::new(fake::allowed(host, "acct-late")))
}

fn cut(host: &str) -> FakeReply {
    FakeReply::CutBody(200, fake::record(host, Some("acct-cut"), None, None, true))
}

fn trickle(host: &str) -> FakeReply {
    // ~250 bytes, 20 ms apart: the body would take 5 s.
    FakeReply::Trickle(200, fake::record(host, Some("acct-slow"), None, None, true), Duration::from_millis(20))
}

#[test]
fn lookup_answering_after_the_timeout() {
    survive("late answer", Mode::Deny, CLIENTS_WAITING, late_but_valid);
    survive("late answer", Mode::Allow, CLIENTS_WAITING, late);
}

#[test]
fn lookup_resetting_mid_body() {
    survive("reset mid-body", Mode::Deny, CLIENTS, cut);
    survive("reset mid-body", Mode::Allow, CLIENTS, cut);
}

#[test]
fn lookup_trickling_its_body() {
    survive("trickled body", Mode::Deny, CLIENTS_WAITING, trickle);
    survive("trickled body", Mode::Allow, CLIENTS_WAITING, trickle);
}

#[test]
fn lookup_hanging() {
    survive("hang", Mode::Deny, CLIENTS_WAITING, |_| FakeReply::Hang);
}

// --- the real lookup service, killed and restarted -------------------------

/// Cached verdicts of the demo registry and what they must stay.
const CACHED: [(&str, u16); 5] = [
    ("www.saas.example", 200),
    ("shop.customer.example", 200),
    ("custom.myclientsite.com", 409),
    ("www.frozen.example", 403),
    ("pending.customer.example", 530),
];

fn registry_gen(salt: u64) -> Arc<Gen> {
    Arc::new(move |t, i| match i % 10 {
        0..=3 => target("cached", CACHED[(i as usize / 10 + t) % CACHED.len()].0.to_string()),
        4 => target("refused", "a..b.example".into()),
        5..=7 => target("new", format!("{}.tenants.saas.example", load::unique_label(t, i, salt))),
        _ => target("unknown", format!("{}.nowhere.example", load::unique_label(t, i, salt))),
    })
}

/// `down`: whether an answer of the failure mode is acceptable for new hosts.
fn check_registry(t: &Target, r: &Reply, mode: Mode, down: bool) -> Result<(), String> {
    in_time(r)?;
    let healthy = || match t.class {
        "new" => is_allowed(r, "acct-saas"),
        "unknown" => is_page(r, 409),
        _ => unreachable!(),
    };
    match t.class {
        "cached" => {
            let status = CACHED.iter().find(|(h, _)| *h == t.host).map(|(_, s)| *s).unwrap_or(0);
            if status == 200 {
                is_allowed(r, "acct-saas")
            } else {
                is_page(r, status)
            }
        }
        "refused" => (r.status == 400).then_some(()).ok_or_else(|| format!("status {}, expected 400", r.status)),
        _ if down => healthy().or_else(|e| is_failure_mode(r, mode).map_err(|f| format!("{e} / {f}"))),
        _ => healthy(),
    }
}

fn new_host_allowed(r: &Reply) -> bool {
    is_allowed(r, "acct-saas").is_ok()
}

/// The real lookup service behind Envoy under load, killed and restarted
/// on its port: what every such scenario shares. `cluster` (YAML lines)
/// is added to the lookup cluster; `outage` runs once the service is
/// killed and waits until the fault shows; `back` once it runs again.
/// Returns the report of the load through it all.
fn registry_outage(
    what: &str,
    mode: Mode,
    cluster: Option<&str>,
    outage: impl FnOnce(&Envoy, u64),
    back: impl Fn(&Envoy),
) -> Report {
    let started = Instant::now();
    let (lookup, lookup_port) = reference_lookup();
    let (_origin, origin_port) = origin();
    let envoy = match cluster {
        None => start_envoy(lookup_port, origin_port, mode, 2),
        Some(lines) => {
            let cfg = plugin_config(
                json!({"lookup": {"timeout_ms": TIMEOUT_MS}, "failure_mode": mode.name(), "retry_after_seconds": 3}),
            );
            let mut opts = EnvoyOpts::new(cfg, lookup_port, origin_port);
            opts.concurrency = 2;
            load::envoy_edited(&opts, |y| load::edit_cluster(y, "cname_guard_lookup", lines))
        }
    };
    back(&envoy);
    for (host, status) in CACHED {
        assert_eq!(envoy.request(host).status, status, "{what}: warm-up {host}");
    }
    let salt = load::run_salt();
    let check = move |t: &Target, r: &Reply| check_registry(t, r, mode, true);
    let load = Load::start(envoy.port, CLIENTS, CLIENT_TIMEOUT, registry_gen(salt), Arc::new(check));
    load.wait_served(200, Duration::from_secs(10));

    load::kill(lookup);
    outage(&envoy, salt);
    load.wait_served(3000, Duration::from_secs(20));

    let lookup = load::reference_lookup_on(lookup_port, Duration::from_secs(10));
    back(&envoy);
    wait_until(
        &format!("{what}: recovery after the restart"),
        envoy.port,
        RECOVERY,
        |i| format!("back-{i}-{salt}.tenants.saas.example"),
        new_host_allowed,
    );
    load.wait_served(200, Duration::from_secs(10));
    let through = load.stop();
    eprintln!("{what} ({}):\n{through}", mode.name());
    through.assert_clean(what);
    assert!(envoy.stat(failure_stat(mode)) > 0, "{what}: no request met the outage");
    assert!(envoy.stat("lookup.failed") > 0, "{what}: no lookup failed");

    let after =
        load_for(envoy.port, CLIENTS, 1000, registry_gen(salt ^ 1), move |t, r| check_registry(t, r, mode, false));
    eprintln!("{what}, after the restart ({}):\n{after}", mode.name());
    after.assert_clean(&format!("{what}, after the restart"));
    drop(lookup);
    eprintln!("{what} ({}): survived in {:?}", mode.name(), started.elapsed());
    through
}

#[test]
fn lookup_killed_during_load_and_restarted() {
    for mode in [Mode::Deny, Mode::Allow] {
        registry_outage(
            "lookup killed and restarted",
            mode,
            None,
            |envoy, salt| {
                wait_until(
                    "the outage to show",
                    envoy.port,
                    Duration::from_secs(10),
                    |i| format!("probe-{i}-{salt}.tenants.saas.example"),
                    |r| is_failure_mode(r, mode).is_ok(),
                )
            },
            |_| {},
        );
    }
}

fn healthy_endpoints(envoy: &Envoy) -> Option<u64> {
    stats(envoy.admin).get("cluster.cname_guard_lookup.membership_healthy").copied()
}

fn none_healthy(envoy: &Envoy) -> u64 {
    stats(envoy.admin).get("cluster.cname_guard_lookup.upstream_cx_none_healthy").copied().unwrap_or(0)
}

/// The lookup cluster with active health checks and no panic routing: once
/// the service is down the cluster has no healthy endpoint at all.
#[test]
fn lookup_cluster_with_no_healthy_endpoints() {
    let hc = "    health_checks:\n\
              \x20   - timeout: 0.25s\n\
              \x20     interval: 0.1s\n\
              \x20     no_traffic_interval: 0.1s\n\
              \x20     unhealthy_threshold: 1\n\
              \x20     healthy_threshold: 1\n\
              \x20     http_health_check: { path: /healthz }\n\
              \x20   common_lb_config:\n\
              \x20     healthy_panic_threshold: { value: 0 }\n";
    let outage = |envoy: &Envoy, salt: u64| {
        wait_for("no healthy lookup endpoint", Duration::from_secs(10), || {
            (healthy_endpoints(envoy)? == 0).then_some(())
        });
        // Workers learn of the health change shortly after the main thread:
        // poll until callouts meet the empty cluster.
        wait_until(
            "callouts to meet an empty cluster",
            envoy.port,
            Duration::from_secs(10),
            |i| format!("probe-{i}-{salt}.tenants.saas.example"),
            |r| {
                assert_eq!(is_failure_mode(r, Mode::Deny), Ok(()));
                none_healthy(envoy) > 0
            },
        );
        // Without a healthy endpoint Envoy fails the callout at once: far
        // quicker than the lookup timeout.
        let mut conn = Conn::new(envoy.port, CLIENT_TIMEOUT);
        let before = none_healthy(envoy);
        for i in 0..20 {
            let r = conn.get(&format!("fast-{i}-{salt}.tenants.saas.example"), &[]).expect("answer");
            assert_eq!(is_failure_mode(&r, Mode::Deny), Ok(()));
            assert!(r.elapsed < Duration::from_millis(TIMEOUT_MS), "no healthy upstream took {:?}", r.elapsed);
        }
        assert!(none_healthy(envoy) >= before + 20, "callouts went somewhere: {}", none_healthy(envoy) - before);
    };
    let back = |envoy: &Envoy| {
        wait_for("the lookup endpoint to be healthy", RECOVERY, || (healthy_endpoints(envoy)? == 1).then_some(()))
    };
    let through = registry_outage("no healthy endpoints", Mode::Deny, Some(hc), outage, back);
    assert!(through.count("new", 503) > 0, "no request met the outage");
}

// --- identities that must never become a header ----------------------------

/// Account values outside 1..128 of `A-Za-z0-9._:-`.
fn hostile_ids() -> Vec<String> {
    let mut v: Vec<String> = [
        "\0",
        "acct\0x",
        "\t",
        "acct\tx",
        "\u{85}",
        "acct\u{85}",
        ";",
        "acct;x",
        ",",
        "acct,x",
        "",
        "äcct",
        "acct-ü",
        "acct\u{2028}",
        "账户",
        " acct",
        "acct ",
        "acct\r",
        "acct\n",
        "acct\r\nx-admin: 1",
        "acct\u{7f}",
        "acct/x",
        "acct=x",
        "acct\"x",
        "acct<x>",
        "acct\\x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(129));
    v.push(format!("{}\n", "a".repeat(127)));
    v
}

/// `bad-<n>.example`: the n-th hostile id as `account`; `tbad-<n>.example`:
/// as the `target_account` of an active custom hostname (which would
/// otherwise be allowed as that account); `good.example`: a control.
fn identity_lookup() -> FakeLookup {
    let ids = hostile_ids();
    FakeLookup::start(move |c| {
        let h = c.host_param.as_str();
        let n =
            |p: &str| h.strip_prefix(p).and_then(|r| r.strip_suffix(".example")).and_then(|n| n.parse::<usize>().ok());
        if let Some(i) = n("bad-") {
            FakeReply::Json(200, fake::record(h, Some(&ids[i]), None, None, true))
        } else if let Some(i) = n("tbad-") {
            FakeReply::Json(200, fake::record(h, Some("acct-ok"), Some(&ids[i]), Some("active"), true))
        } else {
            fake::allowed(h, "acct-good")
        }
    })
}

#[test]
fn unsafe_identities_never_become_a_header() {
    let lookup = identity_lookup();
    let (_origin, origin_port) = origin();
    let n = hostile_ids().len();
    for mode in [Mode::Deny, Mode::Allow] {
        let envoy = start_envoy(lookup.port, origin_port, mode, 1);
        let mut conn = Conn::new(envoy.port, CLIENT_TIMEOUT);
        for i in 0..n {
            for prefix in ["bad", "tbad"] {
                let host = format!("{prefix}-{i}.example");
                let r = conn.get(&host, &[SPOOF]).unwrap_or_else(|e| panic!("{host}: {e}"));
                if let Err(e) = is_failure_mode(&r, mode) {
                    panic!("{} mode, {prefix} {:?}: {e}: {}", mode.name(), hostile_ids()[i], r.body_text());
                }
            }
        }
        assert_eq!(is_allowed(&conn.get("good.example", &[SPOOF]).expect("good"), "acct-good"), Ok(()));
        assert!(envoy.stat("lookup.failed") >= 2 * n as u64);
        assert_eq!(envoy.stat("allowed"), 1, "{} mode: only the control host is allowed with an account", mode.name());
    }
}
