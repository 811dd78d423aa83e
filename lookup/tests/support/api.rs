//! The management API on a real loopback listener, a small HTTP/1.1 client
//! that can also send what a well-behaved one would not, and a fake DNS.

use cname_guard_lookup::admin::{admin_router, AdminState};
use cname_guard_lookup::chain::{Chain, End};
use cname_guard_lookup::store::Store;
use cname_guard_lookup::verification::{OwnershipProbe, ProbeError, ProbeFuture};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ADMIN: &str = "admin-token-for-tests-0123456789";
const DEADLINE: Duration = Duration::from_secs(30);

/// DNS as the probe sees it, set by the test. A stand-in until the DNS
/// issue's resolver is wired (then BIND answers these questions).
#[derive(Default)]
pub struct FakeDns {
    txt: Mutex<HashMap<String, Vec<String>>>,
    cname: Mutex<HashMap<String, Vec<String>>>,
    failing: Mutex<bool>,
    /// CNAME questions asked, by host: how often a hostname was checked.
    asked: Mutex<HashMap<String, usize>>,
}

impl FakeDns {
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.txt.lock().unwrap().insert(name.into(), values.iter().map(|v| v.to_string()).collect());
    }

    pub fn set_chain(&self, host: &str, chain: &[&str]) {
        self.cname.lock().unwrap().insert(host.into(), chain.iter().map(|v| v.to_string()).collect());
    }

    pub fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    pub fn checks_of(&self, host: &str) -> usize {
        self.asked.lock().unwrap().get(host).copied().unwrap_or(0)
    }

    fn answer(&self, map: &Mutex<HashMap<String, Vec<String>>>, name: &str) -> Result<Vec<String>, ProbeError> {
        if *self.failing.lock().unwrap() {
            return Err(ProbeError("SERVFAIL".into()));
        }
        Ok(map.lock().unwrap().get(name).cloned().unwrap_or_default())
    }
}

impl OwnershipProbe for FakeDns {
    fn txt<'a>(&'a self, name: &'a str) -> ProbeFuture<'a, Vec<String>> {
        let r = self.answer(&self.txt, name);
        Box::pin(async move { r })
    }

    fn chain<'a>(&'a self, host: &'a str) -> ProbeFuture<'a, Chain> {
        *self.asked.lock().unwrap().entry(host.to_string()).or_default() += 1;
        // Every chain set here ends at an address.
        let r = self.answer(&self.cname, host).map(|targets| Chain {
            names: std::iter::once(host.to_string()).chain(targets).collect(),
            end: End::Addresses,
            ttl: 60,
        });
        Box::pin(async move { r })
    }
}

/// The API served on 127.0.0.1:PORT until dropped.
pub struct Api {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Api {
    pub async fn start(store: Store, dns: Arc<dyn OwnershipProbe>) -> Api {
        let state = AdminState::new(store, ADMIN, dns).expect("admin state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, admin_router(state))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Api { addr, stop: Some(stop), task }
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        call(self.addr, method, path, token, body).await
    }

    /// Sends bytes as they are; the reply to the first request.
    pub async fn raw(&self, request: &[u8]) -> Reply {
        raw(self.addr, request).await
    }
}

/// One request to `addr` (an API served here or by a `serve` process).
pub async fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    raw(addr, format!("{head}{body}").as_bytes()).await
}

/// Sends bytes as they are to `addr`; the reply to the first request.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    tokio::time::timeout(DEADLINE, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // The server may answer (413) before reading all; that is fine.
        let _ = s.write_all(request).await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        Reply::parse(&buf)
    })
    .await
    .expect("no answer before the deadline")
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked { dechunk(body) } else { body.to_string() };
        let body =
            if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
        Reply { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first error's code, for error answers.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or_else(|| panic!("not an error answer: {self:?}"))
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
