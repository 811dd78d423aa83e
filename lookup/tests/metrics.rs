//! `GET /metrics` of the real service, on SQLite with real BIND: scraped
//! before and after a known sequence (lookups, a DNS failure, a verifier
//! transition, a feed poll, management calls), the deltas asserted.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use support::dns::{wait, zone_with_ttl, Bind};
use support::service::{send, Lookup};
use support::Scratch;

/// One scrape: each series (`name` and its labels) and its value.
struct Scrape(Vec<(String, HashMap<String, String>, f64)>);

impl Scrape {
    fn of(svc: &Lookup) -> Scrape {
        let (status, text) = svc.get("/metrics");
        assert_eq!(status, 200, "{text}");
        Scrape::parse(&text)
    }

    /// The text format: `name{k="v",...} value` lines; `#` lines skipped.
    fn parse(text: &str) -> Scrape {
        let mut series = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}")))),
                None => (head, HashMap::new()),
            };
            series.push((name.to_string(), labels, value));
        }
        Scrape(series)
    }

    /// The sum over `name`'s series that carry every label of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name && with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        self.0.iter().filter(|(n, ..)| n == name).filter_map(|(_, l, _)| l.get(label).cloned()).collect()
    }
}

/// `k="v",k2="v2"`, values with `\"` and `\\` escapes.
fn labels(mut rest: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c })),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

fn bind() -> Bind {
    // Long TTLs: a second lookup of a name is a cache hit.
    let brand = zone_with_ttl("brand.example", 300, "custom IN CNAME edge.saas.example.\nshop IN A 192.0.2.10\n");
    let saas = zone_with_ttl("saas.example", 300, "edge IN A 192.0.2.1\n");
    Bind::start(&[("brand.example", &brand), ("saas.example", &saas)])
}

