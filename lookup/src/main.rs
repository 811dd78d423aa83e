//! `cname-guard-lookup`: the reference ownership lookup service, its store
//! and its management API's command line.

use clap::Parser;
use cname_guard_lookup::cli::ApiArgs;
use cname_guard_lookup::cli::{Cli, Command, ImportArgs};
use cname_guard_lookup::client::{self, Call};
use cname_guard_lookup::probe::DnsProbe;
use cname_guard_lookup::resolve::Hickory;
use cname_guard_lookup::run::StartError;
use cname_guard_lookup::serve::{self, ServeError, ADMIN_TOKEN_ENV};
use cname_guard_lookup::store::{import_file, Store};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::runtime::Runtime;

fn main() -> ExitCode {
    // Flag errors name the flag and exit 2 (clap's convention).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&StartError::Runtime(e)),
    };
    match cli.command {
        Command::Serve(args) => {
            let token = match serve::admin_token(args.admin_token_file.as_deref(), env(ADMIN_TOKEN_ENV)) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            let served = runtime.block_on(async move {
                // hickory's transports need the runtime, so they are built inside it.
                let resolver = Hickory::new(&serve::dns_config(&args)).map_err(StartError::Dns)?;
                serve::serve(*args, token, Arc::new(DnsProbe::new(resolver))).await
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Import(args) => match runtime.block_on(import(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Hostnames(cmd) => api_call(&runtime, cmd.call()),
        Command::Accounts(cmd) => api_call(&runtime, cmd.call()),
        Command::Zones(cmd) => api_call(&runtime, cmd.call()),
        Command::Tokens(cmd) => api_call(&runtime, cmd.call()),
        Command::Certificates(cmd) => api_call(&runtime, cmd.call()),
        Command::Diagnose { host, api } => api_call(&runtime, (client::diagnose(&host), &api)),
    }
}

async fn import(args: ImportArgs) -> Result<(), ServeError> {
    let store = Store::open(&args.database.database).await.map_err(|e| ServeError::Store(e.to_string()))?;
    let counts =
        import_file(&store, &args.file).await.map_err(|e| ServeError::Import(format!("{}: {e}", args.file.display())));
    store.close().await;
    let c = counts?;
    println!(
        "imported {}: accounts_created={} zones_created={} hostnames_created={} hostnames_changed={}",
        args.file.display(),
        c.accounts_created,
        c.zones_created,
        c.hostnames_created,
        c.hostnames_changed
    );
    Ok(())
}

fn api_call(runtime: &Runtime, (call, api): (Call, &ApiArgs)) -> ExitCode {
    let token = match client::token(api, env("CNAME_GUARD_TOKEN")) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let base = api.api.clone();
    let answer = runtime.block_on(async move { client::send(&base, token.as_deref(), &call).await });
    match answer {
        Ok(body) => {
            if !body.is_empty() {
                println!("{}", body.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("cname-guard-lookup: {e}");
    ExitCode::FAILURE
}
