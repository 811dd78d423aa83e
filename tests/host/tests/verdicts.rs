//! Every verdict of the lookup contract, driven through the compiled filter.

mod common;
use cname_guard_host::Action;
use common::*;
use serde_json::json;

const H: &str = "shop.customer.example";

#[test]
fn owner_is_allowed_and_stamped_with_the_account() {
    let mut h = host();
    let r = h.worker(0).get(H);
    assert_eq!(r.action(), Action::Pause);
    let call = h.pending_calls().last().unwrap();
    assert_eq!(call.cluster, CLUSTER);
    assert_eq!(call.path(), "/v1/ownership?host=shop.customer.example");
    assert_eq!(call.query("host"), Some(H));
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(call.header(":authority"), Some(CLUSTER));
    assert_eq!(call.timeout, std::time::Duration::from_millis(500));
    h.answer(call.token, 200, &[], &record(H, json!({"account": "acct-saas"})));
    assert!(r.continued(&h) && r.resumed(&h));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    assert_eq!(r.local_response(&h), None);
    assert_eq!(status(&h, &r), 200);
    assert!(r.completed(&h));
    assert_eq!(h.metric("cname_guard.allowed"), Some(1));
    h.assert_no_anomalies();
}

#[test]
fn authorized_custom_hostname_is_served_by_the_target_account() {
    let mut h = host();
    let r = looked_up(
        &mut h,
        H,
        json!({"account": "acct-cust", "cname_target": "edge.saas.example", "target_account": "acct-saas", "custom_hostname": "active"}),
    );
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("acct-saas"));
    // Same account on both sides is no cross-account CNAME at all.
    let r = looked_up(&mut h, "same.customer.example", json!({"account": "a1", "target_account": "a1"}));
    assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), Some("a1"));
    h.assert_no_anomalies();
}

#[test]
fn unknown_host_404_is_1001() {
    let mut h = host();
    let r = h.worker(0).get(H);
    let token = h.pending_calls().last().unwrap().token;
    h.answer(token, 404, &[], b"");
    assert!(!r.continued(&h));
    let lr = r.local_response(&h).expect("local response");
    assert_eq!(lr.status, 409);
    assert!(lr.body_str().contains("Error 1001"), "{}", lr.body_str());
    assert_eq!(lr.header("server"), Some("cloudflare"));
    // The default ray id has the seed's shape: 16 lowercase hex, a dash, three capitals.
    let ray = lr.header("cf-ray").expect("cf-ray");
    let (hex, colo) = ray.split_once('-').expect("dash");
    assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{ray}");
    assert_eq!(colo, "EDG");
    assert_eq!(h.metric("cname_guard.denied_1001"), Some(1));
    h.assert_no_anomalies();
}

#[test]
fn nobody_owning_it_is_1001() {
    let mut h = host();
    let r = looked_up(&mut h, H, json!({"account": null, "target_account": null}));
    assert_eq!(status(&h, &r), 409);
    assert!(r.local_response(&h).unwrap().body_str().contains("Error 1001"));
}

#[test]
fn cname_into_another_account_is_1014() {
    let mut h = host();
    for (i, ch) in [json!(null), json!("blocked"), json!("Active")].into_iter().enumerate() {
        let host = format!("c{i}.customer.example");
        let r = looked_up(
            &mut h,
            &host,
            json!({"account": "acct-cust", "cname_target": "edge.saas.example", "target_account": "acct-saas", "custom_hostname": ch}),
        );
        let lr = r.local_response(&h).unwrap_or_else(|| panic!("{ch}: no local response"));
        assert_eq!(lr.status, 409, "{ch}");
        assert!(lr.body_str().contains("Error 1014: CNAME cross-user banned"), "{ch}");
        assert_eq!(r.forwarded_header(&h, ACCOUNT_HEADER), None);
    }
    assert_eq!(h.metric("cname_guard.denied_1014"), Some(3));
}

#[test]
fn pending_or_moved_custom_hostname_is_1016() {
    let mut h = host();
    for ch in ["pending", "moved"] {
        let host = format!("{ch}.customer.example");
        let r = looked_up(
            &mut h,
            &host,
            json!({"account": "acct-cust", "target_account": "acct-saas", "custom_hostname": ch}),
        );
        let lr = r.local_response(&h).unwrap();
        assert_eq!(lr.status, 530, "{ch}");
        assert!(lr.body_str().contains("Error 1016"), "{ch}");
    }
}

#[test]
fn origin_not_resolving_is_1016() {
    let mut h = host();
    let r = looked_up(&mut h, H, json!({"origin_resolves": false}));
    assert_eq!(status(&h, &r), 530);
    assert!(r.local_response(&h).unwrap().body_str().contains("Error 1016"));
}

#[test]
fn suspended_account_is_1004() {
    let mut h = host();
    let r = looked_up(&mut h, H, json!({"suspended": true}));
    let lr = r.local_response(&h).unwrap();
    assert_eq!(lr.status, 403);
    assert!(lr.body_str().contains("Error 1004"));
    assert_eq!(h.metric("cname_guard.denied_1004"), Some(1));
}

#[test]
fn statuses_follow_the_configuration() {
    let mut h = host_with(json!({"status": {"1014": 403, "1001": 404}}));
    let r = looked_up(&mut h, "x.customer.example", json!({"account": "a", "target_account": "b"}));
    assert_eq!(status(&h, &r), 403);
    let r = h.worker(0).get("y.customer.example");
    let token = h.pending_calls().last().unwrap().token;
    h.answer(token, 404, &[], b"");
    assert_eq!(status(&h, &r), 404);
}
