//! Custom hostnames through their lifecycles, end to end: the management
//! API of the real lookup service (SQLite), BIND changed with nsupdate as a
//! customer would, the verifier, and each state asserted through real Envoy
//! and the filter once its cache entry has expired.

use cname_guard_testkit as common;

use common::dns::{zone, Bind};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Long enough for the filter's and the service's 1 s TTLs, and a verifier
/// round, to pass several times on a loaded machine.
const CHANGE: Duration = Duration::from_secs(30);
const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

const REGISTRY: &str = r#"{
  "accounts": { "acct-saas": {}, "acct-other": {} },
  "zones": { "saas.example": "acct-saas", "other.example": "acct-other" }
}"#;

struct Stack {
    envoy: Envoy,
    bind: Bind,
    lookup_port: u16,
    admin_port: u16,
    /// acct-saas's own API token (issued by the operator).
    saas_token: String,
    _lookup: Proc,
    _origin: Proc,
    _dir: Scratch,
}

fn stack() -> Stack {
    let bind = Bind::start(&[
        ("saas.example", zone("saas.example", "edge IN A 192.0.2.10\n").as_str()),
        ("other.example", zone("other.example", "www IN A 192.0.2.70\n").as_str()),
        ("brand.example", zone("brand.example", "custom IN CNAME edge.saas.example.\nshop IN A 192.0.2.80\n").as_str()),
    ]);
    let dir = Scratch::new("e2e-hostnames");
    let registry = dir.0.join("registry.json");
    std::fs::write(&registry, REGISTRY).expect("write registry");
    let token_file = dir.0.join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).expect("write token");
    let mut args = lookup_serve_args(&registry);
    let flags = [
        "--dns-server",
        &bind.addr(),
        "--admin-token-file",
        token_file.to_str().expect("utf-8"),
        "--verify-tick",
        "1s",
        "--verify-recheck",
        "1s",
        "--verify-pending-backoff",
        "1h=1s",
    ];
    args.extend(flags.map(String::from));
    let (lookup, ports) = start_service_ports(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    let (origin, origin_port) = origin();
    let cfg = plugin_config(json!({"cache": {"ttl_seconds": 1, "negative_ttl_seconds": 1}}));
    let envoy = Envoy::start(&EnvoyOpts::new(cfg, ports[0], origin_port));
    let mut stack = Stack {
        envoy,
        bind,
        lookup_port: ports[0],
        admin_port: ports[1],
        saas_token: String::new(),
        _lookup: lookup,
        _origin: origin,
        _dir: dir,
    };
    let (status, token) = stack.api("POST", "/v1/accounts/acct-saas/tokens", ADMIN_TOKEN, Some(json!({})));
    assert_eq!(status, 201, "{token}");
    stack.saas_token = token["token"].as_str().expect("token").to_string();
    stack
}

impl Stack {
    fn api(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        api(self.admin_port, method, path, token, body)
    }

    /// acct-saas creates `hostname` with its own token.
    fn create(&self, hostname: &str) -> Value {
        let (status, h) = self.api(
            "POST",
            "/v1/accounts/acct-saas/custom_hostnames",
            &self.saas_token,
            Some(json!({ "hostname": hostname })),
        );
        assert_eq!(status, 201, "{h}");
        h
    }

    fn hostname(&self, id: &str) -> Value {
        let (status, h) =
            self.api("GET", &format!("/v1/accounts/acct-saas/custom_hostnames/{id}"), &self.saas_token, None);
        assert_eq!(status, 200, "{h}");
        h
    }

    /// The operator sets `status` (block, unblock).
    fn set_status(&self, id: &str, status: &str) {
        let path = format!("/v1/accounts/acct-saas/custom_hostnames/{id}");
        let (code, h) = self.api("PATCH", &path, ADMIN_TOKEN, Some(json!({ "status": status })));
        assert_eq!((code, h["status"].as_str()), (200, Some(status)), "{h}");
    }

