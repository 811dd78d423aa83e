//! Delegated DNS-01 against a real BIND whose DCV zone takes updates signed
//! with a TSIG key only (scripts/named-conf.sh, NAMED_KEY_FILE).

mod support;

use base64::Engine;
use cname_guard_lookup::certs::dcv::{self, DcvConfig, DcvError, Delegation, TsigKey};
use cname_guard_lookup::resolve::{Dns, Reply, Rtype};
use std::net::SocketAddr;
use std::process::Command;
use support::dns::Bind;
use support::{resolver, zone, Scratch};

const DCV_ZONE: &str = "dcv.saas.example";
const KEY_NAME: &str = "dcv-update-key";

/// A named with the DCV zone (keyed) and a customer zone; the key as
/// `tsig-keygen` printed it. The scratch directory outlives nothing it needs:
/// named has read the key file when `start_with_key` returns.
struct Setup {
    bind: Bind,
    key: TsigKey,
    _scratch: Scratch,
}

fn setup(customer_records: &str) -> Setup {
    let scratch = Scratch::new("dcv");
    let key_file = scratch.0.join("dcv.key");
    let out = Command::new("tsig-keygen").args(["-a", "hmac-sha256", KEY_NAME]).output().expect("run tsig-keygen");
    assert!(out.status.success(), "tsig-keygen: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&key_file, &out.stdout).expect("write key file");
    let key = TsigKey::from_bind_file(&key_file).expect("the key tsig-keygen printed");
    let zones = [(DCV_ZONE, zone(DCV_ZONE, "")), ("customer.example", zone("customer.example", customer_records))];
    let refs: Vec<(&str, &str)> = zones.iter().map(|(z, t)| (*z, t.as_str())).collect();
    let bind = Bind::start_with_key(&refs, &key_file, &[DCV_ZONE]);
    Setup { bind, key, _scratch: scratch }
}

impl Setup {
    fn config(&self, key: TsigKey) -> DcvConfig {
        DcvConfig { zone: DCV_ZONE.into(), server: self.bind.addr().parse().expect("addr"), tsig: key }
    }

    async fn txt(&self, name: &str) -> Reply {
        resolver(&self.bind.addr()).query(name, Rtype::Txt).await.expect("TXT query")
    }
}

fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).expect("random");
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_replaces_and_withdraw_removes() {
    let s = setup("");
    let cfg = s.config(s.key.clone());
    let at = "shop.customer.example.dcv.saas.example";

    dcv::publish(&cfg, "shop.customer.example", "first-value_0123456789abcdefghijklmnopqrstu").await.expect("publish");
    assert_eq!(
        s.txt(at).await,
        Reply::Txt { texts: vec!["first-value_0123456789abcdefghijklmnopqrstu".into()], ttl: dcv::TTL }
    );

    // A second order's value replaces the first; none is left beside it.
    dcv::publish(&cfg, "Shop.Customer.Example.", "second-value").await.expect("publish again");
    assert_eq!(s.txt(at).await, Reply::Txt { texts: vec!["second-value".into()], ttl: dcv::TTL });

    // A wildcard's value goes where the apex's does (RFC 8555 8.4).
    dcv::publish(&cfg, "*.shop.customer.example", "wildcard-value").await.expect("publish wildcard");
    assert_eq!(s.txt(at).await, Reply::Txt { texts: vec!["wildcard-value".into()], ttl: dcv::TTL });

    dcv::withdraw(&cfg, "shop.customer.example").await.expect("withdraw");
    assert!(matches!(s.txt(at).await, Reply::NxDomain { .. }), "{:?}", s.txt(at).await);
    dcv::withdraw(&cfg, "shop.customer.example").await.expect("withdraw what is gone");

    // The zone really wants the key: an unsigned update from loopback is refused.
    let script =
        format!("server 127.0.0.1 {}\nzone {DCV_ZONE}\nupdate add {at}. 60 IN TXT unsigned\nsend\n", s.bind.port);
    let file = s.bind.dir.join("unsigned.txt");
    std::fs::write(&file, script).expect("write update");
    let out = Command::new("nsupdate").args(["-t", "10"]).arg(&file).output().expect("run nsupdate");
    assert!(!out.status.success(), "an unsigned update was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("REFUSED"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(matches!(s.txt(at).await, Reply::NxDomain { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_clear_error_and_writes_nothing() {
    let s = setup("");
    let at = "shop.customer.example.dcv.saas.example";
    let server = s.bind.addr();

    // The right name, another secret: BADSIG.
    let wrong = TsigKey { secret: random_secret(), ..s.key.clone() };
    let err = dcv::publish(&s.config(wrong), "shop.customer.example", "value").await.expect_err("wrong secret");
    let DcvError::Rejected { ref zone, ref rcode, .. } = err else { panic!("{err:?}") };
    assert_eq!((zone.as_str(), rcode.as_str()), (DCV_ZONE, "NOTAUTH"));
    let text = err.to_string();
    assert!(text.contains("BADSIG") && text.contains(DCV_ZONE) && text.contains(&server), "{text}");
    assert!(matches!(s.txt(at).await, Reply::NxDomain { .. }), "nothing written");

    // A name the server does not know: BADKEY.
    let unknown = TsigKey { name: "no-such-key".into(), ..s.key.clone() };
    let err = dcv::publish(&s.config(unknown), "shop.customer.example", "value").await.expect_err("unknown key");
    assert!(err.to_string().contains("does not know TSIG key `no-such-key`"), "{err}");

    // The right key, another algorithm: the server's key is hmac-sha256 only.
    let algorithm = TsigKey { algorithm: dcv::KeyAlgorithm::HmacSha512, ..s.key.clone() };
    let err = dcv::publish(&s.config(algorithm), "shop.customer.example", "value").await.expect_err("other algorithm");
    assert!(err.to_string().contains("NOTAUTH"), "{err}");

    // A zone this server does not serve.
    let mut elsewhere = s.config(s.key.clone());
    elsewhere.zone = "dcv.other.example".into();
    let err = dcv::publish(&elsewhere, "shop.customer.example", "value").await.expect_err("not our zone");
    let text = err.to_string();
    assert!(text.contains("dcv.other.example") && text.contains(&server), "{text}");
    assert!(matches!(err, DcvError::Rejected { .. }), "{err:?}");

    assert!(matches!(s.txt(at).await, Reply::NxDomain { .. }), "still nothing written");
    // The valid key works on the same server, so the failures above were the key's.
    dcv::publish(&s.config(s.key.clone()), "shop.customer.example", "value").await.expect("the right key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delegation_check_says_what_to_add() {
    let s = setup(concat!(
        "_acme-challenge.shop IN CNAME shop.customer.example.dcv.saas.example.\n",
        "_acme-challenge.other IN CNAME acme.other-provider.example.\n",
        "_acme-challenge.bytxt IN TXT \"pasted-by-hand\"\n",
    ));
    let dns = resolver(&s.bind.addr());

    assert_eq!(dcv::delegation_ok(&dns, "shop.customer.example", DCV_ZONE).await.expect("dns"), Delegation::Ready);
    assert_eq!(dcv::delegation_ok(&dns, "*.shop.customer.example", DCV_ZONE).await.expect("dns"), Delegation::Ready);

    let add = |h: &str| format!("`_acme-challenge.{h}. CNAME {h}.dcv.saas.example.`");
    for (host, found, says) in [
        ("other.customer.example", Some("acme.other-provider.example"), "is a CNAME to `acme.other-provider.example.`"),
        ("none.customer.example", None, "does not exist: add"),
        ("bytxt.customer.example", None, "has no CNAME: remove its other records"),
    ] {
        match dcv::delegation_ok(&dns, host, DCV_ZONE).await.expect("dns") {
            Delegation::Missing { found: f, advice } => {
                assert_eq!(f.as_deref().map(|t| t.trim_end_matches('.')), found, "{host}");
                assert!(advice.contains(says) && advice.contains(&add(host)), "{host}: {advice}");
            }
            Delegation::Ready => panic!("{host}: not delegated"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_unreachable_not_rejected() {
    let key = TsigKey {
        name: KEY_NAME.into(),
        algorithm: dcv::KeyAlgorithm::HmacSha256,
        secret: base64::engine::general_purpose::STANDARD.decode("AAECAwQFBgcICQoLDA0ODw==").expect("b64"),
    };
    // Nothing listening: refused at once.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let cfg = DcvConfig { zone: DCV_ZONE.into(), server: closed, tsig: key.clone() };
    let err = dcv::withdraw(&cfg, "shop.customer.example").await.expect_err("closed port");
    assert!(matches!(err, DcvError::Unreachable { .. }), "{err:?}");

    // Accepts and never answers: the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let cfg = DcvConfig { server: silent.local_addr().expect("addr"), ..cfg };
    let started = std::time::Instant::now();
    let err = dcv::publish(&cfg, "shop.customer.example", "v").await.expect_err("silent server");
    assert!(err.to_string().contains("no answer within 5 s"), "{err}");
    assert!(started.elapsed() < dcv::TIMEOUT + std::time::Duration::from_secs(2));
}

/// A "server" on loopback TCP answering one update with `answer(request)`.
fn fake_primary(answer: fn(&[u8]) -> Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else { return };
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut request).is_err() {
            return;
        }
        let reply = answer(&request);
        let mut framed = u16::try_from(reply.len()).expect("short").to_be_bytes().to_vec();
        framed.extend(reply);
        let _ = conn.write_all(&framed);
    });
    (addr, thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_not_signed_by_the_key_is_not_trusted() {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    let key = TsigKey { name: KEY_NAME.into(), algorithm: dcv::KeyAlgorithm::HmacSha256, secret: random_secret() };

    // NOERROR with no TSIG at all: anyone on the path could send it.
    let (server, thread) = fake_primary(|request| {
        let request = Message::from_vec(request).expect("an update");
        let mut reply = Message::new();
        reply.set_id(request.id()).set_message_type(MessageType::Response).set_op_code(request.op_code());
        reply.set_response_code(ResponseCode::NoError);
        reply.to_vec().expect("encode")
    });
    let cfg = DcvConfig { zone: DCV_ZONE.into(), server, tsig: key.clone() };
    let err = dcv::publish(&cfg, "shop.customer.example", "v").await.expect_err("unsigned success");
    thread.join().expect("fake primary");
    assert!(matches!(err, DcvError::BadAnswer { .. }) && err.to_string().contains("without a TSIG"), "{err}");

    // Its own request echoed back as an answer: signed, but not a response's MAC.
    let (server, thread) = fake_primary(|request| {
        let mut reply = request.to_vec();
        reply[2] |= 0x80; // QR
        reply
    });
    let cfg = DcvConfig { server, ..cfg };
    let err = dcv::publish(&cfg, "shop.customer.example", "v").await.expect_err("echoed request");
    thread.join().expect("fake primary");
    assert!(matches!(err, DcvError::BadAnswer { .. }) && err.to_string().contains("TSIG"), "{err}");
}
