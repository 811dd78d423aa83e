//! The background verifier on SQLite and a real PostgreSQL: backoff,
//! time-out, moved and back, DNS failures, and two replicas sharing rounds.

mod support;

use cname_guard_lookup::store::{now, Actor, Status, Store};
use cname_guard_lookup::verifier::{Round, Verifier, VerifierConfig};
use std::sync::Arc;
use support::api::FakeDns;
use support::postgres::Postgres;
use support::Scratch;

const MIN: i64 = 60;
const DAY: i64 = 24 * 60 * MIN;

async fn seeded(store: &Store) {
    store.put_account(&Actor::Admin, "acct-saas", false).await.unwrap();
    store.put_account(&Actor::Admin, "acct-other", false).await.unwrap();
    store.put_zone(&Actor::Admin, "saas.example", "acct-saas").await.unwrap();
    store.put_zone(&Actor::Admin, "other.example", "acct-other").await.unwrap();
}

/// A pending hostname of acct-saas; its id and token.
async fn pending(store: &Store, host: &str) -> (String, String) {
    let token = Store::new_verification_token().unwrap();
    let h = store.create_hostname(&Actor::Admin, "acct-saas", host, &token, Status::Pending, &[]).await.unwrap();
    (h.id, token)
}

async fn status(store: &Store, id: &str) -> Status {
    store.hostname("acct-saas", id).await.unwrap().expect("hostname").status
}

fn verifier(store: &Store, dns: &Arc<FakeDns>, owner: &str) -> Verifier {
    Verifier::new(store.clone(), dns.clone(), VerifierConfig::default(), owner.into())
}

async fn lifecycle(store: Store) {
    seeded(&store).await;
    let dns = Arc::new(FakeDns::default());
    let v = verifier(&store, &dns, "replica-1");
    let (id, token) = pending(&store, "shop.brand.example").await;
    let t0 = now();

    // Due at once; unproven stays pending, then waits out the backoff.
    let r = v.round(t0).await.unwrap();
    assert_eq!(r, Round { checked: 1, ..Round::default() });
    assert_eq!(status(&store, &id).await, Status::Pending);
    assert_eq!(v.round(t0 + 30).await.unwrap().checked, 0, "checked again inside the backoff");

    // The TXT record appears: active at the next due round.
    dns.set_txt("_cname-guard.shop.brand.example", &[&token]);
    let r = v.round(t0 + MIN).await.unwrap();
    assert_eq!((r.checked, r.changed), (1, 1));
    assert_eq!(status(&store, &id).await, Status::Active);

    // Active is re-checked every 5 minutes, not before.
    assert_eq!(v.round(t0 + 2 * MIN).await.unwrap().checked, 0);

    // A DNS failure changes nothing, and is counted.
    dns.set_txt("_cname-guard.shop.brand.example", &[]);
    dns.fail(true);
    let r = v.round(t0 + 7 * MIN).await.unwrap();
    assert_eq!((r.checked, r.dns_failures, r.changed), (1, 1, 0));
    assert_eq!(v.dns_failures_total(), 1);
    assert_eq!(status(&store, &id).await, Status::Active);
    dns.fail(false);

    // Moved away: into another account's zone, no TXT.
    dns.set_chain("shop.brand.example", &["x.other.example"]);
    let r = v.round(t0 + 9 * MIN).await.unwrap();
    assert_eq!((r.checked, r.changed), (1, 1));
    assert_eq!(status(&store, &id).await, Status::Moved);
    let h = store.hostname("acct-saas", &id).await.unwrap().unwrap();
    assert!(h.verification_errors[1].contains("(it CNAMEs to x.other.example)"), "{:?}", h.verification_errors);

    // Pointed back: active again.
    dns.set_chain("shop.brand.example", &["edge.saas.example"]);
    v.round(t0 + 15 * MIN).await.unwrap();
    assert_eq!(status(&store, &id).await, Status::Active);

    let reasons: Vec<_> = store
        .audit_of("hostname:shop.brand.example")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "hostname.status")
        .map(|e| (e.actor, e.reason.split(':').next().unwrap_or("").to_string()))
        .collect();
    let v = |s: &str| ("verifier".to_string(), s.to_string());
    assert_eq!(reasons, [v("pending -> active"), v("active -> moved"), v("moved -> active")]);

    // Blocked hostnames are left to the operator.
    let (blocked, _) = pending(&store, "b.brand.example").await;
    let block = cname_guard_lookup::store::StatusChange {
        from: Status::Pending,
        to: Status::Blocked,
        verification_errors: vec![],
        reason: "operator".into(),
    };
    store.change_status(&Actor::Admin, "acct-saas", &blocked, &block).await.unwrap().unwrap();
    dns.set_chain("b.brand.example", &["edge.saas.example"]);
    verifier(&store, &dns, "replica-1").round(t0 + DAY).await.unwrap();
    assert_eq!(status(&store, &blocked).await, Status::Blocked);
    assert_eq!(dns.checks_of("b.brand.example"), 0);
}

