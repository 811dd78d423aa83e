use super::*;
use crate::chain::fake::{block, Zone, NEG_TTL};
use crate::chain::{follow, End};
use crate::verdict::{decide, ErrorCode, Verdict};

const EXAMPLE: &str = r#"{
  "accounts": { "acct-saas": {}, "acct-client": {}, "acct-frozen": {"suspended": true} },
  "zones": { "saas.example": "acct-saas", "myclientsite.com": "acct-client",
             "eu.saas.example": "acct-client", "frozen.example": "acct-frozen" },
  "custom_hostnames": { "acct-saas": { "shop.customer.example": "active", "odd.customer.example": "Weird Status" },
                        "acct-frozen": { "frozen-cname.customer.example": "active" } }
}"#;

const MAX_TTL: u32 = 300;

fn example() -> Registry {
    match Registry::from_slice(EXAMPLE.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("example registry: {e}"),
    }
}

/// DNS for the example registry's hosts.
fn zone() -> Zone {
    Zone::default()
        .a("edge.saas.example", 600)
        .aaaa("v6.saas.example", 600)
        .cname("custom.myclientsite.com", "edge.saas.example", 120)
        .cname("shop.customer.example", "Edge.Saas.Example.", 120)
        .cname("odd.customer.example", "edge.saas.example", 120)
        .cname("hop.customer.example", "other.example", 120)
        .cname("other.example", "edge.saas.example", 120)
        .cname("offsite.saas.example", "elsewhere.example", 120)
        .cname("frozen-cname.customer.example", "www.frozen.example", 120)
        .a("www.frozen.example", 600)
        .a("orphan.example", 600)
        .cname("loop1.saas.example", "loop2.saas.example", 60)
        .cname("loop2.saas.example", "loop1.saas.example", 60)
}

fn lookup(r: &Registry, host: &str) -> Answer {
    let z = zone();
    match block(follow(&z, host)) {
        Ok(chain) => r.lookup(host, &chain, MAX_TTL),
        Err(e) => panic!("{host}: {e}"),
    }
}

