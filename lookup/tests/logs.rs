//! The service's logs on stderr, written by `tracing`: with `--log-format
//! json` every line is one JSON object; each management call and each failed
//! lookup is one event with its fields; and no client-supplied value (a path
//! segment, a query, a header) ever splits a line, in text or JSON.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::dns;
use support::service::{Lookup, ADMIN_TOKEN};
use support::Scratch;

const DEADLINE: Duration = Duration::from_secs(20);

/// One request written as given (headers may hold any byte a client can
/// send): the status and the response's head.
fn raw(port: u16, method: &str, target: &str, headers: &[(&str, &[u8])], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(format!("{name}: ").as_bytes());
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(
        format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
    );
    s.write_all(&req).expect("write");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_ascii_lowercase();
    (status, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn events(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l:?}")))
        .collect()
}

fn with_message<'a>(events: &'a [Value], message: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["message"] == message).collect()
}

fn count(svc: &Lookup, needle: &str) -> usize {
    svc.stderr().lines().filter(|l| l.contains(needle)).count()
}

/// The demo zones and platform data: `www.saas.example` is acct-saas's.
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/registry.json");

fn start(dir: &Scratch, format: &str) -> Lookup {
    let args = ["--dns-server", &dns::demo().addr(), "--import", DEMO, "--verifier", "off", "--log-format", format];
    Lookup::start(&dir.sqlite_url(), &args, &dir.path(&format!("{format}.log")))
}

