use super::*;
use crate::verdict::{decide, ErrorCode, Verdict};

const EXAMPLE: &str = r#"{
  "ttl": 60,
  "accounts": { "acct-saas": {}, "acct-client": {}, "acct-frozen": {"suspended": true} },
  "zones": { "saas.example": "acct-saas", "myclientsite.com": "acct-client",
             "eu.saas.example": "acct-client", "frozen.example": "acct-frozen" },
  "records": {
    "edge.saas.example": {"a": ["192.0.2.10"]},
    "v6.saas.example": {"aaaa": ["2001:db8::1"]},
    "custom.myclientsite.com": {"cname": "edge.saas.example"},
    "*.tenants.saas.example": {"a": ["192.0.2.11"], "ttl": 300},
    "*.deep.tenants.saas.example": {"cname": "edge.saas.example"},
    "exact.tenants.saas.example": {"cname": "nx.saas.example"},
    "shop.customer.example": {"cname": "edge.saas.example"},
    "odd.customer.example": {"cname": "edge.saas.example"},
    "loop1.saas.example": {"cname": "loop2.saas.example"},
    "loop2.saas.example": {"cname": "loop1.saas.example"},
    "self.saas.example": {"cname": "self.saas.example"},
    "to-wild.saas.example": {"cname": "x.tenants.saas.example"},
    "offsite.saas.example": {"cname": "elsewhere.example"},
    "frozen-cname.customer.example": {"cname": "www.frozen.example"},
    "www.frozen.example": {"a": ["192.0.2.20"]},
    "orphan.example": {"a": ["192.0.2.30"]}
  },
  "custom_hostnames": { "acct-saas": { "shop.customer.example": "active", "odd.customer.example": "Weird Status" },
                        "acct-frozen": { "frozen-cname.customer.example": "active" } }
}"#;

fn example() -> Registry {
    match Registry::from_slice(EXAMPLE.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("example registry: {e}"),
    }
}