fn found(r: &Registry, host: &str) -> Ownership {
    match lookup(r, host) {
        Answer::Found(o) => o,
        Answer::Unknown => panic!("{host}: unknown"),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn the_seed_case_is_cross_account() {
    let o = found(&example(), "custom.myclientsite.com");
    assert_eq!(
        o,
        Ownership {
            host: "custom.myclientsite.com".into(),
            account: s("acct-client"),
            cname_target: s("edge.saas.example"),
            target_account: s("acct-saas"),
            custom_hostname: None,
            origin_resolves: true,
            suspended: false,
            ttl: 120,
        }
    );
    let json = serde_json::to_value(&o).expect("json");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 8);
    for key in
        ["host", "account", "cname_target", "target_account", "custom_hostname", "origin_resolves", "suspended", "ttl"]
    {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert!(json["custom_hostname"].is_null());
}

#[test]
fn account_is_the_longest_zone() {
    let r = example();
    assert_eq!(found(&r, "saas.example").account, s("acct-saas"));
    assert_eq!(found(&r, "x.y.saas.example").account, s("acct-saas"));
    assert_eq!(found(&r, "eu.saas.example").account, s("acct-client"));
    assert_eq!(found(&r, "a.eu.saas.example").account, s("acct-client"));
    // Label boundary: "notsaas.example" is not under "saas.example".
    assert_eq!(lookup(&r, "notsaas.example"), Answer::Unknown);
    assert_eq!(r.zone_owner("notsaas.example"), None);
}

#[test]
fn a_platform_name_without_records_is_found_but_does_not_resolve() {
    let o = found(&example(), "nothing-here.saas.example");
    assert_eq!(o.account, s("acct-saas"));
    assert_eq!((o.cname_target, o.target_account, o.origin_resolves, o.ttl), (None, None, false, NEG_TTL));
}

#[test]
fn hosts_off_the_platform_are_404() {
    let r = example();
    assert_eq!(lookup(&r, "nobody-knows-this.example"), Answer::Unknown);
    // Addresses, but neither the host nor a target on the platform.
    assert_eq!(lookup(&r, "orphan.example"), Answer::Unknown);
    assert_eq!(decide(&lookup(&r, "nobody.example")), Verdict::Deny(ErrorCode::DnsResolution));
}

#[test]
fn cname_target_is_the_first_platform_name_of_the_chain() {
    let r = example();
    // customer -> other.example (off the platform) -> edge.saas.example
    let o = found(&r, "hop.customer.example");
    assert_eq!(
        (o.cname_target.as_deref(), o.target_account.as_deref()),
        (Some("edge.saas.example"), Some("acct-saas"))
    );
    // No platform name in the chain: the first target, no target account.
    let o = found(&r, "offsite.saas.example");
    assert_eq!(
        (o.cname_target.as_deref(), o.target_account, o.origin_resolves),
        (Some("elsewhere.example"), None, false)
    );
    // Addresses at the host itself: no target.
    assert_eq!(found(&r, "edge.saas.example").cname_target, None);
    // Upper case and a trailing dot in the answer are normalized.
    assert_eq!(found(&r, "shop.customer.example").cname_target, s("edge.saas.example"));
}

#[test]
fn custom_hostnames_come_from_the_target_account() {
    let r = example();
    let o = found(&r, "shop.customer.example");
    assert_eq!(
        (o.account, o.target_account.as_deref(), o.custom_hostname.as_deref()),
        (None, Some("acct-saas"), Some("active"))
    );
    // Any status passes through verbatim.
    assert_eq!(found(&r, "odd.customer.example").custom_hostname, s("Weird Status"));
    // Not looked up in the host's own account.
    assert_eq!(found(&r, "custom.myclientsite.com").custom_hostname, None);
}

#[test]
fn origin_resolves_is_the_end_of_the_chain() {
    let r = example();
    assert!(found(&r, "edge.saas.example").origin_resolves);
    assert!(found(&r, "v6.saas.example").origin_resolves);
    assert!(!found(&r, "loop1.saas.example").origin_resolves);
}

#[test]
fn ttl_is_the_chains_capped() {
    let r = example();
    let chain = |ttl| Chain { names: vec!["a.saas.example".into()], end: End::Addresses, ttl };
    let ttl = |c: &Chain| match r.lookup("a.saas.example", c, MAX_TTL) {
        Answer::Found(o) => o.ttl,
        Answer::Unknown => panic!("unknown"),
    };
    assert_eq!(ttl(&chain(5)), 5);
    assert_eq!(ttl(&chain(86_400)), MAX_TTL);
}

#[test]
fn suspension_is_the_serving_accounts() {
    let r = example();
    assert!(found(&r, "www.frozen.example").suspended);
    // Cross: the serving account is the target's.
    assert!(found(&r, "frozen-cname.customer.example").suspended);
    assert!(!found(&r, "custom.myclientsite.com").suspended);
}

#[test]
fn defaults_and_counts() {
    let r = Registry::from_slice(b"{}").expect("empty registry");
    assert_eq!(lookup(&r, "edge.saas.example"), Answer::Unknown);
    let c = example().counts();
    assert_eq!((c.accounts, c.zones, c.custom_hostnames), (3, 4, 3));
}

#[test]
fn the_demo_registry_loads() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/registry.json");
    let r = match Registry::load(Path::new(file)) {
        Ok(r) => r,
        Err(e) => panic!("{file}: {e}"),
    };
    assert_eq!(r.zone_owner("edge.saas.example"), Some("acct-saas"));
    assert!(r.counts().custom_hostnames >= 4);
}

// --- validation -------------------------------------------------------------

/// Loads `json` and returns the rendered problems; panics if it is accepted.
fn problems(json: &str) -> Vec<String> {
    match Registry::from_slice(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

fn assert_problem(json: &str, expected: &str) {
    let ps = problems(json);
    assert!(ps.iter().any(|p| p.starts_with(expected)), "{json}\nwanted {expected:?}, got {ps:#?}");
}

#[test]
fn zones_must_name_declared_accounts() {
    assert_problem(
        r#"{"accounts": {"acct-1": {}}, "zones": {"x.example": "acct-9"}}"#,
        r#"zones["x.example"]: unknown account "acct-9""#,
    );
    assert_problem(
        r#"{"zones": {"X.example": "a"}, "accounts": {"a": {}}}"#,
        r#"zones["X.example"]: invalid zone name: must be lowercase"#,
    );
    assert_problem(
        r#"{"zones": {"*.x.example": "a"}, "accounts": {"a": {}}}"#,
        r#"zones["*.x.example"]: invalid zone name"#,
    );
}

#[test]
fn custom_hostnames_must_name_declared_accounts_and_hosts() {
    assert_problem(
        r#"{"custom_hostnames": {"acct-9": {"a.example": "active"}}}"#,
        r#"custom_hostnames["acct-9"]: unknown account "acct-9""#,
    );
    assert_problem(
        r#"{"accounts": {"a": {}}, "custom_hostnames": {"a": {"bad_host.example": "active"}}}"#,
        r#"custom_hostnames["a"]["bad_host.example"]: invalid host name"#,
    );
    assert_problem(
        r#"{"accounts": {"a": {}}, "custom_hostnames": {"a": {"*.x.example": "active"}}}"#,
        r#"custom_hostnames["a"]["*.x.example"]: invalid host name: a wildcard"#,
    );
    assert_problem(
        r#"{"accounts": {"a": {}}, "custom_hostnames": {"a": {"x.example": 1}}}"#,
        r#"custom_hostnames["a"]["x.example"]: invalid type"#,
    );
}

#[test]
fn account_ids_are_checked() {
    assert_problem(r#"{"accounts": {"acct 1": {}}}"#, r#"accounts["acct 1"]: invalid account id"#);
    assert_problem(r#"{"accounts": {"": {}}}"#, r#"accounts[""]: invalid account id"#);
    assert_problem(&format!(r#"{{"accounts": {{"{}": {{}}}}}}"#, "a".repeat(129)), "accounts[\"aaaa");
    assert!(
        Registry::from_slice(format!(r#"{{"accounts": {{"{}": {{}}}}}}"#, "A.b_c:d-1".repeat(14)).as_bytes()).is_ok()
    );
    assert_problem(r#"{"accounts": {"a": {"suspended": "yes"}}}"#, r#"accounts["a"].suspended: invalid type"#);
}

#[test]
fn records_and_ttl_are_refused_saying_where_they_went() {
    let ps = problems(r#"{"accounts": {}, "records": {"x.example": {"a": ["192.0.2.1"]}}}"#);
    assert_eq!(ps.len(), 1);
    assert!(ps[0].starts_with("records: DNS records are no longer read from the registry"), "{ps:?}");
    assert!(ps[0].contains("--dns-server"), "{ps:?}");
    assert!(problems(r#"{"records": {}}"#)[0].starts_with("records: "));
    let ps = problems(r#"{"ttl": 60}"#);
    assert!(ps[0].starts_with("ttl: answer TTLs now come from DNS") && ps[0].contains("--max-ttl"), "{ps:?}");
}

#[test]
fn top_level_is_checked() {
    assert_problem(r#"{"zone": {}}"#, "zone: unknown field `zone`");
    assert_problem(r#"{"accounts": {"a": {"owner": "x"}}}"#, r#"accounts["a"].owner: unknown field `owner`"#);
    assert_problem("[]", "(top level): expected a JSON object");
    assert_problem(r#"{"accounts": {"a": []}}"#, r#"accounts["a"]: expected a JSON object"#);
    assert!(problems("{} {}")[0].contains("trailing characters"));
    assert!(problems("{")[0].contains("EOF"));
    assert!(problems("")[0].contains("EOF"));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let ps = problems(
        r#"{"accounts": {"a": {}}, "zones": {"x.example": "b", "y.example": "c"},
            "custom_hostnames": {"d": {}}}"#,
    );
    assert_eq!(ps.len(), 3, "{ps:#?}");
    let e = Registry::from_slice(br#"{"zones": {"x.example": "b"}}"#).expect_err("invalid");
    assert_eq!(e.to_string(), r#"zones["x.example"]: unknown account "b""#);
}
