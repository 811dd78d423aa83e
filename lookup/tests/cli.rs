//! The operator's command line against a real service: every client
//! subcommand prints the API's JSON (or a table), and exits 1 with the API's
//! message on an error; `verify --wait` and shell completions.

mod support;

use cname_guard_testkit::Proc;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::dns::{self, Bind};
use support::service::{Lookup, ADMIN_TOKEN, LOOKUP};
use support::{zone, Scratch};

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

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cli` with its stdout on a terminal (util-linux `script` gives it one).
fn on_a_terminal(svc: &Lookup, args: &[&str]) -> String {
    let line = std::iter::once(LOOKUP).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("CNAME_GUARD_API", format!("http://127.0.0.1:{}", svc.admin_port))
        .env("CNAME_GUARD_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    stdout(&out).replace("\r\n", "\n")
}

/// A table row holding `key` and `value` in its first two cells.
fn has_row(table: &str, key: &str, value: &str) -> bool {
    table.lines().any(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        cells.len() > 2 && cells[1] == key && cells[2] == value
    })
}

#[test]
fn answers_print_as_a_table_or_as_json() {
    let dir = Scratch::new("cli-output");
    let svc = Lookup::start(&dir.sqlite_url(), &["--dns-server", &dns::demo().addr()], &dir.0.join("lookup.log"));
    let admin = Some(ADMIN_TOKEN);
    ok(cli(&svc, admin, &["accounts", "put", "acct-x"]));
    ok(cli(&svc, admin, &["zones", "put", "x.example", "acct-x"]));
    let h = ok(cli(&svc, admin, &["hostnames", "add", "acct-x", "shop.brand.example", "--output", "json"]));
    let id = h["id"].as_str().expect("id").to_string();
    ok(cli(&svc, admin, &["hostnames", "add", "acct-x", "www.brand.example"]));

    // One object: a row per field, nested fields dotted, lists one item a line.
    let table = stdout(&cli(&svc, admin, &["hostnames", "show", "acct-x", &id, "--output", "table"]));
    assert!(serde_json::from_str::<Value>(&table).is_err(), "{table}");
    for (key, value) in [
        ("id", id.as_str()),
        ("hostname", "shop.brand.example"),
        ("status", "pending"),
        ("ssl.status", "initializing"),
        ("ownership_verification.name", "_cname-guard.shop.brand.example"),
    ] {
        assert!(has_row(&table, key, value), "{key} = {value} in\n{table}");
    }
    let errors = h["verification_errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{h}");
    for e in errors {
        assert!(table.contains(e.as_str().expect("text")), "{e} in\n{table}");
    }

    // A list: a row per hostname, then the counts.
    let table = stdout(&cli(&svc, admin, &["hostnames", "list", "acct-x", "--output", "table"]));
    let rows: Vec<&str> = table.lines().filter(|l| l.contains(".brand.example")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().any(|r| r.contains(&id) && r.contains("pending") && r.contains("initializing")), "{table}");
    assert!(table.trim_end().ends_with("2 shown of 2"), "{table}");
    let table = stdout(&cli(&svc, admin, &["hostnames", "list", "acct-x", "--per-page", "1", "--output", "table"]));
    assert!(table.contains("1 shown of 2; next page: --cursor "), "{table}");

    // JSON: the API's answer as it came, the default off a terminal (scripts).
    let json = ok(cli(&svc, admin, &["hostnames", "show", "acct-x", &id, "--output", "json"]));
    assert_eq!(json, ok(cli(&svc, admin, &["hostnames", "show", "acct-x", &id])));
    assert_eq!(json["hostname"], "shop.brand.example");
    // On a terminal the default is the table; --output json still wins there.
    let seen = on_a_terminal(&svc, &["hostnames", "show", "acct-x", &id]);
    assert!(has_row(&seen, "hostname", "shop.brand.example"), "{seen}");
    let seen = on_a_terminal(&svc, &["hostnames", "show", "acct-x", &id, "--output", "json"]);
    assert_eq!(serde_json::from_str::<Value>(seen.trim()).ok().as_ref(), Some(&json), "{seen}");
    // The environment chooses too; a 204 prints nothing either way.
    let out = Command::new(LOOKUP)
        .args(["hostnames", "show", "acct-x", &id])
        .env("CNAME_GUARD_API", format!("http://127.0.0.1:{}", svc.admin_port))
        .env("CNAME_GUARD_TOKEN", ADMIN_TOKEN)
        .env("CNAME_GUARD_OUTPUT", "table")
        .output()
        .expect("run");
    assert!(has_row(&stdout(&out), "status", "pending"));
    let www = ok(cli(&svc, admin, &["hostnames", "list", "acct-x", "--hostname", "www.brand.example"]));
    let www_id = www["result"][0]["id"].as_str().expect("id").to_string();
    assert_eq!(stdout(&cli(&svc, admin, &["hostnames", "delete", "acct-x", &www_id, "--output", "table"])), "");

    // Errors go to stderr, never into the table.
    let out = cli(&svc, admin, &["hostnames", "show", "acct-x", &www_id, "--output", "table"]);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    refused(out, "404");
}

#[test]
fn completions_are_a_script_for_each_shell() {
    let out = Command::new(LOOKUP).args(["completions", "bash"]).output().expect("run");
    let script = stdout(&out);
    for word in ["complete -F", "cname-guard-lookup", "hostnames", "--wait", "--output", "--log-format"] {
        assert!(script.contains(word), "{word} in the bash script");
    }
    let dir = Scratch::new("cli-completions");
    let file = dir.put("cname-guard-lookup.bash", &script);
    let syntax = Command::new("bash").arg("-n").arg(&file).output().expect("bash -n");
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(LOOKUP).args(["completions", shell]).output().expect("run");
        assert!(stdout(&out).contains("hostnames"), "{shell}");
    }
    let out = Command::new(LOOKUP).args(["completions", "cmd"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `verify --wait` ends with the verifier's transition (BIND gets the CNAME
/// after the command has asked once), or fails when the wait ends first.
#[test]
fn verify_wait_returns_once_the_verifier_makes_the_hostname_active() {
    let bind = Bind::start(&[
        ("brand.example", &zone("brand.example", "")),
        ("saas.example", &zone("saas.example", "edge IN A 192.0.2.1\n")),
    ]);
    let dir = Scratch::new("cli-wait");
    let args = ["--dns-server", &bind.addr(), "--verify-tick", "200ms", "--verify-pending-backoff", "1h=1s"];
    let svc = Lookup::start(&dir.sqlite_url(), &args, &dir.0.join("lookup.log"));
    let admin = Some(ADMIN_TOKEN);
    ok(cli(&svc, admin, &["accounts", "put", "acct-saas"]));
    ok(cli(&svc, admin, &["zones", "put", "saas.example", "acct-saas"]));
    let h = ok(cli(&svc, admin, &["hostnames", "add", "acct-saas", "shop.brand.example"]));
    assert_eq!(h["status"], "pending", "{h}");
    let id = h["id"].as_str().expect("id").to_string();
    let verify_calls = || {
        svc.stderr()
            .lines()
            .filter(|l| l.contains("management call") && l.contains(r#"method="POST""#) && l.contains("/verify"))
            .count()
    };

    // The wait ends first: exit 1, saying the status and what is missing.
    let out = cli(&svc, admin, &["hostnames", "verify", "acct-saas", &id, "--wait", "2s", "--interval", "200ms"]);
    assert!(out.stdout.is_empty());
    refused(out, "shop.brand.example is still pending after 2s: ");
    assert_eq!(verify_calls(), 1, "one verify, then reads");

    // A longer wait, and the CNAME appears once the command has verified once.
    let child = Command::new(LOOKUP)
        .args(["hostnames", "verify", "acct-saas", &id, "--wait", "60s", "--interval", "200ms", "--output", "json"])
        .env("CNAME_GUARD_API", format!("http://127.0.0.1:{}", svc.admin_port))
        .env("CNAME_GUARD_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the cli");
    let mut waiting = Proc { child, name: "verify --wait".into() };
    dns::wait("the command's verify call", Duration::from_secs(20), || (verify_calls() == 2).then_some(()));
    bind.update("brand.example", &["update add shop.brand.example. 1 IN CNAME edge.saas.example."]);
    let status =
        dns::wait("the command to return", Duration::from_secs(60), || waiting.child.try_wait().ok().flatten());
    let mut out = Output { status, stdout: Vec::new(), stderr: Vec::new() };
    use std::io::Read;
    let _ = waiting.child.stdout.take().map(|mut s| s.read_to_end(&mut out.stdout));
    let _ = waiting.child.stderr.take().map(|mut s| s.read_to_end(&mut out.stderr));
    assert_eq!(ok(out)["status"], "active");
    // The verifier made it active: no other verify call, and its round changed one.
    assert_eq!(verify_calls(), 2);
    let log = svc.stderr();
    assert!(log.lines().any(|l| l.contains("verifier round") && l.contains("changed=1")), "{log}");

    // Blocked: no wait can end it, said at once.
    ok(cli(&svc, admin, &["hostnames", "set-status", "acct-saas", &id, "blocked"]));
    refused(cli(&svc, admin, &["hostnames", "verify", "acct-saas", &id, "--wait", "60s"]), "an operator blocked");
}
