//! The real binaries over HTTP: lookup contract v1 from the store and DNS,
//! health, ext_authz mode, store changes served at once, startup errors,
//! shutdown, and the demo origin.

use cname_guard_lookup::store::{self, Actor, Certificate, Status, StatusChange, Store};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cname_guard_testkit::{dns, Scratch};

const LOOKUP: &str = env!("CARGO_BIN_EXE_cname-guard-lookup");
const ORIGIN: &str = env!("CARGO_BIN_EXE_cname-guard-origin");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/registry.json");
const DEADLINE: Duration = Duration::from_secs(15);

// --- harness ------------------------------------------------------------------

/// A running service, killed on drop even when a test fails.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: Scratch,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(bin: &str, args: &[&str]) -> Service {
        Service::start_in(Scratch::new("lookup-test"), bin, args)
    }

    fn start_in(dir: Scratch, bin: &str, args: &[&str]) -> Service {
        let log = dir.path("stderr.log");
        let child = Command::new(bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut service = Service { child, port: 0, log, _dir: dir };
        let stdout = service.child.stdout.take().expect("stdout");
        let mut line = String::new();
        // EOF (an empty line) if the service exits instead of listening.
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{bin} printed {line:?}; stderr:\n{}", service.stderr()));
        service.port = port;
        service
    }

    /// The lookup service over `registry` and the demo zones in BIND.
    fn lookup(registry: &Path) -> Service {
        Service::lookup_with(registry, &["--dns-server", &dns::demo().addr()])
    }

    /// `serve` over a fresh SQLite store in the service's scratch
    /// directory, with `registry` imported.
    fn lookup_with(registry: &Path, args: &[&str]) -> Service {
        let dir = Scratch::new("lookup-test");
        let db = format!("sqlite:{}", dir.path("store.db").display());
        // The verifier off: the demo's pending and moved hosts keep their status.
        let mut all = vec!["serve", "--database", &db, "--admin-listen", "127.0.0.1:0", "--verifier", "off"];
        all.extend(["--import", registry.to_str().expect("utf-8 path")]);
        all.extend_from_slice(args);
        Service::start_in(dir, LOOKUP, &all)
    }

    /// The service's database URL.
    fn database(&self) -> String {
        format!("sqlite:{}", self._dir.path("store.db").display())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, target: &str) -> Response {
        self.send("GET", target, &[])
    }

    fn send(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        send(self.port, method, target, headers, b"")
    }

    fn send_body(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let len = body.len().to_string();
        let mut all = headers.to_vec();
        all.push(("Content-Length", &len));
        send(self.port, method, target, &all, body)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_for("the service to exit", || self.child.try_wait().ok().flatten())
    }
}

fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    dns::wait(what, DEADLINE, f)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
fn send(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: cname-guard-lookup\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

// --- lookup contract v1 -----------------------------------------------------------

#[test]
fn ownership_answers_follow_contract_v1() {
    let svc = Service::lookup(Path::new(DEMO));
    let r = svc.get("/v1/ownership?host=custom.myclientsite.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "host": "custom.myclientsite.com", "account": "acct-client", "cname_target": "edge.saas.example",
            "target_account": "acct-saas", "custom_hostname": null, "origin_resolves": true, "suspended": false, "ttl": 60
        })
    );
    let r = svc.get("/v1/ownership?host=shop%2Ecustomer.example");
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(
        (j["host"].as_str(), j["account"].is_null(), j["custom_hostname"].as_str()),
        (Some("shop.customer.example"), true, Some("active"))
    );
    let j = svc.get("/v1/ownership?host=new-1.tenants.saas.example").json();
    assert_eq!((j["account"].as_str(), j["ttl"].as_u64()), (Some("acct-saas"), Some(300)));
    // Off the platform, with addresses: unknown to the platform.
    assert_eq!(svc.get("/v1/ownership?host=orphan.example").status, 404);
    // A CNAME to a name without records: negative answer, SOA minimum 30.
    let j = svc.get("/v1/ownership?host=broken.saas.example").json();
    assert_eq!((j["origin_resolves"].as_bool(), j["ttl"].as_u64()), (Some(false), Some(30)));

    let r = svc.get("/v1/ownership?host=nobody-knows-this.example");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({"host": "nobody-knows-this.example", "error": "unknown host"}));

    for bad in
        ["", "?host=", "?host=a..b", "?host=exa_mple.com", "?host=bad%20host.example", "?host=1.2.3.4", "?other=x"]
    {
        let r = svc.get(&format!("/v1/ownership{bad}"));
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string(), "{bad}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let r = svc.send(method, "/v1/ownership?host=www.saas.example", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let head = svc.send("HEAD", "/v1/ownership?host=www.saas.example", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    for path in ["/healthz", "/readyz"] {
        let r = svc.get(path);
        assert_eq!((r.status, r.text().trim()), (200, "ok"), "{path}");
    }
    assert_eq!(svc.get("/v2/ownership?host=www.saas.example").status, 404);

    svc.send("GET", "/v1/ownership?host=www.saas.example", &[("x-request-id", "req-abc-123")]);
    wait_for("the request id in the log", || svc.stderr().contains(r#"request_id="req-abc-123""#).then_some(()));
}

/// Puts a certificate in service for the custom hostname `host` of the
/// service's store, as the issuer does once the CA has issued one (no CA:
/// the chain and the sealed key are never read by a lookup). The
/// hostname's id.
async fn certificate_in_service(store: &Store, host: &str) -> String {
    let claimed = store.claim_ssl_due("test", store::now(), 60, 100).await.expect("claim");
    let h = claimed.iter().find(|h| h.hostname == host).unwrap_or_else(|| panic!("{host} is not due"));
    let cert = Certificate {
        id: Store::new_certificate_id().expect("id"),
        hostname_id: h.id.clone(),
        hostname: host.into(),
        chain_pem: "(not read)".into(),
        key_sealed: "(not read)".into(),
        certificate_authority: "test".into(),
        issuer: "test".into(),
        serial_number: "01".into(),
        not_before: 0,
        expires_on: i64::MAX / 2,
        renew_at: i64::MAX / 4,
    };
    assert!(store.ssl_issued("test", &cert, false, cert.renew_at).await.expect("issued"));
    store.ssl_release_all("test").await.expect("release");
    h.id.clone()
}

#[test]
fn https_says_a_certificate_is_in_service() {
    let svc = Service::lookup(Path::new(DEMO));
    let ask = |host: &str| svc.get(&format!("/v1/ownership?host={host}"));
    let before = ask("shop.customer.example");
    assert_eq!(before.status, 200);
    assert!(!before.text().contains("https"), "no certificate yet: {}", before.text());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let store = rt.block_on(Store::open(&svc.database())).expect("open the service's store");
    let id = rt.block_on(certificate_in_service(&store, "shop.customer.example"));

    // Active with a certificate in service: the same answer, byte for
    // byte, and `"https": true`.
    let after = ask("shop.customer.example");
    assert_eq!(after.status, 200);
    let text = before.text();
    let body = text.trim_end();
    let expected = format!("{},\"https\":true}}{}", &body[..body.len() - 1], &text[body.len()..]);
    assert_eq!(after.text(), expected);
    assert_eq!(after.json()["https"], serde_json::json!(true));
    // Without one, and not active: no `https` at all.
    for host in ["custom.myclientsite.com", "www.saas.example", "pending.customer.example", "blocked.customer.example"]
    {
        let r = ask(host);
        assert_eq!(r.status, 200, "{host}");
        assert!(!r.text().contains("https"), "{host}: {}", r.text());
    }

    // Blocked: the certificate is withdrawn, and the answer says so at once.
    let block =
        StatusChange { from: Status::Active, to: Status::Blocked, verification_errors: vec![], reason: "test".into() };
    rt.block_on(store.change_status(&Actor::Admin, "acct-saas", &id, &block)).expect("block").expect("blocked");
    let r = ask("shop.customer.example");
    assert_eq!(r.json()["custom_hostname"], serde_json::json!("blocked"));
    assert!(!r.text().contains("https"), "{}", r.text());
    rt.block_on(store.close());
}

#[test]
fn ext_authz_mode_gives_the_filters_verdicts() {
    let svc = Service::lookup(Path::new(DEMO));
    let ask = |host: &str| svc.send("GET", "/ext_authz/some/page?q=1", &[("Host", host)]);
    for (host, account) in [
        ("shop.customer.example", "acct-saas"),
        ("WWW.Saas.Example:8443", "acct-saas"),
        ("app.saas.example.", "acct-saas"),
        ("x.tenants.saas.example", "acct-saas"),
    ] {
        let r = ask(host);
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.header("x-cname-guard-account"), Some(account), "{host}");
    }
    for (host, status, page) in [
        ("custom.myclientsite.com", 409, "<h1>Error 1014: CNAME cross-user banned</h1>"),
        ("blocked.customer.example", 409, "<h1>Error 1014: CNAME cross-user banned</h1>"),
        ("pending.customer.example", 530, "<h1>Error 1016: Origin DNS error</h1>"),
        ("moved.customer.example", 530, "<h1>Error 1016: Origin DNS error</h1>"),
        ("broken.saas.example", 530, "<h1>Error 1016: Origin DNS error</h1>"),
        ("www.frozen.example", 403, "<h1>Error 1004: Host not configured to serve web traffic</h1>"),
        ("orphan.example", 409, "<h1>Error 1001: DNS resolution error</h1>"),
        ("nobody-knows-this.example", 409, "<h1>Error 1001: DNS resolution error</h1>"),
    ] {
        let r = ask(host);
        assert_eq!(r.status, status, "{host}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"), "{host}");
        assert_eq!(r.text().trim(), page, "{host}");
        assert_eq!(r.header("x-cname-guard-account"), None, "{host}");
    }
    // Any method and path under the prefix.
    let r = svc.send("POST", "/ext_authz", &[("Host", "www.saas.example"), ("Content-Length", "0")]);
    assert_eq!(r.status, 200);
}

