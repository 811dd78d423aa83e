//! Load shedding in the real service, over real BIND and SQLite: lookups past
//! `--max-concurrent-lookups` are answered 503 `overloaded` at once and served
//! again after; a zone whose nameserver never answers holds at most its
//! zone's share of DNS questions while names elsewhere are answered.
//!
//! The dead nameserver is a UDP socket that reads and drops (a fault BIND
//! won't produce), reached through BIND as a forward zone, as the service
//! reaches every nameserver through its resolver.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use support::service::Lookup;
use support::{dns, Scratch};

const DEADLINE: Duration = Duration::from_secs(20);
/// "At once": far below the held lookups' DNS timeout.
const AT_ONCE: Duration = Duration::from_secs(1);

const REGISTRY: &str = r#"{"accounts": {"acct-saas": {}, "acct-client": {}, "acct-slow": {}},
    "zones": {"saas.example": "acct-saas", "myclientsite.com": "acct-client", "slow.test": "acct-slow"}}"#;

/// BIND resolving the demo zones, with `slow.test` forwarded to a
/// nameserver that never answers.
struct SlowZone {
    dead: dns::BadDns,
    bind: dns::Bind,
}

impl SlowZone {
    fn start() -> SlowZone {
        let dead = dns::BadDns::start(dns::Misbehave::Silent);
        let mut zones = Vec::new();
        for zone in ["example", "saas.example", "myclientsite.com", "frozen.example"] {
            let file = dns::demo_zone_dir().join(format!("{zone}.zone"));
            zones.push((zone, std::fs::read_to_string(&file).expect("demo zone file")));
        }
        let refs: Vec<(&str, &str)> = zones.iter().map(|(z, t)| (*z, t.as_str())).collect();
        let bind = dns::Bind::start_resolving(&refs);
        // The kit's named.conf has no forward zones: add one and reload.
        let conf = bind.dir.join("named.conf");
        let forward = format!(
            "zone \"slow.test\" {{ type forward; forward only; forwarders {{ {} port {}; }}; }};\n",
            dead.addr.ip(),
            dead.addr.port()
        );
        let mut text = std::fs::read_to_string(&conf).expect("named.conf");
        text.push_str(&forward);
        std::fs::write(&conf, text).expect("write named.conf");
        let pid = std::fs::read_to_string(bind.dir.join("named.pid")).expect("named.pid");
        let hup = Command::new("kill").args(["-HUP", pid.trim()]).status();
        assert!(hup.is_ok_and(|s| s.success()), "kill -HUP named");
        dns::wait("named to reload its configuration", DEADLINE, || {
            bind.log().contains("reloading configuration succeeded").then_some(())
        });
        SlowZone { dead, bind }
    }

