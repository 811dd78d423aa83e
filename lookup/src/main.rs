//! `cname-guard-lookup`: the reference ownership lookup service, its store
//! and its management API's command line.

use clap::{CommandFactory, Parser};
use cname_guard_lookup::cli::{ApiArgs, Cli, Command, ImportArgs, Output};
use cname_guard_lookup::client::{self, Call, ClientError};
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
            // From here on stderr is the log: start errors are events too.
            cname_guard_lookup::logs::init(&args.log);
            let token = match serve::admin_token(args.admin_token_file.as_deref(), env(ADMIN_TOKEN_ENV)) {
                Ok(t) => t,
                Err(e) => return fail_logged(&e),
            };
            let served = runtime.block_on(async move {
                // hickory's transports need the runtime, so they are built inside it.
                let resolver = Hickory::new(&serve::dns_config(&args)).map_err(StartError::Dns)?;
                serve::serve(*args, token, Arc::new(DnsProbe::new(resolver))).await
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail_logged(&e),
            }
        }
        Command::Import(args) => match runtime.block_on(import(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Hostnames(cmd) => {
            match cmd.wait() {
                Some(wait) => {
                    let (_, api) = cmd.call();
                    let base = api.api.clone();
                    api_answer(&runtime, api, |token| async move {
                        client::until_active(&base, token.as_deref(), &wait).await
                    })
                }
                None => api_call(&runtime, cmd.call()),
            }
        }
        Command::Accounts(cmd) => api_call(&runtime, cmd.call()),
        Command::Zones(cmd) => api_call(&runtime, cmd.call()),
        Command::Tokens(cmd) => api_call(&runtime, cmd.call()),
        Command::Certificates(cmd) => api_call(&runtime, cmd.call()),
        Command::Diagnose { host, api } => api_call(&runtime, (client::diagnose(&host), &api)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cname-guard-lookup", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
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
    let base = api.api.clone();
    api_answer(runtime, api, |token| async move { client::send(&base, token.as_deref(), &call).await })
}

/// Runs `ask` with the token and prints its answer as `--output` says.
fn api_answer<F, Fut>(runtime: &Runtime, api: &ApiArgs, ask: F) -> ExitCode
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<String, ClientError>>,
{
    let token = match client::token(api, env("CNAME_GUARD_TOKEN")) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(ask(token)) {
        Ok(body) => {
            let text = Output::or_auto(api.output).render(&body);
            if !text.is_empty() {
                println!("{text}");
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

/// A fatal `serve` error, in the log's format (JSON lines stay JSON).
fn fail_logged(e: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!("cname-guard-lookup: {e}");
    ExitCode::FAILURE
}
