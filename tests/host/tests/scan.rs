//! Issue 22: a flood of unique hostnames must not push the hostnames in
//! steady use out of the cache, in the worker's map or the slot table.

mod common;
use cname_guard_core::cache::decode_slot;
use cname_guard_host::{Action, Host};
use cname_guard_testkit::load::unique_names;
use common::*;
use serde_json::json;
use std::collections::HashSet;

fn hot() -> Vec<String> {
    (0..200).map(|i| format!("shop{i}.customer.example")).collect()
}

/// The hosts the shared slot table holds.
fn in_slots(h: &Host) -> HashSet<String> {
    h.shared_data_keys()
        .into_iter()
        .filter(|k| k.starts_with("cname_guard.slot."))
        .filter_map(|k| h.shared_data(&k))
        .filter_map(|(v, _)| decode_slot(&v).map(|(host, _)| String::from_utf8_lossy(host).into_owned()))
        .collect()
}

/// Looks the hot hosts up, then serves them four times from worker 0's map.
fn warm(h: &mut Host) -> Vec<String> {
    let hot = hot();
    for host in &hot {
        looked_up(h, host, json!({"account": "acct-saas"}));
    }
    for _ in 0..4 {
        for host in &hot {
            assert_eq!(h.worker(0).get(host).action(), Action::Continue);
        }
    }
    hot
}

#[test]
fn a_flood_of_unique_hosts_leaves_the_hot_hosts_cached() {
    let mut h = builder(json!({"cache": {"max_entries": 1024}})).workers(2).build().expect("host starts");
    let hot = warm(&mut h);
    let slots_before: HashSet<String> = in_slots(&h).into_iter().filter(|s| hot.contains(s)).collect();
    // 20,000 unique random names, each looked up once and denied (404).
    for name in unique_names(1, 20_000, "flood.example") {
        let r = h.worker(0).get(&name);
        let token = h.pending_calls().next_back().expect("a lookup for a new name").token;
        h.answer(token, 404, &[], b"");
        assert_eq!(status(&h, &r), 409);
    }
    let calls = h.calls().len();
    for host in &hot {
        h.worker(0).get(host);
    }
    let relooked = h.calls().len() - calls;
    assert!(relooked <= 2, "{relooked} of 200 hot hosts needed a new lookup");
    // The slot table keeps what it held of them (a 2-way set cannot hold
    // three hot hosts, so not always all 200), within the same target.
    let slots_after = in_slots(&h);
    let gone: Vec<&String> = slots_before.iter().filter(|s| !slots_after.contains(*s)).collect();
    assert!(gone.len() <= 2, "pushed out of the slot table: {gone:?}");
    assert!(slots_after.len() <= 1024);
    h.assert_no_anomalies();
}

/// The overload benchmark's case: names the lookup ALLOWS, on two workers.
/// Worker 0 serves the hot hosts from its own map; worker 1 never saw them,
/// so by its own count they are as cold as a flood name. The slot table
/// must still keep them for worker 1.
#[test]
fn a_flood_of_allowed_hosts_on_two_workers_leaves_the_hot_hosts_in_the_slots() {
    let mut h = builder(json!({"cache": {"max_entries": 1024}})).workers(2).build().expect("host starts");
    let hot = warm(&mut h);
    for (i, flood) in unique_names(2, 20_000, "tenants.saas.example").enumerate() {
        let r = h.worker(i % 2).get(&flood);
        answer_record(&mut h, &flood, json!({"account": "acct-flood"}));
        assert_eq!(status(&h, &r), 200);
        // Worker 0 keeps serving the hot hosts meanwhile (from its map).
        if i % 20 == 0 {
            assert_eq!(h.worker(0).get(&hot[(i / 20) % hot.len()]).action(), Action::Continue);
        }
    }
    for w in [1, 0] {
        let calls = h.calls().len();
        for host in &hot {
            h.worker(w).get(host);
        }
        let relooked = h.calls().len() - calls;
        let tokens: Vec<u32> = h.pending_calls().map(|c| c.token).collect();
        for token in tokens {
            h.answer(token, 404, &[], b"");
        }
        assert!(relooked <= 2, "worker {w}: {relooked} of 200 hot hosts needed a new lookup");
    }
    assert!(in_slots(&h).len() <= 1024);
}