#[test]
fn json_lines_carry_each_management_call_and_failed_lookup() {
    let dir = Scratch::new("logs-json");
    let svc = start(&dir, "json");
    let admin = bearer(ADMIN_TOKEN);
    let admin_h: &[(&str, &[u8])] = &[("Authorization", admin.as_bytes())];

    // Management calls, each with what its event must say.
    let (status, head) = raw(svc.admin_port, "PUT", "/v1/accounts/acct-logs", admin_h, r#"{"suspended": false}"#);
    assert_eq!(status, 201);
    let generated_id = header(&head, "x-request-id").expect("a request id in the answer").to_string();
    let (status, body) = svc.admin("POST", "/v1/accounts/acct-logs/tokens", Some("{}"));
    assert_eq!(status, 201, "{body}");
    let token: Value = serde_json::from_str(&body).expect("json");
    let account_auth = bearer(token["token"].as_str().expect("token"));
    let token_id = token["id"].as_str().expect("id");
    let list = "/v1/accounts/acct-logs/custom_hostnames";
    let headers: &[(&str, &[u8])] = &[("Authorization", account_auth.as_bytes()), ("x-request-id", b"req-list-1")];
    let (status, head) = raw(svc.admin_port, "GET", list, headers, "");
    assert_eq!((status, header(&head, "x-request-id")), (200, Some("req-list-1")));
    assert_eq!(raw(svc.admin_port, "GET", list, &[], "").0, 401);
    assert_eq!(raw(svc.admin_port, "GET", "/v1/nowhere", admin_h, "").0, 404);
    assert_eq!(raw(svc.admin_port, "DELETE", "/v1/zones/none.example", admin_h, "").0, 404);

    // Lookups: a bad request, a DNS failure (BIND refuses a zone it does not
    // serve), and one answered (logged, but not a failure).
    assert_eq!(svc.get("/v1/ownership?host=").0, 400);
    let failing = "/v1/ownership?host=x.elsewhere.test";
    assert_eq!(raw(svc.port, "GET", failing, &[("x-request-id", b"req-lookup-1")], "").0, 503);
    assert_eq!(svc.get("/v1/ownership?host=www.saas.example").0, 200);

    dns::wait("6 management calls and 2 failed lookups logged", DEADLINE, || {
        (count(&svc, r#""message":"management call""#) >= 6 && count(&svc, r#""message":"lookup failed""#) >= 2)
            .then_some(())
    });
    svc_stop_and_check(svc, |events| {
        let calls = with_message(events, "management call");
        let seen: Vec<_> = calls
            .iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap_or("?"),
                    e["route"].as_str().unwrap_or("?"),
                    e["status"].as_u64().unwrap_or(0),
                    e["account"].as_str(),
                    e["caller"].as_str(),
                )
            })
            .collect();
        let account_caller = format!("account:acct-logs token:{token_id}");
        assert_eq!(
            seen,
            [
                ("PUT", "/v1/accounts/{account}", 201, Some("acct-logs"), Some("admin")),
                ("POST", "/v1/accounts/{account}/tokens", 201, Some("acct-logs"), Some("admin")),
                (
                    "GET",
                    "/v1/accounts/{account}/custom_hostnames",
                    200,
                    Some("acct-logs"),
                    Some(account_caller.as_str())
                ),
                ("GET", "/v1/accounts/{account}/custom_hostnames", 401, Some("acct-logs"), None),
                ("GET", "unmatched", 404, None, None),
                ("DELETE", "/v1/zones/{zone}", 404, None, Some("admin")),
            ]
        );
        for e in &calls {
            assert!(e["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{e}");
            assert!(e["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{e}");
            assert_eq!(
                (e["level"].as_str(), e["target"].as_str()),
                (Some("INFO"), Some("cname_guard_lookup::admin::access_log"))
            );
        }
        assert_eq!(calls[0]["request_id"].as_str(), Some(generated_id.as_str()), "the id answered is the id logged");
        assert_eq!(calls[2]["request_id"], "req-list-1");

        let failed = with_message(events, "lookup failed");
        assert_eq!(failed.len(), 2, "{failed:?}");
        let (bad, u) = (failed[0], failed[1]);
        assert_eq!(
            (bad["status"].as_u64(), bad["level"].as_str(), bad["host"].as_str()),
            (Some(400), Some("INFO"), Some(""))
        );
        assert_eq!(bad["reason"], "empty host parameter");
        assert_eq!((u["status"].as_u64(), u["level"].as_str()), (Some(503), Some("WARN")));
        assert_eq!((u["host"].as_str(), u["error"].as_str()), (Some("x.elsewhere.test"), Some("dns unavailable")));
        assert_eq!(u["request_id"], "req-lookup-1");
        assert!(u["detail"].as_str().is_some_and(|d| d.contains("x.elsewhere.test")), "{u}");
        let answered = with_message(events, "lookup");
        assert_eq!(answered.len(), 1);
        assert_eq!(
            (answered[0]["host"].as_str(), answered[0]["account"].as_str()),
            (Some("www.saas.example"), Some("acct-saas"))
        );
    });
}

/// SIGTERM (the exit is checked), then every line of the finished log.
fn svc_stop_and_check(svc: Lookup, check: impl FnOnce(&[Value])) {
    let log = svc.log_path();
    svc.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    let all = events(&text);
    for e in &all {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(e.get(key).is_some(), "{key} in {e}");
        }
    }
    assert!(with_message(&all, "shutting down").len() == 1, "{text}");
    check(&all);
}

/// A CR, an LF, an ESC in a path segment and a query, a tab and bytes past
/// ASCII in a header: each event stays one line, in both formats, and the
/// values are logged sanitized.
#[test]
fn client_values_never_split_a_line() {
    let forged_account = "acct%0D%0A2026-01-01T00:00:00.000000Z%20ERROR%20forged%1B%5B2J";
    let forged_host = "a%0D%0Aforged%0A2026-01-01T00:00:00Z%20ERROR%20x";
    for format in ["text", "json"] {
        let dir = Scratch::new("logs-forged");
        let svc = start(&dir, format);
        let admin = bearer(ADMIN_TOKEN);
        let path = format!("/v1/accounts/{forged_account}/custom_hostnames");
        let headers: &[(&str, &[u8])] = &[("Authorization", admin.as_bytes()), ("x-request-id", b"id\tforged\xff")];
        let (status, _) = raw(svc.admin_port, "GET", &path, headers, "");
        assert!(status == 400 || status == 404, "{format}: {status}");
        assert_eq!(svc.get(&format!("/v1/ownership?host={forged_host}")).0, 400);
        let (status, _) =
            raw(svc.port, "GET", "/v1/ownership?host=www.saas.example", &[("x-request-id", b"r\tforged\x80")], "");
        assert_eq!(status, 200);

        dns::wait("the three events", DEADLINE, || (count(&svc, "forged") >= 3).then_some(()));
        let log = svc.log_path();
        svc.stop();
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{format}: a raw control character:\n{text}");
        // Had a value split its line, "forged" would start a line of its own.
        let forged: Vec<&str> = text.lines().filter(|l| l.contains("forged")).collect();
        assert_eq!(forged.len(), 3, "{format}:\n{text}");
        match format {
            "json" => {
                let all = events(&text);
                let call = &with_message(&all, "management call")[0];
                assert_eq!(call["account"], "acct??2026-01-01T00:00:00.000000Z?ERROR?forged?[2J", "{call}");
                assert_eq!(call["request_id"], "id?forged?", "{call}");
                let bad = &with_message(&all, "lookup failed")[0];
                assert_eq!(bad["host"], "a??forged?2026-01-01T00:00:00Z?ERROR?x", "{bad}");
                assert_eq!(with_message(&all, "lookup")[0]["request_id"], "r?forged?");
            }
            _ => {
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    let (time, level) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    assert!(time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line:?}");
                    assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level), "{line:?}");
                }
                assert!(
                    forged[0].contains("management call") && forged[0].contains(r#"request_id="id?forged?""#),
                    "{}",
                    forged[0]
                );
                assert!(forged[1].contains("lookup failed") && forged[1].contains("status=400"), "{}", forged[1]);
                assert!(forged[2].contains(r#"request_id="r?forged?""#), "{}", forged[2]);
            }
        }
    }
}

/// The same events in the text format, one a line with `key=value` fields.
#[test]
fn text_lines_carry_the_same_fields() {
    let dir = Scratch::new("logs-text");
    let svc = start(&dir, "text");
    assert_eq!(svc.admin("PUT", "/v1/accounts/acct-logs", Some(r#"{"suspended": false}"#)).0, 201);
    assert_eq!(svc.get("/v1/ownership?host=x.elsewhere.test").0, 503);
    dns::wait("the events", DEADLINE, || {
        (count(&svc, "management call") >= 1 && count(&svc, "lookup failed") >= 1).then_some(())
    });
    let text = svc.stderr();
    let call = text.lines().find(|l| l.contains("management call")).expect("call");
    for field in [
        r#"method="PUT""#,
        r#"route="/v1/accounts/{account}""#,
        "status=201",
        r#"account="acct-logs""#,
        r#"caller="admin""#,
        "latency_ms=",
        "request_id=",
    ] {
        assert!(call.contains(field), "{field} in {call}");
    }
    assert!(call.contains(" INFO cname_guard_lookup::admin::access_log: management call "), "{call}");
    let failed = text.lines().find(|l| l.contains("lookup failed")).expect("failed lookup");
    for field in [r#"host="x.elsewhere.test""#, "status=503", r#"error="dns unavailable""#, "detail="] {
        assert!(failed.contains(field), "{field} in {failed}");
    }
    assert!(failed.contains(" WARN "), "{failed}");
}

/// `--log` (`CNAME_GUARD_LOG`) filters: at `warn`, neither a management
/// call nor an answered lookup is logged, a failed one still is.
#[test]
fn the_filter_keeps_what_it_names() {
    let dir = Scratch::new("logs-filter");
    let args = ["--dns-server", &dns::demo().addr(), "--import", DEMO, "--verifier", "off", "--log", "warn"];
    let svc = Lookup::start(&dir.sqlite_url(), &args, &dir.path("warn.log"));
    assert_eq!(svc.admin("PUT", "/v1/accounts/acct-logs", Some(r#"{"suspended": false}"#)).0, 201);
    assert_eq!(svc.get("/v1/ownership?host=www.saas.example").0, 200);
    assert_eq!(svc.get("/v1/ownership?host=x.elsewhere.test").0, 503);
    dns::wait("the failed lookup", DEADLINE, || (count(&svc, "lookup failed") >= 1).then_some(()));
    let text = svc.stderr();
    assert_eq!(count(&svc, "management call") + count(&svc, "listening") + count(&svc, "store open"), 0, "{text}");
    assert!(text.lines().all(|l| l.contains(" WARN ") || l.contains(" ERROR ")), "{text}");

    // A filter that is not one is refused naming the flag, from the environment too.
    let out = std::process::Command::new(support::service::LOOKUP)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CNAME_GUARD_LOG", "cname_guard_lookup=loud")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--log"), "{stderr}");
}

/// The demo origin logs the same way: JSON lines on stderr, its
/// `listening on` line alone on stdout.
#[test]
fn the_origin_logs_the_same_way() {
    use std::io::BufRead;
    let dir = Scratch::new("logs-origin");
    let log = dir.path("origin.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cname-guard-origin"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the origin");
    let mut origin = cname_guard_testkit::Proc { child, name: "cname-guard-origin".into() };
    let mut line = String::new();
    let out = origin.child.stdout.take().expect("stdout");
    std::io::BufReader::new(out).read_line(&mut line).expect("read");
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
    let _ = std::process::Command::new("kill").args(["-TERM", &origin.child.id().to_string()]).status();
    let status = dns::wait("the origin to exit", DEADLINE, || origin.child.try_wait().ok().flatten());
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).expect("log");
    let all = events(&text);
    assert_eq!(with_message(&all, "listening").len(), 1, "{text}");
    assert_eq!(with_message(&all, "shutting down")[0]["signal"], "SIGTERM", "{text}");
}