fn found(r: &Registry, host: &str) -> Ownership {
    match r.lookup(host) {
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
            ttl: 60,
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
    assert_eq!(r.lookup("notsaas.example"), Answer::Unknown);
    assert_eq!(r.zone_owner("notsaas.example"), None);
}

#[test]
fn a_zone_without_a_record_is_found_but_does_not_resolve() {
    let o = found(&example(), "nothing-here.saas.example");
    assert_eq!(o.account, s("acct-saas"));
    assert_eq!((o.cname_target, o.target_account, o.origin_resolves, o.ttl), (None, None, false, 60));
}

#[test]
fn unknown_hosts_are_404() {
    let r = example();
    assert_eq!(r.lookup("nobody-knows-this.example"), Answer::Unknown);
    assert_eq!(r.lookup("example"), Answer::Unknown);
    assert_eq!(decide(&r.lookup("nobody.example")), Verdict::Deny(ErrorCode::DnsResolution));
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
fn wildcards() {
    let r = example();
    for host in ["a.tenants.saas.example", "x.y.tenants.saas.example", "new-host-123.tenants.saas.example"] {
        let o = found(&r, host);
        assert!(o.origin_resolves, "{host}");
        assert_eq!((o.account.as_deref(), o.cname_target.as_deref(), o.ttl), (Some("acct-saas"), None, 300), "{host}");
    }
    // The wildcard does not match its own parent.
    assert!(r.record("tenants.saas.example").is_none());
    // An exact record wins over the wildcard.
    let o = found(&r, "exact.tenants.saas.example");
    assert_eq!((o.cname_target.as_deref(), o.origin_resolves, o.ttl), (Some("nx.saas.example"), false, 60));
    // The nearest wildcard wins.
    let o = found(&r, "a.deep.tenants.saas.example");
    assert_eq!(o.cname_target, s("edge.saas.example"));
    assert_eq!(found(&r, "b.a.deep.tenants.saas.example").cname_target, s("edge.saas.example"));
    assert_eq!(found(&r, "deep.tenants.saas.example").cname_target, None);
    // A CNAME into a wildcard resolves through it.
    assert!(found(&r, "to-wild.saas.example").origin_resolves);
}

#[test]
fn origin_resolution_follows_the_chain_safely() {
    let r = example();
    assert!(found(&r, "edge.saas.example").origin_resolves);
    assert!(found(&r, "v6.saas.example").origin_resolves);
    assert!(found(&r, "a.deep.tenants.saas.example").origin_resolves);
    for host in ["loop1.saas.example", "self.saas.example", "exact.tenants.saas.example", "offsite.saas.example"] {
        assert!(!found(&r, host).origin_resolves, "{host}");
    }
    // A target off the platform has no target account.
    assert_eq!(found(&r, "offsite.saas.example").target_account, None);
}

#[test]
fn chains_longer_than_max_hops_do_not_resolve() {
    let chain = |len: usize| {
        let mut records = serde_json::Map::new();
        for i in 0..len {
            records.insert(format!("h{i}.c.example"), serde_json::json!({"cname": format!("h{}.c.example", i + 1)}));
        }
        records.insert(format!("h{len}.c.example"), serde_json::json!({"a": ["192.0.2.1"]}));
        let file = serde_json::json!({"accounts": {"a": {}}, "zones": {"c.example": "a"}, "records": records});
        Registry::from_slice(file.to_string().as_bytes()).expect("valid chain")
    };
    assert!(found(&chain(MAX_HOPS), "h0.c.example").origin_resolves);
    assert!(!found(&chain(MAX_HOPS + 1), "h0.c.example").origin_resolves);
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
    assert_eq!(r.lookup("a.example"), Answer::Unknown);
    let r = Registry::from_slice(br#"{"records": {"a.example": {"a": ["192.0.2.1"]}}}"#).expect("valid");
    assert_eq!(found(&r, "a.example").ttl, DEFAULT_TTL);
    let c = example().counts();
    assert_eq!((c.accounts, c.zones, c.records, c.custom_hostnames), (3, 4, 16, 3));
}

/// Every demo case of envoy/registry.json, through the verdict.
#[test]
fn the_demo_registry_exercises_every_verdict() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/registry.json");
    let r = match Registry::load(Path::new(file)) {
        Ok(r) => r,
        Err(e) => panic!("{file}: {e}"),
    };
    let allow = |a: &str| Verdict::Allow(a.to_string());
    for (host, verdict) in [
        ("custom.myclientsite.com", Verdict::Deny(ErrorCode::CnameCrossUser)),
        ("shop.customer.example", allow("acct-saas")),
        ("www.saas.example", allow("acct-saas")),
        ("app.saas.example", allow("acct-saas")),
        ("edge.saas.example", allow("acct-saas")),
        ("pending.customer.example", Verdict::Deny(ErrorCode::OriginDns)),
        ("moved.customer.example", Verdict::Deny(ErrorCode::OriginDns)),
        ("blocked.customer.example", Verdict::Deny(ErrorCode::CnameCrossUser)),
        ("broken.saas.example", Verdict::Deny(ErrorCode::OriginDns)),
        ("www.frozen.example", Verdict::Deny(ErrorCode::NotServing)),
        ("orphan.example", Verdict::Deny(ErrorCode::DnsResolution)),
        ("nobody-knows-this.example", Verdict::Deny(ErrorCode::DnsResolution)),
        ("anything.tenants.saas.example", allow("acct-saas")),
        ("a.b.tenants.saas.example", allow("acct-saas")),
    ] {
        assert_eq!(decide(&r.lookup(host)), verdict, "{host}");
    }
    let seed = found(&r, "custom.myclientsite.com");
    assert_eq!((seed.account.as_deref(), seed.target_account.as_deref()), (Some("acct-client"), Some("acct-saas")));
    let orphan = found(&r, "orphan.example");
    assert_eq!((orphan.account, orphan.target_account), (None, None));
    assert_eq!(r.lookup("nobody-knows-this.example"), Answer::Unknown);
    assert!(!found(&r, "broken.saas.example").origin_resolves);
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
fn records_are_checked() {
    let rec = |name: &str, body: &str| format!(r#"{{"records": {{"{name}": {body}}}}}"#);
    assert_problem(
        &rec("a..example", r#"{"a": ["192.0.2.1"]}"#),
        r#"records["a..example"]: invalid host name: empty label"#,
    );
    assert_problem(&rec("a.*.example", r#"{"a": ["192.0.2.1"]}"#), r#"records["a.*.example"]: invalid host name"#);
    assert_problem(
        &rec("x.example", r#"{"cname": "y.example", "a": ["192.0.2.1"]}"#),
        r#"records["x.example"]: a record has either a cname or addresses"#,
    );
    assert_problem(
        &rec("x.example", r#"{}"#),
        r#"records["x.example"]: a record needs a cname or at least one a/aaaa"#,
    );
    assert_problem(&rec("x.example", r#"{"a": []}"#), r#"records["x.example"]: a record needs"#);
    assert_problem(
        &rec("x.example", r#"{"a": ["192.0.2.1", "300.1.1.1"]}"#),
        r#"records["x.example"].a[1]: "300.1.1.1" is not an IPv4 address"#,
    );
    assert_problem(
        &rec("x.example", r#"{"a": ["2001:db8::1"]}"#),
        r#"records["x.example"].a[0]: "2001:db8::1" is not an IPv4"#,
    );
    assert_problem(
        &rec("x.example", r#"{"aaaa": ["192.0.2.1"]}"#),
        r#"records["x.example"].aaaa[0]: "192.0.2.1" is not an IPv6 address"#,
    );
    assert_problem(
        &rec("x.example", r#"{"cname": "Y.example"}"#),
        r#"records["x.example"].cname: invalid target "Y.example": must be lowercase"#,
    );
    assert_problem(&rec("x.example", r#"{"cname": "*.y.example"}"#), r#"records["x.example"].cname: invalid target"#);
    assert_problem(
        &rec("x.example", r#"{"a": ["192.0.2.1"], "ttl": 86401}"#),
        r#"records["x.example"].ttl: ttl 86401 is outside 0..=86400"#,
    );
    assert_problem(
        &rec("x.example", r#"{"a": ["192.0.2.1"], "ttl": -1}"#),
        r#"records["x.example"].ttl: invalid value"#,
    );
    assert_problem(&rec("x.example", r#"{"a": "192.0.2.1"}"#), r#"records["x.example"].a: invalid type"#);
    assert_problem(
        &rec("x.example", r#"{"a": ["192.0.2.1"], "mx": "m.example"}"#),
        r#"records["x.example"].mx: unknown field `mx`"#,
    );
    assert!(Registry::from_slice(rec("x.example", r#"{"a": ["192.0.2.1"], "ttl": 0}"#).as_bytes()).is_ok());
    assert!(Registry::from_slice(rec("x.example", r#"{"a": ["192.0.2.1"], "ttl": 86400}"#).as_bytes()).is_ok());
}

#[test]
fn top_level_is_checked() {
    assert_problem(r#"{"ttl": 86401}"#, "ttl: ttl 86401 is outside");
    assert_problem(r#"{"ttl": "60"}"#, "ttl: invalid type");
    assert_problem(r#"{"zone": {}}"#, "zone: unknown field `zone`");
    assert_problem(r#"{"accounts": {"a": {"owner": "x"}}}"#, r#"accounts["a"].owner: unknown field `owner`"#);
    assert_problem("[]", "(top level): expected a JSON object");
    assert_problem(r#"{"accounts": {"a": []}}"#, r#"accounts["a"]: expected a JSON object"#);
    assert_problem(r#"{"records": {"x.example": ["192.0.2.1"]}}"#, r#"records["x.example"]: expected a JSON object"#);
    assert_problem(r#"{"records": []}"#, "records: invalid type");
    assert!(problems("{} {}")[0].contains("trailing characters"));
    assert!(problems("{")[0].contains("EOF"));
    assert!(problems("")[0].contains("EOF"));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let ps = problems(
        r#"{"accounts": {"a": {}}, "zones": {"x.example": "b", "y.example": "c"},
            "records": {"r.example": {}}, "custom_hostnames": {"d": {}}}"#,
    );
    assert_eq!(ps.len(), 4, "{ps:#?}");
    let e = Registry::from_slice(br#"{"zones": {"x.example": "b"}}"#).expect_err("invalid");
    assert_eq!(e.to_string(), r#"zones["x.example"]: unknown account "b""#);
}
