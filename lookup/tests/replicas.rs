//! Two `serve` processes on one PostgreSQL, with real BIND: what one
//! replica writes the other serves; two accounts racing for one hostname
//! through the two get exactly one 201; the two verifiers share rounds (one
//! check per hostname per round, counted by a trigger of the test's own and
//! in BIND's query log) and write each transition once.

mod support;

use cname_guard_lookup::store::Store;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::time::Duration;
use support::api::{call, Reply};
use support::dns::{wait, Bind};
use support::postgres::Postgres;
use support::service::{Lookup, ADMIN_TOKEN as ADMIN};
use support::{zone, Scratch};

/// How often the verifiers re-check a pending hostname here (the store keeps
/// whole seconds: each round of checks is a second of its own).
const PENDING_EVERY: Duration = Duration::from_secs(1);

/// A `serve` replica on `database`, its verifier fast.
fn replica(database: &str, dns: &str, dir: &Scratch, name: &str) -> Lookup {
    let backoff = format!("1h={}s", PENDING_EVERY.as_secs());
    let args = ["--dns-server", dns, "--verify-tick", "200ms", "--verify-pending-backoff", &backoff];
    Lookup::start(database, &args, &dir.0.join(format!("{name}.log")))
}

async fn api(replica: &Lookup, method: &str, path: &str, token: &str, body: Option<&Value>) -> Reply {
    call(admin_addr(replica), method, path, Some(token), body).await
}

fn admin_addr(replica: &Lookup) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], replica.admin_port))
}

async fn ownership(replica: &Lookup, host: &str) -> Reply {
    let addr = SocketAddr::from(([127, 0, 0, 1], replica.port));
    call(addr, "GET", &format!("/v1/ownership?host={host}"), None, None).await
}

fn bind() -> Bind {
    let brand = zone("brand.example", "custom IN CNAME edge.saas.example.\nshop IN A 192.0.2.10\n");
    let saas = zone("saas.example", "edge IN A 192.0.2.1\n");
    let other = zone("other.example", "x IN A 192.0.2.2\n");
    Bind::start(&[("brand.example", &brand), ("saas.example", &saas), ("other.example", &other)])
}

