//! A few thousand random authorities, request headers and lookup answers through two
//! workers, with the clock moving: the filter must never trap, every request must end
//! (forwarded or answered), and the host must see no ABI misuse.

mod common;
use cname_guard_host::{Host, Req};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// xorshift64*: small, deterministic, good enough to shake inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const KNOWN: &[&str] =
    &["shop.customer.example", "api.customer.example", "blog.other.example", "x.example", "edge.saas.example"];

fn label(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
    const ODD: &[&str] = &["_", " ", "%", "\u{e9}", "\u{0}", "*", "/", "@", "..", "\t", "\u{ff}"];
    let len = match rng.below(10) {
        0 => 0,
        1 => 64 + rng.below(10),
        _ => 1 + rng.below(12),
    };
    let mut s: String = (0..len).map(|_| rng.pick(CHARS) as char).collect();
    if rng.chance(8) {
        let at = rng.below(s.len() + 1);
        s.insert_str(at, rng.pick(ODD));
    }
    s
}

fn authority(rng: &mut Rng) -> String {
    match rng.below(12) {
        0..=4 => rng.pick(KNOWN).to_string(),
        5 => format!("{}.{}.{}.{}", rng.below(300), rng.below(256), rng.below(256), rng.below(256)),
        6 => format!("[{:x}::{:x}]{}", rng.below(65536), rng.below(65536), if rng.chance(50) { ":443" } else { "" }),
        7 => "a.".repeat(1 + rng.below(140)) + "example",
        8 => format!("{}:{}", rng.pick(KNOWN), rng.pick(&["80", "443", "", "99999", "x", "-1", "8443"])),
        _ => {
            let n = 1 + rng.below(4);
            let mut s = (0..n).map(|_| label(rng)).collect::<Vec<_>>().join(".");
            if rng.chance(10) {
                s.push('.');
            }
            if rng.chance(10) {
                s = s.to_uppercase();
            }
            s
        }
    }
}

fn json_value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64 % 100_000),
        3 => json!(-1),
        4 => json!(["x"]),
        5 => json!({"a": 1}),
        6 => json!("acct\r\nx-evil: 1"),
        7 => json!("a".repeat(rng.below(200))),
        _ => json!(label(rng)),
    }
}

fn lookup_body(rng: &mut Rng, asked: &str) -> Vec<u8> {
    match rng.below(20) {
        0 => b"".to_vec(),
        1 => b"not json".to_vec(),
        2 => b"{\"host\":".to_vec(),
        3 => vec![b'x'; 70_000],
        4 => {
            let pad = "p".repeat(65_536);
            record(asked, json!({ "pad": pad }))
        }
        5 => {
            let mut v = record(asked, json!({}));
            v.truncate(rng.below(v.len()));
            v
        }
        _ => {
            let accounts = ["acct-a", "acct-b", "Acct_1.eu:prod-2"];
            let mut fields = json!({
                "host": if rng.chance(90) { asked.to_string() } else { label(rng) },
                "account": if rng.chance(80) { json!(rng.pick(&accounts)) } else { json_value(rng) },
                "target_account": if rng.chance(50) { Value::Null } else if rng.chance(80) { json!(rng.pick(&accounts)) } else { json_value(rng) },
                "custom_hostname": rng.pick(&[json!(null), json!("active"), json!("pending"), json!("moved"), json!("blocked"), json!(7)]),
                "origin_resolves": if rng.chance(90) { json!(rng.chance(85)) } else { json_value(rng) },
                "suspended": if rng.chance(90) { json!(rng.chance(10)) } else { json_value(rng) },
                "ttl": rng.pick(&[json!(0), json!(1), json!(60), json!(86_400 * 400), json!(null), json!(-5), json!(1.5)]),
            });
            if rng.chance(10) {
                fields.as_object_mut().unwrap().remove(rng.pick(&["host", "origin_resolves", "account"]));
            }
            record(asked, fields)
        }
    }
}

