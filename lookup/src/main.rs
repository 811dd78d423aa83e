//! `cname-guard-lookup`: the reference ownership lookup service.

use cname_guard_lookup::api::LookupApi;
use cname_guard_lookup::cli::{self, Opt};
use cname_guard_lookup::info;
use cname_guard_lookup::registry::RegistryError;
use cname_guard_lookup::reload::{self, Watcher};
use cname_guard_lookup::run::{self, StartError};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: cname-guard-lookup --registry PATH [--listen ADDR] [--quiet]

The reference ownership lookup service for cname-guard (lookup contract v1).

  --registry PATH  registry JSON file (env CNAME_GUARD_REGISTRY); reloaded on
                   SIGHUP and when the file changes
  --listen ADDR    IP:PORT to listen on, port 0 for any (env CNAME_GUARD_LISTEN,
                   default 127.0.0.1:8081); prints `listening on IP:PORT`
  --quiet          no log line per request (env CNAME_GUARD_QUIET=1)
  -h, --help       this text

Endpoints: GET /v1/ownership?host=NAME, /healthz, /readyz, /ext_authz<path>.
";

const OPTS: &[Opt] = &[
    Opt { flag: "--registry", env: Some("CNAME_GUARD_REGISTRY"), takes_value: true },
    Opt { flag: "--listen", env: Some("CNAME_GUARD_LISTEN"), takes_value: true },
    Opt { flag: "--quiet", env: Some("CNAME_GUARD_QUIET"), takes_value: false },
];

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
    let watcher = match Watcher::open(&path) {
        Ok(w) => w,
        Err(e @ RegistryError::Read { .. }) => return fail(&e),
        Err(e) => return fail(&format!("invalid registry {}: {e}", path.display())),
    };
    let registry = watcher.current();
    info!("registry loaded from {}: {}", path.display(), registry.get().counts());
    let api = LookupApi { registry, quiet: args.switch("--quiet") };
    let served = run::block_on(async move {
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
