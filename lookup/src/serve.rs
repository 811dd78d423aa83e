//! `cname-guard-lookup serve`: the store, the lookup listener (Envoy's), the
//! management API on its own listener, and the verifier, until SIGTERM or
//! SIGINT stops all three.

use crate::admin::{admin_router, AdminState};
use crate::api::{LookupApi, WithChanges};
use crate::certs::{Issuer, IssuerConfig, Kek};
use crate::cli::{AcmeArgs, ServeArgs, Switch, VerifierArgs, XdsArgs};
use crate::dns_budget::Bounded;
use crate::dns_cache::CachedDns;
use crate::feed::{Feed, FeedConfig};
use crate::ownership::Ownerships;
use crate::resolve::{DnsConfig, Hickory};
use crate::retention::{AuditPruner, RetentionConfig};
use crate::run::StartError;
use crate::server::{self, Shutdown};
use crate::shed::Shedding;
use crate::store::{import_file, Store};
use crate::verification::OwnershipProbe;
use crate::verifier::{Verifier, VerifierConfig};
use crate::xds::{self, XdsConfig, XdsStats};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const ADMIN_TOKEN_ENV: &str = "CNAME_GUARD_ADMIN_TOKEN";

#[derive(Debug)]
pub enum ServeError {
    Start(StartError),
    /// The database could not be opened or migrated.
    Store(String),
    /// `--import` failed: nothing was imported.
    Import(String),
    AdminToken(String),
    /// The certificate flags are inconsistent or a file is unusable.
    Certificates(String),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Start(e) => write!(f, "{e}"),
            ServeError::Store(e) => write!(f, "cannot open the database: {e}"),
            ServeError::Import(e) => write!(f, "--import: {e}"),
            ServeError::AdminToken(e) => write!(f, "admin token: {e}"),
            ServeError::Certificates(e) => write!(f, "certificates: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<StartError> for ServeError {
    fn from(e: StartError) -> ServeError {
        ServeError::Start(e)
    }
}

/// The DNS client's configuration from the flags.
pub fn dns_config(args: &ServeArgs) -> DnsConfig {
    DnsConfig {
        servers: args.dns.servers.clone(),
        timeout: Duration::from_millis(args.dns.timeout_ms),
        attempts: args.dns.attempts as usize,
    }
}

pub fn verifier_config(args: &VerifierArgs) -> VerifierConfig {
    let mut config = VerifierConfig::default();
    if !args.pending_backoff.is_empty() {
        let mut steps = args.pending_backoff.clone();
        steps.sort();
        config.pending_backoff = steps;
    }
    config.pending_timeout = args.pending_timeout;
    config.recheck_interval = args.recheck;
    config.tick = args.tick;
    config.qps = args.qps;
    // A DNS failure is retried no later than the next recheck.
    config.retry_after_dns_failure = config.retry_after_dns_failure.min(args.recheck);
    config
}

/// The issuer's configuration and key-encryption key; `None`: no
/// `--acme-directory`, certificates off.
pub fn issuer_config(args: &AcmeArgs) -> Result<Option<(IssuerConfig, Kek)>, ServeError> {
    let Some(directory) = args.directory.clone() else {
        return Ok(None);
    };
    let bad = |m: String| ServeError::Certificates(m);
    let Some(kek_file) = &args.kek_file else {
        return Err(bad("--acme-directory needs --kek-file (or CNAME_GUARD_KEK_FILE): keys are stored sealed".into()));
    };
    let kek = Kek::from_file(kek_file).map_err(|e| bad(e.to_string()))?;
    if !(directory.starts_with("https://")) {
        return Err(bad(format!("--acme-directory must be an https:// URL (got {directory:?})")));
    }
    let mut config = IssuerConfig::new(directory);
    config.contacts = args.contacts.clone();
    config.ca_root = args.ca_root.clone();
    if let Some(root) = &config.ca_root {
        std::fs::metadata(root).map_err(|e| bad(format!("--acme-ca-root {}: {e}", root.display())))?;
    }
    config.caa_identities = args.caa_identities.iter().map(|i| i.trim().to_ascii_lowercase()).collect();
    if let Some(file) = &args.eab_file {
        let text =
            std::fs::read_to_string(file).map_err(|e| bad(format!("--acme-eab-file {}: {e}", file.display())))?;
        let mut parts = text.split_whitespace();
        let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("--acme-eab-file {}: must hold the key id and the HMAC key", file.display())));
        };
        use base64::Engine;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .map_err(|e| bad(format!("--acme-eab-file {}: the HMAC key is not base64url: {e}", file.display())))?;
        config.eab = Some((id.to_string(), key));
    }
    config.tick = args.acme_tick;
    config.concurrency = args.concurrency;
    config.poll_timeout = args.poll_timeout;
    config.lease = args.lease;
    if config.lease < config.poll_timeout * 2 + Duration::from_secs(1) {
        return Err(bad(format!(
            "--acme-lease must exceed twice --acme-poll-timeout ({}s): a lease must outlast one attempt",
            config.poll_timeout.as_secs()
        )));
    }
    config.retry_min = args.retry_min;
    config.retry_max = args.retry_max.max(args.retry_min);
    config.give_up_after = args.give_up_after;
    if let (Some(zone), Some(server), Some(key)) = (&args.dcv_zone, args.dcv_server, &args.dcv_tsig_key_file) {
        let zone = crate::dns::canonical(zone).map_err(|_| bad(format!("--dcv-zone {zone:?} is not a DNS name")))?;
        let tsig = crate::certs::dcv::TsigKey::from_bind_file(key).map_err(bad)?;
        config.dcv = Some(crate::certs::dcv::DcvConfig { zone, server, tsig });
    }
    config.orders_per_hour = args.orders_per_hour;
    config.account_orders_per_hour = args.account_orders_per_hour;
    Ok(Some((config, kek)))
}

