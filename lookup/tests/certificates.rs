//! Certificates in the store (issue 21), on SQLite and PostgreSQL: an
//! issued certificate and an order in flight keep their private keys
//! sealed (the raw database holds no key in clear, PEM or DER), the seal
//! opens only with the key-encryption key, and blocking or deleting the
//! hostname destroys its keys. A renewal planned from the CA's window is
//! written by the lease holder only, and a forced renewal is due at once.
//! The lookup answer says `https` while a certificate is in service.

mod support;

use base64::Engine;
use cname_guard_lookup::certs::Kek;
use cname_guard_lookup::chain::{Chain, End};
use cname_guard_lookup::registry::Answer;
use cname_guard_lookup::store::{Actor, Certificate, OrderStarted, Status, StatusChange, Store};
use support::postgres::Postgres;
use support::Scratch;

const KEK: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A key and a self-signed certificate for `host`, as the issuer would
/// have them: the key's PEM and DER, and the chain.
fn key_and_chain(host: &str) -> (String, Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![host.to_string()]).expect("params").self_signed(&key).expect("cert");
    (key.serialize_pem(), key.serialize_der(), cert.pem())
}

/// Whether any form of `der` a store could write is in `bytes`.
fn holds_key(bytes: &[u8], der: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"PRIVATE KEY") || has(der) || has(b64.as_bytes()) || has(hex.as_bytes())
}

/// The lookup answer's `https` for `host`, CNAMEd into acct's zone, from
/// the store's slice for it as the service reads it.
async fn https_of(store: &Store, host: &str) -> bool {
    let chain = Chain { names: vec![host.into(), "edge.acct.example".into()], end: End::Addresses, ttl: 60 };
    match store.platform_slice(host, &chain.names).await.expect("slice").lookup(host, &chain, 300) {
        Answer::Found(o) => o.https,
        Answer::Unknown => panic!("{host}: unknown"),
    }
}

/// Issues one certificate and leaves one order in flight; the two keys' DER.
async fn issue(store: &Store, kek: &Kek) -> (String, Vec<Vec<u8>>) {
    store.put_account(&Actor::Admin, "acct", false).await.expect("account");
    store.put_zone(&Actor::Admin, "acct.example", "acct").await.expect("zone");
    let mut ids = Vec::new();
    for host in ["a.brand.example", "b.brand.example"] {
        let h = store.create_hostname(&Actor::Admin, "acct", host, "tok", Status::Active, &[]).await.expect("create");
        ids.push(h.id);
    }
    let claimed = store.claim_ssl_due("replica-1", cname_guard_lookup::store::now(), 60, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2, "both active hostnames are due at once");

    let (pem, der_a, chain) = key_and_chain("a.brand.example");
    let cert_id = Store::new_certificate_id().expect("id");
    let key_sealed = kek.seal(pem.as_bytes(), &format!("cert:{cert_id}")).expect("seal");
    let cert = Certificate {
        id: cert_id.clone(),
        hostname_id: ids[0].clone(),
        hostname: "a.brand.example".into(),
        chain_pem: chain,
        key_sealed: key_sealed.clone(),
        certificate_authority: "test".into(),
        issuer: "test".into(),
        serial_number: "01".into(),
        not_before: 0,
        expires_on: i64::MAX / 2,
        renew_at: i64::MAX / 4,
    };
    assert!(store.ssl_issued("replica-1", &cert, false, cert.renew_at).await.expect("issued"));
    // Only the owner of the lease writes.
    assert!(!store.ssl_issued("replica-2", &cert, false, cert.renew_at).await.expect("not issued"));

    let (pem_b, der_b, _) = key_and_chain("b.brand.example");
    let order_cert = Store::new_certificate_id().expect("id");
    let order = OrderStarted {
        order_url: "https://ca.example/order/1".into(),
        order_cert: order_cert.clone(),
        order_key: kek.seal(pem_b.as_bytes(), &format!("cert:{order_cert}")).expect("seal"),
        http_token: Some("tok".into()),
        http_body: Some("tok.thumb".into()),
        txt_value: None,
    };
    assert!(store.ssl_order_started("replica-1", &ids[1], &order).await.expect("order"));
    // In service for a; b's order is in flight, nothing in service yet.
    assert!(https_of(store, "a.brand.example").await);
    assert!(!https_of(store, "b.brand.example").await);

    // The seal opens with the key and its subject only.
    let stored = store.certificate_for("a.brand.example").await.expect("read").expect("in service");
    assert_eq!(kek.open(&stored.key_sealed, &format!("cert:{cert_id}")).expect("opens"), pem.as_bytes());
    assert!(kek.open(&stored.key_sealed, "cert:another").is_err());
    let other = Kek::from_hex(&KEK.replace("ff", "fe")).expect("kek");
    assert!(other.open(&stored.key_sealed, &format!("cert:{cert_id}")).is_err(), "a copied store without the KEK file");
    (ids[0].clone(), vec![der_a, der_b])
}