async fn times_out(store: Store) {
    seeded(&store).await;
    let dns = Arc::new(FakeDns::default());
    let v = verifier(&store, &dns, "replica-1");
    let (id, _) = pending(&store, "late.brand.example").await;
    let t0 = now();
    v.round(t0 + 6 * DAY).await.unwrap();
    assert_eq!(status(&store, &id).await, Status::Pending);
    v.round(t0 + 7 * DAY + MIN).await.unwrap();
    assert_eq!(status(&store, &id).await, Status::TimedOut);
    let last = store.audit_of("hostname:late.brand.example").await.unwrap().pop().unwrap();
    assert!(last.reason.starts_with("pending -> timed_out: pending for longer than 604800s"), "{last:?}");
    // Timed out is not re-checked.
    dns.set_chain("late.brand.example", &["edge.saas.example"]);
    assert_eq!(v.round(t0 + 8 * DAY).await.unwrap().checked, 0);
}

/// Two replicas, one round: every hostname checked once, by one of them.
async fn replicas(one: Store, two: Store) {
    seeded(&one).await;
    let dns = Arc::new(FakeDns::default());
    let hosts: Vec<String> = (0..20).map(|n| format!("h{n}.brand.example")).collect();
    for h in &hosts {
        pending(&one, h).await;
        dns.set_chain(h, &["edge.saas.example"]);
    }
    let (a, b) = (verifier(&one, &dns, "replica-1"), verifier(&two, &dns, "replica-2"));
    let t = now();
    let (ra, rb) = tokio::join!(a.round(t), b.round(t));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.checked + rb.checked, 20, "{ra:?} {rb:?}");
    assert_eq!(ra.changed + rb.changed, 20);
    for h in &hosts {
        assert_eq!(dns.checks_of(h), 1, "{h} checked twice");
        let audit = one.audit_of(&format!("hostname:{h}")).await.unwrap();
        assert_eq!(audit.iter().filter(|e| e.action == "hostname.status").count(), 1);
    }
    // A lease held by a replica that died keeps others off until it expires.
    let (id, _) = pending(&one, "lease.brand.example").await;
    let claimed = one.claim_due("dead-replica", t, 120, 100).await.unwrap();
    assert_eq!(claimed.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!(b.round(t + 60).await.unwrap().checked, 0);
    assert_eq!(b.round(t + 121).await.unwrap().checked, 1);
    assert!(!one.finish_check("dead-replica", &id, t + 130, t + 400, None).await.unwrap(), "a lost lease wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lifecycle() {
    let dir = Scratch::new("verifier");
    lifecycle(Store::open(&dir.sqlite_url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_times_out() {
    let dir = Scratch::new("verifier");
    times_out(Store::open(&dir.sqlite_url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_replicas() {
    let dir = Scratch::new("verifier");
    replicas(Store::open(&dir.sqlite_url()).await.unwrap(), Store::open(&dir.sqlite_url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verifier() {
    let pg = Postgres::start();
    lifecycle(Store::open(&pg.create_database("lifecycle").await).await.unwrap()).await;
    times_out(Store::open(&pg.create_database("timeout").await).await.unwrap()).await;
    let url = pg.create_database("replicas").await;
    replicas(Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap()).await;
}