/// An account with its zone, through `replica`; its token.
async fn tenant(replica: &Lookup, account: &str, zone: &str) -> String {
    let r = api(replica, "PUT", &format!("/v1/accounts/{account}"), ADMIN, Some(&json!({"suspended": false}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = api(replica, "PUT", &format!("/v1/zones/{zone}"), ADMIN, Some(&json!({"account": account}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = api(replica, "POST", &format!("/v1/accounts/{account}/tokens"), ADMIN, None).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["token"].as_str().expect("token").to_string()
}

async fn create(replica: &Lookup, account: &str, token: &str, host: &str) -> Reply {
    let path = format!("/v1/accounts/{account}/custom_hostnames");
    api(replica, "POST", &path, token, Some(&json!({"hostname": host}))).await
}

fn txt_questions(bind: &Bind, name: &str) -> usize {
    bind.queries().iter().filter(|q| q.contains(&format!("query: {name} IN TXT"))).count()
}

/// Records every check the verifiers finish (a check lease released) in a
/// table of the test's own: the hostname, which replica, and the round
/// (`last_checked_at`, whole seconds).
async fn record_checks(db: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE test_checks (n BIGSERIAL PRIMARY KEY, hostname TEXT NOT NULL, owner TEXT NOT NULL, round BIGINT);
         CREATE FUNCTION test_check() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           INSERT INTO test_checks (hostname, owner, round) VALUES (NEW.hostname, OLD.lease_owner, NEW.last_checked_at);
           RETURN NULL;
         END $$;
         CREATE TRIGGER test_check AFTER UPDATE ON custom_hostnames FOR EACH ROW
           WHEN (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL) EXECUTE FUNCTION test_check();",
    )
    .execute(db)
    .await
    .expect("the checks trigger");
}

/// `host`'s finished checks (replica, round), and whether one is under way.
/// Finished checks of a hostname: the replica and its round.
type Checks = Vec<(String, Option<i64>)>;

async fn checks_of(db: &PgPool, host: &str) -> (Checks, bool) {
    let checks = sqlx::query_as("SELECT owner, round FROM test_checks WHERE hostname = $1 ORDER BY n")
        .bind(host)
        .fetch_all(db)
        .await
        .expect("checks");
    let leased: (bool,) = sqlx::query_as("SELECT lease_owner IS NOT NULL FROM custom_hostnames WHERE hostname = $1")
        .bind(host)
        .fetch_one(db)
        .await
        .expect("lease");
    (checks, leased.0)
}

/// `host`'s finished checks and BIND's TXT questions for `txt`, read while
/// no check is under way (none started or finished between the two reads
/// around the query log), so that the two counts agree.
fn settled(db: &PgPool, bind: &Bind, host: &str, txt: &str) -> Option<(Checks, usize)> {
    let before = futures_block(checks_of(db, host));
    let questions = txt_questions(bind, txt);
    let after = futures_block(checks_of(db, host));
    (!before.1 && before == after).then_some((before.0, questions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres() {
    let pg = Postgres::start();
    let bind = bind();
    let dir = Scratch::new("replicas");
    let (one, two) =
        (replica(&pg.url(), &bind.addr(), &dir, "replica-1"), replica(&pg.url(), &bind.addr(), &dir, "replica-2"));
    let saas = tenant(&one, "acct-saas", "saas.example").await;
    let other = tenant(&two, "acct-other", "other.example").await;

    // Created through replica 1 (active at once: its CNAME is the proof),
    // answered by replica 2 on both of its listeners.
    let r = create(&one, "acct-saas", &saas, "custom.brand.example").await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("active")), "{r:?}");
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = ownership(&two, "custom.brand.example").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((&r.body["target_account"], &r.body["custom_hostname"]), (&json!("acct-saas"), &json!("active")));
    let r = api(&two, "GET", &format!("/v1/accounts/acct-saas/custom_hostnames/{id}"), &saas, None).await;
    assert_eq!((r.status, &r.body["hostname"]), (200, &json!("custom.brand.example")));

    // Two accounts, one hostname, one request through each replica at once:
    // exactly one 201, the other 409. Many races at the same time.
    let mut races = Vec::new();
    for i in 0..20 {
        let host = format!("race{i}.brand.example");
        let (a, b) = ((admin_addr(&one), saas.clone(), host.clone()), (admin_addr(&two), other.clone(), host));
        races.push(tokio::spawn(async move {
            let post = |(addr, token, host): (SocketAddr, String, String), account: &'static str| async move {
                let body = json!({"hostname": host});
                let path = format!("/v1/accounts/{account}/custom_hostnames");
                call(addr, "POST", &path, Some(&token), Some(&body)).await.status
            };
            let (x, y) = tokio::join!(post(a, "acct-saas"), post(b, "acct-other"));
            let mut got = [x, y];
            got.sort();
            got
        }));
    }
    for race in races {
        assert_eq!(race.await.expect("race task"), [201, 409]);
    }

    // A pending hostname: both verifiers run, yet it is checked once per
    // round, not once per replica: every check is in a round of its own, and
    // each is one TXT question to BIND.
    let db = PgPool::connect(&pg.url()).await.expect("connect");
    record_checks(&db).await;
    let r = create(&one, "acct-saas", &saas, "shop.brand.example").await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("pending")), "{r:?}");
    let token = r.body["ownership_verification"]["value"].as_str().expect("token").to_string();
    let (host, txt) = ("shop.brand.example", "_cname-guard.shop.brand.example");
    let start = wait("the verifiers between checks", Duration::from_secs(10), || settled(&db, &bind, host, txt));
    let (checks, questions) = wait("four verifier checks", Duration::from_secs(30), || {
        settled(&db, &bind, host, txt).filter(|(c, _)| c.len() >= start.0.len() + 4)
    });
    let checks = &checks[start.0.len()..];
    let mut rounds: Vec<_> = checks.iter().map(|(_, round)| round.expect("a check's round")).collect();
    rounds.dedup();
    assert_eq!(rounds.len(), checks.len(), "two checks in one round: the replicas did not share it: {checks:?}");
    assert_eq!(questions - start.1, checks.len(), "one TXT question per check: {checks:?}");
    db.close().await;

    // The TXT record appears: one replica's verifier makes it active, once.
    bind.update("brand.example", &[&format!("update add {txt}. 1 IN TXT \"{token}\"")]);
    let shop = r.body["id"].as_str().expect("id").to_string();
    let path = format!("/v1/accounts/acct-saas/custom_hostnames/{shop}");
    wait("the hostname active on replica 2", Duration::from_secs(30), || {
        let r = futures_block(api(&two, "GET", &path, &saas, None));
        (r.body["status"] == "active").then_some(())
    });
    let store = Store::open(&pg.url()).await.expect("store");
    let history = store.audit_of("hostname:shop.brand.example").await.expect("audit");
    let transitions: Vec<_> = history.iter().filter(|e| e.action == "hostname.status").collect();
    assert_eq!(transitions.len(), 1, "{history:?}");
    assert!(transitions[0].reason.starts_with("pending -> active"), "{history:?}");
    store.close().await;
}

/// A future run to completion from inside `wait`'s synchronous poll.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