fn admin_json(svc: &Lookup, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = svc.admin(method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn metrics_move_as_the_service_works() {
    let bind = bind();
    let dir = Scratch::new("metrics");
    let args = ["--dns-server", &bind.addr(), "--verify-tick", "200ms", "--verify-pending-backoff", "1h=1s"];
    let svc = Lookup::start(&dir.sqlite_url(), &args, &dir.path("lookup.log"));
    let before = Scrape::of(&svc);

    // Management calls: the platform's account and zone, a hostname active at
    // once (its CNAME is the proof) and one pending (no proof yet).
    assert_eq!(svc.admin("PUT", "/v1/accounts/acct-saas", Some(r#"{"suspended": false}"#)).0, 201);
    assert_eq!(svc.admin("PUT", "/v1/zones/saas.example", Some(r#"{"account": "acct-saas"}"#)).0, 201);
    let hostnames = "/v1/accounts/acct-saas/custom_hostnames";
    let (status, active) = admin_json(&svc, "POST", hostnames, Some(r#"{"hostname": "custom.brand.example"}"#));
    assert_eq!((status, active["status"].as_str()), (201, Some("active")), "{active}");
    let (status, pending) = admin_json(&svc, "POST", hostnames, Some(r#"{"hostname": "shop.brand.example"}"#));
    assert_eq!((status, pending["status"].as_str()), (201, Some("pending")), "{pending}");

    // Lookups: allowed (twice: the second from the DNS cache), not found, a
    // DNS failure (BIND refuses a zone it does not serve), a bad request.
    assert_eq!(svc.get("/v1/ownership?host=custom.brand.example").0, 200);
    assert_eq!(svc.get("/v1/ownership?host=custom.brand.example").0, 200);
    assert_eq!(svc.get("/v1/ownership?host=nothing.brand.example").0, 404);
    assert_eq!(svc.get("/v1/ownership?host=x.elsewhere.test").0, 503);
    assert_eq!(svc.get("/v1/ownership?host=").0, 400);
    assert_eq!(svc.get("/readyz").0, 200);
    assert_eq!(svc.get("/v1/changes?since=0").0, 200);

    // The TXT record appears: the verifier makes the hostname active.
    let token = pending["ownership_verification"]["value"].as_str().expect("token");
    bind.update("brand.example", &[&format!("update add _cname-guard.shop.brand.example. 1 IN TXT \"{token}\"")]);
    let path = format!("{hostnames}/{}", pending["id"].as_str().expect("id"));
    wait("the verifier's transition", Duration::from_secs(30), || {
        (admin_json(&svc, "GET", &path, None).1["status"] == "active").then_some(())
    });
    // The feed's poller reads the head every 100 ms.
    let after = wait("the feed head", Duration::from_secs(10), || {
        let s = Scrape::of(&svc);
        (s.sum("cname_guard_feed_head_sequence", &[]) > 0.0).then_some(s)
    });

    let delta = |name: &str, with: &[(&str, &str)]| after.sum(name, with) - before.sum(name, with);
    let lookups = "cname_guard_lookups_total";
    assert_eq!(delta(lookups, &[("result", "allowed")]), 2.0);
    assert_eq!(delta(lookups, &[("result", "not_found")]), 1.0);
    assert_eq!(delta(lookups, &[("result", "unavailable")]), 1.0);
    assert_eq!(delta(lookups, &[("result", "bad_request")]), 1.0);
    assert_eq!(delta(lookups, &[("result", "denied")]), 0.0);
    assert_eq!(delta("cname_guard_lookup_unavailable_total", &[("cause", "dns")]), 1.0);
    assert_eq!(delta("cname_guard_lookup_duration_seconds_count", &[]), 5.0);
    assert!(delta("cname_guard_lookup_duration_seconds_bucket", &[("le", "+Inf")]) == 5.0);

    let dns = "cname_guard_dns_queries_total";
    assert!(delta(dns, &[("rcode", "noerror"), ("type", "CNAME")]) >= 1.0);
    assert!(delta(dns, &[("rcode", "nxdomain")]) >= 1.0);
    assert!(delta(dns, &[("rcode", "refused")]) >= 1.0, "{:?}", after.label_values(dns, "rcode"));
    assert!(delta(dns, &[("rcode", "noerror"), ("type", "TXT")]) >= 1.0, "the verifier's TXT question");
    assert!(delta("cname_guard_dns_query_duration_seconds_count", &[]) >= delta(dns, &[]) - 0.5);
    assert!(delta("cname_guard_dns_cache_hits_total", &[]) >= 1.0);
    assert!(delta("cname_guard_dns_cache_misses_total", &[]) >= 3.0);
    assert!(after.sum("cname_guard_dns_cache_entries", &[]) >= 1.0);

    assert_eq!(delta("cname_guard_verifier_transitions_total", &[("from", "pending"), ("to", "active")]), 1.0);
    assert!(delta("cname_guard_verifier_checks_total", &[("outcome", "changed")]) >= 1.0);
    assert_eq!(delta("cname_guard_readyz_total", &[("result", "ready")]), 1.0);
    assert_eq!(delta("cname_guard_feed_polls_total", &[]), 1.0);
    assert_eq!(after.sum("cname_guard_feed_waiting", &[]), 0.0);
    assert_eq!(delta("cname_guard_store_errors_total", &[]), 0.0);

    let admin = "cname_guard_admin_requests_total";
    assert_eq!(delta(admin, &[("route", "/v1/accounts/{account}"), ("status", "201")]), 1.0);
    assert_eq!(delta(admin, &[("route", "/v1/accounts/{account}/custom_hostnames"), ("status", "201")]), 2.0);
    assert!(delta(admin, &[("route", "/v1/accounts/{account}/custom_hostnames/{id}"), ("status", "200")]) >= 1.0);
    // Route templates only: never a raw path with an account or a hostname in it.
    let routes = after.label_values(admin, "route");
    assert!(routes.iter().all(|r| !r.contains("acct-saas")), "{routes:?}");
    assert!(delta("cname_guard_admin_request_duration_seconds_count", &[]) >= 5.0);

    // An unknown admin path is one label value, not its path.
    assert_eq!(svc.admin("GET", "/v1/no/such/acct-saas", None).0, 404);
    let last = Scrape::of(&svc);
    assert_eq!(last.sum(admin, &[("route", "unmatched"), ("status", "404")]), 1.0);

    // Only GET and HEAD.
    assert_eq!(send(svc.port, "POST", "/metrics", None, Some("")).0, 405);
    svc.stop();
}
