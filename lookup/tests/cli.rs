//! The operator's command line against a real service: every client
//! subcommand prints the API's JSON, and exits 1 with the API's message on
//! an error.

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::dns;
use support::service::{Lookup, ADMIN_TOKEN, LOOKUP};
use support::Scratch;

fn cli(svc: &Lookup, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(LOOKUP);
    c.args(args).env("CNAME_GUARD_API", format!("http://127.0.0.1:{}", svc.admin_port)).env_remove("CNAME_GUARD_TOKEN");
    if let Some(t) = token {
        c.env("CNAME_GUARD_TOKEN", t);
    }
    c.output().expect("run the cli")
}

fn ok(out: Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn refused(out: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "wanted {needle:?} in {stderr}");
}

#[test]
fn client_subcommands_drive_the_management_api() {
    let dir = Scratch::new("cli");
    let svc = Lookup::start(&dir.sqlite_url(), &["--dns-server", &dns::demo().addr()], &dir.0.join("lookup.log"));
    let admin = Some(ADMIN_TOKEN);

    ok(cli(&svc, admin, &["accounts", "put", "acct-x"]));
    ok(cli(&svc, admin, &["zones", "put", "x.example", "acct-x"]));
    let token = ok(cli(&svc, admin, &["tokens", "create", "acct-x"]));
    let account_token = token["token"].as_str().expect("token").to_string();
    let account = Some(account_token.as_str());

    let h = ok(cli(&svc, account, &["hostnames", "add", "acct-x", "shop.brand.example"]));
    assert_eq!(h["status"], "pending", "{h}");
    let id = h["id"].as_str().expect("id").to_string();
    let list = ok(cli(&svc, account, &["hostnames", "list", "acct-x", "--status", "pending"]));
    assert_eq!(list["result_info"]["total_count"], 1, "{list}");
    assert_eq!(ok(cli(&svc, account, &["hostnames", "show", "acct-x", &id]))["hostname"], "shop.brand.example");
    assert_eq!(ok(cli(&svc, account, &["hostnames", "verify", "acct-x", &id]))["status"], "pending");
    // Certificates: this service issues none (no --acme-directory) and says so.
    let shown = ok(cli(&svc, account, &["hostnames", "show", "acct-x", &id]));
    assert_eq!(shown["ssl"]["status"], "initializing", "{shown}");
    assert!(shown["ssl"]["validation_errors"][0].as_str().is_some_and(|e| e.contains("--acme-directory")), "{shown}");
    assert_eq!(ok(cli(&svc, account, &["certificates", "set-method", "acct-x", &id, "txt"]))["ssl"]["method"], "txt");
    refused(cli(&svc, account, &["certificates", "set-method", "acct-x", &id, "dns"]), "ssl.method");
    refused(cli(&svc, account, &["certificates", "renew", "acct-x", &id]), "only an active custom hostname");
    let www = ok(cli(&svc, account, &["hostnames", "add", "acct-x", "www.brand.example", "--ssl-method", "txt"]));
    assert_eq!(www["ssl"]["method"], "txt", "{www}");
    ok(cli(&svc, account, &["hostnames", "delete", "acct-x", www["id"].as_str().expect("id")]));
    ok(cli(&svc, admin, &["hostnames", "set-status", "acct-x", &id, "blocked"]));
    refused(cli(&svc, account, &["hostnames", "set-status", "acct-x", &id, "active"]), "403");
    ok(cli(&svc, account, &["hostnames", "delete", "acct-x", &id]));

    // The API's errors, with its status and message; exit 1.
    refused(cli(&svc, account, &["hostnames", "add", "acct-x", "bad_host.example"]), "invalid host name");
    refused(cli(&svc, None, &["hostnames", "list", "acct-x"]), "401");
    refused(cli(&svc, account, &["hostnames", "list", "acct-other"]), "404");
    ok(cli(&svc, admin, &["tokens", "revoke", token["id"].as_str().expect("id")]));
    refused(cli(&svc, account, &["hostnames", "list", "acct-x"]), "401");
    refused(cli(&svc, admin, &["accounts", "delete", "acct-x"]), "still has zones");
    ok(cli(&svc, admin, &["zones", "delete", "x.example"]));
    ok(cli(&svc, admin, &["accounts", "delete", "acct-x"]));

    // The token from a file; a missing file and a dead API are named.
    let file = dir.0.join("token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).expect("write");
    ok(cli(
        &svc,
        None,
        &["accounts", "put", "acct-y", "--suspended", "true", "--token-file", file.to_str().expect("utf-8")],
    ));
    refused(
        cli(&svc, None, &["accounts", "put", "acct-y", "--token-file", "/nonexistent"]),
        "--token-file /nonexistent",
    );
    let out =
        Command::new(LOOKUP).args(["accounts", "put", "acct-y", "--api", "http://127.0.0.1:1"]).output().expect("run");
    refused(out, "127.0.0.1:1");
    let out = Command::new(LOOKUP).args(["zones", "put", "x.example"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "a missing argument is a usage error");
}

#[test]
fn a_bad_audit_retention_is_refused_naming_the_flag() {
    for (flag, env) in [(Some("90"), None), (Some("10m"), None), (None, Some("soon"))] {
        let mut c = Command::new(LOOKUP);
        c.args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        if let Some(value) = flag {
            c.args(["--audit-retention", value]);
        }
        if let Some(value) = env {
            c.env("CNAME_GUARD_AUDIT_RETENTION", value);
        }
        let out = c.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag:?} {env:?}: {stderr}");
        assert!(stderr.contains("--audit-retention"), "{flag:?} {env:?}: {stderr}");
    }
}