/// The SDS server's configuration and the KEK it opens keys with; `None`:
/// no `--xds-listen`.
pub fn xds_config(args: &XdsArgs, kek_file: Option<&Path>) -> Result<Option<(XdsConfig, Kek)>, ServeError> {
    if args.xds_listen.is_none() {
        return Ok(None);
    }
    let bad = |m: String| ServeError::Certificates(m);
    let read =
        |flag: &str, file: &Path| std::fs::read(file).map_err(|e| bad(format!("{flag} {}: {e}", file.display())));
    if args.xds_token_file.is_none() && args.xds_client_ca.is_none() {
        return Err(bad(
            "--xds-listen needs --xds-token-file or --xds-client-ca (mutual TLS): private keys go only to \
                        Envoys holding the node credentials"
                .into(),
        ));
    }
    let token = match &args.xds_token_file {
        Some(file) => {
            let token = String::from_utf8(read("--xds-token-file", file)?)
                .map_err(|_| bad(format!("--xds-token-file {}: not UTF-8", file.display())))?;
            if token.trim().len() < crate::admin::MIN_ADMIN_TOKEN {
                return Err(bad(format!(
                    "--xds-token-file {}: at least {} characters",
                    file.display(),
                    crate::admin::MIN_ADMIN_TOKEN
                )));
            }
            Some(token)
        }
        None => None,
    };
    let tls = match (&args.xds_tls_cert, &args.xds_tls_key) {
        (Some(cert), Some(key)) => {
            let ca = args.xds_client_ca.as_deref().map(|f| read("--xds-client-ca", f)).transpose()?;
            let tls = xds::tls_config(&read("--xds-tls-cert", cert)?, &read("--xds-tls-key", key)?, ca.as_deref())
                .map_err(|e| bad(format!("--xds-tls-cert/--xds-tls-key/--xds-client-ca: {e}")))?;
            Some(tls)
        }
        _ => None,
    };
    let Some(kek_file) = kek_file else {
        return Err(bad("--xds-listen needs --kek-file: the keys it serves are sealed".into()));
    };
    let kek = Kek::from_file(kek_file).map_err(|e| bad(e.to_string()))?;
    let max = usize::try_from(args.max_secrets_per_node).unwrap_or(usize::MAX);
    let mut config = XdsConfig::new(token.as_deref(), max, args.xds_poll);
    config.tls = tls;
    Ok(Some((config, kek)))
}

/// The admin token: `--admin-token-file`, else the environment; `None`:
/// the management API is not served.
pub fn admin_token(file: Option<&Path>, env: Option<String>) -> Result<Option<String>, ServeError> {
    let raw = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ServeError::AdminToken(format!("--admin-token-file {}: {e}", path.display())))?,
        None => match env {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    Ok(Some(raw.trim().to_string()))
}

