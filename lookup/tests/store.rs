//! The store against SQLite and a real PostgreSQL: every table, the audit
//! log, the import, restarts, and two replicas on one database.

mod support;

use cname_guard_lookup::retention::{AuditPruner, RetentionConfig};
use cname_guard_lookup::store::{
    import_registry, Actor, HostnameFilter, ImportError, Status, StatusChange, Store, StoreError, Upsert,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::postgres::Postgres;
use support::Scratch;

async fn seeded(store: &Store) {
    let admin = Actor::Admin;
    assert_eq!(store.put_account(&admin, "acct-saas", false).await.unwrap(), Upsert::Created);
    assert_eq!(store.put_account(&admin, "acct-other", false).await.unwrap(), Upsert::Created);
    assert_eq!(store.put_zone(&admin, "saas.example", "acct-saas").await.unwrap(), Upsert::Created);
    assert_eq!(store.put_zone(&admin, "other.example", "acct-other").await.unwrap(), Upsert::Created);
}

async fn create(store: &Store, account: &str, host: &str) -> Result<String, StoreError> {
    let token = Store::new_verification_token()?;
    let actor = Actor::Admin;
    store.create_hostname(&actor, account, host, &token, Status::Pending, &["no proof yet".into()]).await.map(|h| h.id)
}

/// Everything a store does, on whichever backend.
async fn tables(store: &Store) {
    seeded(store).await;
    let admin = Actor::Admin;

    // Accounts: an unchanged PUT writes nothing; a change is audited.
    assert_eq!(store.put_account(&admin, "acct-saas", false).await.unwrap(), Upsert::Unchanged);
    assert_eq!(store.put_account(&admin, "acct-saas", true).await.unwrap(), Upsert::Updated);
    assert_eq!(store.account("acct-saas").await.unwrap(), Some(true));
    assert_eq!(store.account("nobody").await.unwrap(), None);
    let history = store.audit_of("account:acct-saas").await.unwrap();
    let actions: Vec<_> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["account.create", "account.update"]);
    assert_eq!(history[1].actor, "admin");
    assert_eq!(history[1].reason, "suspended=true");

    // Zones: the longest zone wins; an unknown account is refused.
    store.put_zone(&admin, "eu.saas.example", "acct-other").await.unwrap();
    assert_eq!(store.zone_owner("edge.saas.example").await.unwrap().as_deref(), Some("acct-saas"));
    assert_eq!(store.zone_owner("x.eu.saas.example").await.unwrap().as_deref(), Some("acct-other"));
    assert_eq!(store.zone_owner("nowhere.example").await.unwrap(), None);
    assert!(matches!(store.put_zone(&admin, "z.example", "ghost").await, Err(StoreError::NotFound("account"))));

    // Hostnames: one hostname, one account.
    let id = create(store, "acct-saas", "shop.brand.example").await.unwrap();
    assert!(matches!(create(store, "acct-other", "shop.brand.example").await, Err(StoreError::Conflict(_))));
    assert!(matches!(create(store, "acct-saas", "shop.brand.example").await, Err(StoreError::Conflict(_))));
    assert!(matches!(create(store, "ghost", "x.brand.example").await, Err(StoreError::NotFound("account"))));
    let h = store.hostname("acct-saas", &id).await.unwrap().expect("stored");
    assert_eq!((h.hostname.as_str(), h.status), ("shop.brand.example", Status::Pending));
    assert_eq!(h.verification_errors, ["no proof yet"]);
    assert_eq!(h.verification_token.len(), 32);
    assert!(store.hostname("acct-other", &id).await.unwrap().is_none(), "another account's hostname is visible");

    // Values are bound, never spliced: metacharacters are just bytes.
    assert!(store.hostname("acct-saas", "' OR '1'='1").await.unwrap().is_none());
    assert!(store.hostname_by_name("x' OR 1=1; --").await.unwrap().is_none());

    // Listing: filters and pages.
    for n in 0..5 {
        create(store, "acct-saas", &format!("h{n}.brand.example")).await.unwrap();
    }
    let page = |hostname: Option<&str>, status, page, per_page| HostnameFilter {
        hostname: hostname.map(str::to_string),
        status,
        page,
        per_page,
        descending: false,
    };
    let all = store.list_hostnames("acct-saas", &page(None, None, 1, 4)).await.unwrap();
    assert_eq!((all.total_count, all.result.len()), (6, 4));
    assert_eq!(all.result[0].hostname, "h0.brand.example");
    let second = store.list_hostnames("acct-saas", &page(None, None, 2, 4)).await.unwrap();
    assert_eq!(second.result.len(), 2);
    let one = store.list_hostnames("acct-saas", &page(Some("shop.brand.example"), None, 1, 20)).await.unwrap();
    assert_eq!((one.total_count, one.result[0].id.as_str()), (1, id.as_str()));
    let active = store.list_hostnames("acct-saas", &page(None, Some(Status::Active), 1, 20)).await.unwrap();
    assert_eq!(active.total_count, 0);
    assert_eq!(store.list_hostnames("acct-other", &page(None, None, 1, 20)).await.unwrap().total_count, 0);

    // Status changes are compare-and-set and audited with their reason.
    let to_active = StatusChange {
        from: Status::Pending,
        to: Status::Active,
        verification_errors: vec![],
        reason: "CNAME into saas.example".into(),
    };
    let h = store.change_status(&Actor::Verifier, "acct-saas", &id, &to_active).await.unwrap().expect("changed");
    assert_eq!(h.status, Status::Active);
    assert!(h.verification_errors.is_empty());
    assert!(store.change_status(&Actor::Verifier, "acct-saas", &id, &to_active).await.unwrap().is_none());
    let last = store.audit_of("hostname:shop.brand.example").await.unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.action.as_str()), ("verifier", "hostname.status"));
    assert_eq!(last.reason, "pending -> active: CNAME into saas.example");

    // An account with zones or hostnames is not deleted; its tokens go with it.
    let refused = store.delete_account(&admin, "acct-other").await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(matches!(store.delete_hostname(&admin, "acct-other", &id).await, Err(StoreError::NotFound(_))));
    store.delete_hostname(&admin, "acct-saas", &id).await.unwrap();
    assert!(store.hostname_by_name("shop.brand.example").await.unwrap().is_none());
    store.put_account(&admin, "acct-empty", false).await.unwrap();
    let token = store.issue_token(&admin, "acct-empty").await.unwrap();
    store.delete_account(&admin, "acct-empty").await.unwrap();
    assert_eq!(store.authenticate(&token.token).await.unwrap(), None);
    assert!(matches!(store.delete_account(&admin, "acct-empty").await, Err(StoreError::NotFound(_))));
}

