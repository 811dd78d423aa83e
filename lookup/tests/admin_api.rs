//! The management API over HTTP, on SQLite and a real PostgreSQL: auth on
//! every endpoint, the hostname lifecycle, races, hostile input, restarts
//! and two replicas.

mod support;

use cname_guard_lookup::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use support::api::{Api, FakeDns, Reply, ADMIN};
use support::postgres::Postgres;
use support::Scratch;

/// An account with a zone and an API token.
struct Tenant {
    token: String,
    token_id: String,
}

async fn tenant(api: &Api, account: &str, zone: &str) -> Tenant {
    let r = api.call("PUT", &format!("/v1/accounts/{account}"), Some(ADMIN), Some(&json!({"suspended": false}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body, json!({"id": account, "suspended": false}));
    let r = api.call("PUT", &format!("/v1/zones/{zone}"), Some(ADMIN), Some(&json!({"account": account}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = api.call("POST", &format!("/v1/accounts/{account}/tokens"), Some(ADMIN), None).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["account"], account);
    Tenant { token: r.body["token"].as_str().unwrap().into(), token_id: r.body["id"].as_str().unwrap().into() }
}

async fn create(api: &Api, account: &str, token: &str, host: &str) -> Reply {
    api.call("POST", &format!("/v1/accounts/{account}/custom_hostnames"), Some(token), Some(&json!({"hostname": host})))
        .await
}

fn hostname_path(account: &str, id: &str) -> String {
    format!("/v1/accounts/{account}/custom_hostnames/{id}")
}

// --- auth -----------------------------------------------------------------------

async fn auth_on_every_endpoint(store: Store) {
    let dns = Arc::new(FakeDns::default());
    let api = Api::start(store, dns).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    let other = tenant(&api, "acct-other", "other.example").await;
    let revoked = tenant(&api, "acct-gone", "gone.example").await;
    let r = api.call("DELETE", &format!("/v1/tokens/{}", revoked.token_id), Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{r:?}");
    let h = create(&api, "acct-saas", &saas.token, "shop.brand.example").await;
    assert_eq!(h.status, 201, "{h:?}");
    let id = h.body["id"].as_str().unwrap().to_string();

    let hostname = json!({"hostname": "x.brand.example"});
    let block = json!({"status": "blocked"});
    let account_body = json!({"suspended": true});
    let zone_body = json!({"account": "acct-saas"});
    let own = hostname_path("acct-saas", &id);
    let verify = format!("{own}/verify");
    // (method, path, body, operator only)
    let endpoints: Vec<(&str, String, Option<&Value>, bool)> = vec![
        ("POST", "/v1/accounts/acct-saas/custom_hostnames".into(), Some(&hostname), false),
        ("GET", "/v1/accounts/acct-saas/custom_hostnames".into(), None, false),
        ("GET", own.clone(), None, false),
        ("POST", verify.clone(), None, false),
        ("PATCH", own.clone(), Some(&block), true),
        ("PUT", "/v1/accounts/acct-saas".into(), Some(&account_body), true),
        ("DELETE", "/v1/accounts/acct-saas".into(), None, true),
        ("PUT", "/v1/zones/saas.example".into(), Some(&zone_body), true),
        ("DELETE", "/v1/zones/saas.example".into(), None, true),
        ("POST", "/v1/accounts/acct-saas/tokens".into(), None, true),
        // acct-saas holds the hostname: involved; acct-other is not (404).
        ("GET", "/v1/diagnose?host=shop.brand.example".into(), None, false),
        ("DELETE", own.clone(), None, false),
        // Last: it revokes the token the others use.
        ("DELETE", format!("/v1/tokens/{}", saas.token_id), None, true),
    ];
    for (method, path, body, operator) in &endpoints {
        let what = format!("{method} {path}");
        for token in [None, Some("not-a-token"), Some(revoked.token.as_str()), Some(&format!("{}x", saas.token))] {
            let r = api.call(method, path, token, *body).await;
            assert_eq!(r.status, 401, "{what} with {token:?}: {r:?}");
            assert_eq!(r.code(), "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
        let r = api.raw(format!("{method} {path} HTTP/1.1\r\nauthorization: Basic {ADMIN}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").as_bytes()).await;
        assert_eq!(r.status, 401, "{what} with Basic auth");
        // Another account: its hostnames do not exist; operator endpoints are forbidden.
        let r = api.call(method, path, Some(&other.token), *body).await;
        let expect = if *operator { 403 } else { 404 };
        assert_eq!(r.status, expect, "{what} with another account's token: {r:?}");
        if *operator {
            // The owner's own token is not an operator's either.
            let r = api.call(method, path, Some(&saas.token), *body).await;
            assert_eq!(r.status, 403, "{what} with the account's token: {r:?}");
        }
    }
    // Nothing was changed by any of those.
    let r = api.call("GET", &own, Some(&saas.token), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("pending")), "{r:?}");
    // The owner and the operator do get through.
    for (method, path, body, operator) in &endpoints {
        let token = if *operator { ADMIN } else { saas.token.as_str() };
        let r = api.call(method, path, Some(token), *body).await;
        assert!(![401, 403].contains(&r.status), "{method} {path}: {r:?}");
    }
}

// --- lifecycle -------------------------------------------------------------------

async fn lifecycle(store: Store) {
    let dns = Arc::new(FakeDns::default());
    let api = Api::start(store, dns.clone()).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    tenant(&api, "acct-other", "other.example").await;

    // Real-time: the CNAME into acct-saas is already there.
    dns.set_chain("custom.brand.example", &["edge.saas.example"]);
    let r = create(&api, "acct-saas", &saas.token, "Custom.Brand.Example").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["hostname"], "custom.brand.example");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["verification_errors"], json!([]));
    let custom = r.body["id"].as_str().unwrap().to_string();

    // Pre-validation: still an A record elsewhere, so pending with both proofs named.
    let r = create(&api, "acct-saas", &saas.token, "shop.brand.example").await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("pending")), "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let token = r.body["ownership_verification"]["value"].as_str().unwrap().to_string();
    assert_eq!(r.body["ownership_verification"]["type"], "txt");
    assert_eq!(r.body["ownership_verification"]["name"], "_cname-guard.shop.brand.example");
    assert_eq!(
        r.body["verification_errors"],
        json!([
            format!("there is no TXT record _cname-guard.shop.brand.example; create it with the value {token}"),
            "shop.brand.example has no CNAME into a zone of acct-saas (it has no CNAME)",
        ])
    );
    for key in ["created_at", "updated_at"] {
        assert!(r.body[key].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{key}: {r:?}");
    }
    let path = hostname_path("acct-saas", &id);
    let verify = format!("{path}/verify");

    // A DNS failure changes nothing.
    dns.fail(true);
    let r = api.call("POST", &verify, Some(&saas.token), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("pending")), "{r:?}");
    assert!(r.body["verification_errors"][0].as_str().unwrap().contains("SERVFAIL"), "{r:?}");
    dns.fail(false);

    dns.set_txt("_cname-guard.shop.brand.example", &[&token]);
    let r = api.call("POST", &verify, Some(&saas.token), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("active")), "{r:?}");
    assert_eq!(r.body["verification_errors"], json!([]));

    // Moving away: the chain into another account's zone, the TXT removed.
    dns.set_txt("_cname-guard.shop.brand.example", &[]);
    dns.set_chain("shop.brand.example", &["x.other.example"]);
    let r = api.call("POST", &verify, Some(&saas.token), None).await;
    assert_eq!(r.body["status"], "moved", "{r:?}");
    assert_eq!(
        r.body["verification_errors"][1],
        "shop.brand.example has no CNAME into a zone of acct-saas (it CNAMEs to x.other.example)"
    );
    dns.set_chain("shop.brand.example", &["www.saas.example", "edge.saas.example"]);
    let r = api.call("POST", &verify, Some(&saas.token), None).await;
    assert_eq!(r.body["status"], "active", "{r:?}");

    // One hostname, one account.
    let r = create(&api, "acct-other", ADMIN, "shop.brand.example").await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{r:?}");

    // The operator blocks; verify does not lift it; the operator does.
    let custom_path = hostname_path("acct-saas", &custom);
    let r = api.call("PATCH", &custom_path, Some(ADMIN), Some(&json!({"status": "blocked"}))).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("blocked")), "{r:?}");
    let r = api.call("POST", &format!("{custom_path}/verify"), Some(&saas.token), None).await;
    assert_eq!((r.status, r.code()), (409, "blocked"), "{r:?}");
    let r = api.call("PATCH", &custom_path, Some(ADMIN), Some(&json!({"status": "active"}))).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("active")), "{r:?}");
    let r = api.call("PATCH", &custom_path, Some(ADMIN), Some(&json!({"status": "moved"}))).await;
    assert_eq!((r.status, r.code()), (422, "invalid_status"), "{r:?}");

    // Listing, filtered and paged.
    for n in 0..3 {
        assert_eq!(create(&api, "acct-saas", &saas.token, &format!("p{n}.brand.example")).await.status, 201);
    }
    let list = |q: &str| format!("/v1/accounts/acct-saas/custom_hostnames{q}");
    let r = api.call("GET", &list(""), Some(&saas.token), None).await;
    let info = json!({"page": 1, "per_page": 20, "count": 5, "total_count": 5, "cursors": {}});
    assert_eq!(r.body["result_info"], info, "{r:?}");
    let r = api.call("GET", &list("?status=pending&per_page=2&page=2"), Some(&saas.token), None).await;
    let info = json!({"page": 2, "per_page": 2, "count": 1, "total_count": 3, "cursors": {}});
    assert_eq!(r.body["result_info"], info, "{r:?}");
    assert_eq!(r.body["result"][0]["hostname"], "p2.brand.example");
    let r = api.call("GET", &list("?hostname=shop.brand.example"), Some(&saas.token), None).await;
    assert_eq!(r.body["result"][0]["id"].as_str(), Some(id.as_str()), "{r:?}");

    // Deleted: gone, and the name is free for another account.
    let r = api.call("DELETE", &path, Some(&saas.token), None).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(api.call("GET", &path, Some(&saas.token), None).await.status, 404);
    assert_eq!(api.call("DELETE", &path, Some(&saas.token), None).await.status, 404);
    assert_eq!(create(&api, "acct-other", ADMIN, "shop.brand.example").await.status, 201);

    // Operator bookkeeping.
    let r = api.call("DELETE", "/v1/accounts/acct-saas", Some(ADMIN), None).await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{r:?}");
    let r = api.call("PUT", "/v1/accounts/acct-saas", Some(ADMIN), Some(&json!({"suspended": true}))).await;
    assert_eq!((r.status, r.body["suspended"].as_bool()), (200, Some(true)), "{r:?}");
    let r = api.call("PUT", "/v1/zones/new.example", Some(ADMIN), Some(&json!({"account": "ghost"}))).await;
    assert_eq!((r.status, r.code()), (422, "invalid_account"), "{r:?}");
    let r = api.call("DELETE", "/v1/zones/nowhere.example", Some(ADMIN), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = api.call("POST", "/v1/accounts/ghost/tokens", Some(ADMIN), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = create(&api, "ghost", ADMIN, "g.brand.example").await;
    assert_eq!(r.status, 404, "{r:?}");
}

// --- races, hostile input ------------------------------------------------------------

/// Two accounts create one hostname at once, through two replicas.
async fn race(one: Store, two: Store) {
    let dns = Arc::new(FakeDns::default());
    let a = Api::start(one, dns.clone()).await;
    let b = Api::start(two, dns).await;
    let saas = tenant(&a, "acct-saas", "saas.example").await;
    let other = tenant(&a, "acct-other", "other.example").await;
    for round in 0..8 {
        let host = format!("race{round}.brand.example");
        let (x, y) =
            tokio::join!(create(&a, "acct-saas", &saas.token, &host), create(&b, "acct-other", &other.token, &host));
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}: {x:?} {y:?}");
        // Created through one replica, answered by the other.
        let (winner, reader, account, token) =
            if x.status == 201 { (&x, &b, "acct-saas", &saas.token) } else { (&y, &a, "acct-other", &other.token) };
        let id = winner.body["id"].as_str().unwrap();
        let r = reader.call("GET", &hostname_path(account, id), Some(token), None).await;
        assert_eq!((r.status, r.body["hostname"].as_str()), (200, Some(host.as_str())), "{r:?}");
    }
}