#[test]
fn the_ttl_is_capped_by_max_ttl() {
    let svc = Service::lookup_with(Path::new(DEMO), &["--dns-server", &dns::demo().addr(), "--max-ttl", "100"]);
    let j = svc.get("/v1/ownership?host=new-1.tenants.saas.example").json();
    assert_eq!(j["ttl"].as_u64(), Some(100));
    let j = svc.get("/v1/ownership?host=custom.myclientsite.com").json();
    assert_eq!(j["ttl"].as_u64(), Some(60));
}

/// The DNS questions named received for `name`.
fn questions(bind: &dns::Bind, name: &str) -> usize {
    bind.queries().iter().filter(|l| l.contains(&format!("query: {name} IN "))).count()
}

#[test]
fn dns_answers_are_cached_and_questions_in_flight_coalesced() {
    let bind = dns::Bind::with_zone_dir(&dns::demo_zone_dir());
    // No custom hostnames: the verifier asks nothing of this BIND.
    let dir = Scratch::new("lookup-test");
    let zones = r#"{"accounts": {"acct-saas": {}, "acct-client": {}},
                    "zones": {"saas.example": "acct-saas", "myclientsite.com": "acct-client"}}"#;
    let svc = Service::lookup_with(&dir.put("zones.json", zones), &["--dns-server", &bind.addr()]);
    let seed = "/v1/ownership?host=custom.myclientsite.com";
    assert_eq!(svc.get(seed).status, 200);
    // CNAME custom.myclientsite.com, CNAME edge.saas.example, A edge.saas.example.
    let asked = || questions(&bind, "custom.myclientsite.com") + questions(&bind, "edge.saas.example");
    wait_for("3 questions in the query log", || (asked() == 3).then_some(()));
    for _ in 0..5 {
        assert_eq!(svc.get(seed).status, 200);
    }
    // 20 requests at once for a new name: one CNAME and one A question.
    let host = "fresh-1.tenants.saas.example";
    std::thread::scope(|scope| {
        for _ in 0..20 {
            scope.spawn(|| assert_eq!(svc.get(&format!("/v1/ownership?host={host}")).status, 200));
        }
    });
    wait_for("the questions for the new name", || (questions(&bind, host) >= 2).then_some(()));
    // named logs a question before it answers, and every request has its
    // answer: nothing more can arrive for these names.
    assert_eq!(asked(), 3, "cached answers asked again:\n{:#?}", bind.queries());
    assert_eq!(questions(&bind, host), 2, "not coalesced:\n{:#?}", bind.queries());
}

// --- DNS that cannot answer ---------------------------------------------------------

