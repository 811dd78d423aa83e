//! The command line of `cname-guard-lookup` (clap): `serve`, `import`, and
//! the management API's client commands. Parsing only; `main` dispatches.

pub use crate::logs::LogArgs;
pub use crate::output::Output;
pub use crate::ownership::Unlisted;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_DATABASE: &str = "sqlite:cname-guard.db";
pub const DEFAULT_API: &str = "http://127.0.0.1:8091";

#[derive(Debug, Parser)]
#[command(
    name = "cname-guard-lookup",
    version,
    about = "The reference ownership lookup service for cname-guard (lookup contract v1), its store and its management API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve lookup contract v1 (for Envoy) and the management API (for the platform).
    Serve(Box<ServeArgs>),
    /// Import a registry JSON file into the store (idempotent; refused whole on any problem).
    Import(ImportArgs),
    /// Custom hostnames of an account.
    #[command(subcommand)]
    Hostnames(HostnamesCmd),
    /// Accounts (operator).
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Zones (operator).
    #[command(subcommand)]
    Zones(ZonesCmd),
    /// Account API tokens (operator).
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Custom hostnames' certificates.
    #[command(subcommand)]
    Certificates(CertificatesCmd),
    /// Why a host gets the verdict it gets (GET /v1/diagnose).
    Diagnose {
        host: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the shell completion script for SHELL (e.g. `source <(cname-guard-lookup completions bash)`).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// `sqlite:PATH` (created and migrated on first start) or `postgres://...`.
    #[arg(long, env = "CNAME_GUARD_DATABASE", default_value = DEFAULT_DATABASE, value_name = "URL")]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// IP:PORT for lookups (Envoy); port 0 picks one. Prints `listening on IP:PORT`.
    #[arg(long, env = "CNAME_GUARD_LISTEN", default_value = "127.0.0.1:8081", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// IP:PORT of the management API; port 0 picks one. Prints `admin listening on IP:PORT`.
    #[arg(long, env = "CNAME_GUARD_ADMIN_LISTEN", default_value = "127.0.0.1:8091", value_name = "ADDR")]
    pub admin_listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// File holding the admin token (else env CNAME_GUARD_ADMIN_TOKEN). Without
    /// either, the management API is not served.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// A registry JSON file imported at start (idempotent).
    #[arg(long, value_name = "FILE")]
    pub import: Option<PathBuf>,
    /// Audit entries older than this are deleted in the background, by every replica; `off` (or 0) keeps them all.
    #[arg(long = "audit-retention", env = "CNAME_GUARD_AUDIT_RETENTION", default_value = "90d",
          value_parser = parse_retention, value_name = "DURATION")]
    pub audit_retention: Retention,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub acme: AcmeArgs,
    #[command(flatten)]
    pub xds: XdsArgs,
    /// Lookups (`/v1/ownership`, `/ext_authz`) served at once; one more is answered 503 `overloaded` at once, never queued.
    #[arg(long = "max-concurrent-lookups", env = "CNAME_GUARD_MAX_CONCURRENT_LOOKUPS", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), value_name = "N")]
    pub max_concurrent_lookups: u64,
    /// A host neither under a platform zone nor a custom hostname: `resolve` follows its chain in DNS (1014 when it CNAMEs into the platform, else 1001); `refuse` answers 404 from the store, without DNS.
    #[arg(long = "unlisted-hosts", env = "CNAME_GUARD_UNLISTED_HOSTS", value_enum, default_value_t = Unlisted::Resolve)]
    pub unlisted_hosts: Unlisted,
    /// No log line per request.
    #[arg(long, env = "CNAME_GUARD_QUIET", value_parser = clap::builder::FalseyValueParser::new())]
    pub quiet: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// A nameserver IP:PORT, repeatable (env: comma-separated). Default: /etc/resolv.conf's.
    #[arg(long = "dns-server", env = "CNAME_GUARD_DNS_SERVERS", value_delimiter = ',', value_name = "IP:PORT")]
    pub servers: Vec<SocketAddr>,
    /// Per-query timeout.
    #[arg(long = "dns-timeout-ms", allow_negative_numbers = true, env = "CNAME_GUARD_DNS_TIMEOUT_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=60_000), value_name = "MS")]
    pub timeout_ms: u64,
    /// Tries per query.
    #[arg(long = "dns-attempts", allow_negative_numbers = true, env = "CNAME_GUARD_DNS_ATTEMPTS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=10), value_name = "N")]
    pub attempts: u64,
    /// Cap of answer and DNS cache TTLs, seconds.
    #[arg(long = "max-ttl", allow_negative_numbers = true, env = "CNAME_GUARD_MAX_TTL", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400), value_name = "S")]
    pub max_ttl: u64,
    /// Bound of the DNS answer cache in bytes, e.g. 512MiB (0: off). About 500 bytes an answer: the default holds a million hostnames' chains.
    #[arg(long = "dns-cache-size", env = "CNAME_GUARD_DNS_CACHE_SIZE", default_value = "512MiB",
          value_parser = parse_size, value_name = "SIZE")]
    pub cache_size: u64,
    /// DNS questions in flight at most; one more waits 50 ms for a place, then its lookup is a DNS failure (503).
    #[arg(long = "dns-max-in-flight", env = "CNAME_GUARD_DNS_MAX_IN_FLIGHT", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub max_in_flight: u64,
    /// DNS questions in flight at most for one zone (a name's last two labels); one more fails its lookup at once.
    #[arg(long = "dns-max-in-flight-per-zone", env = "CNAME_GUARD_DNS_MAX_IN_FLIGHT_PER_ZONE", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub max_in_flight_per_zone: u64,
}