/// The issuer's look at the CA's renewal window (ARI) for `a`: written by
/// the lease holder only; the hostname is due again at the look, the
/// certificate's renewal where the window put it; a forced renewal makes
/// it due now, whatever the window said.
async fn renewal_is_planned_and_forced(store: &Store, id: &str) {
    let now = cname_guard_lookup::store::now();
    store.ssl_retry_now(&Actor::Admin, "acct", id, "test").await.expect("force");
    let cert_id = store.certificate_for("a.brand.example").await.expect("read").expect("in service").id;
    assert!(store.certificate(&cert_id).await.expect("read").expect("cert").renew_at <= now + 1, "forced: due now");
    let claimed = store.claim_ssl_due("replica-2", now + 1, 60, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec![id], "only a; b's lease holds");
    assert!(!store.ssl_renewal_planned("replica-1", id, &cert_id, now + 1_000, now + 500).await.expect("plan"));
    assert!(store.ssl_renewal_planned("replica-2", id, &cert_id, now + 1_000, now + 500).await.expect("plan"));
    assert_eq!(store.certificate(&cert_id).await.expect("read").expect("cert").renew_at, now + 1_000);
    assert!(store.claim_ssl_due("replica-2", now + 499, 60, 10).await.expect("claim").iter().all(|h| h.id != id));
    let claimed = store.claim_ssl_due("replica-2", now + 500, 60, 10).await.expect("claim");
    assert!(claimed.iter().any(|h| h.id == id), "due again at the next look");
    store.ssl_release_all("replica-2").await.expect("release");
}

/// Blocking takes the certificate out of service and destroys its key.
async fn block_destroys(store: &Store, id: &str) {
    let change =
        StatusChange { from: Status::Active, to: Status::Blocked, verification_errors: vec![], reason: "test".into() };
    let h = store.change_status(&Actor::Admin, "acct", id, &change).await.expect("block").expect("changed");
    assert_eq!(h.ssl.certificate, None);
    assert_eq!(h.ssl.status.as_str(), "initializing");
    assert!(store.certificate_for("a.brand.example").await.expect("read").is_none());
    assert!(!https_of(store, "a.brand.example").await);
    // The feed names it for the SDS side (and the filter, whose cached answer said `https`).
    let head = store.feed_head().await.expect("head").seq;
    let cname_guard_lookup::store::Changes::Page { certs, .. } = store.changes_since(head - 1).await.expect("changes")
    else {
        panic!("a reset")
    };
    assert_eq!(certs, vec!["a.brand.example".to_string()]);
    assert_eq!(store.sealed_values().await.expect("sealed").len(), 1, "only the order in flight keeps a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys_are_sealed_and_destroyed() {
    let dir = Scratch::new("certificates");
    let store = Store::open(&dir.sqlite_url()).await.expect("open");
    let kek = Kek::from_hex(KEK).expect("kek");
    let (id, ders) = issue(&store, &kek).await;
    store.close().await;
    let mut bytes = Vec::new();
    for f in ["store.db", "store.db-wal"] {
        bytes.extend(std::fs::read(dir.0.join(f)).unwrap_or_default());
    }
    assert!(bytes.len() > 4096, "the store was read");
    for der in &ders {
        assert!(!holds_key(&bytes, der), "a private key in clear in SQLite");
    }
    let store = Store::open(&dir.sqlite_url()).await.expect("reopen");
    renewal_is_planned_and_forced(&store, &id).await;
    block_destroys(&store, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys_are_sealed_and_destroyed() {
    let pg = Postgres::start();
    let store = Store::open(&pg.create_database("certs").await).await.expect("open");
    let kek = Kek::from_hex(KEK).expect("kek");
    let (id, ders) = issue(&store, &kek).await;
    let dump = pg.dump("certs");
    assert!(String::from_utf8_lossy(&dump).contains("a.brand.example"), "the dump holds the data");
    for der in &ders {
        assert!(!holds_key(&dump, der), "a private key in clear in PostgreSQL");
    }
    renewal_is_planned_and_forced(&store, &id).await;
    block_destroys(&store, &id).await;
}
