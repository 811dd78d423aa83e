//! The DNS ownership probe against real BIND: TXT present, absent or
//! wrong, a CNAME chain into an account's zone, a nameserver that fails,
//! and the verifier making a hostname active once `nsupdate` adds the TXT.

mod support;

use cname_guard_lookup::probe::DnsProbe;
use cname_guard_lookup::store::{now, Actor, Status, Store};
use cname_guard_lookup::verification::{check, Check, OwnershipProbe};
use cname_guard_lookup::verifier::{Verifier, VerifierConfig};
use std::sync::Arc;
use support::dns::{BadDns, Bind, Misbehave};
use support::{resolver, zone, Scratch};

fn bind() -> Bind {
    let brand = zone(
        "brand.example",
        "shop IN A 192.0.2.10\n\
         _cname-guard.wrong IN TXT \"not-the-token\"\n\
         _cname-guard.split IN TXT \"abc\" \"def\"\n\
         _cname-guard.two IN TXT \"one\"\n\
         _cname-guard.two IN TXT \"two\"\n\
         deep IN CNAME alias\n\
         alias IN CNAME shop-edge.saas.example.\n\
         away IN CNAME x.other.example.\n",
    );
    let saas = zone("saas.example", "shop-edge IN A 192.0.2.1\n");
    let other = zone("other.example", "x IN A 192.0.2.2\n");
    Bind::start(&[("brand.example", &brand), ("saas.example", &saas), ("other.example", &other)])
}

async fn store(dir: &Scratch) -> Store {
    let store = Store::open(&dir.sqlite_url()).await.unwrap();
    for (account, zone) in [("acct-saas", "saas.example"), ("acct-other", "other.example")] {
        store.put_account(&Actor::Admin, account, false).await.unwrap();
        store.put_zone(&Actor::Admin, zone, account).await.unwrap();
    }
    store
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt_records_as_dns_serves_them() {
    let bind = bind();
    let probe = DnsProbe::new(resolver(&bind.addr()));
    assert_eq!(probe.txt("_cname-guard.wrong.brand.example").await, Ok(strings(&["not-the-token"])));
    // A record's strings are one text; two records are two.
    assert_eq!(probe.txt("_cname-guard.split.brand.example").await, Ok(strings(&["abcdef"])));
    let mut two = probe.txt("_cname-guard.two.brand.example").await.unwrap();
    two.sort();
    assert_eq!(two, strings(&["one", "two"]));
    // NXDOMAIN and NODATA are answers: no record.
    assert_eq!(probe.txt("_cname-guard.nothing.brand.example").await, Ok(vec![]));
    assert_eq!(probe.txt("shop.brand.example").await, Ok(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chains_and_the_checks_they_lead_to() {
    let bind = bind();
    let dir = Scratch::new("probe");
    let store = store(&dir).await;
    let probe = DnsProbe::new(resolver(&bind.addr()));
    assert_eq!(
        probe.cname_chain("deep.brand.example").await,
        Ok(strings(&["alias.brand.example", "shop-edge.saas.example"]))
    );
    assert_eq!(probe.cname_chain("shop.brand.example").await, Ok(vec![]));

    // Two hops into acct-saas's zone: proven for acct-saas, not for acct-other.
    let proven = check(&store, &probe, "deep.brand.example", "acct-saas", "tok").await.unwrap();
    assert_eq!(proven, Check::Proven);
    let Check::Unproven(errors) = check(&store, &probe, "deep.brand.example", "acct-other", "tok").await.unwrap()
    else {
        panic!("proven for the wrong account");
    };
    assert_eq!(
        errors[1],
        "deep.brand.example has no CNAME into a zone of acct-other \
         (it CNAMEs to alias.brand.example -> shop-edge.saas.example)"
    );

    // A TXT record with another value is no proof, and says so.
    let Check::Unproven(errors) = check(&store, &probe, "wrong.brand.example", "acct-saas", "tok").await.unwrap()
    else {
        panic!("a wrong TXT value proved ownership");
    };
    assert_eq!(
        errors,
        [
            "TXT _cname-guard.wrong.brand.example does not hold the verification token; set it to tok",
            "wrong.brand.example has no CNAME into a zone of acct-saas (it has no CNAME)",
        ]
    );
    let Check::Unproven(errors) = check(&store, &probe, "away.brand.example", "acct-saas", "tok").await.unwrap() else {
        panic!("a CNAME into another account's zone proved ownership");
    };
    assert!(errors[0].starts_with("there is no TXT record _cname-guard.away.brand.example"), "{errors:?}");
    assert!(errors[1].ends_with("(it CNAMEs to x.other.example)"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_nameserver_is_a_dns_failure_not_an_answer() {
    let dir = Scratch::new("probe-fail");
    let store = store(&dir).await;
    for mode in [Misbehave::ServFail, Misbehave::Silent] {
        let bad = BadDns::start(mode);
        let probe = DnsProbe::new(resolver(&bad.addr.to_string()));
        assert!(probe.txt("_cname-guard.shop.brand.example").await.is_err(), "{mode:?}");
        let outcome = check(&store, &probe, "shop.brand.example", "acct-saas", "tok").await.unwrap();
        assert!(matches!(outcome, Check::DnsFailed(_)), "{mode:?}: {outcome:?}");
        assert!(bad.questions.load(std::sync::atomic::Ordering::SeqCst) > 0, "{mode:?}: never asked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_activates_a_hostname_once_its_txt_record_appears() {
    let bind = bind();
    let dir = Scratch::new("probe-verifier");
    let store = store(&dir).await;
    let token = Store::new_verification_token().unwrap();
    let h = store
        .create_hostname(&Actor::Admin, "acct-saas", "shop.brand.example", &token, Status::Pending, &[])
        .await
        .unwrap();
    let probe = Arc::new(DnsProbe::new(resolver(&bind.addr())));
    let verifier = Verifier::new(store.clone(), probe, VerifierConfig::default(), "replica-1".into());
    let status = || async { store.hostname("acct-saas", &h.id).await.unwrap().expect("hostname").status };

    let t0 = now();
    let r = verifier.round(t0).await.unwrap();
    assert_eq!((r.checked, r.changed, r.dns_failures), (1, 0, 0));
    assert_eq!(status().await, Status::Pending);

    // The answer cache is not in the way: the record is seen at the next round.
    bind.update("brand.example", &[&format!("update add _cname-guard.shop.brand.example. 1 IN TXT \"{token}\"")]);
    let r = verifier.round(t0 + 60).await.unwrap();
    assert_eq!((r.checked, r.changed, r.dns_failures), (1, 1, 0));
    assert_eq!(status().await, Status::Active);
}