fn settle_pending(h: &mut Host, rng: &mut Rng) {
    let tokens: Vec<(u32, String)> =
        h.pending_calls().map(|c| (c.token, c.query("host").unwrap_or("").to_string())).collect();
    for (token, asked) in tokens {
        if !h.call(token).is_some_and(|c| c.pending()) {
            continue;
        }
        match rng.below(12) {
            0 => h.fail(token),
            1 => h.timeout(token),
            2 => h.answer(token, 404, &[], b""),
            3 => h.answer(token, rng.pick(&[500, 502, 503, 302, 204, 429]), &[], b"oops"),
            4 => continue, // left to time out with the clock
            _ => {
                let body = lookup_body(rng, &asked);
                h.answer(token, 200, &[("content-type", "application/json")], &body);
            }
        }
    }
}

fn run(seed: u64, requests: usize) {
    let mut rng = Rng(seed);
    let mode = if seed.is_multiple_of(2) { "deny" } else { "allow" };
    let mut h = builder(json!({
        "failure_mode": mode,
        "cache": {"ttl_seconds": 30, "negative_ttl_seconds": 5, "failure_ttl_seconds": 2, "stale_if_error_seconds": 20, "max_entries": 16}
    }))
    .workers(2)
    .build()
    .unwrap();
    let mut sent = Vec::new();
    for _ in 0..requests {
        let mut req = Req::get(&authority(&mut rng)).method(rng.pick(&["GET", "GET", "HEAD", "POST"]));
        if rng.chance(30) {
            req = req.header(
                "accept",
                rng.pick(&[
                    "application/json",
                    "text/plain",
                    "text/html;q=0.2, application/json;q=0.1",
                    "*/*;q=x",
                    "image/*",
                    "",
                ]),
            );
        }
        if rng.chance(20) {
            req = req.header(ACCOUNT_HEADER, "acct-spoofed");
        }
        if rng.chance(20) {
            req = req.header("x-request-id", &label(&mut rng));
        }
        if rng.chance(10) {
            req = req.body("payload");
        }
        let w = rng.below(2);
        sent.push(h.worker(w).send(req));
        if rng.chance(40) {
            settle_pending(&mut h, &mut rng);
        }
        if rng.chance(5) {
            h.advance(Duration::from_millis(rng.below(40_000) as u64));
        }
    }
    // Let every lookup end, answered or timed out, and every paused request go.
    settle_pending(&mut h, &mut rng);
    h.advance(Duration::from_secs(2));
    for r in &sent {
        assert!(r.completed(&h), "request on worker {} ctx {} never ended\n{}", r.worker, r.ctx, h.log_text());
        let status = r.status(&h).expect("a response");
        assert!([200, 400, 403, 409, 503, 530].contains(&status), "status {status}");
        if r.continued(&h) {
            assert_eq!(status, 200);
            if let Some(acct) = r.forwarded_header(&h, ACCOUNT_HEADER) {
                assert_ne!(acct, "acct-spoofed", "a spoofed account header went upstream");
                assert!(acct.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)), "{acct:?}");
            } else {
                assert_eq!(mode, "allow", "forwarded without an account in deny mode");
            }
            let all = r.forwarded_headers(&h).unwrap().get_all(ACCOUNT_HEADER);
            assert!(all.len() <= 1, "{all:?}");
        }
    }
    let mut by_status = std::collections::BTreeMap::new();
    for r in &sent {
        *by_status.entry(r.status(&h).unwrap()).or_insert(0) += 1;
    }
    println!("seed {seed:#x}: {} requests, {} lookups, statuses {by_status:?}", sent.len(), h.calls().len());
    h.assert_no_anomalies();
    let total = h.metric("cname_guard.requests").unwrap();
    assert_eq!(total as usize, sent.len());
}

#[test]
fn random_traffic_deny_mode() {
    run(0x00c0_ffee_0000_0002, 2000);
}

#[test]
fn random_traffic_allow_mode() {
    run(0x00c0_ffee_0000_0003, 2000);
}