#[derive(Debug, Args)]
pub struct VerifierArgs {
    /// `off`: this replica serves and answers the API but runs no background
    /// checks (another replica does, or a demo whose statuses must hold).
    #[arg(long = "verifier", env = "CNAME_GUARD_VERIFIER", value_enum, default_value_t = Switch::On)]
    pub mode: Switch,
    /// Pending hostnames' checks: AGE=EVERY steps, comma-separated (e.g. 10m=1m,1h=5m,1d=30m,7d=2h).
    #[arg(long = "verify-pending-backoff", env = "CNAME_GUARD_VERIFY_PENDING_BACKOFF", value_delimiter = ',',
          value_parser = parse_step, value_name = "AGE=EVERY")]
    pub pending_backoff: Vec<(Duration, Duration)>,
    /// A pending hostname older than this becomes timed_out.
    #[arg(long = "verify-pending-timeout", env = "CNAME_GUARD_VERIFY_PENDING_TIMEOUT", default_value = "7d",
          value_parser = parse_duration, value_name = "DURATION")]
    pub pending_timeout: Duration,
    /// Active and moved hostnames are re-checked this often.
    #[arg(long = "verify-recheck", env = "CNAME_GUARD_VERIFY_RECHECK", default_value = "5m",
          value_parser = parse_duration, value_name = "DURATION")]
    pub recheck: Duration,
    /// When nothing was due, the time until the verifier looks again.
    #[arg(long = "verify-tick", env = "CNAME_GUARD_VERIFY_TICK", default_value = "5s",
          value_parser = parse_duration, value_name = "DURATION")]
    pub tick: Duration,
    /// The verifier's DNS budget: questions a second over all its checks (a check asks ~4). A full pass that cannot fit in --verify-recheck is warned of at start.
    #[arg(long = "verify-qps", env = "CNAME_GUARD_VERIFY_QPS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub qps: u32,
}

