//! TLS at the edge (issue 24) through real Envoy, both builds.
//!
//! 421 Misdirected Request: a TLS request whose authority names another
//! host than the connection's SNI is answered 421 before any lookup.
//!
//! HTTP to HTTPS (`tls.redirect_http`): plain HTTP for a host whose answer
//! says `https` is answered 308 to the same path and query over HTTPS;
//! never the ACME challenge path, never a request that came over TLS (or
//! says https by its `:scheme`); and a certificate issued or withdrawn
//! reaches the filter by the feed's `certificates`.
//!
//! Envoy runs the shipped YAML with its HTTPS listener, certificates by
//! on-demand SDS from `cname-guard-lookup --xds-listen`; the ownership
//! answers come from the scriptable fake, which counts them per host.

use cname_guard_testkit as common;

use common::fake::{self, Call, FakeLookup, FeedMode, Reply};
use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const XDS_TOKEN: &str = "e2e-tls-xds-token-0123456789abcdef";
const KEK: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The SNI these tests complete a handshake with. The shipped listener's
/// `sni` mapper names the secret after the SNI, an unknown name fails the
/// handshake (docs/tls.md), and the service serves its self-signed
/// `fallback` (the certificate for clients without SNI) to the SNI that
/// spells its name: a real SNI, a valid host name, no CA needed. The
/// client does not verify the certificate; the filter only compares names.
const SNI: &str = "fallback";

struct Stack {
    envoy: Envoy,
    fake: FakeLookup,
    _sds: Proc,
    _origin: Proc,
    _dir: Scratch,
}

/// The fake answering every host as allowed, the SDS service, the origin,
/// and Envoy with both listeners; `extra`: more filter configuration.
fn stack(extra: serde_json::Value) -> Stack {
    stack_with(extra, |c| fake::allowed(&c.host_param, "acct-tls"))
}

