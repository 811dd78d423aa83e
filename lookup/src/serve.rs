//! `cname-guard-lookup serve`: the store, the lookup listener (Envoy's), the
//! management API on its own listener, and the verifier, until SIGTERM or
//! SIGINT stops all three.

use crate::admin::{admin_router, AdminState};
use crate::api::{LookupApi, WithChanges};
use crate::cli::{ServeArgs, Switch, VerifierArgs};
use crate::dns_cache::CachedDns;
use crate::feed::{Feed, FeedConfig};
use crate::ownership::Ownerships;
use crate::resolve::{DnsConfig, Hickory};
use crate::run::StartError;
use crate::server::{self, Shutdown};
use crate::store::{import_registry, Store};
use crate::verification::OwnershipProbe;
use crate::verifier::{Verifier, VerifierConfig};
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
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Start(e) => write!(f, "{e}"),
            ServeError::Store(e) => write!(f, "cannot open the database: {e}"),
            ServeError::Import(e) => write!(f, "--import: {e}"),
            ServeError::AdminToken(e) => write!(f, "admin token: {e}"),
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
    // A DNS failure is retried no later than the next recheck.
    config.retry_after_dns_failure = config.retry_after_dns_failure.min(args.recheck);
    config
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
    let store = Store::open(&args.database.database).await.map_err(|e| ServeError::Store(e.to_string()))?;
    crate::info!("store {:?} open", store.backend());
    if let Some(file) = &args.import {
        let bytes =
            std::fs::read(file).map_err(|e| ServeError::Import(format!("cannot read {}: {e}", file.display())))?;
        let counts = import_registry(&store, &bytes).await.map_err(|e| ServeError::Import(e.to_string()))?;
        crate::info!("imported {}: {counts:?}", file.display());
    }
    let admin = match admin_token {
        Some(token) => Some(
            AdminState::new(store.clone(), &token, probe.clone()).map_err(|e| ServeError::AdminToken(e.to_string()))?,
        ),
        None => {
            crate::warn!("no --admin-token-file or {ADMIN_TOKEN_ENV}: the management API is not served");
            None
        }
    };

    let dns_config = dns_config(&args);
    let resolver = Hickory::new(&dns_config).map_err(StartError::Dns)?;
    let servers: Vec<String> = dns_config.servers.iter().map(ToString::to_string).collect();
    let max_ttl = args.dns.max_ttl as u32;
    let cache_entries = args.dns.cache_entries as usize;
    crate::info!(
        "dns servers={} timeout_ms={} attempts={} max_ttl={max_ttl} cache_entries={cache_entries}",
        if servers.is_empty() { "/etc/resolv.conf".to_string() } else { servers.join(",") },
        dns_config.timeout.as_millis(),
        dns_config.attempts,
    );
    let ownerships =
        Ownerships { store: store.clone(), dns: CachedDns::new(resolver, cache_entries, max_ttl), max_ttl };
    let lookup = LookupApi { ownerships: Arc::new(ownerships), quiet: args.quiet };
    // The change feed (contract v1.1) on the same listener.
    let api = WithChanges { feed: Feed::start(store.clone(), FeedConfig::default()), inner: lookup };

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
                    crate::error!("admin listener: {e}");
                }
            }))
        }
        None => None,
    };

    let verifier_task = if args.verifier.mode == Switch::On {
        let owner = format!("{}-{}", host_name(), std::process::id());
        let verifier = Verifier::new(store.clone(), probe, verifier_config(&args.verifier), owner);
        Some(tokio::spawn(verifier.run(stopped(stop_rx.clone()))))
    } else {
        crate::info!("verifier off (--verifier off): no background checks in this replica");
        None
    };

    server::serve(listener, Arc::new(api), stopped(stop_rx)).await;
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    if let Some(task) = verifier_task {
        let _ = task.await;
    }
    store.close().await;
    Ok(())
}

/// `line` on stdout (tests and scripts read the bound ports there) and in
/// the log.
fn announce(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    crate::info!("{line}");
    Ok(())
}

/// This replica's name in the verifier's leases.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_string())
}