/// On-demand SDS for Envoy (issue 24); off without `--xds-listen`.
#[derive(Debug, Args)]
pub struct XdsArgs {
    /// IP:PORT of the delta ADS (gRPC) listener that serves certificates to Envoy. Prints `xds listening on IP:PORT`. Needs --kek-file, and --xds-token-file or --xds-client-ca.
    #[arg(long = "xds-listen", env = "CNAME_GUARD_XDS_LISTEN", value_name = "ADDR")]
    pub xds_listen: Option<SocketAddr>,
    /// The token an Envoy must carry in `node.metadata.cname_guard_token` to receive private keys (at least 16 characters).
    #[arg(long = "xds-token-file", env = "CNAME_GUARD_XDS_TOKEN_FILE", value_name = "FILE")]
    pub xds_token_file: Option<PathBuf>,
    /// PEM certificate chain of the SDS listener: with --xds-tls-key, Envoy connects over TLS.
    #[arg(long = "xds-tls-cert", env = "CNAME_GUARD_XDS_TLS_CERT", value_name = "FILE", requires = "xds_tls_key")]
    pub xds_tls_cert: Option<PathBuf>,
    /// PEM private key of the SDS listener's certificate.
    #[arg(long = "xds-tls-key", env = "CNAME_GUARD_XDS_TLS_KEY", value_name = "FILE", requires = "xds_tls_cert")]
    pub xds_tls_key: Option<PathBuf>,
    /// PEM CA that Envoys' client certificates must chain to (mutual TLS); a connection without one is refused in the handshake. Needs --xds-tls-cert.
    #[arg(long = "xds-client-ca", env = "CNAME_GUARD_XDS_CLIENT_CA", value_name = "FILE", requires = "xds_tls_cert")]
    pub xds_client_ca: Option<PathBuf>,
    /// Secrets one Envoy holds at most; the least recently requested are removed past it (Envoy 1.40 never evicts them itself).
    #[arg(long = "xds-max-secrets-per-node", env = "CNAME_GUARD_XDS_MAX_SECRETS_PER_NODE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000), value_name = "N")]
    pub max_secrets_per_node: u64,
    /// How often the change feed is read for certificates to push.
    #[arg(long = "xds-poll", env = "CNAME_GUARD_XDS_POLL", default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub xds_poll: Duration,
}

