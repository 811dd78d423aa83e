use super::*;
use crate::chain::fake::{block, Zone, NEG_TTL};
use crate::chain::{follow, End};
use crate::verdict::{decide, ErrorCode, Verdict};

const MAX_TTL: u32 = 300;

fn example() -> Registry {
    let mut r = Registry::default();
    r.add_account("acct-saas", false);
    r.add_account("acct-client", false);
    r.add_account("acct-frozen", true);
    r.add_zone("saas.example", "acct-saas");
    r.add_zone("myclientsite.com", "acct-client");
    r.add_zone("eu.saas.example", "acct-client");
    r.add_zone("frozen.example", "acct-frozen");
    r.add_custom_hostname("acct-saas", "shop.customer.example", "active");
    // The store only holds known statuses; the answer carries any verbatim.
    r.add_custom_hostname("acct-saas", "odd.customer.example", "Weird Status");
    r.add_custom_hostname("acct-frozen", "frozen-cname.customer.example", "active");
    r
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
            https: false,
        }
    );
    let json = serde_json::to_value(&o).expect("json");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    // `https` is written only when true: the answer is contract v1's as it was.
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
    let r = Registry::default();
    assert_eq!(lookup(&r, "edge.saas.example"), Answer::Unknown);
    let c = example().counts();
    assert_eq!((c.accounts, c.zones, c.custom_hostnames), (3, 4, 3));
}

#[test]
fn the_demo_registry_loads() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/registry.json");
    let bytes = std::fs::read(file).expect("demo registry");
    let r = match crate::store::parse_registry(&bytes) {
        Ok(r) => r,
        Err(e) => panic!("{file}: {e}"),
    };
    assert_eq!(r.zone_owner("edge.saas.example"), Some("acct-saas"));
    assert!(r.counts().custom_hostnames >= 4);
}

#[test]
fn https_is_an_active_custom_hostname_with_a_certificate() {
    let mut r = example();
    assert!(!found(&r, "shop.customer.example").https, "no certificate yet");
    r.add_certificate("shop.customer.example");
    r.add_certificate("odd.customer.example");
    r.add_certificate("custom.myclientsite.com");
    let o = found(&r, "shop.customer.example");
    assert!(o.https);
    let json = serde_json::to_value(&o).expect("json");
    assert_eq!(json["https"], serde_json::json!(true));
    assert_eq!(json.as_object().expect("object").len(), 9);
    // Not active: no HTTPS, whatever the certificate.
    assert!(!found(&r, "odd.customer.example").https);
    // Not a custom hostname of the target account.
    assert!(!found(&r, "custom.myclientsite.com").https);
    assert!(!serde_json::to_string(&found(&r, "custom.myclientsite.com")).expect("json").contains("https"));
}

/// `--unlisted-hosts refuse` answers 404 for exactly the hosts whose
/// verdict could only be a denial (1001 or 1014), whatever their chain.
#[test]
fn unlisted_hosts_can_only_be_denied() {
    let r = example();
    for listed in ["www.saas.example", "saas.example", "custom.myclientsite.com", "shop.customer.example"] {
        assert!(r.lists(listed), "{listed}");
    }
    let z = zone().cname("stranger.example", "edge.saas.example", 60).a("orphan.example", 60);
    for unlisted in ["stranger.example", "orphan.example", "nothing.example", "customer.example"] {
        assert!(!r.lists(unlisted), "{unlisted}");
        let chain = block(follow(&z, unlisted)).expect("chain");
        let verdict = decide(&r.lookup(unlisted, &chain, MAX_TTL));
        assert!(
            matches!(verdict, Verdict::Deny(ErrorCode::DnsResolution | ErrorCode::CnameCrossUser)),
            "{unlisted}: {verdict:?}"
        );
    }
}
