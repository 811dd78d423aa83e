//! `cname-guard-origin`: a demo origin that echoes what reached it.

use cname_guard_lookup::cli::{self, Opt};
use cname_guard_lookup::origin::Origin;
use cname_guard_lookup::run;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cname-guard-origin [--listen ADDR] [--name NAME]

A demo origin: answers every request with 200 and a JSON echo of what reached
it: {\"origin\", \"method\", \"path\", \"host\", \"account\", \"account_headers\"}.

  --listen ADDR  IP:PORT to listen on, port 0 for any (env CNAME_GUARD_ORIGIN_LISTEN,
                 default 127.0.0.1:8082); prints `listening on IP:PORT`
  --name NAME    the `origin` value in answers (env CNAME_GUARD_ORIGIN_NAME,
                 default `origin`)
  -h, --help     this text
";

const OPTS: &[Opt] = &[
    Opt { flag: "--listen", env: Some("CNAME_GUARD_ORIGIN_LISTEN"), takes_value: true },
    Opt { flag: "--name", env: Some("CNAME_GUARD_ORIGIN_NAME"), takes_value: true },
];

fn main() -> ExitCode {
    let args = match cli::parse(OPTS, std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprint!("cname-guard-origin: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let listen = match args.addr("--listen", "127.0.0.1:8082") {
        Ok(l) => l,
        Err(e) => {
            eprint!("cname-guard-origin: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let origin = Origin { name: args.get("--name").unwrap_or("origin").to_string() };
    match run::block_on(run::listen_and_serve(listen, origin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cname-guard-origin: {e}");
            ExitCode::FAILURE
        }
    }
}
