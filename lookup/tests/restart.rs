//! The service across restarts: what the management API stored is served
//! after a restart of the service (SQLite file and PostgreSQL), and a
//! PostgreSQL restart under a running service makes lookups answer 503
//! (the filter's failure mode) for a moment, then serve again by themselves.

mod support;

use std::time::Duration;
use support::dns;
use support::postgres::Postgres;
use support::service::Lookup;
use support::Scratch;

const DEADLINE: Duration = Duration::from_secs(30);

/// Creates acct-x owning x.example through the management API.
fn create_platform(svc: &Lookup) {
    let (status, body) = svc.admin("PUT", "/v1/accounts/acct-x", Some(r#"{"suspended": false}"#));
    assert_eq!(status, 201, "{body}");
    let (status, body) = svc.admin("PUT", "/v1/zones/x.example", Some(r#"{"account": "acct-x"}"#));
    assert_eq!(status, 201, "{body}");
}

fn account_of(svc: &Lookup, host: &str) -> Option<String> {
    let (status, body) = svc.get(&format!("/v1/ownership?host={host}"));
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["account"].as_str().map(String::from)
}

fn survives_a_restart(database: &str, dir: &Scratch) {
    let dns_flag = ["--dns-server", &dns::demo().addr()];
    let log = dir.0.join("lookup.log");
    let svc = Lookup::start(database, &dns_flag, &log);
    assert_eq!(account_of(&svc, "www.x.example"), None);
    create_platform(&svc);
    assert_eq!(account_of(&svc, "www.x.example").as_deref(), Some("acct-x"));
    svc.stop();
    let svc = Lookup::start(database, &dns_flag, &log);
    assert_eq!(account_of(&svc, "www.x.example").as_deref(), Some("acct-x"));
    // Still one account: a second PUT updates, it does not create.
    let (status, _) = svc.admin("PUT", "/v1/accounts/acct-x", Some(r#"{"suspended": false}"#));
    assert_eq!(status, 200);
}

#[test]
fn sqlite_store_survives_a_service_restart() {
    let dir = Scratch::new("restart-sqlite");
    survives_a_restart(&dir.sqlite_url(), &dir);
}

#[test]
fn postgres_store_survives_a_service_restart_and_postgres_restarts() {
    let mut pg = Postgres::start();
    let dir = Scratch::new("restart-pg");
    survives_a_restart(&pg.url(), &dir);

    let svc = Lookup::start(&pg.url(), &["--dns-server", &dns::demo().addr()], &dir.0.join("pg-restart.log"));
    assert_eq!(account_of(&svc, "www.x.example").as_deref(), Some("acct-x"));
    assert_eq!(svc.get("/readyz").0, 200);

    pg.stop();
    // A lookup is a failure (503, "store unavailable"), never a verdict.
    let (status, body) = dns::wait("lookups to fail while PostgreSQL is down", DEADLINE, || {
        let r = svc.get("/v1/ownership?host=www.x.example");
        (r.0 != 200).then_some(r)
    });
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["host"].as_str(), v["error"].as_str()), (Some("www.x.example"), Some("store unavailable")), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    assert_eq!(svc.get("/readyz").0, 503, "not ready without the database");
    assert_eq!(svc.get("/healthz").0, 200, "alive all the same");

    pg.start_again();
    dns::wait("lookups to come back by themselves", DEADLINE, || {
        (account_of(&svc, "www.x.example").as_deref() == Some("acct-x")).then_some(())
    });
    assert_eq!(svc.get("/readyz").0, 200);
    assert!(svc.stderr().contains("store unavailable"), "the outage is logged");
}