async fn tokens(store: &Store) {
    seeded(store).await;
    let admin = Actor::Admin;
    let issued = store.issue_token(&admin, "acct-saas").await.unwrap();
    let (id, secret) = issued.token.split_once('.').unwrap();
    assert_eq!(id, issued.id);
    let owner = store.authenticate(&issued.token).await.unwrap().expect("valid token");
    assert_eq!((owner.account.as_str(), owner.token_id.as_str()), ("acct-saas", id));

    // Wrong secret, malformed, injected: all simply not a token.
    let mut wrong = secret.to_string().into_bytes();
    wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
    let wrong = format!("{id}.{}", String::from_utf8(wrong).unwrap());
    for bad in [wrong.as_str(), "", ".", id, "' OR '1'='1.x", &format!("{id}.")] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?} accepted");
    }
    assert!(matches!(store.issue_token(&admin, "ghost").await, Err(StoreError::NotFound("account"))));

    store.revoke_token(&admin, id).await.unwrap();
    assert_eq!(store.authenticate(&issued.token).await.unwrap(), None);
    assert!(matches!(store.revoke_token(&admin, id).await, Err(StoreError::NotFound("token"))));
    let audit = store.audit_of(&format!("token:{id}")).await.unwrap();
    assert_eq!(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["token.issue", "token.revoke"]);
}

const REGISTRY: &str = r#"{
  "ttl": 60,
  "accounts": { "acct-saas": {}, "acct-client": {}, "acct-frozen": { "suspended": true } },
  "zones": { "saas.example": "acct-saas", "myclientsite.com": "acct-client", "frozen.example": "acct-frozen" },
  "custom_hostnames": {
    "acct-saas": { "shop.customer.example": "active", "pending.customer.example": "pending",
                   "blocked.customer.example": "blocked" }
  }
}"#;