    fn questions_to_the_dead_nameserver(&self) -> usize {
        self.dead.questions.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn service(&self, dir: &Scratch, args: &[&str]) -> Lookup {
        let db = format!("sqlite:{}", dir.path("store.db").display());
        let registry = dir.put("registry.json", REGISTRY);
        let (server, registry) = (self.bind.addr(), registry.to_str().expect("utf-8 path").to_string());
        let mut all = vec!["--dns-server", &server, "--dns-attempts", "1", "--verifier", "off", "--import", &registry];
        all.extend_from_slice(args);
        Lookup::start(&db, &all, &dir.path("stderr.log"))
    }
}

struct Answer {
    status: u16,
    head: String,
    body: serde_json::Value,
    took: Duration,
}

fn get(port: u16, path: &str) -> Answer {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: lookup\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    Answer { status, head: head.to_ascii_lowercase(), body, took }
}

fn lookup(port: u16, host: &str) -> Answer {
    get(port, &format!("/v1/ownership?host={host}"))
}

fn lines(svc: &Lookup, needle: &str) -> usize {
    svc.stderr().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn lookups_past_the_limit_are_shed_at_once_and_served_again_after() {
    let slow = SlowZone::start();
    let dir = Scratch::new("overload");
    let svc = slow.service(&dir, &["--dns-timeout-ms", "3000", "--max-concurrent-lookups", "4"]);
    let port = svc.port;
    std::thread::scope(|scope| {
        // Four lookups held by the dead nameserver: the limit.
        let held: Vec<_> = (0..4).map(|i| scope.spawn(move || lookup(port, &format!("h{i}.slow.test")))).collect();
        dns::wait("4 lookups held at the dead nameserver", DEADLINE, || {
            (slow.questions_to_the_dead_nameserver() >= 4).then_some(())
        });
        for i in 0..8 {
            let r = lookup(port, &format!("extra-{i}.tenants.saas.example"));
            assert_eq!(r.status, 503, "{i}: {}", r.body);
            assert_eq!(r.body["error"], "overloaded", "{i}");
            assert_eq!(r.body["host"], format!("extra-{i}.tenants.saas.example"));
            assert!(r.head.contains("\r\nretry-after: 1"), "{}", r.head);
            assert!(r.took < AT_ONCE, "{i}: shed after {:?}", r.took);
        }
        // ext_authz is a lookup too, answered in its own style.
        let r = get(port, "/ext_authz/");
        assert_eq!(r.status, 503);
        assert!(r.head.contains("\r\nretry-after: 1"), "{}", r.head);
        // Not limited, and honest: the store answers.
        assert_eq!(get(port, "/healthz").status, 200);
        assert_eq!(get(port, "/readyz").status, 200);
        for h in held {
            let r = h.join().expect("held lookup");
            assert_eq!((r.status, r.body["error"].as_str()), (503, Some("dns unavailable")), "{}", r.body);
        }
    });
    assert_eq!(lines(&svc, r#"error="overloaded""#), 9, "{}", svc.stderr());
    // Recovered: the places are free again.
    let r = lookup(port, "custom.myclientsite.com");
    assert_eq!((r.status, &r.body["account"]), (200, &serde_json::json!("acct-client")), "{}", r.body);
    svc.stop();
}

#[test]
fn a_dead_nameserver_holds_only_its_zones_share() {
    let slow = SlowZone::start();
    let dir = Scratch::new("overload");
    let args = ["--dns-timeout-ms", "2000", "--dns-max-in-flight-per-zone", "4"];
    let svc = slow.service(&dir, &args);
    let port = svc.port;
    std::thread::scope(|scope| {
        let flood: Vec<_> = (0..20).map(|i| scope.spawn(move || lookup(port, &format!("f{i}.slow.test")))).collect();
        dns::wait("the zone's 4 questions at the dead nameserver", DEADLINE, || {
            (slow.questions_to_the_dead_nameserver() >= 4).then_some(())
        });
        // Names on BIND, not in any cache, answered while the slow zone is full.
        for i in 0..5 {
            let r = lookup(port, &format!("fresh-{i}.tenants.saas.example"));
            assert_eq!(r.status, 200, "{i}: {}", r.body);
            assert!(r.took < AT_ONCE, "{i}: answered after {:?}", r.took);
        }
        for f in flood {
            let r = f.join().expect("flood lookup");
            assert_eq!((r.status, r.body["error"].as_str()), (503, Some("dns unavailable")), "{}", r.body);
        }
    });
    // 4 questions went out for the zone; the other 16 lookups were refused
    // without asking.
    let refused = lines(&svc, "questions in flight for slow.test");
    assert_eq!(refused, 16, "{}", svc.stderr());
    assert_eq!(lines(&svc, r#"error="dns unavailable""#), 20);
    svc.stop();
}

/// The DNS questions BIND received for `name`.
fn questions(bind: &dns::Bind, name: &str) -> usize {
    bind.queries().iter().filter(|l| l.contains(&format!("query: {name} IN "))).count()
}

#[test]
fn unlisted_hosts_are_refused_from_the_store_without_dns() {
    let bind = dns::Bind::with_zone_dir(&dns::demo_zone_dir());
    let registry = dns::repo().join("envoy/registry.json");
    let registry = registry.to_str().expect("utf-8 path");
    let start = |dir: &Scratch, mode: &str| {
        let db = format!("sqlite:{}", dir.path("store.db").display());
        let args = ["--dns-server", &bind.addr(), "--verifier", "off", "--import", registry, "--unlisted-hosts", mode];
        Lookup::start(&db, &args, &dir.path("stderr.log"))
    };
    let (dir, unlisted) = (Scratch::new("overload"), "custom.brand.example");
    // resolve (the default): the chain is followed, it CNAMEs into acct-saas (1014).
    let svc = start(&dir, "resolve");
    let r = lookup(svc.port, unlisted);
    assert_eq!((r.status, &r.body["target_account"]), (200, &serde_json::json!("acct-saas")), "{}", r.body);
    dns::wait("the questions for the unlisted host", DEADLINE, || (questions(&bind, unlisted) > 0).then_some(()));
    let asked = questions(&bind, unlisted);
    svc.stop();

    let dir = Scratch::new("overload");
    let svc = start(&dir, "refuse");
    for host in [unlisted, "f1.flood.example", "f2.flood.example"] {
        let r = lookup(svc.port, host);
        assert_eq!((r.status, r.body["error"].as_str()), (404, Some("unknown host")), "{host}: {}", r.body);
    }
    // Listed hosts are still asked: a custom hostname off the platform's
    // zones, and a name under a platform zone.
    let r = lookup(svc.port, "shop.customer.example");
    assert_eq!((r.status, &r.body["custom_hostname"]), (200, &serde_json::json!("active")), "{}", r.body);
    assert_eq!(lookup(svc.port, "new-1.tenants.saas.example").status, 200);
    dns::wait("the listed hosts' questions", DEADLINE, || {
        (questions(&bind, "shop.customer.example") > 0 && questions(&bind, "new-1.tenants.saas.example") > 0)
            .then_some(())
    });
    // named logs a question before it answers, and every lookup has its
    // answer: none can still arrive for the refused names.
    assert_eq!(questions(&bind, unlisted), asked, "{:#?}", bind.queries());
    assert_eq!(questions(&bind, "f1.flood.example") + questions(&bind, "f2.flood.example"), 0);
    svc.stop();
}
