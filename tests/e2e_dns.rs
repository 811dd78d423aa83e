//! Verdicts that come from real DNS: BIND serving zones written here,
//! changed mid-test with nsupdate, the reference lookup service asking it,
//! real Envoy and the filter answering. Plus nameservers that fail.

use cname_guard_testkit as common;

use common::dns::{zone, BadDns, Bind, Misbehave};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Long enough for a TTL of 1 s to pass several times on a loaded machine.
const CHANGE: Duration = Duration::from_secs(20);

const REGISTRY: &str = r#"{
  "accounts": { "acct-saas": {}, "acct-other": {} },
  "zones": { "saas.example": "acct-saas", "other.example": "acct-other" },
  "custom_hostnames": {
    "acct-saas": { "chain.customer.example": "active" },
    "acct-other": { "new.customer.example": "active" }
  }
}"#;

fn zones() -> Vec<(&'static str, String)> {
    let mut saas = String::from(
        "edge IN A 192.0.2.10\n\
         site IN A 192.0.2.50\n\
         shop-edge IN CNAME edge\n\
         loop1 IN CNAME loop2\n\
         loop2 IN CNAME loop1\n\
         UPPER IN CNAME EDGE.SAAS.EXAMPLE.\n\
         odd IN CNAME _svc.saas.example.\n",
    );
    // h0 -> ... -> h9 (9 CNAMEs), g0 -> ... -> g8 (8 CNAMEs), both ending at an A.
    for (prefix, hops) in [("h", 9), ("g", 8)] {
        for i in 0..hops {
            saas.push_str(&format!("{prefix}{i} IN CNAME {prefix}{}\n", i + 1));
        }
        saas.push_str(&format!("{prefix}{hops} IN A 192.0.2.60\n"));
    }
    // Too many addresses for one UDP reply (BIND sends at most 1232 bytes,
    // and allows 100 records a set): the resolver must retry over TCP.
    for i in 0..100 {
        saas.push_str(&format!("big IN A 10.0.0.{}\n", i + 1));
    }
    vec![
        ("saas.example", zone("saas.example", &saas)),
        ("other.example", zone("other.example", "www IN A 192.0.2.70\n")),
        (
            "customer.example",
            zone("customer.example", "chain IN CNAME alias\nalias IN CNAME shop-edge.saas.example.\n"),
        ),
    ]
}

struct Stack {
    envoy: Envoy,
    bind: Bind,
    lookup_port: u16,
    _lookup: Proc,
    _origin: Proc,
    _dir: Scratch,
}