async fn import(store: &Store) {
    let first = import_registry(store, REGISTRY.as_bytes()).await.unwrap();
    assert_eq!((first.accounts_created, first.zones_created, first.hostnames_created), (3, 3, 3));
    let again = import_registry(store, REGISTRY.as_bytes()).await.unwrap();
    assert_eq!(again, Default::default(), "a re-import changed something");
    assert_eq!(store.account("acct-frozen").await.unwrap(), Some(true));
    assert_eq!(store.zone_owner("www.myclientsite.com").await.unwrap().as_deref(), Some("acct-client"));
    let shop = store.hostname_by_name("shop.customer.example").await.unwrap().unwrap();
    assert_eq!((shop.account.as_str(), shop.status), ("acct-saas", Status::Active));

    // A changed status is applied, and audited as an import.
    let moved = REGISTRY.replace(r#""shop.customer.example": "active""#, r#""shop.customer.example": "moved""#);
    assert_eq!(import_registry(store, moved.as_bytes()).await.unwrap().hostnames_changed, 1);
    let last = store.audit_of("hostname:shop.customer.example").await.unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.reason.as_str()), ("import", "active -> moved: imported"));

    // Refused whole: one bad entry and nothing of the file is stored.
    let bad = r#"{"accounts": {"acct-new": {}, "bad/id": {}}, "zones": {"new.example": "acct-new", "Up.example": "acct-new",
                 "x.example": "ghost"}, "custom_hostnames": {"acct-new": {"a.example": "weird", "b..example": "active"}}}"#;
    let Err(ImportError::Invalid(problems)) = import_registry(store, bad.as_bytes()).await else {
        panic!("bad file imported");
    };
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("zones[\"x.example\"]: unknown account")), "{problems:?}");
    assert_eq!(store.account("acct-new").await.unwrap(), None);

    // A hostname another account holds: the whole file is rolled back.
    let steal = r#"{"accounts": {"acct-thief": {}}, "zones": {"thief.example": "acct-thief"},
                   "custom_hostnames": {"acct-thief": {"shop.customer.example": "active"}}}"#;
    let Err(ImportError::Invalid(problems)) = import_registry(store, steal.as_bytes()).await else {
        panic!("hostname taken from another account");
    };
    assert!(problems[0].contains("already held by account \"acct-saas\""), "{problems:?}");
    assert_eq!(store.account("acct-thief").await.unwrap(), None);
    assert_eq!(store.zone_owner("thief.example").await.unwrap(), None);

    for (file, expect) in [
        ("[]", "expected a JSON object at the top level"),
        (r#"{"accounts": {"a": []}}"#, "accounts[\"a\"]: invalid type: sequence, expected a JSON object"),
        ("{", "EOF"),
        (r#"{"zones": {}, "extra": 1}"#, "unknown field `extra`"),
        (r#"{"records": {}}"#, "DNS serves the records now"),
        (r#"{"accounts": {"a": {"suspended": "yes"}}}"#, "accounts[\"a\"].suspended: invalid type"),
    ] {
        let Err(ImportError::Syntax(m)) = import_registry(store, file.as_bytes()).await else {
            panic!("{file} imported");
        };
        assert!(m.contains(expect), "{file}: {m}");
    }
}

/// Two pools on one database, as two replicas: of two accounts creating
/// one hostname at once exactly one wins, and of two replicas applying one
/// check exactly one writes.
async fn replicas(url: &str) {
    let one = Store::open(url).await.unwrap();
    let two = Store::open(url).await.unwrap();
    seeded(&one).await;
    for round in 0..10 {
        let host = format!("race{round}.brand.example");
        let (a, b) = tokio::join!(create(&one, "acct-saas", &host), create(&two, "acct-other", &host));
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        assert!([a, b].into_iter().any(|r| matches!(r, Err(StoreError::Conflict(_)))));
        // Written through one, read through the other.
        let holder = two.hostname_by_name(&host).await.unwrap().expect("visible to replica two");
        let change = StatusChange {
            from: Status::Pending,
            to: Status::Active,
            verification_errors: vec![],
            reason: "proven".into(),
        };
        let (x, y) = tokio::join!(
            one.change_status(&Actor::Verifier, &holder.account, &holder.id, &change),
            two.change_status(&Actor::Verifier, &holder.account, &holder.id, &change),
        );
        assert_eq!([x.unwrap().is_some(), y.unwrap().is_some()].iter().filter(|w| **w).count(), 1);
        let audit = one.audit_of(&format!("hostname:{host}")).await.unwrap();
        assert_eq!(audit.iter().filter(|e| e.action == "hostname.status").count(), 1, "{audit:?}");
    }
    one.close().await;
    two.close().await;
}

const DAY: Duration = Duration::from_secs(86_400);

/// `n` audit entries written `age` ago, straight into the table as a
/// replica then would have (the id starts with the time in hex
/// nanoseconds), under `hostname:<tag>N.brand.example`.
async fn backdate(url: &str, tag: &str, age: Duration, n: u32) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let then = (SystemTime::now() - age).duration_since(UNIX_EPOCH).expect("after 1970");
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..n {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, subject, reason) \
             VALUES ($1, $2, 'import', 'hostname.create', $3, 'status=pending')",
        )
        .bind(format!("{:024x}{:016x}", then.as_nanos() + u128::from(i), i))
        .bind(then.as_secs() as i64)
        .bind(format!("hostname:{tag}{}.brand.example", i % 4))
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
    pool.close().await;
}

async fn audit_count(store: &Store, tag: &str) -> usize {
    let mut n = 0;
    for i in 0..4 {
        n += store.audit_of(&format!("hostname:{tag}{i}.brand.example")).await.expect("audit").len();
    }
    n
}

/// Audit retention: entries older than the retention are deleted, a batch
/// at a time, and newer ones kept; in the background, by two replicas at
/// once, each entry is deleted (and counted) once.
async fn audit_retention(url: &str) {
    let store = Store::open(url).await.unwrap();
    seeded(&store).await;
    backdate(url, "old", 100 * DAY, 1200).await;
    backdate(url, "recent", 89 * DAY, 5).await;

    // By hand: 90 days, 500 a statement.
    let before = SystemTime::now() - 90 * DAY;
    let batches = [
        store.prune_audit(before, 500).await.unwrap(),
        store.prune_audit(before, 500).await.unwrap(),
        store.prune_audit(before, 500).await.unwrap(),
        store.prune_audit(before, 500).await.unwrap(),
    ];
    assert_eq!(batches, [500, 500, 200, 0]);
    assert_eq!(audit_count(&store, "old").await, 0);
    assert_eq!(audit_count(&store, "recent").await, 5);
    let history = store.audit_of("account:acct-saas").await.unwrap();
    assert_eq!(history.len(), 1, "a new entry was pruned: {history:?}");

    // In the background, two replicas on one database.
    backdate(url, "older", 200 * DAY, 1200).await;
    let other = Store::open(url).await.unwrap();
    let config = RetentionConfig {
        keep: 90 * DAY,
        every: Duration::from_millis(50),
        batch: 100,
        pause: Duration::from_millis(1),
    };
    let one = std::sync::Arc::new(AuditPruner::new(store.clone(), config.clone()));
    let two = std::sync::Arc::new(AuditPruner::new(other.clone(), config));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = |pruner: std::sync::Arc<AuditPruner>| {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            pruner
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let tasks = [run(one.clone()), run(two.clone())];
    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_count(&store, "older").await > 0 {
        assert!(Instant::now() < deadline, "old entries still there: {}", audit_count(&store, "older").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    for task in tasks {
        task.await.expect("pruner");
    }
    assert_eq!(one.pruned_total() + two.pruned_total(), 1200, "{} + {}", one.pruned_total(), two.pruned_total());
    assert_eq!(audit_count(&store, "recent").await, 5);
    assert_eq!(store.audit_of("account:acct-saas").await.unwrap().len(), 1);
    other.close().await;
    store.close().await;
}

// --- SQLite -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tables() {
    let dir = Scratch::new("store");
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    tables(&store).await;
    assert!(dir.0.join("store.db-wal").exists(), "SQLite is not in WAL mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tokens() {
    let dir = Scratch::new("store");
    tokens(&Store::open(&dir.sqlite_url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_import() {
    let dir = Scratch::new("store");
    import(&Store::open(&dir.sqlite_url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_pools_on_one_file() {
    let dir = Scratch::new("store");
    replicas(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_data_across_restart() {
    let dir = Scratch::new("store");
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    seeded(&store).await;
    let id = create(&store, "acct-saas", "shop.brand.example").await.unwrap();
    store.close().await;
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    assert_eq!(store.hostname("acct-saas", &id).await.unwrap().unwrap().hostname, "shop.brand.example");
    assert_eq!(store.audit_of("hostname:shop.brand.example").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_retention() {
    let dir = Scratch::new("store");
    audit_retention(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_refused() {
    assert!(matches!(Store::open("mysql://x").await, Err(StoreError::Url(_))));
    let e = Store::open("sqlite:/nonexistent-dir/x/store.db").await.err().expect("opened a file in a missing dir");
    assert!(matches!(e, StoreError::Database(_)), "{e}");
}

// --- PostgreSQL ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_tokens_import() {
    let pg = Postgres::start();
    let store = Store::open(&pg.url()).await.unwrap();
    tables(&store).await;
    // One database each keeps the three runs apart.
    tokens(&Store::open(&pg.create_database("tokens").await).await.unwrap()).await;
    import(&Store::open(&pg.create_database("import").await).await.unwrap()).await;
    audit_retention(&pg.create_database("retention").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas() {
    let pg = Postgres::start();
    replicas(&pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_data_across_restart() {
    let mut pg = Postgres::start();
    let store = Store::open(&pg.url()).await.unwrap();
    seeded(&store).await;
    let id = create(&store, "acct-saas", "shop.brand.example").await.unwrap();
    store.close().await;
    pg.stop();
    pg.start_again();
    let store = Store::open(&pg.url()).await.unwrap();
    assert_eq!(store.hostname("acct-saas", &id).await.unwrap().unwrap().hostname, "shop.brand.example");
    // Migrations already applied are not applied again.
    assert_eq!(store.put_account(&Actor::Admin, "acct-saas", false).await.unwrap(), Upsert::Unchanged);
}