/// As `stack`, the fake answering with `lookup`.
fn stack_with(extra: serde_json::Value, lookup: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Stack {
    let dir = Scratch::new("e2e-tls");
    let (token, kek) = (dir.0.join("xds-token"), dir.0.join("kek"));
    std::fs::write(&token, XDS_TOKEN).expect("write token");
    std::fs::write(&kek, KEK).expect("write kek");
    let mut args = lookup_serve_args(&root().join("envoy/registry.json"));
    let flags =
        ["--verifier", "off", "--xds-listen", "127.0.0.1:0", "--xds-token-file", token.to_str().expect("utf-8")];
    args.extend(flags.map(String::from));
    args.extend(["--kek-file".to_string(), kek.to_str().expect("utf-8").to_string()]);
    // No admin token: `listening on`, then `xds listening on`.
    let (sds, ports) = start_service_ports(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    let fake = FakeLookup::start(lookup);
    let (origin, origin_port) = origin();
    let mut opts = EnvoyOpts::new(plugin_config(extra), fake.port, origin_port);
    opts.https = true;
    opts.xds_port = ports[1];
    opts.xds_token = XDS_TOKEN.to_string();
    let envoy = Envoy::start(&opts);
    let stack = Stack { envoy, fake, _sds: sds, _origin: origin, _dir: dir };
    // The listener is ready before its certificates: wait for a handshake.
    wait_for("a TLS handshake on the HTTPS listener", Duration::from_secs(20), || {
        https(&stack.envoy, Some(SNI), &[(SNI, "text/plain")]).ok()
    });
    stack
}

/// What one request over TLS got.
#[derive(Debug)]
struct Got {
    status: u16,
    /// New connections this request made: 0 when it rode the previous one's.
    connects: u32,
    content_type: String,
    body: String,
}

const MARK: &str = "@@e2e-tls";

/// Requests in order, in one `curl` run, to the HTTPS listener with the TLS
/// name `sni` (`None`: no SNI), each `(authority, accept)`. curl keeps its
/// connection across `--next`, so the later requests ride the first one's
/// connection, as a browser's do when it coalesces hostnames. HTTP/2 (ALPN).
fn https(envoy: &Envoy, sni: Option<&str>, requests: &[(&str, &str)]) -> Result<Vec<Got>, String> {
    let (url, connect_to) = match sni {
        Some(name) => (format!("https://{name}/"), Some(format!("{name}:443:127.0.0.1:{}", envoy.https_port))),
        // An IP literal in the URL: curl sends no SNI.
        None => (format!("https://127.0.0.1:{}/", envoy.https_port), None),
    };
    let mut curl = Command::new("curl");
    for (i, (host, accept)) in requests.iter().enumerate() {
        if i > 0 {
            curl.arg("--next");
        }
        curl.args([
            "-sSk",
            "--max-time",
            "5",
            "-o",
            "-",
            "-H",
            &format!("Host: {host}"),
            "-H",
            &format!("Accept: {accept}"),
        ]);
        curl.args(["-w", &format!("\n{MARK} %{{http_code}} %{{num_connects}} %{{content_type}}\n")]);
        if let Some(c) = &connect_to {
            curl.args(["--connect-to", c]);
        }
        curl.arg(&url);
    }
    let out = curl.output().map_err(|e| format!("run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    let mut got = Vec::new();
    let mut body = String::new();
    for line in String::from_utf8_lossy(&out.stdout).split_inclusive('\n') {
        let Some(rest) = line.trim_end().strip_prefix(MARK) else {
            body.push_str(line);
            continue;
        };
        let mut f = rest.trim().splitn(3, ' ');
        let status = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {line:?}"))?;
        let connects = f.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("no connects in {line:?}"))?;
        let content_type = f.next().unwrap_or("").to_string();
        // The write-out starts with a newline of its own.
        let body = std::mem::take(&mut body);
        let body = body.strip_suffix('\n').unwrap_or(&body).to_string();
        got.push(Got { status, connects, content_type, body });
    }
    if got.len() != requests.len() {
        return Err(format!(
            "{} answers to {} requests: {}",
            got.len(),
            requests.len(),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(got)
}

fn one(envoy: &Envoy, sni: Option<&str>, host: &str, accept: &str) -> Got {
    let mut got = https(envoy, sni, &[(host, accept)]).unwrap_or_else(|e| panic!("{host} over TLS: {e}"));
    got.remove(0)
}

#[test]
fn another_host_than_the_sni_is_421_before_any_lookup() {
    let s = stack(json!({}));
    let e = &s.envoy;

    // The SNI's own host: the normal verdict (allowed by the fake), the
    // authority normalized as ever (case, port, one trailing dot).
    for host in [SNI, "FallBack.:443"] {
        let r = one(e, Some(SNI), host, "text/plain");
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    assert!(s.fake.count(SNI) >= 1, "the SNI's host was looked up");
    let started = e.stat("lookup.started");
    let lookups = s.fake.calls().len();

    // Another host on that connection: 421 in each format, no lookup.
    let r = one(e, Some(SNI), "b.example", "text/html");
    assert_eq!(r.status, 421, "{}", r.body);
    assert_eq!(r.content_type, "text/html; charset=UTF-8");
    assert!(r.body.contains("<h1>Error 421: Misdirected Request</h1>"), "{}", r.body);
    assert!(r.body.contains("<title>b.example | Error 421</title>"), "{}", r.body);
    assert!(r.body.contains("does not match the requested host"), "{}", r.body);
    let r = one(e, Some(SNI), "b.example", "application/json");
    assert_eq!(r.status, 421);
    assert_eq!(r.content_type, "application/problem+json");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    assert_eq!((v["status"].clone(), v["title"].clone()), (json!(421), json!("Error 421: Misdirected Request")));
    assert_eq!((v["host"].clone(), v["retryable"].clone()), (json!("b.example"), json!(true)));
    let r = one(e, Some(SNI), "b.example", "text/plain");
    assert_eq!((r.status, r.body.as_str()), (421, "error code: misdirected\n"));
    // An IP literal is another host too: 421 comes before 1003.
    assert_eq!(one(e, Some(SNI), "127.0.0.1", "text/plain").status, 421);
    assert_eq!(e.stat("misdirected"), 4);

    // The attack itself: a connection opened for the SNI's host, reused
    // for another host. The first request is served, the second refused.
    let got = https(e, Some(SNI), &[(SNI, "text/plain"), ("b.example", "text/plain")]).expect("two requests");
    assert_eq!((got[0].status, got[0].connects), (200, 1), "{got:?}");
    assert_eq!(
        (got[1].status, got[1].connects),
        (421, 0),
        "the second request rode the first one's connection: {got:?}"
    );
    assert_eq!(e.stat("misdirected"), 5);

    // Not one lookup for a misdirected request.
    assert_eq!(s.fake.count("b.example"), 0);
    assert_eq!(s.fake.count("127.0.0.1"), 0);
    assert_eq!(s.fake.calls().len(), lookups);
    assert_eq!(e.stat("lookup.started"), started);

    // No SNI: nothing to compare, the normal verdict (looked up once).
    let r = one(e, None, "b.example", "text/plain");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.fake.count("b.example"), 1);
    // b.example is now a cached allow: the cached path checks the SNI too.
    let r = one(e, Some(SNI), "b.example", "text/plain");
    assert_eq!(r.status, 421, "{}", r.body);
    assert_eq!(e.stat("misdirected"), 6);
    // The plain-HTTP listener: no TLS, no check.
    assert_eq!(e.request("c.example").status, 200);
    assert_eq!(s.fake.count("c.example"), 1);
    assert_eq!(s.fake.count("b.example"), 1);
    assert_eq!(e.stat("misdirected"), 6);
}

#[test]
fn require_sni_match_false_serves_another_host_on_the_connection() {
    let s = stack(json!({"tls": {"require_sni_match": false}}));
    let got = https(&s.envoy, Some(SNI), &[(SNI, "text/plain"), ("b.example", "text/plain")]).expect("two requests");
    assert_eq!((got[0].status, got[1].status, got[1].connects), (200, 200, 0), "{got:?}");
    assert_eq!(s.fake.count("b.example"), 1);
    assert_eq!(s.envoy.stat("misdirected"), 0);
}

#[test]
fn require_sni_match_must_be_a_boolean() {
    for value in [json!("yes"), json!(1), json!(null)] {
        let cfg = plugin_config(json!({"tls": {"require_sni_match": value}}));
        let log = Envoy::refused(&EnvoyOpts::new(cfg.clone(), free_port(), free_port()));
        assert!(log.contains("invalid configuration at `tls.require_sni_match`: expected a boolean"), "{cfg}:\n{log}");
    }
}

// --- HTTP to HTTPS (308) ----------------------------------------------------------

/// A host whose answer says `https` (an active custom hostname with a
/// certificate in service); the SNI's own host says so too.
const SECURE: &str = "secure.example";

/// The fake's answers: `https` for `SECURE` and the SNI's host, a plain
/// allow for any other.
fn https_for_secure(c: &Call) -> Reply {
    if c.host_param == SECURE || c.host_param == SNI {
        fake::allowed_https(&c.host_param, "acct-tls")
    } else {
        fake::allowed(&c.host_param, "acct-tls")
    }
}

/// A plain HTTP request on the HTTP listener.
fn plain(envoy: &Envoy, method: &str, host: &str, path: &str) -> Response {
    envoy.send(&Request { path: path.into(), ..Request::get(host).method(method) })
}

/// Asserts a 308 to `location` with the headers of every local response and no body.
fn assert_redirect(r: &Response, location: &str) {
    assert_eq!(r.status, 308, "{}", r.body_text());
    assert_eq!(r.header("location"), Some(location));
    assert_eq!(r.header("server"), Some("cloudflare"));
    assert!(r.header("cf-ray").is_some_and(|v| v.ends_with("-ARN")), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("private, max-age=0, no-store, no-cache, must-revalidate"));
    assert_eq!(r.header("x-cname-guard-account"), None);
    assert!(r.body.is_empty(), "{}", r.body_text());
}

/// One HTTP/1.1 request over TLS (SNI: the shipped listener's `fallback`)
/// with `headers`; its status and whether it carried a `location`.
fn https_h1(envoy: &Envoy, path: &str, headers: &[&str]) -> (u16, bool) {
    let mut curl = Command::new("curl");
    curl.args(["-sSk", "--http1.1", "--max-time", "5", "-o", "/dev/null", "-D", "-"]);
    curl.args(["-w", &format!("\n{MARK} %{{http_code}}")]);
    curl.args(["--connect-to", &format!("{SNI}:443:127.0.0.1:{}", envoy.https_port)]);
    for h in headers {
        curl.args(["-H", h]);
    }
    let out = curl.arg(format!("https://{SNI}{path}")).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl: {}{}", text, String::from_utf8_lossy(&out.stderr));
    let status = text.rsplit_once(MARK).and_then(|(_, s)| s.trim().parse().ok()).unwrap_or_else(|| panic!("{text}"));
    (status, text.to_ascii_lowercase().contains("\nlocation:"))
}

#[test]
fn plain_http_for_an_https_host_is_308_to_the_same_path_and_query() {
    let s = stack_with(json!({"tls": {"redirect_http": true}}), https_for_secure);
    let e = &s.envoy;

    // The path and query kept byte for byte; the looked-up answer, then the cache.
    let r = plain(e, "GET", SECURE, "/a/b?x=1&y=%20z&q=/c");
    assert_redirect(&r, "https://secure.example/a/b?x=1&y=%20z&q=/c");
    let r = plain(e, "GET", SECURE, "/a/b?x=1&y=%20z&q=/c");
    assert_redirect(&r, "https://secure.example/a/b?x=1&y=%20z&q=/c");
    // The authority normalized (case, port, trailing dot): HTTPS on its own port.
    assert_redirect(&plain(e, "GET", "Secure.EXAMPLE.:80", "/"), "https://secure.example/");
    // Every method: 308 keeps it (and the body) for the request over HTTPS.
    let post = Request { path: "/form".into(), ..Request::get(SECURE).method("POST").body(b"a=1") };
    assert_redirect(&e.send(&post), "https://secure.example/form");
    assert_redirect(&plain(e, "HEAD", SECURE, "/h"), "https://secure.example/h");
    assert_eq!(e.stat("redirected_https"), 5);
    assert_eq!(s.fake.count(SECURE), 1, "one lookup; the others from the cache");

    // A host whose answer does not say `https`: its verdict, as ever.
    let r = plain(e, "GET", "plain.example", "/p?q=1");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["account"], json!("acct-tls"));
    // A request that says it came over HTTPS: what a load balancer that
    // terminates TLS sends (Envoy takes `:scheme` from it). Not redirected.
    let lb = Request { path: "/lb".into(), ..Request::get(SECURE).header("X-Forwarded-Proto", "https") };
    let r = e.send(&lb);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["account"], json!("acct-tls"));
    assert_eq!(e.stat("redirected_https"), 5);

    // Over TLS, never: HTTP/2 (its `:scheme` says https), and HTTP/1.1
    // saying `X-Forwarded-Proto: http`, which Envoy turns into the
    // `:scheme`: only the connection's TLS tells this one apart.
    let r = one(e, Some(SNI), SNI, "text/plain");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(https_h1(e, "/t?x=1", &[]), (200, false));
    assert_eq!(https_h1(e, "/t?x=1", &["X-Forwarded-Proto: http"]), (200, false));
    // The SNI's own host over plain HTTP: redirected like any other.
    assert_redirect(&plain(e, "GET", SNI, "/t?x=1"), "https://fallback/t?x=1");
    assert_eq!(e.stat("redirected_https"), 6);
    assert_eq!(e.stat("misdirected"), 0);
}

/// Envoy (HTTP listener only) with the fake answering `https_for_secure`,
/// its YAML changed by `edit`.
fn edge_with(extra: serde_json::Value, edit: Option<Edit>) -> (Envoy, FakeLookup, Proc) {
    let fake = FakeLookup::start(https_for_secure);
    let (origin, origin_port) = origin();
    let envoy = Envoy::start_with(&EnvoyOpts::new(plugin_config(extra), fake.port, origin_port), edit);
    (envoy, fake, origin)
}

#[test]
fn the_acme_challenge_path_is_never_redirected() {
    // A user's YAML without the shipped route that takes the challenge
    // path ahead of the filter: the filter itself must let it through.
    let edit = |yaml: String| {
        let route = r#"prefix: "/.well-known/acme-challenge/""#;
        assert!(yaml.contains(route), "the shipped YAML lost its ACME route");
        yaml.replace(route, r#"prefix: "/not-the-acme-route/""#)
    };
    let (e, fake, _origin) = edge_with(json!({"tls": {"redirect_http": true}}), Some(&edit));
    for path in ["/.well-known/acme-challenge/tok-1", "/.well-known/acme-challenge/tok-2?x=1"] {
        let r = plain(&e, "GET", SECURE, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body_text());
        assert_eq!(r.json()["account"], json!("acct-tls"), "{path}: to the origin, stamped");
    }
    assert_eq!(fake.count(SECURE), 1, "the filter saw them");
    // Any other path of the host is redirected.
    assert_redirect(&plain(&e, "GET", SECURE, "/.well-known/other"), "https://secure.example/.well-known/other");
    assert_eq!(e.stat("redirected_https"), 1);
}

#[test]
fn redirect_http_is_off_unless_asked() {
    for extra in [json!({}), json!({"tls": {"redirect_http": false}})] {
        let (e, fake, _origin) = edge_with(extra.clone(), None);
        for _ in 0..2 {
            let r = plain(&e, "GET", SECURE, "/a?b=1");
            assert_eq!(r.status, 200, "{extra}: {}", r.body_text());
            assert_eq!(r.header("location"), None);
        }
        assert_eq!(fake.count(SECURE), 1);
        assert_eq!(e.stat("redirected_https"), 0);
    }
}

#[test]
fn redirect_http_must_be_a_boolean() {
    for value in [json!("true"), json!(1), json!(null)] {
        let cfg = plugin_config(json!({"tls": {"redirect_http": value}}));
        let log = Envoy::refused(&EnvoyOpts::new(cfg.clone(), free_port(), free_port()));
        assert!(log.contains("invalid configuration at `tls.redirect_http`: expected a boolean"), "{cfg}:\n{log}");
    }
}

/// Waits up to `within` for 10 plain requests in a row for `host` to get
/// `status`; how long it took.
fn until_status(envoy: &Envoy, host: &str, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    wait_for(&format!("{host} to answer {status}"), within, || {
        (0..10).all(|_| plain(envoy, "GET", host, "/f").status == status).then_some(())
    });
    start.elapsed()
}

#[test]
fn a_certificate_issued_or_withdrawn_reaches_the_cache_by_the_feed() {
    // Which hosts the fake says `https` for, changed by the test.
    let certified: Arc<Mutex<HashSet<String>>> = Arc::default();
    let c = certified.clone();
    let fake = FakeLookup::start(move |call| {
        if c.lock().is_ok_and(|set| set.contains(&call.host_param)) {
            fake::allowed_https(&call.host_param, "acct-tls")
        } else {
            fake::allowed(&call.host_param, "acct-tls")
        }
    });
    fake.feed.set_mode(FeedMode::Healthy);
    // Two workers, a 300 s TTL: only the feed can change the cached answer.
    let (e, _origin) = common::feed::edge(fake.port, json!({"tls": {"redirect_http": true}}));
    wait_for("the poller to ask with since", Duration::from_secs(10), || {
        fake.feed.calls().iter().any(|c| c.path.contains("since=")).then_some(())
    });
    let host = "soon-secure.example";
    until_status(&e, host, 200, Duration::from_secs(2));
    assert_eq!(fake.count(host), 1);

    // Issued: named under `certificates`, the host redirects within the feed's interval.
    certified.lock().expect("lock").insert(host.to_string());
    let changed = Instant::now();
    fake.feed.certificate_changed(host);
    until_status(&e, host, 308, Duration::from_secs(2));
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_redirect(&plain(&e, "GET", host, "/x?y=1"), "https://soon-secure.example/x?y=1");

    // Withdrawn (block, expiry): back to the plain verdict.
    certified.lock().expect("lock").remove(host);
    fake.feed.certificate_changed(host);
    until_status(&e, host, 200, Duration::from_secs(2));
    assert_eq!(fake.count(host), 3, "one lookup per change");
    assert!(e.stat("changes.applied") >= 2);
    assert_eq!(e.stat("changes.failed"), 0);
    eprintln!("certificate issued to the first redirect: {took:?}");
}
