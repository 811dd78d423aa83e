//! The command line of `cname-guard-lookup` (clap): `serve`, `import`, and
//! the management API's client commands. Parsing only; `main` dispatches.

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
    /// Why a host gets the verdict it gets (GET /v1/diagnose).
    Diagnose {
        host: String,
        #[command(flatten)]
        api: ApiArgs,
    },
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
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    /// No log line per request.
    #[arg(long, env = "CNAME_GUARD_QUIET", value_parser = clap::builder::FalseyValueParser::new())]
    pub quiet: bool,
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
    /// Bound of the DNS answer cache (0: off).
    #[arg(long = "dns-cache-entries", allow_negative_numbers = true, env = "CNAME_GUARD_DNS_CACHE_ENTRIES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000), value_name = "N")]
    pub cache_entries: u64,
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
    /// Time between verifier rounds.
    #[arg(long = "verify-tick", env = "CNAME_GUARD_VERIFY_TICK", default_value = "5s",
          value_parser = parse_duration, value_name = "DURATION")]
    pub tick: Duration,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
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
}

#[derive(Debug, Subcommand)]
pub enum HostnamesCmd {
    /// Create a custom hostname (checked at once).
    Add {
        account: String,
        hostname: String,
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
        #[arg(long)]
        page: Option<u32>,
        #[arg(long)]
        per_page: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
    Show {
        account: String,
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check DNS now.
    Verify {
        account: String,
        id: String,
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

/// `30s`, `5m`, `7d` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s, 5m or 7d: {e}"))
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
    }

    #[test]
    fn errors_name_the_flag() {
        for (argv, flag) in [
            (&["x", "serve", "--listen", "localhost"][..], "--listen"),
            (&["x", "serve", "--dns-attempts", "0"][..], "--dns-attempts"),
            (&["x", "serve", "--verify-recheck", "soon"][..], "--verify-recheck"),
            (&["x", "serve", "--verify-pending-backoff", "1m"][..], "--verify-pending-backoff"),
        ] {
            let e = Cli::try_parse_from(argv).expect_err("invalid");
            assert!(e.to_string().contains(flag), "{argv:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
