//! Two `serve` processes on one PostgreSQL, with real BIND: what one
//! replica writes the other serves; two accounts racing for one hostname
//! through the two get exactly one 201; the two verifiers share rounds (one
//! check per hostname per round) and write each transition once.

mod support;

use cname_guard_lookup::store::Store;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::api::{call, Reply, ADMIN};
use support::dns::{wait, Bind};
use support::postgres::Postgres;
use support::{zone, Scratch};

const LOOKUP: &str = env!("CARGO_BIN_EXE_cname-guard-lookup");
/// How often the verifiers re-check a pending hostname here.
const PENDING_EVERY: Duration = Duration::from_secs(1);

/// One `serve` process, killed on drop (and with the test process).
struct Replica {
    child: Child,
    lookup: SocketAddr,
    admin: SocketAddr,
    _dir: Scratch,
}

impl Replica {
    fn start(database: &str, dns: &str, name: &str) -> Replica {
        let dir = Scratch::new(name);
        let log = std::fs::File::create(dir.0.join("stderr.log")).expect("log file");
        let mut cmd = Command::new(LOOKUP);
        cmd.args(["serve", "--database", database, "--dns-server", dns])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--verify-tick", "200ms"])
            .args(["--verify-pending-backoff", &format!("1h={}s", PENDING_EVERY.as_secs())])
            .env("CNAME_GUARD_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the replica dies with the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start cname-guard-lookup serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut lookup, mut admin) = (None, None);
        while lookup.is_none() || admin.is_none() {
            let mut line = String::new();
            // EOF (nothing read) if the service exits instead of listening.
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let log = std::fs::read_to_string(dir.0.join("stderr.log")).unwrap_or_default();
                panic!("{name} exited before listening:\n{log}");
            }
            if let Some(a) = line.trim().strip_prefix("admin listening on ") {
                admin = a.parse().ok();
            } else if let Some(a) = line.trim().strip_prefix("listening on ") {
                lookup = a.parse().ok();
            }
        }
        let (lookup, admin) = (lookup.expect("lookup address"), admin.expect("admin address"));
        Replica { child, lookup, admin, _dir: dir }
    }

    async fn api(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Reply {
        call(self.admin, method, path, Some(token), body).await
    }

    async fn ownership(&self, host: &str) -> Reply {
        call(self.lookup, "GET", &format!("/v1/ownership?host={host}"), None, None).await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bind() -> Bind {
    let brand = zone("brand.example", "custom IN CNAME edge.saas.example.\nshop IN A 192.0.2.10\n");
    let saas = zone("saas.example", "edge IN A 192.0.2.1\n");
    let other = zone("other.example", "x IN A 192.0.2.2\n");
    Bind::start(&[("brand.example", &brand), ("saas.example", &saas), ("other.example", &other)])
}

/// An account with its zone, through `replica`; its token.
async fn tenant(replica: &Replica, account: &str, zone: &str) -> String {
    let r = replica.api("PUT", &format!("/v1/accounts/{account}"), ADMIN, Some(&json!({"suspended": false}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = replica.api("PUT", &format!("/v1/zones/{zone}"), ADMIN, Some(&json!({"account": account}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = replica.api("POST", &format!("/v1/accounts/{account}/tokens"), ADMIN, None).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["token"].as_str().expect("token").to_string()
}

async fn create(replica: &Replica, account: &str, token: &str, host: &str) -> Reply {
    let path = format!("/v1/accounts/{account}/custom_hostnames");
    replica.api("POST", &path, token, Some(&json!({"hostname": host}))).await
}

fn txt_questions(bind: &Bind, name: &str) -> usize {
    bind.queries().iter().filter(|q| q.contains(&format!("query: {name} IN TXT"))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres() {
    let pg = Postgres::start();
    let bind = bind();
    let (one, two) =
        (Replica::start(&pg.url(), &bind.addr(), "replica-1"), Replica::start(&pg.url(), &bind.addr(), "replica-2"));
    let saas = tenant(&one, "acct-saas", "saas.example").await;
    let other = tenant(&two, "acct-other", "other.example").await;

    // Created through replica 1 (active at once: its CNAME is the proof),
    // answered by replica 2 on both of its listeners.
    let r = create(&one, "acct-saas", &saas, "custom.brand.example").await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("active")), "{r:?}");
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = two.ownership("custom.brand.example").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((&r.body["target_account"], &r.body["custom_hostname"]), (&json!("acct-saas"), &json!("active")));
    let r = two.api("GET", &format!("/v1/accounts/acct-saas/custom_hostnames/{id}"), &saas, None).await;
    assert_eq!((r.status, &r.body["hostname"]), (200, &json!("custom.brand.example")));

    // Two accounts, one hostname, one request through each replica at once:
    // exactly one 201, the other 409. Many races at the same time.
    let mut races = Vec::new();
    for i in 0..20 {
        let host = format!("race{i}.brand.example");
        let (a, b) = ((one.admin, saas.clone(), host.clone()), (two.admin, other.clone(), host));
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
    // interval, not once per replica. Four checks take three intervals.
    let r = create(&one, "acct-saas", &saas, "shop.brand.example").await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("pending")), "{r:?}");
    let token = r.body["ownership_verification"]["value"].as_str().expect("token").to_string();
    let txt = "_cname-guard.shop.brand.example";
    let start = (Instant::now(), txt_questions(&bind, txt));
    wait("four verifier checks", Duration::from_secs(30), || (txt_questions(&bind, txt) >= start.1 + 4).then_some(()));
    let took = start.0.elapsed();
    assert!(took >= PENDING_EVERY * 5 / 2, "4 checks in {took:?}: the replicas did not share the rounds");

    // The TXT record appears: one replica's verifier makes it active, once.
    bind.update("brand.example", &[&format!("update add {txt}. 1 IN TXT \"{token}\"")]);
    let shop = r.body["id"].as_str().expect("id").to_string();
    let path = format!("/v1/accounts/acct-saas/custom_hostnames/{shop}");
    wait("the hostname active on replica 2", Duration::from_secs(30), || {
        let r = futures_block(two.api("GET", &path, &saas, None));
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
