//! Seeds a store with `--count` active custom hostnames, each with a
//! certificate in service, without a CA: what `make bench-tls`
//! (`tests/bench_tls.rs`) serves to Envoy by on-demand SDS.
//!
//! One bench root and one intermediate (ECDSA P-256, made here by rcgen)
//! sign every leaf (P-256, the hostname its only name); each chain is the
//! leaf and the intermediate, as an ACME CA's is. The store is written
//! through the crate's public API only, as the issuer writes it: the
//! hostname created `active`, claimed for the issuer, the certificate put
//! in service with its key sealed under the KEK (`cert:<id>`).
//!
//! Into `--out`: `ca.pem` (the root, for the client to verify against),
//! `hostnames.txt` (one a line, in creation order), and the first
//! hostname's chain and key in clear, `first.pem` and `first-key.pem`, for a
//! listener with a static certificate that serves the very same one.
//!
//! ```sh
//! cargo run --release -p cname-guard-lookup --example seed_certificates -- \
//!   --database sqlite:/tmp/bench/store.db --kek-file /tmp/bench/kek --count 10000 --out /tmp/bench
//! ```
//!
//! Give it a fresh database: every active hostname without a certificate
//! that it finds due gets one of the bench CA's.

use clap::Parser;
use cname_guard_lookup::certs::{issued, Kek};
use cname_guard_lookup::store::{self, Actor, Certificate, Status, Store};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// `sqlite:PATH` or `postgres://...`
    #[arg(long)]
    database: String,
    /// The key-encryption key the service runs with (64 hex digits).
    #[arg(long)]
    kek_file: PathBuf,
    /// Custom hostnames to create, each with a certificate.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The hostnames are `c<n>.<suffix>`, n from 00000.
    #[arg(long, default_value = "bench.example")]
    suffix: String,
    /// The account that owns the custom hostnames (created if missing).
    #[arg(long, default_value = "acct-saas")]
    account: String,
    /// A zone of that account (its CNAME target), put if given.
    #[arg(long)]
    zone: Option<String>,
    /// Where ca.pem, hostnames.txt, first.pem and first-key.pem go.
    #[arg(long)]
    out: PathBuf,
}

/// The lease holder the certificates are issued as.
const OWNER: &str = "bench-seed";
/// Hostnames claimed for issuing at a time.
const BATCH: u32 = 500;
const DAY: i64 = 86_400;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args).await {
        eprintln!("seed_certificates: {e}");
        std::process::exit(1);
    }
}

/// The bench CA: a root, and the intermediate that signs the leaves.
struct Ca {
    root_pem: String,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
}

fn ca() -> Result<Ca, rcgen::Error> {
    let root_key = KeyPair::generate()?;
    let mut root = CertificateParams::new(Vec::<String>::new())?;
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name.push(DnType::CommonName, "cname-guard bench root");
    let root_cert = root.self_signed(&root_key)?;
    let root = Issuer::new(root, root_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, "cname-guard bench intermediate");
    params.distinguished_name.push(DnType::OrganizationName, "cname-guard bench CA");
    let cert = params.signed_by(&key, &root)?;
    Ok(Ca { root_pem: root_cert.pem(), intermediate_pem: cert.pem(), intermediate: Issuer::new(params, key) })
}

/// A leaf for `host` valid from a day ago for 90 days: its chain (leaf,
/// intermediate) and its key, as PEM.
fn leaf(ca: &Ca, host: &str, now: i64) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![host.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, host);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs((now - DAY) as u64);
    params.not_after = epoch + Duration::from_secs((now + 89 * DAY) as u64);
    let cert = params.signed_by(&key, &ca.intermediate)?;
    Ok((format!("{}{}", cert.pem(), ca.intermediate_pem), key.serialize_pem()))
}

async fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let kek = Kek::from_file(&args.kek_file).map_err(|e| e.to_string())?;
    let store = Store::open(&args.database).await.map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let write = |name: &str, text: &str| {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let ca = ca().map_err(|e| format!("the bench CA: {e}"))?;
    write("ca.pem", &ca.root_pem)?;

    store.put_account(&Actor::Admin, &args.account, false).await.map_err(|e| e.to_string())?;
    if let Some(zone) = &args.zone {
        store.put_zone(&Actor::Admin, zone, &args.account).await.map_err(|e| e.to_string())?;
    }
    let width = args.count.saturating_sub(1).to_string().len().max(5);
    let hostnames: Vec<String> = (0..args.count).map(|i| format!("c{i:0width$}.{}", args.suffix)).collect();
    for host in &hostnames {
        let token = Store::new_verification_token().map_err(|e| e.to_string())?;
        store
            .create_hostname(&Actor::Admin, &args.account, host, &token, Status::Active, &[])
            .await
            .map_err(|e| format!("{host}: {e}"))?;
    }
    write("hostnames.txt", &(hostnames.join("\n") + "\n"))?;
    let created = started.elapsed();

    // As the issuer: claim what is due, put a certificate in service for each.
    let mut issued = 0usize;
    loop {
        let now = store::now();
        let due = store.claim_ssl_due(OWNER, now, 3_600, BATCH).await.map_err(|e| e.to_string())?;
        if due.is_empty() {
            break;
        }
        for h in due {
            let (chain, key) = leaf(&ca, &h.hostname, now).map_err(|e| format!("{}: {e}", h.hostname))?;
            let read = issued::leaf(&chain)?;
            let id = Store::new_certificate_id().map_err(|e| e.to_string())?;
            let key_sealed = kek.seal(key.as_bytes(), &format!("cert:{id}")).map_err(|e| e.to_string())?;
            let renew_at = issued::renew_at(read.not_before, read.not_after);
            let cert = Certificate {
                id,
                hostname_id: h.id.clone(),
                hostname: h.hostname.clone(),
                chain_pem: chain.clone(),
                key_sealed,
                certificate_authority: "bench".into(),
                issuer: read.issuer,
                serial_number: read.serial_number,
                not_before: read.not_before,
                expires_on: read.not_after,
                renew_at,
            };
            if !store.ssl_issued(OWNER, &cert, false, renew_at).await.map_err(|e| e.to_string())? {
                return Err(format!("{}: the lease was lost", h.hostname));
            }
            if h.hostname == hostnames[0] {
                write("first.pem", &chain)?;
                write("first-key.pem", &key)?;
            }
            issued += 1;
        }
    }
    store.close().await;
    if issued < hostnames.len() {
        return Err(format!("{issued} certificates issued for {} hostnames", hostnames.len()));
    }
    println!(
        "seeded {} hostnames with certificates ({issued} issued) in {:.1} s ({:.1} s creating the hostnames)",
        hostnames.len(),
        started.elapsed().as_secs_f64(),
        created.as_secs_f64()
    );
    Ok(())
}
