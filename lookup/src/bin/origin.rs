//! `cname-guard-origin`: a demo origin that echoes what reached it.

use clap::Parser;
use cname_guard_lookup::logs::{self, LogArgs};
use cname_guard_lookup::origin::Origin;
use cname_guard_lookup::run;
use std::net::SocketAddr;
use std::process::ExitCode;

/// A demo origin: answers every request with 200 and a JSON echo of what
/// reached it: {"origin", "method", "path", "host", "account", "account_headers"}.
#[derive(Parser)]
#[command(name = "cname-guard-origin", version)]
struct Args {
    /// IP:PORT to listen on, port 0 for any; prints `listening on IP:PORT`.
    #[arg(long, env = "CNAME_GUARD_ORIGIN_LISTEN", default_value = "127.0.0.1:8082", value_name = "ADDR")]
    listen: SocketAddr,
    /// The `origin` value in answers.
    #[arg(long, env = "CNAME_GUARD_ORIGIN_NAME", default_value = "origin")]
    name: String,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logs::init(&args.log);
    let origin = Origin { name: args.name };
    match run::block_on(run::listen_and_serve(args.listen, origin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cname-guard-origin: {e}");
            ExitCode::FAILURE
        }
    }
}