    /// Waits until Envoy answers `host` with `status` (and, for 200, as
    /// acct-saas), the filter's and the service's caches having expired.
    /// Before the deadline a stale cached verdict is expected; at the
    /// deadline the panic shows what Envoy and the lookup answer.
    fn wait_verdict(&self, host: &str, status: u16, what: &str) -> Response {
        let deadline = std::time::Instant::now() + CHANGE;
        loop {
            let r = self.envoy.request(host);
            // The origin echoes the account header the filter added.
            let account_ok = status != 200 || r.try_json().is_some_and(|j| j["account"] == "acct-saas");
            if r.status == status && account_ok {
                return r;
            }
            if std::time::Instant::now() > deadline {
                let answer = get(self.lookup_port, &format!("/v1/ownership?host={host}")).body_text();
                panic!("{host}: {what}: still {} {:?}; the lookup answers {answer}", r.status, r.body_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_status(&self, id: &str, status: &str) -> Value {
        wait_for(&format!("hostname {id} to become {status}"), CHANGE, || {
            let h = self.hostname(id);
            (h["status"] == status).then_some(h)
        })
    }
}

fn error_code(r: &Response) -> String {
    let body = r.body_text();
    ["1014", "1016", "1001"].iter().find(|c| body.contains(*c)).map(|c| c.to_string()).unwrap_or(body)
}

#[test]
fn real_time_validation_block_unblock_delete() {
    let s = stack();
    let r = s.envoy.request("custom.brand.example");
    assert_eq!((r.status, error_code(&r)), (409, "1014".to_string()), "CNAMEd in, not authorized yet");

    // The CNAME into acct-saas's zone is the proof: active in the 201.
    let h = s.create("custom.brand.example");
    assert_eq!(h["status"], "active", "{h}");
    assert_eq!(h["ownership_verification"]["name"], "_cname-guard.custom.brand.example");
    let id = h["id"].as_str().expect("id").to_string();
    s.wait_verdict("custom.brand.example", 200, "served as acct-saas");

    s.set_status(&id, "blocked");
    let r = s.wait_verdict("custom.brand.example", 409, "blocked: 1014");
    assert_eq!(error_code(&r), "1014");
    s.set_status(&id, "active");
    s.wait_verdict("custom.brand.example", 200, "unblocked");

    let (status, _) = s.api("DELETE", &format!("/v1/accounts/acct-saas/custom_hostnames/{id}"), &s.saas_token, None);
    assert_eq!(status, 204);
    let r = s.wait_verdict("custom.brand.example", 409, "deleted: 1014");
    assert_eq!(error_code(&r), "1014");
}

#[test]
fn pre_validation_then_moving_away_and_back() {
    let s = stack();
    // Still at the customer's old host: off the platform.
    let r = s.envoy.request("shop.brand.example");
    assert_eq!((r.status, error_code(&r)), (409, "1001".to_string()));

    let h = s.create("shop.brand.example");
    assert_eq!(h["status"], "pending", "{h}");
    let errors = h["verification_errors"].as_array().expect("errors").clone();
    assert_eq!(errors.len(), 2, "{h}");
    assert!(errors[0].as_str().is_some_and(|e| e.contains("TXT record _cname-guard.shop.brand.example")), "{h}");
    assert!(errors[1].as_str().is_some_and(|e| e.contains("no CNAME into a zone of acct-saas")), "{h}");
    let id = h["id"].as_str().expect("id").to_string();
    let token = h["ownership_verification"]["value"].as_str().expect("token").to_string();

    // The customer proves control with TXT, before moving any traffic.
    s.bind.update("brand.example", &[&format!("update add _cname-guard.shop.brand.example. 1 IN TXT \"{token}\"")]);
    let verified = wait_for("verify to see the TXT record", CHANGE, || {
        let path = format!("/v1/accounts/acct-saas/custom_hostnames/{id}/verify");
        let (status, h) = s.api("POST", &path, &s.saas_token, None);
        assert_eq!(status, 200, "{h}");
        (h["status"] == "active").then_some(h)
    });
    assert_eq!(verified["verification_errors"], json!([]), "{verified}");

    // Then switches to a CNAME into acct-saas: served at once.
    s.bind.update(
        "brand.example",
        &["update delete shop.brand.example. A", "update add shop.brand.example. 1 IN CNAME edge.saas.example."],
    );
    s.wait_verdict("shop.brand.example", 200, "served as acct-saas after the CNAME switch");

    // Moving away: into another account's zone, TXT removed.
    s.bind.update(
        "brand.example",
        &[
            "update delete shop.brand.example. CNAME",
            "update add shop.brand.example. 1 IN CNAME www.other.example.",
            "update delete _cname-guard.shop.brand.example. TXT",
        ],
    );
    let r = s.wait_verdict("shop.brand.example", 409, "1014: acct-other has not authorized it");
    assert_eq!(error_code(&r), "1014");
    let moved = s.wait_status(&id, "moved");
    assert!(moved["verification_errors"][1].as_str().is_some_and(|e| e.contains("www.other.example")), "{moved}");

    // Pointed back: the verifier makes it active again.
    s.bind.update(
        "brand.example",
        &["update delete shop.brand.example. CNAME", "update add shop.brand.example. 1 IN CNAME edge.saas.example."],
    );
    s.wait_status(&id, "active");
    s.wait_verdict("shop.brand.example", 200, "served again once active");
}
