//! The change feed (lookup contract v1.1) against SQLite and a real
//! PostgreSQL: what each change names, paging, resets, the long poll over
//! HTTP, replicas on one database, and concurrent writers.

mod support;

use cname_guard_lookup::api::WithChanges;
use cname_guard_lookup::feed::{Feed, FeedConfig, Query};
use cname_guard_lookup::http::{self, Body};
use cname_guard_lookup::server::{self, Handler};
use cname_guard_lookup::store::{import_registry, Actor, Changes, Status, StatusChange, Store, StoreError, MAX_NAMES};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::api::{raw, Reply};
use support::postgres::Postgres;
use support::service::Lookup;
use support::{dns, Scratch};

const DEADLINE: Duration = Duration::from_secs(20);

fn page(seq: u64, hosts: &[&str], zones: &[&str]) -> Changes {
    Changes::Page {
        seq,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
        certs: Vec::new(),
    }
}

async fn create(store: &Store, account: &str, host: &str, status: Status) -> Result<String, StoreError> {
    let token = Store::new_verification_token()?;
    store.create_hostname(&Actor::Admin, account, host, &token, status, &[]).await.map(|h| h.id)
}

fn change(from: Status, to: Status) -> StatusChange {
    StatusChange { from, to, verification_errors: Vec::new(), reason: "test".into() }
}