/// Opens the store, imports `--import`, and serves until a signal.
/// `probe` is the DNS the verifier and the management API check with.
pub async fn serve(
    args: ServeArgs,
    admin_token: Option<String>,
    probe: Arc<dyn OwnershipProbe>,
) -> Result<(), ServeError> {
    let issuer = issuer_config(&args.acme)?;
    let xds = xds_config(&args.xds, args.acme.kek_file.as_deref())?;
    // Before anything records: what is recorded earlier is lost.
    crate::metrics::install();
    let store = Store::open(&args.database.database).await.map_err(|e| ServeError::Store(e.to_string()))?;
    tracing::info!(backend = ?store.backend(), "store open");
    if let Some(file) = &args.import {
        let counts =
            import_file(&store, file).await.map_err(|e| ServeError::Import(format!("{}: {e}", file.display())))?;
        tracing::info!(file = %file.display(), counts = ?counts, "imported");
    }
    let admin = match admin_token {
        Some(token) => Some(
            AdminState::new(store.clone(), &token, probe.clone())
                .map_err(|e| ServeError::AdminToken(e.to_string()))?
                .with_certificates(
                    issuer.is_some(),
                    issuer.as_ref().and_then(|(c, _)| c.dcv.as_ref()).map(|d| d.zone.clone()),
                ),
        ),
        None => {
            tracing::warn!("no --admin-token-file or {ADMIN_TOKEN_ENV}: the management API is not served");
            None
        }
    };

    let dns_config = dns_config(&args);
    let resolver = Hickory::new(&dns_config).map_err(StartError::Dns)?;
    let servers: Vec<String> = dns_config.servers.iter().map(ToString::to_string).collect();
    let max_ttl = args.dns.max_ttl as u32;
    let cache_size = args.dns.cache_size;
    tracing::info!(
        servers = if servers.is_empty() { "/etc/resolv.conf".to_string() } else { servers.join(",") },
        timeout_ms = dns_config.timeout.as_millis() as u64,
        attempts = dns_config.attempts,
        max_ttl,
        cache_size,
        "dns"
    );
    let (per_zone, overall) = (args.dns.max_in_flight_per_zone as usize, args.dns.max_in_flight as usize);
    let max_lookups = args.max_concurrent_lookups as usize;
    tracing::info!(
        max_concurrent_lookups = max_lookups,
        dns_max_in_flight = overall,
        dns_max_in_flight_per_zone = per_zone,
        unlisted_hosts = ?args.unlisted_hosts,
        "limits"
    );
    let dns = CachedDns::new(Bounded::new(resolver, overall, per_zone), cache_size, max_ttl);
    let ownerships = Ownerships { store: store.clone(), dns, max_ttl, unlisted: args.unlisted_hosts };
    let lookup = LookupApi { ownerships: Arc::new(ownerships), quiet: args.quiet };
    // The change feed (contract v1.1) on the same listener; lookups shed past the limit.
    let api = Shedding::new(
        WithChanges { feed: Feed::start(store.clone(), FeedConfig::default()), inner: lookup },
        max_lookups,
    );

    // One signal stops every part.
    let shutdown = Shutdown::register().map_err(StartError::Signals)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.wait().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // An error: the sender is gone, which is a stop too.
        let _ = rx.wait_for(|s| *s).await;
    };

    let addr = args.listen;
    let listener = server::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let admin_task = match admin {
        Some(state) => {
            let addr = args.admin_listen;
            let admin_listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
            let bound = admin_listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            announce(&format!("admin listening on {bound}")).map_err(|source| StartError::Bind { addr, source })?;
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                let served = axum::serve(admin_listener, admin_router(state)).with_graceful_shutdown(stop).await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "admin listener failed");
                }
            }))
        }
        None => None,
    };

    let upkeep_task = tokio::spawn(crate::metrics::upkeep(stopped(stop_rx.clone())));

    let verifier_task = if args.verifier.mode == Switch::On {
        let verifier = Verifier::new(store.clone(), probe, verifier_config(&args.verifier), replica_name());
        Some(tokio::spawn(verifier.run(stopped(stop_rx.clone()))))
    } else {
        tracing::info!("verifier off (--verifier off): no background checks in this replica");
        None
    };

    let retention_task = match args.audit_retention.0 {
        Some(keep) => {
            let pruner = AuditPruner::new(store.clone(), RetentionConfig::keeping(keep));
            tracing::info!(keep = %humantime::format_duration(keep), "audit retention: older entries are pruned hourly");
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move { pruner.run(stop).await }))
        }
        None => {
            tracing::info!("audit retention off (--audit-retention off): the audit log is kept whole");
            None
        }
    };

    let xds_task = match (xds, args.xds.xds_listen) {
        (Some((config, kek)), Some(addr)) => {
            let xds_listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
            let bound = xds_listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            announce(&format!("xds listening on {bound}")).map_err(|source| StartError::Bind { addr, source })?;
            let stats = Arc::new(XdsStats::default());
            let served = xds::serve(xds_listener, store.clone(), kek, config, stats, stopped(stop_rx.clone()));
            Some(tokio::spawn(async move {
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "xds listener failed");
                }
            }))
        }
        _ => None,
    };

    let issuer_task = match issuer {
        Some((config, kek)) => {
            let dns = Hickory::new(&dns_config).map_err(StartError::Dns)?;
            let issuer = Issuer::new(store.clone(), kek, config, dns, replica_name());
            Some(tokio::spawn(issuer.run(stopped(stop_rx.clone()))))
        }
        None => {
            tracing::info!("certificates off: no --acme-directory");
            None
        }
    };

    server::serve(listener, Arc::new(api), stopped(stop_rx)).await;
    if let Some(task) = issuer_task {
        let _ = task.await;
    }
    if let Some(task) = xds_task {
        let _ = task.await;
    }
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    if let Some(task) = verifier_task {
        let _ = task.await;
    }
    if let Some(task) = retention_task {
        let _ = task.await;
    }
    let _ = upkeep_task.await;
    store.close().await;
    Ok(())
}

/// `line` on stdout (tests and scripts read the bound ports there) and in
/// the log.
fn announce(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    tracing::info!("{line}");
    Ok(())
}

/// This replica's name in the verifier's and the issuer's leases.
fn replica_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_string())
}