/// Certificates by ACME (issue 21); off without `--acme-directory`.
#[derive(Debug, Args)]
pub struct AcmeArgs {
    /// The ACME directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory). Needs --kek-file.
    #[arg(long = "acme-directory", env = "CNAME_GUARD_ACME_DIRECTORY", value_name = "URL")]
    pub directory: Option<String>,
    /// An email address for the ACME account, repeatable.
    #[arg(long = "acme-contact", env = "CNAME_GUARD_ACME_CONTACT", value_delimiter = ',', value_name = "EMAIL")]
    pub contacts: Vec<String>,
    /// External account binding: a file holding the key id and the base64url HMAC key, separated by whitespace.
    #[arg(long = "acme-eab-file", env = "CNAME_GUARD_ACME_EAB_FILE", value_name = "FILE")]
    pub eab_file: Option<PathBuf>,
    /// Trust this PEM root for the directory's TLS (a private CA) instead of the system's roots.
    #[arg(long = "acme-ca-root", env = "CNAME_GUARD_ACME_CA_ROOT", value_name = "FILE")]
    pub ca_root: Option<PathBuf>,
    /// The CA's CAA issuer domain (e.g. letsencrypt.org), repeatable; without it CAA is left to the CA.
    #[arg(
        long = "acme-caa-identity",
        env = "CNAME_GUARD_ACME_CAA_IDENTITY",
        value_delimiter = ',',
        value_name = "DOMAIN"
    )]
    pub caa_identities: Vec<String>,
    /// The key-encryption key: a file of 64 hex digits (`openssl rand -hex 32`). Never in the database.
    #[arg(long = "kek-file", env = "CNAME_GUARD_KEK_FILE", value_name = "FILE")]
    pub kek_file: Option<PathBuf>,
    /// Time between the issuer's rounds.
    #[arg(long = "acme-tick", env = "CNAME_GUARD_ACME_TICK", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub acme_tick: Duration,
    /// Orders this replica works on at once.
    #[arg(long = "acme-concurrency", env = "CNAME_GUARD_ACME_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=256), value_name = "N")]
    pub concurrency: u32,
    /// How long a replica holds a hostname it orders for; a replica that dies
    /// mid-order is taken over after this.
    #[arg(long = "acme-lease", env = "CNAME_GUARD_ACME_LEASE", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub lease: Duration,
    /// The CA's validation, and then its issuance, each awaited this long per attempt.
    #[arg(long = "acme-poll-timeout", env = "CNAME_GUARD_ACME_POLL_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub poll_timeout: Duration,
    /// First retry after a failed attempt; doubled per failure.
    #[arg(long = "acme-retry-min", env = "CNAME_GUARD_ACME_RETRY_MIN", default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_min: Duration,
    /// The longest wait between attempts.
    #[arg(long = "acme-retry-max", env = "CNAME_GUARD_ACME_RETRY_MAX", default_value = "6h", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_max: Duration,
    /// Failing this long without a certificate: validation_timed_out or issuance_timed_out.
    #[arg(long = "acme-give-up", env = "CNAME_GUARD_ACME_GIVE_UP", default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    pub give_up_after: Duration,
    /// New orders an hour, all accounts together (per replica).
    #[arg(long = "acme-orders-per-hour", env = "CNAME_GUARD_ACME_ORDERS_PER_HOUR", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub orders_per_hour: u32,
    /// Delegated DNS-01: the platform's DCV zone, where `_acme-challenge.<hostname>` CNAMEs point (`<hostname>.<zone>`).
    #[arg(long = "dcv-zone", env = "CNAME_GUARD_DCV_ZONE", value_name = "ZONE", requires_all = ["dcv_server", "dcv_tsig_key_file"])]
    pub dcv_zone: Option<String>,
    /// The primary nameserver of the DCV zone, which takes RFC 2136 updates.
    #[arg(long = "dcv-server", env = "CNAME_GUARD_DCV_SERVER", value_name = "IP:PORT", requires = "dcv_zone")]
    pub dcv_server: Option<SocketAddr>,
    /// The TSIG key for those updates, as `tsig-keygen` prints it.
    #[arg(
        long = "dcv-tsig-key-file",
        env = "CNAME_GUARD_DCV_TSIG_KEY_FILE",
        value_name = "FILE",
        requires = "dcv_zone"
    )]
    pub dcv_tsig_key_file: Option<PathBuf>,
    /// New orders an hour for one account (per replica).
    #[arg(long = "acme-account-orders-per-hour", env = "CNAME_GUARD_ACME_ACCOUNT_ORDERS_PER_HOUR", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub account_orders_per_hour: u32,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The registry JSON file; `-` reads standard input.
    pub file: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArg,
}

#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The management API.
    #[arg(long, env = "CNAME_GUARD_API", default_value = DEFAULT_API, value_name = "URL")]
    pub api: String,
    /// File holding the bearer token (else env CNAME_GUARD_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// How the answer is printed; default: a table on a terminal, else the API's JSON.
    #[arg(long, env = "CNAME_GUARD_OUTPUT", value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Subcommand)]