async fn hostile(store: Store) {
    let api = Api::start(store, Arc::new(FakeDns::default())).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    let t = Some(saas.token.as_str());
    let base = "/v1/accounts/acct-saas/custom_hostnames";

    // Bodies over 64 KiB: declared, and streamed without a length.
    let big = json!({"hostname": "a".repeat(70 * 1024)});
    let r = api.call("POST", base, t, Some(&big)).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"), "{r:?}");
    let chunk = "x".repeat(8192);
    let mut req = format!(
        "POST {base} HTTP/1.1\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        saas.token
    );
    for _ in 0..10 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let r = api.raw(req.as_bytes()).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"), "{r:?}");

    // Bodies that are not what the endpoint takes.
    for (body, code) in [
        (r#"{"hostname": "a.example", "ssl": {}}"#, "invalid_request"),
        (r#"{"hostname": 5}"#, "invalid_request"),
        (r#"{}"#, "invalid_request"),
        (r#"[]"#, "invalid_request"),
        (r#"{"hostname": "#, "invalid_json"),
        ("\u{0}", "invalid_json"),
    ] {
        let req = format!(
            "POST {base} HTTP/1.1\r\nauthorization: Bearer {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            saas.token,
            body.len()
        );
        let r = api.raw(req.as_bytes()).await;
        assert_eq!((r.status, r.code()), (400, code), "{body}: {r:?}");
    }
    let r =
        api.call("PUT", "/v1/accounts/acct-x", Some(ADMIN), Some(&json!({"suspended": false, "plan": "pro"}))).await;
    assert_eq!(r.status, 400, "{r:?}");

    // Hostnames the filter refuses: 422, nothing stored.
    let long = vec!["abcdefghi"; 30].join(".");
    for host in [
        "shop.brand.example\r\nx-injected: 1",
        "shop\n.brand.example",
        "shop\r.brand.example",
        long.as_str(),
        "x'; DROP TABLE custom_hostnames; --",
        "a.example' OR '1'='1",
        "shop.brand.example:443",
        "192.0.2.1",
        "*.brand.example",
        "",
    ] {
        let r = create(&api, "acct-saas", &saas.token, host).await;
        assert_eq!((r.status, r.code()), (422, "invalid_hostname"), "{host:?}: {r:?}");
    }
    let r = api.call("GET", base, t, None).await;
    assert_eq!(r.body["result_info"]["total_count"], 0, "{r:?}");
    // The same names, percent-encoded, as `GET /v1/diagnose?host=`.
    for host in
        ["shop.brand.example%0d%0ax-injected:%201", "shop%0a.brand.example", "x%27%3B%20DROP%20TABLE%20zones%3B%20--"]
            .into_iter()
            .map(String::from)
            .chain([long.clone()])
    {
        let r = api.call("GET", &format!("/v1/diagnose?host={host}"), t, None).await;
        assert_eq!((r.status, r.code()), (422, "invalid_hostname"), "{host:?}: {r:?}");
    }

    // Names and ids in paths and queries are checked before any query.
    for path in [
        "/v1/accounts/acct'%20OR%20'1'='1/custom_hostnames".to_string(),
        format!("{base}/1'%20OR%20'1'='1"),
        format!("{base}/{}", "a".repeat(300)),
        format!("{base}?hostname=a'%20OR%201=1"),
        format!("{base}?status=pending'--"),
        format!("{base}?per_page=1000"),
        format!("{base}?page=0"),
        format!("{base}?page=-1"),
        format!("{base}?sort=hostname"),
        format!("/v1/accounts/{}/custom_hostnames", "a".repeat(300)),
    ] {
        let r = api.call("GET", &path, t, None).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    for zone in ["Upper.example", "a..b", "x'%3B--"] {
        let r =
            api.call("PUT", &format!("/v1/zones/{zone}"), Some(ADMIN), Some(&json!({"account": "acct-saas"}))).await;
        assert_eq!(r.status, 400, "{zone}: {r:?}");
    }
    let r = api.call("PUT", "/v1/zones/z.example", Some(ADMIN), Some(&json!({"account": "a/b"}))).await;
    assert_eq!((r.status, r.code()), (422, "invalid_account"), "{r:?}");
    let r = api.call("GET", "/v1/nothing", Some(ADMIN), None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{r:?}");
    let r = api.call("PUT", base, t, None).await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"), "{r:?}");
}

/// The data outlives the service.
async fn restart(url: &str) {
    let dns = Arc::new(FakeDns::default());
    let store = Store::open(url).await.unwrap();
    let api = Api::start(store.clone(), dns.clone()).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    let r = create(&api, "acct-saas", &saas.token, "shop.brand.example").await;
    let id = r.body["id"].as_str().unwrap().to_string();
    drop(api);
    store.close().await;
    let api = Api::start(Store::open(url).await.unwrap(), dns).await;
    let r = api.call("GET", &hostname_path("acct-saas", &id), Some(&saas.token), None).await;
    assert_eq!((r.status, r.body["hostname"].as_str()), (200, Some("shop.brand.example")), "{r:?}");
}

// --- SQLite ---------------------------------------------------------------------------

// --- lists by cursor ----------------------------------------------------------------

/// A walk by cursor sees every hostname that lives through it exactly once,
/// in order, while hostnames are created and deleted behind and ahead of it.
async fn cursor_walk(store: Store) {
    let api = Api::start(store, Arc::new(FakeDns::default())).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    let mut ids = std::collections::BTreeMap::new();
    for n in 0..40 {
        let host = format!("h{n:02}.brand.example");
        let r = create(&api, "acct-saas", &saas.token, &host).await;
        assert_eq!(r.status, 201, "{r:?}");
        ids.insert(host, r.body["id"].as_str().unwrap().to_string());
    }
    let base = "/v1/accounts/acct-saas/custom_hostnames";
    for descending in [false, true] {
        let direction = if descending { "desc" } else { "asc" };
        let mut survivors: Vec<String> = ids.keys().cloned().collect();
        let mut seen: Vec<String> = Vec::new();
        let mut query = format!("?per_page=7&direction={direction}");
        for round in 0.. {
            let r = api.call("GET", &format!("{base}{query}"), Some(&saas.token), None).await;
            assert_eq!(r.status, 200, "{r:?}");
            seen.extend(r.body["result"].as_array().unwrap().iter().map(|h| h["hostname"].as_str().unwrap().into()));
            let after = r.body["result_info"]["cursors"]["after"].as_str().map(String::from);
            // Behind and ahead of the walk: one deleted, one created each.
            let doomed = if round % 2 == 0 { survivors.first() } else { survivors.last() }.cloned();
            if let Some(doomed) = doomed {
                let id = ids.remove(&doomed).unwrap();
                let r = api.call("DELETE", &hostname_path("acct-saas", &id), Some(&saas.token), None).await;
                assert_eq!(r.status, 204, "{r:?}");
                survivors.retain(|h| *h != doomed);
            }
            let new = format!("{}{direction}{round}.brand.example", if round % 2 == 0 { "a" } else { "z" });
            let r = create(&api, "acct-saas", &saas.token, &new).await;
            assert_eq!(r.status, 201, "{r:?}");
            ids.insert(new, r.body["id"].as_str().unwrap().to_string());
            let Some(after) = after else { break };
            query = format!("?per_page=7&direction={direction}&cursor={after}");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "in order ({direction})");
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "none twice ({direction}): {seen:?}");
        for host in &survivors {
            assert!(seen.contains(host), "{host} lived through the walk ({direction}) and was not seen: {seen:?}");
        }
    }
    // What a cursor must be, and what goes with it.
    for (query, why) in [
        ("?cursor=not-base64!", "cursor"),
        ("?cursor=Kg", "cursor"),
        ("?cursor=aDAxLmJyYW5kLmV4YW1wbGU&page=2", "page and cursor"),
        ("?direction=up", "direction"),
    ] {
        let r = api.call("GET", &format!("{base}{query}"), Some(&saas.token), None).await;
        assert_eq!((r.status, r.code()), (400, "invalid_query"), "{query}: {r:?}");
        assert!(r.body["errors"].to_string().contains(why), "{query}: {r:?}");
    }
}

async fn sqlite(dir: &Scratch) -> Store {
    Store::open(&dir.sqlite_url()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_auth_on_every_endpoint() {
    let dir = Scratch::new("admin");
    auth_on_every_endpoint(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lifecycle() {
    let dir = Scratch::new("admin");
    lifecycle(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_race_one_hostname_two_accounts() {
    let dir = Scratch::new("admin");
    race(sqlite(&dir).await, sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hostile_input() {
    let dir = Scratch::new("admin");
    hostile(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_keeps_data() {
    let dir = Scratch::new("admin");
    restart(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cursor_walk() {
    let dir = Scratch::new("admin");
    cursor_walk(sqlite(&dir).await).await;
}

// --- PostgreSQL ------------------------------------------------------------------------

/// One server for the API tests, a database each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_api() {
    let pg = Postgres::start();
    let url = pg.create_database("auth").await;
    auth_on_every_endpoint(Store::open(&url).await.unwrap()).await;
    let url = pg.create_database("lifecycle").await;
    lifecycle(Store::open(&url).await.unwrap()).await;
    let url = pg.create_database("hostile").await;
    hostile(Store::open(&url).await.unwrap()).await;
    let url = pg.create_database("race").await;
    race(Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap()).await;
    let url = pg.create_database("restart").await;
    restart(&url).await;
    let url = pg.create_database("cursor").await;
    cursor_walk(Store::open(&url).await.unwrap()).await;
}

/// PostgreSQL restarts under a running API: requests fail with 503 while it
/// is down, and the same pool serves again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_and_recovery() {
    let mut pg = Postgres::start();
    let api = Api::start(Store::open(&pg.url()).await.unwrap(), Arc::new(FakeDns::default())).await;
    let saas = tenant(&api, "acct-saas", "saas.example").await;
    let list = "/v1/accounts/acct-saas/custom_hostnames";
    pg.stop();
    let r = api.call("GET", list, Some(ADMIN), None).await;
    assert_eq!((r.status, r.code()), (503, "store_unavailable"), "{r:?}");
    pg.start_again();
    let r = api.call("GET", list, Some(&saas.token), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(create(&api, "acct-saas", &saas.token, "back.brand.example").await.status, 201);
}