/// Every kind of change, each answered with its names under the next seq.
async fn each_kind(store: &Store) {
    let admin = Actor::Admin;
    assert_eq!(store.feed_head().await.unwrap().seq, 0, "a fresh store starts at 0");
    let mut seq = 0;
    // The next seq names exactly these.
    macro_rules! expect {
        ($what:expr, $hosts:expr, $zones:expr) => {{
            seq += 1;
            assert_eq!(store.changes_since(seq - 1).await.unwrap(), page(seq, $hosts, $zones), "{}", $what);
            assert_eq!(store.feed_head().await.unwrap().seq, seq, "{}: one seq", $what);
        }};
    }
    macro_rules! nothing {
        ($what:expr) => {{
            assert_eq!(store.changes_since(seq).await.unwrap(), page(seq, &[], &[]), "{}", $what);
        }};
    }

    // A new account answers for nothing yet.
    store.put_account(&admin, "acct-saas", false).await.unwrap();
    store.put_account(&admin, "acct-other", false).await.unwrap();
    nothing!("accounts created");
    store.put_zone(&admin, "saas.example", "acct-saas").await.unwrap();
    expect!("zone added", &[], &["saas.example"]);
    store.put_zone(&admin, "other.example", "acct-other").await.unwrap();
    expect!("zone added", &[], &["other.example"]);

    let shop = create(store, "acct-saas", "shop.brand.example", Status::Pending).await.unwrap();
    expect!("hostname created", &["shop.brand.example"], &[]);
    let promo = create(store, "acct-other", "promo.brand.example", Status::Pending).await.unwrap();
    expect!("hostname created", &["promo.brand.example"], &[]);

    store.change_status(&admin, "acct-saas", &shop, &change(Status::Pending, Status::Active)).await.unwrap();
    expect!("activated", &["shop.brand.example"], &[]);
    store.change_status(&admin, "acct-saas", &shop, &change(Status::Active, Status::Blocked)).await.unwrap();
    expect!("blocked", &["shop.brand.example"], &[]);
    store.change_status(&admin, "acct-saas", &shop, &change(Status::Blocked, Status::Active)).await.unwrap();
    expect!("unblocked", &["shop.brand.example"], &[]);
    // A compare-and-set that finds another status writes nothing.
    assert!(store
        .change_status(&admin, "acct-saas", &shop, &change(Status::Pending, Status::Active))
        .await
        .unwrap()
        .is_none());
    nothing!("a lost compare-and-set");

    // The verifier: a check that keeps the status, or fails, names nothing.
    let now = cname_guard_lookup::store::now();
    let claimed = store.claim_due("replica-1", now, 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 2, "both hostnames are due: {claimed:?}");
    assert!(store
        .finish_check("replica-1", &shop, now, now + 1, Some(&change(Status::Active, Status::Active)))
        .await
        .unwrap());
    assert!(store.finish_check("replica-1", &promo, now, now + 1, None).await.unwrap());
    nothing!("checks without a transition");
    let claimed = store.claim_due("replica-1", now + 1, 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(store
        .finish_check("replica-1", &shop, now + 1, now + 2, Some(&change(Status::Active, Status::Moved)))
        .await
        .unwrap());
    expect!("verifier: moved", &["shop.brand.example"], &[]);
    assert!(store.finish_check("replica-1", &promo, now + 1, now + 2, None).await.unwrap());
    let claimed = store.claim_due("replica-1", now + 2, 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(store
        .finish_check("replica-1", &shop, now + 2, now + 3, Some(&change(Status::Moved, Status::Active)))
        .await
        .unwrap());
    expect!("verifier: active again", &["shop.brand.example"], &[]);
    assert!(store
        .finish_check("replica-1", &promo, now + 2, now + 3, Some(&change(Status::Pending, Status::TimedOut)))
        .await
        .unwrap());
    expect!("verifier: timed out", &["promo.brand.example"], &[]);

    // Suspension names the account's zones and custom hostnames.
    store.put_account(&admin, "acct-saas", true).await.unwrap();
    expect!("suspended", &["shop.brand.example"], &["saas.example"]);
    store.put_account(&admin, "acct-saas", true).await.unwrap();
    nothing!("an unchanged account");
    store.put_account(&admin, "acct-saas", false).await.unwrap();
    expect!("resumed", &["shop.brand.example"], &["saas.example"]);

    // A zone moving names itself and the custom hostnames of both accounts.
    store.put_zone(&admin, "eu.saas.example", "acct-saas").await.unwrap();
    expect!("zone added under a zone", &["shop.brand.example"], &["eu.saas.example"]);
    store.put_zone(&admin, "eu.saas.example", "acct-other").await.unwrap();
    expect!("zone reassigned", &["promo.brand.example", "shop.brand.example"], &["eu.saas.example"]);
    store.put_zone(&admin, "eu.saas.example", "acct-other").await.unwrap();
    nothing!("an unchanged zone");
    store.delete_zone(&admin, "eu.saas.example").await.unwrap();
    expect!("zone removed", &["promo.brand.example"], &["eu.saas.example"]);

    // Tokens change no answer.
    let token = store.issue_token(&admin, "acct-saas").await.unwrap();
    store.revoke_token(&admin, &token.id).await.unwrap();
    nothing!("tokens");

    store.delete_hostname(&admin, "acct-saas", &shop).await.unwrap();
    expect!("hostname deleted", &["shop.brand.example"], &[]);

    // An import is one transaction: one seq for everything it changed.
    let file = json!({
        "accounts": {"acct-saas": {}, "acct-new": {"suspended": true}},
        "zones": {"saas.example": "acct-saas", "new.example": "acct-new"},
        "custom_hostnames": {"acct-saas": {"a.brand.example": "active"}, "acct-new": {"b.brand.example": "pending"}}
    });
    import_registry(store, file.to_string().as_bytes()).await.unwrap();
    expect!("import", &["a.brand.example", "b.brand.example"], &["new.example"]);
    import_registry(store, file.to_string().as_bytes()).await.unwrap();
    nothing!("a re-import");

    // Several seqs in one answer: the last one is its seq.
    for host in ["c.brand.example", "d.brand.example", "e.brand.example"] {
        create(store, "acct-saas", host, Status::Active).await.unwrap();
    }
    assert_eq!(
        store.changes_since(seq).await.unwrap(),
        page(seq + 3, &["c.brand.example", "d.brand.example", "e.brand.example"], &[])
    );
}

/// Over 1000 names: pages of at most 1000, whole seqs, nothing lost.
async fn paging(store: &Store) {
    let hosts: serde_json::Map<String, Value> =
        (0..2500).map(|n| (format!("h{n:04}.brand.example"), json!("active"))).collect();
    let file = json!({
        "accounts": {"acct-saas": {}},
        "zones": {"saas.example": "acct-saas"},
        "custom_hostnames": {"acct-saas": hosts}
    });
    import_registry(store, file.to_string().as_bytes()).await.unwrap();
    let head = store.feed_head().await.unwrap().seq;
    assert_eq!(head, 3, "2501 names take three seqs of at most {MAX_NAMES}");
    for n in 0..5 {
        create(store, "acct-saas", &format!("late{n}.brand.example"), Status::Active).await.unwrap();
    }
    let mut since = 0;
    let mut seen = Vec::new();
    let mut answers = 0;
    loop {
        let Changes::Page { seq, hosts, zones, .. } = store.changes_since(since).await.unwrap() else {
            panic!("a reset while paging")
        };
        if seq == since {
            break;
        }
        assert!(hosts.len() + zones.len() <= MAX_NAMES, "page of {} names", hosts.len() + zones.len());
        assert!(seq > since);
        seen.extend(hosts);
        seen.extend(zones);
        since = seq;
        answers += 1;
    }
    assert_eq!(since, head + 5);
    assert_eq!(answers, 3, "1000, 1000, then 501 + 5 in one page");
    assert_eq!(seen.len(), 2500 + 1 + 5);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len(), "a name twice");
}

/// `since` beyond the head, or older than what is kept: a reset.
async fn resets(store: &Store) {
    store.put_account(&Actor::Admin, "acct-saas", false).await.unwrap();
    for n in 0..10 {
        create(store, "acct-saas", &format!("h{n}.brand.example"), Status::Active).await.unwrap();
    }
    assert_eq!(store.changes_since(11).await.unwrap(), Changes::Reset { seq: 10 });
    assert_eq!(store.changes_since(u64::MAX).await.unwrap(), Changes::Reset { seq: 10 });
    assert_eq!(store.changes_since(0).await.unwrap().seq(), 10);
    assert_eq!(store.prune_changes(4).await.unwrap(), 6);
    assert_eq!(store.prune_changes(4).await.unwrap(), 6, "pruning is idempotent");
    assert_eq!(store.changes_since(5).await.unwrap(), Changes::Reset { seq: 10 });
    assert_eq!(store.changes_since(0).await.unwrap(), Changes::Reset { seq: 10 });
    assert_eq!(
        store.changes_since(6).await.unwrap(),
        page(10, &["h6.brand.example", "h7.brand.example", "h8.brand.example", "h9.brand.example"], &[])
    );
    assert_eq!(store.changes_since(10).await.unwrap(), page(10, &[], &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_each_kind_paging_resets() {
    for (tag, test) in [("kinds", 0), ("paging", 1), ("resets", 2)] {
        let dir = Scratch::new(&format!("feed-{tag}"));
        let store = Store::open(&dir.sqlite_url()).await.unwrap();
        match test {
            0 => each_kind(&store).await,
            1 => paging(&store).await,
            _ => resets(&store).await,
        }
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_each_kind_paging_resets() {
    let pg = Postgres::start();
    each_kind(&Store::open(&pg.create_database("kinds").await).await.unwrap()).await;
    paging(&Store::open(&pg.create_database("paging").await).await.unwrap()).await;
    resets(&Store::open(&pg.create_database("resets").await).await.unwrap()).await;
}

/// What the lookup listener answers besides the feed.
struct Elsewhere;

impl Handler for Elsewhere {
    async fn handle(&self, _req: Request<Incoming>) -> Response<Body> {
        http::not_found()
    }
}

/// `/v1/changes` on a loopback listener until dropped.
struct FeedServer {
    addr: SocketAddr,
    feed: Arc<Feed>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    async fn start(store: &Store, config: FeedConfig) -> FeedServer {
        let feed = Feed::start(store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handler = Arc::new(WithChanges { feed: feed.clone(), inner: Elsewhere });
        let task = tokio::spawn(server::serve(listener, handler, async {
            let _ = stopped.await;
        }));
        FeedServer { addr, feed, stop: Some(stop), task }
    }

    async fn get(&self, target: &str) -> Reply {
        get(self.addr, target).await
    }

    /// Until `n` long polls wait (no fixed sleep before a write).
    async fn until_waiting(&self, n: usize) {
        let start = Instant::now();
        while self.feed.waiting() != n {
            assert!(start.elapsed() < DEADLINE, "{n} waiters never came (now {})", self.feed.waiting());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    raw(addr, format!("GET {target} HTTP/1.1\r\nhost: lookup\r\nconnection: close\r\n\r\n").as_bytes()).await
}

/// `count` times: a long poll on `srv` from seq `first`, then a hostname
/// written through `writer`; the time from the write to the answer, sorted.
async fn write_to_answer(srv: &FeedServer, writer: &Store, first: u64, count: u64) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for n in 0..count {
        let since = first + n;
        let addr = srv.addr;
        let poll = tokio::spawn(async move {
            let r = get(addr, &format!("/v1/changes?since={since}&wait=20")).await;
            (r, Instant::now())
        });
        srv.until_waiting(1).await;
        let host = format!("h{n}.brand.example");
        create(writer, "acct-saas", &host, Status::Active).await.unwrap();
        let written = Instant::now();
        let (r, answered) = poll.await.unwrap();
        assert_eq!(r.body, json!({"seq": since + 1, "hosts": [host], "zones": []}));
        latencies.push(answered.saturating_duration_since(written));
    }
    latencies.sort();
    latencies
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_long_poll_params_and_failures() {
    let dir = Scratch::new("feed-http");
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    store.put_account(&Actor::Admin, "acct-saas", false).await.unwrap();
    store.put_zone(&Actor::Admin, "saas.example", "acct-saas").await.unwrap();
    let config = FeedConfig { max_waiters: 2, ..FeedConfig::default() };
    let srv = FeedServer::start(&store, config).await;

    // The starting point, then the changes after it.
    let r = srv.get("/v1/changes").await;
    assert_eq!((r.status, &r.body), (200, &json!({"seq": 1, "hosts": [], "zones": []})));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = srv.get("/v1/changes?since=0").await;
    assert_eq!(r.body, json!({"seq": 1, "hosts": [], "zones": ["saas.example"]}));
    let r = srv.get("/v1/changes?since=7").await;
    assert_eq!((r.status, &r.body), (200, &json!({"seq": 1, "reset": true})));
    assert!(r.body.get("hosts").is_none());

    // Bad parameters: 400 with a reason; other methods 405; other paths untouched.
    for bad in ["since=abc", "since=-1", "since=1&since=2", "since=", "since=1&wait=x", "since=99999999999999999999"] {
        let r = srv.get(&format!("/v1/changes?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}: {r:?}");
    }
    let r = raw(
        srv.addr,
        b"POST /v1/changes?since=1 HTTP/1.1\r\nhost: l\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(srv.get("/v1/changes/x").await.status, 404);

    // Nothing after 1: the long poll waits its `wait`, then answers nothing.
    let start = Instant::now();
    let r = srv.get("/v1/changes?since=1&wait=1").await;
    let waited = start.elapsed();
    assert_eq!(r.body, json!({"seq": 1, "hosts": [], "zones": []}));
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(3), "waited {waited:?}");

    // A change lands while it waits: the answer comes at once, not at `wait`.
    let latencies = write_to_answer(&srv, &store, 1, 10).await;
    eprintln!(
        "long poll, write to answer (SQLite, in process): p50 {:.1} ms, max {:.1} ms",
        ms(latencies[5]),
        ms(latencies[9])
    );
    assert!(latencies[9] < Duration::from_millis(500), "{latencies:?}");

    // Beyond `max_waiters` a request is answered at once, with where the feed stands.
    let head = store.feed_head().await.unwrap().seq;
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let addr = srv.addr;
            tokio::spawn(async move { get(addr, &format!("/v1/changes?since={head}&wait=20")).await })
        })
        .collect();
    srv.until_waiting(2).await;
    let start = Instant::now();
    let r = srv.get(&format!("/v1/changes?since={head}&wait=20")).await;
    assert!(start.elapsed() < Duration::from_secs(2), "the third waiter waited");
    assert_eq!(r.body, json!({"seq": head, "hosts": [], "zones": []}));
    create(&store, "acct-saas", "late.brand.example", Status::Active).await.unwrap();
    for p in polls {
        assert_eq!(p.await.unwrap().body, json!({"seq": head + 1, "hosts": ["late.brand.example"], "zones": []}));
    }

    // Shutting down: a long poll answers now rather than hold the drain.
    let addr = srv.addr;
    let poll = tokio::spawn(async move { get(addr, &format!("/v1/changes?since={}&wait=20", head + 1)).await });
    srv.until_waiting(1).await;
    let start = Instant::now();
    let mut srv = srv;
    let _ = srv.stop.take().map(|s| s.send(()));
    let r = poll.await.unwrap();
    assert_eq!(r.body, json!({"seq": head + 1, "hosts": [], "zones": []}));
    assert!(start.elapsed() < Duration::from_secs(2), "the long poll held the shutdown");
    drop(srv);

    // The store gone: 503, which the filter counts as a failed poll.
    let srv = FeedServer::start(&store, FeedConfig::default()).await;
    store.close().await;
    let r = srv.get("/v1/changes?since=1").await;
    assert_eq!((r.status, &r.body["error"]), (503, &json!("store unavailable")), "{r:?}");
    let r = srv.get("/v1/changes").await;
    assert_eq!(r.status, 503);
}

/// Two replicas on one PostgreSQL: a write through one reaches a long poll
/// on the other within 500 ms (the other's poller reads the counter row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_the_sequence() {
    let pg = Postgres::start();
    let url = pg.create_database("replicas").await;
    let one = Store::open(&url).await.unwrap();
    let two = Store::open(&url).await.unwrap();
    one.put_account(&Actor::Admin, "acct-saas", false).await.unwrap();
    let srv_two = FeedServer::start(&two, FeedConfig::default()).await;
    let latencies = write_to_answer(&srv_two, &one, 0, 20).await;
    eprintln!(
        "replica to replica, write to answer (PostgreSQL, 100 ms poll): p50 {:.1} ms, max {:.1} ms",
        ms(latencies[10]),
        ms(latencies[19])
    );
    assert!(latencies[19] < Duration::from_millis(500), "{latencies:?}");
    // Both replicas answer the same sequence.
    assert_eq!(one.changes_since(0).await.unwrap(), two.changes_since(0).await.unwrap());
}

/// Many writers at once on two replicas, a reader following the feed as
/// fast as it can: every change seen once, seqs only rising, none missed.
async fn concurrent_writers(one: Store, two: Store, writers: usize, each: usize) {
    one.put_account(&Actor::Admin, "acct-saas", false).await.unwrap();
    let start = one.feed_head().await.unwrap().seq;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (two.clone(), done.clone());
        tokio::spawn(async move {
            let feed = Feed::start(store, FeedConfig::default());
            let mut since = start;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let query = Query { since: Some(since), wait: Duration::from_millis(200) };
                match feed.changes(query).await.unwrap() {
                    Changes::Page { seq, hosts, zones, .. } => {
                        assert!(seq >= since, "seq went back from {since} to {seq}");
                        assert!(zones.is_empty());
                        seen.extend(hosts);
                        if finished && seq == since {
                            return seen;
                        }
                        since = seq;
                    }
                    Changes::Reset { seq } => panic!("reset at {seq} following from {since}"),
                }
            }
        })
    };
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = if w % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                for n in 0..each {
                    create(&store, "acct-saas", &format!("w{w}-{n}.brand.example"), Status::Active).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = tokio::time::timeout(DEADLINE, reader).await.expect("the reader never caught up").unwrap();
    let expected: BTreeSet<String> =
        (0..writers).flat_map(|w| (0..each).map(move |n| format!("w{w}-{n}.brand.example"))).collect();
    assert_eq!(seen.len(), expected.len(), "some change seen twice or missed");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(one.feed_head().await.unwrap().seq, start + (writers * each) as u64, "a seq skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_writers_never_hide_a_change() {
    let pg = Postgres::start();
    let url = pg.create_database("writers").await;
    concurrent_writers(Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap(), 12, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_never_hide_a_change() {
    let dir = Scratch::new("feed-writers");
    let url = dir.sqlite_url();
    concurrent_writers(Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap(), 4, 25).await;
}

/// Every kind of writer at once on two replicas (creates, status flips,
/// zone moves, suspensions, imports): no deadlock, no error, and a reader
/// following the feed ends at the head having seen every name written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mixed_writers_do_not_deadlock() {
    let pg = Postgres::start();
    let url = pg.create_database("mixed").await;
    let (one, two) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    let admin = Actor::Admin;
    for account in ["acct-a", "acct-b"] {
        one.put_account(&admin, account, false).await.unwrap();
    }
    one.put_zone(&admin, "a.example", "acct-a").await.unwrap();
    let flip = create(&one, "acct-a", "flip.brand.example", Status::Active).await.unwrap();
    create(&one, "acct-b", "stay.brand.example", Status::Active).await.unwrap();
    let start = one.feed_head().await.unwrap().seq;
    const ROUNDS: usize = 25;

    let reader = {
        let store = two.clone();
        tokio::spawn(async move {
            let feed = Feed::start(store.clone(), FeedConfig::default());
            let mut since = start;
            let mut seen = BTreeSet::new();
            let deadline = Instant::now() + DEADLINE;
            // Until the writers are done (the head stops at `end`) and it is reached.
            let end = loop {
                let Changes::Page { seq, hosts, zones, .. } =
                    feed.changes(Query { since: Some(since), wait: Duration::from_millis(200) }).await.unwrap()
                else {
                    panic!("a reset following from {since}");
                };
                assert!(seq >= since);
                seen.extend(hosts);
                seen.extend(zones);
                since = seq;
                // `done` first: once it is there, the head read after it has its seq.
                let done = store.hostname_by_name("done.brand.example").await.unwrap().is_some();
                let head = store.feed_head().await.unwrap().seq;
                if done && head == since {
                    break head;
                }
                assert!(Instant::now() < deadline, "the reader never caught up");
            };
            (seen, end)
        })
    };
    let writers = vec![
        tokio::spawn({
            let s = one.clone();
            async move {
                for n in 0..ROUNDS {
                    create(&s, "acct-a", &format!("new{n}.brand.example"), Status::Pending).await.unwrap();
                }
            }
        }),
        tokio::spawn({
            let s = two.clone();
            async move {
                for n in 0..ROUNDS {
                    let (from, to) =
                        if n % 2 == 0 { (Status::Active, Status::Blocked) } else { (Status::Blocked, Status::Active) };
                    assert!(s
                        .change_status(&Actor::Admin, "acct-a", &flip, &change(from, to))
                        .await
                        .unwrap()
                        .is_some());
                }
            }
        }),
        tokio::spawn({
            let s = one.clone();
            async move {
                for n in 0..ROUNDS {
                    let owner = if n % 2 == 0 { "acct-b" } else { "acct-a" };
                    s.put_zone(&Actor::Admin, "a.example", owner).await.unwrap();
                }
            }
        }),
        tokio::spawn({
            let s = two.clone();
            async move {
                for n in 0..ROUNDS {
                    s.put_account(&Actor::Admin, "acct-b", n % 2 == 0).await.unwrap();
                }
            }
        }),
        tokio::spawn({
            let s = two.clone();
            async move {
                for n in 0..ROUNDS {
                    let file = json!({
                        "accounts": {"acct-c": {}},
                        "zones": {"c.example": "acct-c"},
                        "custom_hostnames": {"acct-c": {format!("imp{n}.brand.example"): "active"}}
                    });
                    import_registry(&s, file.to_string().as_bytes()).await.unwrap();
                }
            }
        }),
    ];
    for w in writers {
        w.await.unwrap();
    }
    create(&one, "acct-a", "done.brand.example", Status::Active).await.unwrap();
    let (seen, end) = tokio::time::timeout(DEADLINE * 2, reader).await.expect("reader").unwrap();
    assert_eq!(end, one.feed_head().await.unwrap().seq);
    let mut expected: BTreeSet<String> = ["flip.brand.example", "stay.brand.example", "done.brand.example"]
        .into_iter()
        .chain(["a.example", "c.example"])
        .map(String::from)
        .collect();
    expected.extend((0..ROUNDS).map(|n| format!("new{n}.brand.example")));
    expected.extend((0..ROUNDS).map(|n| format!("imp{n}.brand.example")));
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(missing.is_empty(), "never in the feed: {missing:?}");
}

/// A raw GET on its own connection, written before the answer is read.
fn open_get(port: u16, target: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let req = format!("GET {target} HTTP/1.1\r\nhost: lookup\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s
}

fn read_answer(mut s: std::net::TcpStream) -> (u16, Value) {
    use std::io::Read;
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The real `serve`: the feed on the lookup listener, fed by the management
/// API, and a long poll that does not hold up SIGTERM.
#[test]
fn serve_answers_the_feed() {
    let dir = Scratch::new("feed-serve");
    let svc = Lookup::start(&dir.sqlite_url(), &["--dns-server", &dns::demo().addr()], &dir.0.join("lookup.log"));
    let (status, body) = svc.get("/v1/changes");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"seq": 0, "hosts": [], "zones": []}))
    );
    assert_eq!(svc.get("/v1/changes?since=x").0, 400);
    assert_eq!(svc.admin("PUT", "/v1/accounts/acct-saas", Some(r#"{"suspended": false}"#)).0, 201);
    assert_eq!(svc.admin("PUT", "/v1/zones/saas.example", Some(r#"{"account": "acct-saas"}"#)).0, 201);

    // Waiting since 1; the API's write answers it (at once if it came first).
    let start = Instant::now();
    let poll = open_get(svc.port, "/v1/changes?since=1&wait=20");
    let body = r#"{"hostname": "shop.brand.example"}"#;
    assert_eq!(svc.admin("POST", "/v1/accounts/acct-saas/custom_hostnames", Some(body)).0, 201, "{}", svc.stderr());
    let (status, answer) = read_answer(poll);
    assert_eq!((status, answer), (200, json!({"seq": 2, "hosts": ["shop.brand.example"], "zones": []})));
    assert!(start.elapsed() < Duration::from_secs(5), "the long poll waited {:?}", start.elapsed());

    // A long poll open at SIGTERM: answered at once, and the service exits
    // well before its 10 s drain. /healthz answered means the poll's
    // connection (opened first) was accepted.
    let poll = open_get(svc.port, "/v1/changes?since=2&wait=30");
    assert_eq!(svc.get("/healthz").0, 200);
    let start = Instant::now();
    svc.stop();
    assert!(start.elapsed() < Duration::from_secs(5), "shutdown took {:?}", start.elapsed());
    assert_eq!(read_answer(poll), (200, json!({"seq": 2, "hosts": [], "zones": []})));
}
