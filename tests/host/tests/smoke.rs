//! The host loads the release .wasm and drives the seed scenario across two workers.

use cname_guard_host::{Action, Host};
use serde_json::json;
use std::time::Duration;

#[test]
fn seed_scenario_on_two_workers() -> anyhow::Result<()> {
    let mut h = Host::builder()
        .config(json!({"lookup": {"cluster": "lookup", "timeout_ms": 250}, "ray": {"colo": "ARN"}}))
        .workers(2)
        .cluster("lookup")
        .build()?;
    assert!(h.configured());

    let r = h.worker(0).request(&[(":authority", "shop.customer.example"), (":path", "/"), (":method", "GET")]);
    assert_eq!(r.action(), Action::Pause);
    let call = h.pending_calls().last().unwrap();
    assert!(call.path().contains("?host=shop.customer.example"));
    assert_eq!(call.timeout, Duration::from_millis(250));
    h.answer(
        call.token,
        200,
        &[],
        br#"{"host":"shop.customer.example","account":"acct-cust","cname_target":"edge.saas.example",
             "target_account":"acct-saas","custom_hostname":"active","origin_resolves":true}"#,
    );
    assert!(r.continued(&h));
    assert_eq!(r.forwarded_header(&h, "x-cname-guard-account"), Some("acct-saas"));

    let r2 = h.worker(1).request(&[(":authority", "custom.myclientsite.com"), (":path", "/"), (":method", "GET")]);
    let call = h.pending_calls().last().unwrap();
    h.answer(
        call.token,
        200,
        &[],
        br#"{"host":"custom.myclientsite.com","account":"acct-1","cname_target":"edge.saas.example",
             "target_account":"acct-saas","custom_hostname":null,"origin_resolves":true}"#,
    );
    let page = r2.local_response(&h).unwrap();
    assert_eq!(page.status, 409);
    assert!(page.header("cf-ray").unwrap().ends_with("-ARN"));
    assert!(page.body_str().contains("<title>custom.myclientsite.com | Error 1014</title>"));

    // Worker 1 finds worker 0's answer in shared data.
    assert_eq!(h.worker(1).get("shop.customer.example").action(), Action::Continue);
    h.advance(Duration::from_secs(61));
    assert_eq!(h.worker(1).get("shop.customer.example").action(), Action::Pause);
    assert_eq!(h.metric("cname_guard.requests"), Some(4));
    assert_eq!(h.metric("cname_guard.denied_1014"), Some(1));
    assert!(h.logged("deny 1014 status=409 host=custom.myclientsite.com"), "{}", h.log_text());
    h.assert_no_anomalies();
    Ok(())
}