pub enum HostnamesCmd {
    /// Create a custom hostname (checked at once).
    Add {
        account: String,
        hostname: String,
        /// Domain control validation for its certificate: `http` (HTTP-01 at the edge) or `txt` (delegated DNS-01).
        #[arg(long, value_name = "METHOD")]
        ssl_method: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List an account's custom hostnames.
    List {
        account: String,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, conflicts_with = "cursor")]
        page: Option<u32>,
        #[arg(long)]
        per_page: Option<u32>,
        /// `asc` or `desc`, by hostname.
        #[arg(long, value_parser = ["asc", "desc"])]
        direction: Option<String>,
        /// The page after this one (`result_info.cursors.after` of the last answer).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    Show {
        account: String,
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check DNS now; with --wait, then wait until the hostname is active.
    Verify {
        account: String,
        id: String,
        /// Wait until the hostname is active (the verifier keeps checking), at most DURATION (10m without a value); exit 1 if it is not by then.
        #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "10m", value_parser = parse_wait)]
        wait: Option<Duration>,
        /// With --wait: how often the hostname is read again (100ms to 1m).
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval, requires = "wait")]
        interval: Duration,
        #[command(flatten)]
        api: ApiArgs,
    },
    Delete {
        account: String,
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Block (`blocked`) or unblock (`active`) a hostname (operator).
    SetStatus {
        account: String,
        id: String,
        status: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertificatesCmd {
    /// Renew now (or retry after a timeout): the issuer orders at once.
    Renew {
        account: String,
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change the validation method (`http` or `txt`).
    SetMethod {
        account: String,
        id: String,
        method: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Create or update an account.
    Put {
        account: String,
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
        suspended: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    Delete {
        account: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ZonesCmd {
    /// Assign a zone (and every name under it) to an account.
    Put {
        zone: String,
        account: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    Delete {
        zone: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Issue a token for an account (printed this once only).
    Create {
        account: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    Revoke {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// A size in bytes: `512MiB`, `1 GB`, `65536`; at most 64 GiB.
fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s.parse().map_err(|e| format!("{s:?}: not a size ({e})"))?;
    if size.as_u64() > 64 << 30 {
        return Err(format!("{s:?}: more than 64GiB"));
    }
    Ok(size.as_u64())
}

/// `30s`, `5m`, `7d` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s, 5m or 7d: {e}"))
}

/// `--wait`: at least a second, at most a day.
fn parse_wait(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) {
        return Err(format!("{s:?}: wait between 1s and 1d"));
    }
    Ok(d)
}

/// `--interval`: often enough to notice, rarely enough to spare the API.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) {
        return Err(format!("{s:?}: poll between every 100ms and every 1m"));
    }
    Ok(d)
}

/// `--audit-retention`: how long audit entries are kept; `None` is forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// The shortest retention but `off`: a shorter one is more likely a slip
/// (`90s` for `90d`) than a wish to lose the audit log.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// `off` or `0`: keep everything; else a duration of at least an hour.
pub fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "off" {
        return Ok(Retention(None));
    }
    let keep = parse_duration(s)?;
    if keep.is_zero() {
        return Ok(Retention(None));
    }
    if keep < MIN_RETENTION {
        return Err(format!("{s:?}: keep the audit log at least 1h, or say off"));
    }
    Ok(Retention(Some(keep)))
}

/// `AGE=EVERY`: pending hostnames younger than AGE are checked every EVERY.
pub fn parse_step(s: &str) -> Result<(Duration, Duration), String> {
    let (age, every) = s.split_once('=').ok_or_else(|| format!("{s:?} is not AGE=EVERY (like 10m=1m)"))?;
    let every = parse_duration(every)?;
    if every.is_zero() {
        return Err(format!("{s:?}: the interval must be more than 0"));
    }
    Ok((parse_duration(age)?, every))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "serve",
            "--listen=127.0.0.1:0",
            "--dns-server",
            "127.0.0.1:53,127.0.0.2:5353",
            "--verify-pending-backoff",
            "1m=1s,1h=1m",
        ])
        .expect("valid");
        let Command::Serve(s) = cli.command else { panic!("not serve") };
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.dns.servers.len(), 2);
        assert_eq!(s.verifier.pending_backoff[1], (Duration::from_secs(3600), Duration::from_secs(60)));
        assert_eq!(s.verifier.pending_timeout, Duration::from_secs(7 * 86_400));
        assert_eq!(s.verifier.qps, crate::verifier::VerifierConfig::default().qps);
        assert_eq!(s.dns.cache_size, 512 << 20);
        let cli = Cli::try_parse_from(["x", "serve", "--dns-cache-size", "64MiB"]).expect("valid");
        let Command::Serve(s) = cli.command else { panic!("not serve") };
        assert_eq!(s.dns.cache_size, 64 << 20);
        assert_eq!(s.audit_retention, Retention(Some(Duration::from_secs(90 * 86_400))));
        assert_eq!((s.max_concurrent_lookups, s.dns.max_in_flight, s.dns.max_in_flight_per_zone), (256, 128, 32));
        assert_eq!(s.unlisted_hosts, Unlisted::Resolve);
        assert_eq!((s.log.filter.as_str(), s.log.format), (crate::logs::DEFAULT_FILTER, crate::logs::LogFormat::Text));
        for (value, keep) in [("off", None), ("0", None), ("0s", None), ("30d", Some(30 * 86_400)), ("1h", Some(3600))]
        {
            let cli = Cli::try_parse_from(["x", "serve", "--audit-retention", value]).expect("valid");
            let Command::Serve(s) = cli.command else { panic!("not serve") };
            assert_eq!(s.audit_retention, Retention(keep.map(Duration::from_secs)), "{value}");
        }
    }

    #[test]
    fn client_flags() {
        let verify = |extra: &[&str]| {
            let argv = [&["x", "hostnames", "verify", "acct", "id"][..], extra].concat();
            match Cli::try_parse_from(argv).expect("valid").command {
                Command::Hostnames(HostnamesCmd::Verify { wait, interval, api, .. }) => (wait, interval, api.output),
                other => panic!("{other:?}"),
            }
        };
        let s = Duration::from_secs;
        assert_eq!(verify(&[]), (None, s(2), None));
        assert_eq!(verify(&["--wait"]), (Some(s(600)), s(2), None));
        assert_eq!(
            verify(&["--wait", "30s", "--interval", "500ms", "--output", "table"]),
            (Some(s(30)), Duration::from_millis(500), Some(Output::Table))
        );
        let cli = Cli::try_parse_from(["x", "completions", "zsh"]).expect("valid");
        assert!(matches!(cli.command, Command::Completions { shell: clap_complete::Shell::Zsh }));
    }

    #[test]
    fn errors_name_the_flag() {
        for (argv, flag) in [
            (&["x", "serve", "--listen", "localhost"][..], "--listen"),
            (&["x", "serve", "--dns-attempts", "0"][..], "--dns-attempts"),
            (&["x", "serve", "--verify-recheck", "soon"][..], "--verify-recheck"),
            (&["x", "serve", "--verify-qps", "0"][..], "--verify-qps"),
            (&["x", "serve", "--dns-cache-size", "lots"][..], "--dns-cache-size"),
            (&["x", "serve", "--verify-pending-backoff", "1m"][..], "--verify-pending-backoff"),
            (&["x", "serve", "--audit-retention", "90"][..], "--audit-retention"),
            (&["x", "serve", "--audit-retention", "10m"][..], "--audit-retention"),
            (&["x", "serve", "--max-concurrent-lookups", "0"][..], "--max-concurrent-lookups"),
            (&["x", "serve", "--dns-max-in-flight", "none"][..], "--dns-max-in-flight"),
            (&["x", "serve", "--dns-max-in-flight-per-zone", "0"][..], "--dns-max-in-flight-per-zone"),
            (&["x", "serve", "--unlisted-hosts", "drop"][..], "--unlisted-hosts"),
            (&["x", "serve", "--log-format", "xml"][..], "--log-format"),
            (&["x", "serve", "--log", "cname_guard_lookup=loud"][..], "--log"),
            (&["x", "hostnames", "list", "acct", "--output", "yaml"][..], "--output"),
            (&["x", "hostnames", "verify", "acct", "id", "--wait", "soon"][..], "--wait"),
            (&["x", "hostnames", "verify", "acct", "id", "--wait", "0s"][..], "--wait"),
            (&["x", "hostnames", "verify", "acct", "id", "--wait", "1m", "--interval", "10ms"][..], "--interval"),
            (&["x", "hostnames", "verify", "acct", "id", "--interval", "1s"][..], "--wait"),
            (&["x", "completions", "cmd"][..], "cmd"),
        ] {
            let e = Cli::try_parse_from(argv).expect_err("invalid");
            assert!(e.to_string().contains(flag), "{argv:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