#[test]
fn dns_failures_are_503_never_a_verdict() {
    for mode in [dns::Misbehave::Silent, dns::Misbehave::ServFail, dns::Misbehave::Garbage] {
        let bad = dns::BadDns::start(mode);
        let addr = bad.addr.to_string();
        let args = ["--dns-server", &addr, "--dns-timeout-ms", "150", "--dns-attempts", "1"];
        let svc = Service::lookup_with(Path::new(DEMO), &args);
        let started = Instant::now();
        let r = svc.get("/v1/ownership?host=custom.myclientsite.com");
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{mode:?}: {}", r.text());
        let j = r.json();
        assert_eq!(
            (j["host"].as_str(), j["error"].as_str()),
            (Some("custom.myclientsite.com"), Some("dns unavailable"))
        );
        assert!(j["detail"].as_str().is_some_and(|d| d.contains("custom.myclientsite.com")), "{mode:?}: {j}");
        assert!(took < Duration::from_secs(3), "{mode:?} took {took:?}");
        assert!(bad.questions.load(Ordering::SeqCst) > 0, "{mode:?}: never asked");
        let r = svc.send("GET", "/ext_authz/", &[("Host", "custom.myclientsite.com")]);
        assert_eq!(r.status, 503, "{mode:?} ext_authz");
        eprintln!("{mode:?}: 503 in {took:?}: {}", j["detail"]);
    }
}

// --- the store -------------------------------------------------------------------

const ONE: &str = r#"{"accounts": {"a": {}}, "zones": {"one.example": "a"}}"#;
const TWO: &str = r#"{"accounts": {"a": {}, "b": {"suspended": true}}, "zones": {"two.example": "b"}}"#;

fn status_of(svc: &Service, host: &str) -> u16 {
    svc.get(&format!("/v1/ownership?host={host}")).status
}

fn import(database: &str, file: &Path) -> std::process::Output {
    Command::new(LOOKUP)
        .args(["import", file.to_str().expect("utf-8"), "--database", database])
        .output()
        .expect("run import")
}

#[test]
fn store_changes_are_served_by_the_next_request() {
    let dir = Scratch::new("lookup-test");
    let svc = Service::lookup(&dir.put("one.json", ONE));
    assert_eq!(status_of(&svc, "www.one.example"), 200);
    assert_eq!(status_of(&svc, "www.two.example"), 404);
    // Another process (here `import`) writes the same database: no reload,
    // no cache, the next lookup sees it.
    let out = import(&svc.database(), &dir.put("two.json", TWO));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("accounts_created=1 zones_created=1"), "{printed}");
    let j = svc.get("/v1/ownership?host=www.two.example").json();
    assert_eq!((j["account"].as_str(), j["suspended"].as_bool()), (Some("b"), Some(true)));
    assert_eq!(status_of(&svc, "www.one.example"), 200, "what the file does not name is kept");
    // Idempotent; `-` reads the file from standard input.
    let again = Command::new(LOOKUP)
        .args(["import", "-", "--database", &svc.database()])
        .stdin(std::fs::File::open(dir.path("two.json")).expect("open two.json"))
        .output()
        .expect("run import");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains("accounts_created=0 zones_created=0"));
    assert_eq!(svc.get("/readyz").status, 200);
}

// --- process behaviour --------------------------------------------------------------

