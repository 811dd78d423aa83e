//! `GET /v1/diagnose` with real BIND and SQLite: the verdict and its
//! remedy through a hostname's lifecycle, who may ask, bad hosts, and a
//! DNS failure.

mod support;

use cname_guard_lookup::probe::DnsProbe;
use cname_guard_lookup::store::{Actor, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use support::api::{Api, Reply, ADMIN};
use support::dns::{BadDns, Bind, Misbehave};
use support::{resolver, zone, Scratch};

fn bind() -> Bind {
    let brand = zone(
        "brand.example",
        "shop IN A 192.0.2.10\n\
         custom IN CNAME edge.saas.example.\n",
    );
    let saas = zone("saas.example", "edge IN A 192.0.2.1\ndangling IN CNAME gone\n");
    let other = zone("other.example", "x IN A 192.0.2.2\n");
    Bind::start(&[("brand.example", &brand), ("saas.example", &saas), ("other.example", &other)])
}

/// acct-saas and acct-other with their zones; acct-third without one.
/// The tokens, in that order.
async fn seeded(store: &Store) -> [String; 3] {
    let mut tokens = Vec::new();
    for (account, zone) in
        [("acct-saas", Some("saas.example")), ("acct-other", Some("other.example")), ("acct-third", None)]
    {
        store.put_account(&Actor::Admin, account, false).await.unwrap();
        if let Some(zone) = zone {
            store.put_zone(&Actor::Admin, zone, account).await.unwrap();
        }
        tokens.push(store.issue_token(&Actor::Admin, account).await.unwrap().token);
    }
    tokens.try_into().unwrap()
}

async fn diagnose(api: &Api, host: &str, token: &str) -> Reply {
    api.call("GET", &format!("/v1/diagnose?host={host}"), Some(token), None).await
}

fn verdict(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{r:?}");
    r.body["verdict"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_and_remedies_through_a_lifecycle() {
    let bind = bind();
    let dir = Scratch::new("diagnose");
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    let [saas, other, third] = seeded(&store).await;
    let api = Api::start(store, Arc::new(DnsProbe::new(resolver(&bind.addr())))).await;

    // Already CNAMEd into acct-saas's zone, not yet its custom hostname: 1014.
    let r = diagnose(&api, "custom.brand.example", &saas).await;
    assert_eq!(verdict(&r), json!({"result": "deny", "code": 1014, "name": "CNAME cross-user banned", "status": 409}));
    assert_eq!(
        r.body["chain"],
        json!([
            {"name": "custom.brand.example", "zone": null, "account": null},
            {"name": "edge.saas.example", "zone": "saas.example", "account": "acct-saas"},
        ])
    );
    assert_eq!(r.body["chain_end"], "addresses");
    assert_eq!(r.body["custom_hostname"], Value::Null);
    assert_eq!(
        r.body["next_action"],
        "ask acct-saas to add custom.brand.example as a custom hostname (POST /v1/accounts/acct-saas/custom_hostnames)"
    );
    assert!(r.body["steps"].as_array().unwrap().contains(&json!("custom.brand.example CNAMEs to edge.saas.example")));
    // Involved: the admin and acct-saas. Not involved: 404, as if unknown. No token: 401.
    assert_eq!(verdict(&diagnose(&api, "custom.brand.example", ADMIN).await)["code"], 1014);
    for token in [&other, &third] {
        let r = diagnose(&api, "custom.brand.example", token).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{r:?}");
    }
    let r = api.call("GET", "/v1/diagnose?host=custom.brand.example", None, None).await;
    assert_eq!(r.status, 401);

    // Pre-validation: the host still has an A record at the old host.
    let r = api
        .call(
            "POST",
            "/v1/accounts/acct-saas/custom_hostnames",
            Some(&saas),
            Some(&json!({"hostname": "shop.brand.example"})),
        )
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("pending")), "{r:?}");
    let (id, token) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["ownership_verification"]["value"].as_str().unwrap().to_string(),
    );
    let r = diagnose(&api, "shop.brand.example", &saas).await;
    assert_eq!(verdict(&r)["code"], 1001);
    assert_eq!(r.body["custom_hostname"]["status"], "pending");
    assert_eq!(r.body["custom_hostname"]["verification_errors"].as_array().map(Vec::len), Some(2));
    let action = r.body["next_action"].as_str().unwrap();
    assert!(
        action.starts_with(&format!(
            "create TXT _cname-guard.shop.brand.example with value {token}, then POST \
             /v1/accounts/acct-saas/custom_hostnames/{id}/verify"
        )),
        "{action}"
    );
    // The hostname's account is involved even before DNS points at it; others are not.
    assert_eq!(diagnose(&api, "shop.brand.example", &other).await.status, 404);

    bind.update("brand.example", &[&format!("update add _cname-guard.shop.brand.example. 1 IN TXT \"{token}\"")]);
    let r = api.call("POST", &format!("/v1/accounts/acct-saas/custom_hostnames/{id}/verify"), Some(&saas), None).await;
    assert_eq!(r.body["status"], "active", "{r:?}");
    let r = diagnose(&api, "shop.brand.example", &saas).await;
    assert_eq!(verdict(&r)["code"], 1001);
    assert_eq!(r.body["next_action"], "point shop.brand.example with a CNAME into a zone of acct-saas");

    bind.update(
        "brand.example",
        &["update delete shop.brand.example. A", "update add shop.brand.example. 1 IN CNAME edge.saas.example."],
    );
    let r = diagnose(&api, "shop.brand.example", &saas).await;
    assert_eq!(verdict(&r), json!({"result": "allow", "account": "acct-saas", "status": 200}));
    assert_eq!(r.body["next_action"], "nothing: shop.brand.example is served by acct-saas");
    assert_eq!(r.body["ownership"]["custom_hostname"], "active");

    // Moved into acct-other's zone: 1014 there. acct-other is involved now,
    // and sees acct-saas's record without its token.
    bind.update(
        "brand.example",
        &["update delete shop.brand.example. CNAME", "update add shop.brand.example. 1 IN CNAME x.other.example."],
    );
    let r = diagnose(&api, "shop.brand.example", &other).await;
    assert_eq!(verdict(&r)["code"], 1014);
    assert_eq!(r.body["custom_hostname"]["id"], "ID");
    let action = r.body["next_action"].as_str().unwrap();
    assert!(action.starts_with("shop.brand.example is acct-saas's custom hostname: point it back"), "{action}");
    assert!(!r.body.to_string().contains(&token), "acct-saas's token shown to acct-other");

    // The end of the chain has no address: 1016.
    let r = diagnose(&api, "dangling.saas.example", &saas).await;
    assert_eq!(verdict(&r)["code"], 1016);
    assert_eq!(r.body["chain_end"], "no_address");
    assert_eq!(r.body["next_action"], "point gone.saas.example at an address (an A or AAAA record)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hosts_and_dns_failures() {
    let dir = Scratch::new("diagnose-bad");
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    let [saas, _, third] = seeded(&store).await;
    let bad = BadDns::start(Misbehave::ServFail);
    let api = Api::start(store, Arc::new(DnsProbe::new(resolver(&bad.addr.to_string())))).await;

    let r = api.call("GET", "/v1/diagnose", Some(ADMIN), None).await;
    assert_eq!((r.status, r.code()), (400, "missing_host"));
    let r = api.call("GET", "/v1/diagnose?host=a.example&verbose=1", Some(ADMIN), None).await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));
    let long = format!("{}.example", vec!["a".repeat(60); 5].join("."));
    for host in [
        "shop%0d%0a.example",
        "shop.example%0d%0aX-Injected:%201",
        "a%20b.example",
        "1.2.3.4",
        long.as_str(),
        "%27%3B%20DROP%20TABLE%20zones%3B--",
    ] {
        let r = diagnose(&api, host, ADMIN).await;
        assert_eq!((r.status, r.code()), (422, "invalid_hostname"), "{host}: {r:?}");
    }

    // DNS fails: 503 for the admin and for an account involved by the store
    // alone; an account not involved learns nothing.
    let r = diagnose(&api, "edge.saas.example", ADMIN).await;
    assert_eq!((r.status, r.code()), (503, "dns_unavailable"), "{r:?}");
    assert_eq!(diagnose(&api, "edge.saas.example", &saas).await.status, 503);
    assert_eq!(diagnose(&api, "edge.saas.example", &third).await.status, 404);
    assert!(bad.questions.load(std::sync::atomic::Ordering::SeqCst) > 0);
}
