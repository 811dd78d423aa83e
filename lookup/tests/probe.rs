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

/// Seconds since midnight of a query-log line (`03-Dec-2026 18:14:43.808 client ...`).
fn logged_at(line: &str) -> Option<f64> {
    let clock = line.split_whitespace().nth(1)?;
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?);
    Some(h * 3600.0 + m * 60.0 + s.parse::<f64>().ok()?)
}

/// `--verify-qps`: the verifier's questions reach BIND at the budget, not
/// faster, and a pass takes what the budget says; a moved hostname among
/// them is marked within the pass; a pass that cannot fit the re-check
/// interval is known before it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_keeps_to_its_dns_budget() {
    const M: usize = 40;
    const QPS: u32 = 50;
    let mut records = String::new();
    for i in 0..M {
        // Its own edge name each: every question of a check reaches BIND.
        // h7 has moved: into another account's zone, its TXT gone.
        if i == 7 {
            records.push_str("h7 IN CNAME x.other.example.\n");
        } else {
            records.push_str(&format!("h{i} IN CNAME e{i}.saas.example.\n_cname-guard.h{i} IN TXT \"token-{i}\"\n"));
        }
    }
    let edges: String = (0..M).map(|i| format!("e{i} IN A 192.0.2.1\n")).collect();
    let bind = Bind::start(&[
        ("brand.example", &zone("brand.example", &records)),
        ("saas.example", &zone("saas.example", &edges)),
        ("other.example", &zone("other.example", "x IN A 192.0.2.2\n")),
    ]);
    let dir = Scratch::new("probe-budget");
    let store = store(&dir).await;
    for i in 0..M {
        let (host, token) = (format!("h{i}.brand.example"), format!("token-{i}"));
        store.create_hostname(&Actor::Admin, "acct-saas", &host, &token, Status::Active, &[]).await.unwrap();
    }
    let config = VerifierConfig {
        qps: QPS,
        tick: std::time::Duration::from_millis(100),
        recheck_interval: std::time::Duration::from_secs(2),
        ..VerifierConfig::default()
    };
    let probe = Arc::new(DnsProbe::new(resolver(&bind.addr())));
    let verifier = Verifier::new(store.clone(), probe, config, "replica-1".into());

    // Known before the pass: 40 checks of ~4 questions at 50 a second is 3.2 s, past the 2 s interval.
    let plan = verifier.plan().await.unwrap();
    assert_eq!((plan.hostnames, plan.pass.as_millis(), plan.meets_interval), (M as u64, 3200, false), "{plan:?}");

    let before = bind.queries().len();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(verifier.run(async move {
        let _ = stop_rx.await;
    }));
    let txt_asked = |q: &[String]| q.iter().filter(|l| l.contains("_cname-guard.h") && l.contains(" IN TXT ")).count();
    let queries = tokio::task::spawn_blocking(move || {
        support::dns::wait("every hostname's TXT asked", std::time::Duration::from_secs(30), || {
            let q: Vec<String> = bind.queries().split_off(before);
            // The last check's own questions after its TXT, then the pass is whole.
            (txt_asked(&q) == M && q.iter().any(|l| l.contains("e39.saas.example IN A"))).then_some(q)
        })
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    running.await.unwrap();

    let times: Vec<f64> = queries.iter().filter_map(|l| logged_at(l)).collect();
    let span = times.last().unwrap() - times.first().unwrap();
    let n = queries.len() as f64;
    eprintln!("{} questions in {span:.2} s: {:.1} a second (budget {QPS})", queries.len(), (n - 1.0) / span);
    assert!(n >= (4 * M - 1) as f64, "{n} questions for {M} checks");
    // The budget holds (a check's questions are reserved before it starts)...
    assert!((n - 1.0) / span <= f64::from(QPS) * 1.1, "{n} questions in {span:.2} s");
    // ...and the pass is not much slower than the budget allows.
    assert!(span <= n / f64::from(QPS) * 1.5 + 0.5, "{n} questions in {span:.2} s");
    let moved = store.hostname_by_name("h7.brand.example").await.unwrap().unwrap();
    assert_eq!(moved.status, Status::Moved, "{:?}", moved.verification_errors);
}