fn stack() -> Stack {
    let owned = zones();
    let refs: Vec<(&str, &str)> = owned.iter().map(|(z, t)| (*z, t.as_str())).collect();
    let bind = Bind::start(&refs);
    let dir = Scratch::new("dns-registry");
    let registry = dir.0.join("registry.json");
    std::fs::write(&registry, REGISTRY).expect("write registry");
    let addr = bind.addr();
    let mut args = lookup_serve_args(&registry);
    // The statuses of REGISTRY hold while DNS changes under them.
    args.extend(["--verifier".to_string(), "off".to_string(), "--dns-server".to_string(), addr]);
    let (lookup, lookup_port) = start_service(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (origin, origin_port) = origin();
    let cfg = plugin_config(json!({"cache": {"negative_ttl_seconds": 1}}));
    let envoy = Envoy::start(&EnvoyOpts::new(cfg, lookup_port, origin_port));
    Stack { envoy, bind, lookup_port, _lookup: lookup, _origin: origin, _dir: dir }
}

/// What the edge answered, in one word: `allow <account>`, `<code>` of the
/// error page, or `status <n>`.
fn verdict(r: &Response) -> String {
    if r.status == 200 {
        return format!("allow {}", r.try_json().map(|j| j["account"].to_string()).unwrap_or_default());
    }
    let body = r.body_text();
    for code in ["1001", "1004", "1014", "1016"] {
        if body.contains(&format!("<h1>Error {code}: ")) {
            return format!("{} {code}", r.status);
        }
    }
    format!("status {}", r.status)
}

impl Stack {
    fn verdict(&self, host: &str) -> String {
        verdict(&self.envoy.request(host))
    }

    /// Waits for the edge to give `want` for `host` (TTLs have to pass).
    fn wait_verdict(&self, host: &str, want: &str) {
        let mut last = String::new();
        let deadline = Instant::now() + CHANGE;
        while Instant::now() < deadline {
            last = self.verdict(host);
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{host}: still {last:?} after {CHANGE:?}, wanted {want:?}");
    }

    fn ownership(&self, host: &str) -> serde_json::Value {
        get(self.lookup_port, &format!("/v1/ownership?host={host}")).json()
    }
}

#[test]
fn a_customer_cname_added_repointed_and_removed() {
    let s = stack();
    let host = "new.customer.example";
    assert_eq!(s.verdict(host), "409 1001", "no record yet");

    s.bind.update("customer.example", &[&format!("update add {host}. 1 IN CNAME edge.saas.example.")]);
    s.wait_verdict(host, "409 1014");
    let o = s.ownership(host);
    assert_eq!(
        (o["cname_target"].as_str(), o["target_account"].as_str()),
        (Some("edge.saas.example"), Some("acct-saas"))
    );

    // Repointed at acct-other, where it is an active custom hostname.
    s.bind.update(
        "customer.example",
        &[&format!("update delete {host}. CNAME"), &format!("update add {host}. 1 IN CNAME www.other.example.")],
    );
    s.wait_verdict(host, "allow \"acct-other\"");

    s.bind.update("customer.example", &[&format!("update delete {host}. CNAME")]);
    s.wait_verdict(host, "409 1001");
}

#[test]
fn an_origin_that_loses_its_last_address() {
    let s = stack();
    assert_eq!(s.verdict("site.saas.example"), "allow \"acct-saas\"");
    s.bind.update("saas.example", &["update delete site.saas.example. A"]);
    s.wait_verdict("site.saas.example", "530 1016");
    assert_eq!(s.ownership("site.saas.example")["ttl"], 1, "negative answer: the SOA minimum");
}

#[test]
fn chains_loops_and_long_chains() {
    let s = stack();
    // chain.customer -> alias.customer -> shop-edge.saas -> edge.saas (A).
    assert_eq!(s.verdict("chain.customer.example"), "allow \"acct-saas\"");
    let o = s.ownership("chain.customer.example");
    assert_eq!(o["cname_target"], "shop-edge.saas.example", "the first platform name of the chain");
    assert_eq!((o["account"].is_null(), o["origin_resolves"].as_bool()), (true, Some(true)));

    assert_eq!(s.verdict("loop1.saas.example"), "530 1016");
    assert_eq!(s.verdict("g0.saas.example"), "allow \"acct-saas\"", "8 CNAMEs resolve");
    assert_eq!(s.verdict("h0.saas.example"), "530 1016", "9 CNAMEs do not");
    // Upper case and a trailing dot in the answer; a target outside the name rules.
    assert_eq!(s.verdict("upper.saas.example"), "allow \"acct-saas\"");
    assert_eq!(s.ownership("upper.saas.example")["cname_target"], "edge.saas.example");
    assert_eq!(s.verdict("odd.saas.example"), "530 1016");
}

#[test]
fn a_reply_too_big_for_udp_is_fetched_over_tcp() {
    let s = stack();
    assert_eq!(s.verdict("big.saas.example"), "allow \"acct-saas\"");
    // named's query log marks TCP questions with `T` in the flags.
    let over_tcp = |l: &str| {
        l.split("query: big.saas.example IN A ")
            .nth(1)
            .and_then(|f| f.split_whitespace().next())
            .is_some_and(|f| f.contains('T'))
    };
    wait_for("the A question for big.saas.example over TCP in the query log", Duration::from_secs(10), || {
        s.bind.queries().iter().any(|l| over_tcp(l)).then_some(())
    });
}

/// Envoy and the lookup service with one misbehaving nameserver.
fn failing(mode: Misbehave, failure_mode: &str) -> (Envoy, BadDns, Proc, Proc) {
    let bad = BadDns::start(mode);
    let addr = bad.addr.to_string();
    let mut args = lookup_serve_args(&root().join("envoy/registry.json"));
    let flags = ["--verifier", "off", "--dns-server", &addr, "--dns-timeout-ms", "100", "--dns-attempts", "1"];
    args.extend(flags.map(String::from));
    let (lookup, lookup_port) = start_service(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (origin, origin_port) = origin();
    let cfg = plugin_config(json!({"failure_mode": failure_mode, "retry_after_seconds": 3}));
    (Envoy::start(&EnvoyOpts::new(cfg, lookup_port, origin_port)), bad, lookup, origin)
}

#[test]
fn a_nameserver_that_fails_is_a_lookup_failure_never_1016() {
    for mode in [Misbehave::Silent, Misbehave::ServFail, Misbehave::Garbage] {
        let (envoy, bad, _lookup, _origin) = failing(mode, "deny");
        for host in ["custom.myclientsite.com", "www.saas.example", "new-1.tenants.saas.example"] {
            let r = envoy.request(host);
            assert_eq!(r.status, 503, "{mode:?} {host}: {}", r.body_text());
            assert!(r.body_text().contains("Ownership lookup unavailable"), "{mode:?} {host}");
            assert_eq!(r.header("retry-after"), Some("3"));
            // The lookup timeout is 500 ms; its answer comes before Envoy's deadline.
            assert!(r.elapsed < Duration::from_millis(500 + 750), "{mode:?} {host}: {:?}", r.elapsed);
        }
        assert_eq!(envoy.stat("denied_1016"), 0, "{mode:?}");
        assert!(envoy.stat("lookup.failed") >= 3, "{mode:?}");
        assert!(bad.questions.load(std::sync::atomic::Ordering::SeqCst) > 0, "{mode:?}: never asked");
    }
    // failure_mode allow: through, without an account.
    let (envoy, _bad, _lookup, _origin) = failing(Misbehave::Silent, "allow");
    let r = envoy.request("www.saas.example");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["account_headers"], 0);
}
