//! Process plumbing both binaries share: the runtime, signals, bind, serve.

use crate::server::{self, Handler, Shutdown};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug)]
pub enum StartError {
    Runtime(std::io::Error),
    Signals(std::io::Error),
    Bind { addr: SocketAddr, source: std::io::Error },
    Dns(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            StartError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Dns(e) => write!(f, "cannot start the DNS client: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Runs `main` on a multi-threaded runtime (one worker per core).
pub fn block_on<F>(main: F) -> Result<(), StartError>
where
    F: Future<Output = Result<(), StartError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(StartError::Runtime)?;
    runtime.block_on(main)
}

/// Installs SIGTERM/SIGINT handling, binds and announces `addr`, and serves
/// until a signal, draining in-flight requests.
pub async fn listen_and_serve<H: Handler>(addr: SocketAddr, handler: H) -> Result<(), StartError> {
    let shutdown = Shutdown::register().map_err(StartError::Signals)?;
    let listener = server::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    server::serve(listener, Arc::new(handler), shutdown.wait()).await;
    Ok(())
}