#[test]
fn an_invalid_registry_is_refused_whole_naming_the_problem() {
    let dir = Scratch::new("lookup-test");
    for (body, needle) in [
        (
            r#"{"accounts": {"acct-1": {}}, "zones": {"x.example": "acct-9"}}"#,
            r#"zones["x.example"]: unknown account "acct-9""#,
        ),
        (r#"{"records": {"x.example": {"a": ["192.0.2.1"]}}}"#, "records: DNS serves the records now"),
        (r#"{"acounts": {}}"#, "acounts: unknown field"),
    ] {
        let file = dir.put("bad.json", body);
        let db = format!("sqlite:{}", dir.path("bad.db").display());
        let out = Command::new(LOOKUP)
            .args(["serve", "--database", &db, "--import", file.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{body}");
        assert!(out.stdout.is_empty(), "no listening line for {body}");
        assert!(stderr.contains("--import") && stderr.contains(needle), "{body}: {stderr}");
        let out = import(&db, &file);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(needle), "{body}");
    }
    // Refused whole: the valid account of the first file was not imported.
    let file = dir.put("ok.json", r#"{"accounts": {"acct-1": {}}}"#);
    let out = import(&format!("sqlite:{}", dir.path("bad.db").display()), &file);
    assert!(String::from_utf8_lossy(&out.stdout).contains("accounts_created=1"));
    let out = import("sqlite:/nonexistent/dir/x.db", &file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the database"));
    let out = import("mysql://x", &file);
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite: or postgres://"));
}

#[test]
fn an_sds_listener_without_node_credentials_or_with_a_bad_certificate_is_refused() {
    let dir = Scratch::new("lookup-test");
    let kek = dir.put("kek", &"ab".repeat(32));
    let junk = dir.put("junk.pem", "not a certificate");
    let db = format!("sqlite:{}", dir.path("x.db").display());
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let base = ["serve", "--database", &db, "--listen", "127.0.0.1:0", "--xds-listen", "127.0.0.1:0", "--kek-file"];
    for (extra, needle) in [
        (vec![], "--xds-listen needs --xds-token-file or --xds-client-ca"),
        (vec!["--xds-client-ca".into(), path(&junk)], "--xds-tls-cert"),
        (
            vec![
                "--xds-tls-cert".into(),
                path(&junk),
                "--xds-tls-key".into(),
                path(&junk),
                "--xds-client-ca".into(),
                path(&junk),
            ],
            "--xds-tls-cert/--xds-tls-key/--xds-client-ca",
        ),
    ] {
        let out = Command::new(LOOKUP).args(base).arg(&kek).args(&extra).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
}

#[test]
fn usage() {
    let out = Command::new(LOOKUP).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "import", "hostnames", "accounts", "zones", "tokens", "diagnose"] {
        assert!(help.contains(sub), "{sub} in {help}");
    }
    let out = Command::new(LOOKUP).args(["serve", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--admin-listen", "--database", "--admin-token-file", "--import", "--verify-recheck"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let out = Command::new(LOOKUP).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(LOOKUP).args(["serve", "--listen", "nowhere"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    for (flag, value) in [
        ("--dns-server", "localhost:53"),
        ("--dns-timeout-ms", "0"),
        ("--dns-attempts", "x"),
        ("--max-ttl", "86401"),
        ("--dns-cache-size", "ten"),
        ("--dns-cache-size", "100TiB"),
        ("--admin-listen", "8091"),
        ("--verify-pending-timeout", "soon"),
    ] {
        let out = Command::new(LOOKUP).args(["serve", flag, value]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag), "{flag} named");
    }
    // The admin token is never a flag's value.
    let out = Command::new(LOOKUP).args(["serve", "--admin-token", "secret"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(ORIGIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--name <NAME>"));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    for sig in ["TERM", "INT"] {
        let mut svc = Service::lookup(Path::new(DEMO));
        assert_eq!(svc.get("/healthz").status, 200);
        svc.signal(sig);
        let status = svc.wait_exit();
        assert!(status.success(), "SIG{sig}: {status:?}");
        assert!(svc.stderr().contains(&format!(r#"shutting down signal="SIG{sig}""#)), "{}", svc.stderr());
    }
}

#[test]
fn env_fallbacks() {
    let dir = Scratch::new("lookup-test");
    let mut child = Command::new(LOOKUP)
        .arg("serve")
        .env("CNAME_GUARD_DATABASE", format!("sqlite:{}", dir.path("env.db").display()))
        .env("CNAME_GUARD_LISTEN", "127.0.0.1:0")
        .env("CNAME_GUARD_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    let read = child.stdout.take().map(|out| BufReader::new(out).read_line(&mut line));
    let _ = child.kill();
    let _ = child.wait();
    assert!(read.is_some_and(|r| r.is_ok()));
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
}

// --- the demo origin ------------------------------------------------------------------

#[test]
fn the_origin_echoes_what_reached_it() {
    let svc = Service::start(ORIGIN, &["--name", "test-origin"]);
    // A body is read and the echo still answers.
    let r = svc.send_body("POST", "/upload", &[("Host", "shop.customer.example")], &[b'x'; 70_000]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!((r.json()["method"].as_str(), r.json()["path"].as_str()), (Some("POST"), Some("/upload")));
    let r =
        svc.send("GET", "/some/path?x=1", &[("Host", "shop.customer.example"), ("x-cname-guard-account", "acct-saas")]);
    assert_eq!(
        r.json(),
        serde_json::json!({"origin": "test-origin", "method": "GET", "path": "/some/path?x=1",
            "host": "shop.customer.example", "account": "acct-saas", "account_headers": 1})
    );
    let j = svc
        .send("DELETE", "/", &[("Host", "a.example"), ("x-cname-guard-account", "a"), ("x-cname-guard-account", "b")])
        .json();
    assert_eq!(
        (j["account"].as_str(), j["account_headers"].as_u64(), j["method"].as_str()),
        (Some("a"), Some(2), Some("DELETE"))
    );
    let j = svc.get("/").json();
    assert_eq!((j["account"].is_null(), j["account_headers"].as_u64()), (true, Some(0)));
    let r = svc.get("/healthz");
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
}
