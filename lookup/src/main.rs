//! `cname-guard-lookup`: the reference ownership lookup service.

use cname_guard_lookup::api::LookupApi;
use cname_guard_lookup::cli::{self, Args, CliError, Opt};
use cname_guard_lookup::dns_cache::{CachedDns, DEFAULT_MAX_ENTRIES};
use cname_guard_lookup::info;
use cname_guard_lookup::ownership::{Ownerships, DEFAULT_MAX_TTL};
use cname_guard_lookup::registry::RegistryError;
use cname_guard_lookup::reload::{self, Watcher};
use cname_guard_lookup::resolve::{DnsConfig, Hickory, DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT};
use cname_guard_lookup::run::{self, StartError};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: cname-guard-lookup --registry PATH [--listen ADDR] [--dns-server IP:PORT]...
                          [--dns-timeout-ms MS] [--dns-attempts N] [--max-ttl S]
                          [--dns-cache-entries N] [--quiet]

The reference ownership lookup service for cname-guard (lookup contract v1).
Accounts, zones and custom hostnames come from the registry; CNAME chains
and addresses from DNS.

  --registry PATH        registry JSON file (env CNAME_GUARD_REGISTRY); reloaded
                         on SIGHUP and when the file changes
  --listen ADDR          IP:PORT to listen on, port 0 for any (env
                         CNAME_GUARD_LISTEN, default 127.0.0.1:8081); prints
                         `listening on IP:PORT`
  --dns-server IP:PORT   a nameserver, repeatable (env CNAME_GUARD_DNS_SERVERS,
                         comma-separated; default: the nameservers of
                         /etc/resolv.conf). UDP, TCP when a reply is truncated
  --dns-timeout-ms MS    per-query timeout (env CNAME_GUARD_DNS_TIMEOUT_MS,
                         default 200)
  --dns-attempts N       tries per query (env CNAME_GUARD_DNS_ATTEMPTS, default 2)
  --max-ttl S            cap of answer and DNS cache TTLs, seconds (env
                         CNAME_GUARD_MAX_TTL, default 300)
  --dns-cache-entries N  bound of the DNS answer cache (env
                         CNAME_GUARD_DNS_CACHE_ENTRIES, default 10000; 0: off)
  --quiet                no log line per request (env CNAME_GUARD_QUIET=1)
  -h, --help             this text

Endpoints: GET /v1/ownership?host=NAME, /healthz, /readyz, /ext_authz<path>.
";

const OPTS: &[Opt] = &[
    Opt { flag: "--registry", env: Some("CNAME_GUARD_REGISTRY"), takes_value: true },
    Opt { flag: "--listen", env: Some("CNAME_GUARD_LISTEN"), takes_value: true },
    Opt { flag: "--dns-server", env: Some("CNAME_GUARD_DNS_SERVERS"), takes_value: true },
    Opt { flag: "--dns-timeout-ms", env: Some("CNAME_GUARD_DNS_TIMEOUT_MS"), takes_value: true },
    Opt { flag: "--dns-attempts", env: Some("CNAME_GUARD_DNS_ATTEMPTS"), takes_value: true },
    Opt { flag: "--max-ttl", env: Some("CNAME_GUARD_MAX_TTL"), takes_value: true },
    Opt { flag: "--dns-cache-entries", env: Some("CNAME_GUARD_DNS_CACHE_ENTRIES"), takes_value: true },
    Opt { flag: "--quiet", env: Some("CNAME_GUARD_QUIET"), takes_value: false },
];

/// The DNS side of the options: (resolver, cache bound, max TTL).
fn dns_options(args: &Args) -> Result<(DnsConfig, usize, u32), CliError> {
    let timeout = args.number("--dns-timeout-ms", DEFAULT_TIMEOUT.as_millis() as u64, 1, 60_000)?;
    let config = DnsConfig {
        servers: args.addrs("--dns-server")?,
        timeout: Duration::from_millis(timeout),
        attempts: args.number("--dns-attempts", DEFAULT_ATTEMPTS as u64, 1, 10)? as usize,
    };
    let entries = args.number("--dns-cache-entries", DEFAULT_MAX_ENTRIES as u64, 0, 10_000_000)? as usize;
    let max_ttl = args.number("--max-ttl", u64::from(DEFAULT_MAX_TTL), 0, 86_400)? as u32;
    Ok((config, entries, max_ttl))
}

const POLL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let args = match cli::parse(OPTS, std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (path, listen) = match (args.require("--registry"), args.addr("--listen", "127.0.0.1:8081")) {
        (Ok(p), Ok(l)) => (Path::new(p).to_path_buf(), l),
        (Err(e), _) | (_, Err(e)) => return usage_error(&e),
    };
    let (dns_config, cache_entries, max_ttl) = match dns_options(&args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let watcher = match Watcher::open(&path) {
        Ok(w) => w,
        Err(e @ RegistryError::Read { .. }) => return fail(&e),
        Err(e) => return fail(&format!("invalid registry {}: {e}", path.display())),
    };
    let registry = watcher.current();
    info!("registry loaded from {}: {}", path.display(), registry.get().counts());
    let quiet = args.switch("--quiet");
    let served = run::block_on(async move {
        // hickory's transports need the runtime, so it is built inside it.
        let resolver = Hickory::new(&dns_config).map_err(StartError::Dns)?;
        let servers: Vec<String> = dns_config.servers.iter().map(ToString::to_string).collect();
        info!(
            "dns servers={} timeout_ms={} attempts={} max_ttl={max_ttl} cache_entries={cache_entries}",
            if servers.is_empty() { "/etc/resolv.conf".to_string() } else { servers.join(",") },
            dns_config.timeout.as_millis(),
            dns_config.attempts,
        );
        let dns = CachedDns::new(resolver, cache_entries, max_ttl);
        let api = LookupApi { ownerships: Arc::new(Ownerships { registry, dns, max_ttl }), quiet };
        reload::spawn(watcher, POLL).map_err(StartError::Signals)?;
        run::listen_and_serve(listen, api).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprint!("cname-guard-lookup: {e}\n\n{USAGE}");
    ExitCode::from(2)
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("cname-guard-lookup: {e}");
    ExitCode::FAILURE
}
