//! A scriptable lookup service for the failure paths the reference service
//! never takes: slow, broken, oversized, hostile answers.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the fake answers one lookup.
#[derive(Clone, Debug)]
pub enum Reply {
    Json(u16, String),
    /// Answer after a delay.
    Late(Duration, Box<Reply>),
    /// Read the request, never answer.
    Hang,
    /// Answer once the flag is set (a lookup held as long as a test needs).
    Held(Arc<AtomicBool>, Box<Reply>),
    /// Close the connection without a response.
    Reset,
    /// Send the headers, then half the body, then close.
    CutBody(u16, String),
    /// Send the body a byte at a time, `gap` apart.
    Trickle(u16, String, Duration),
}

/// One lookup the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub host_param: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Call) -> Reply + Send + Sync;

pub struct FakeLookup {
    pub port: u16,
    calls: Arc<Mutex<Vec<Call>>>,
    /// The change feed on `FEED_PATH`: 404 until a test turns it on.
    pub feed: Arc<FakeFeed>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// The JSON body of a 200 answer.
pub fn record(host: &str, account: Option<&str>, target: Option<&str>, custom: Option<&str>, resolves: bool) -> String {
    serde_json::json!({
        "host": host, "account": account, "cname_target": target.map(|_| "edge.saas.example"),
        "target_account": target, "custom_hostname": custom, "origin_resolves": resolves,
        "suspended": false, "ttl": 60
    })
    .to_string()
}

/// An allowed host of `account` (A record, own zone).
pub fn allowed(host: &str, account: &str) -> Reply {
    Reply::Json(200, record(host, Some(account), None, None, true))
}

/// An active custom hostname of `account` with a certificate in service:
/// allowed, and `"https": true` (lookup contract v1).
pub fn allowed_https(host: &str, account: &str) -> Reply {
    let record = serde_json::json!({
        "host": host, "account": null, "cname_target": "edge.saas.example", "target_account": account,
        "custom_hostname": "active", "origin_resolves": true, "suspended": false, "ttl": 60, "https": true
    });
    Reply::Json(200, record.to_string())
}

impl FakeLookup {
    pub fn start(handler: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> FakeLookup {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake lookup");
        let port = listener.local_addr().expect("addr").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let feed = Arc::new(FakeFeed::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, s, f) = (calls.clone(), stop.clone(), feed.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (c, s, h, f) = (c.clone(), s.clone(), handler.clone(), f.clone());
                std::thread::spawn(move || serve(conn, &c, &s, &*h, &f));
            }
        });
        FakeLookup { port, calls, feed, stop, accept: Some(accept) }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn count(&self, host: &str) -> usize {
        self.calls().iter().filter(|c| c.host_param == host).count()
    }
}

impl Drop for FakeLookup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, calls: &Mutex<Vec<Call>>, stop: &AtomicBool, handler: &Handler, feed: &FakeFeed) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    // Keep-alive: Envoy reuses its connections to the cluster.
    while !stop.load(Ordering::SeqCst) {
        let Some(call) = read_request(&mut reader, stop) else { return };
        let reply = if call.path.starts_with(FEED_PATH) {
            feed.answer(&call, stop)
        } else {
            let reply = handler(&call);
            if let Ok(mut c) = calls.lock() {
                c.push(call);
            }
            reply
        };
        if !answer(&mut out, reply, stop) {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Call> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
                continue;
            }
            Err(_) => return None,
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let first = lines.first()?.clone();
    let path = first.split_whitespace().nth(1)?.to_string();
    let host_param = path.split_once("?host=").map(|(_, h)| h.to_string()).unwrap_or_default();
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Call { path, host_param, headers, at: Instant::now() })
}

/// Writes a reply; false when the connection must close.
fn answer(out: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> bool {
    let head = |status: u16, len: usize| {
        format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n")
    };
    match reply {
        Reply::Json(status, body) => out.write_all(format!("{}{body}", head(status, body.len())).as_bytes()).is_ok(),
        Reply::Late(delay, inner) => {
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            answer(out, *inner, stop)
        }
        Reply::Held(open, inner) => {
            while !open.load(Ordering::SeqCst) {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            answer(out, *inner, stop)
        }
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        }
        Reply::Reset => false,
        Reply::CutBody(status, body) => {
            let _ = out.write_all(format!("{}{}", head(status, body.len()), &body[..body.len() / 2]).as_bytes());
            false
        }
        Reply::Trickle(status, body, gap) => {
            if out.write_all(head(status, body.len()).as_bytes()).is_err() {
                return false;
            }
            for b in body.bytes() {
                if stop.load(Ordering::SeqCst) || out.write_all(&[b]).is_err() {
                    return false;
                }
                std::thread::sleep(gap);
            }
            true
        }
    }
}

/// Where the filter asks for changes by default (`changes.path`).
pub const FEED_PATH: &str = "/v1/changes";

/// How the fake feed answers.
#[derive(Clone, Debug, Default)]
pub enum FeedMode {
    /// 404: a lookup service without the feed.
    #[default]
    Absent,
    /// The wire format of the contract (docs/contract.md, lookup contract v1.1).
    Healthy,
    /// Every call gets this, whatever it asks.
    Fault(Reply),
}

/// What a change names, as the contract's keys do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named {
    Host,
    Zone,
    /// A hostname whose certificate was issued, renewed or withdrawn.
    Certificate,
}

#[derive(Default)]
struct FeedState {
    mode: FeedMode,
    seq: u64,
    /// Changes after `floor`, oldest first: (seq, name, what it names).
    log: Vec<(u64, String, Named)>,
    floor: u64,
    calls: Vec<Call>,
}

/// A change feed a test drives: name a host or a zone changed, forget the
/// history (the next `since` gets a reset), or break it.
#[derive(Default)]
pub struct FakeFeed {
    state: Mutex<FeedState>,
}

impl FakeFeed {
    fn with<T>(&self, f: impl FnOnce(&mut FeedState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    pub fn set_mode(&self, mode: FeedMode) {
        self.with(|s| s.mode = mode);
    }

    fn change(&self, name: &str, named: Named) -> u64 {
        self.with(|s| {
            s.seq += 1;
            let seq = s.seq;
            s.log.push((seq, name.to_string(), named));
            seq
        })
    }

    pub fn host_changed(&self, host: &str) -> u64 {
        self.change(host, Named::Host)
    }

    pub fn zone_changed(&self, zone: &str) -> u64 {
        self.change(zone, Named::Zone)
    }

    /// `host`'s certificate was issued, renewed or withdrawn: named under
    /// `certificates`, as the reference service does.
    pub fn certificate_changed(&self, host: &str) -> u64 {
        self.change(host, Named::Certificate)
    }

    /// Drops the history: a client's `since` is now too old.
    pub fn forget(&self) {
        self.with(|s| {
            s.seq += 1;
            s.floor = s.seq;
            s.log.clear();
        });
    }

    pub fn seq(&self) -> u64 {
        self.with(|s| s.seq)
    }

    /// The feed calls received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    fn answer(&self, call: &Call, stop: &AtomicBool) -> Reply {
        let query = call.path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')).map(str::to_string);
        let since = param("since").map(|v| v.parse::<u64>());
        let wait = param("wait").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0).min(30);
        let mode = self.with(|s| {
            s.calls.push(call.clone());
            s.mode.clone()
        });
        match mode {
            FeedMode::Absent => return Reply::Json(404, r#"{"error":"no change feed"}"#.into()),
            FeedMode::Fault(r) => return r,
            FeedMode::Healthy => {}
        }
        let since = match since {
            None => {
                return Reply::Json(
                    200,
                    self.with(|s| serde_json::json!({"seq": s.seq, "hosts": [], "zones": []})).to_string(),
                )
            }
            Some(Ok(n)) => n,
            Some(Err(_)) => return Reply::Json(400, r#"{"error":"since: not an unsigned integer"}"#.into()),
        };
        // The long poll: wait (on the state, with a deadline) for a change after `since`.
        let until = Instant::now() + Duration::from_secs(wait);
        while self.seq() <= since && Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.with(|s| {
            if since > s.seq || since < s.floor {
                return Reply::Json(200, serde_json::json!({"seq": s.seq, "reset": true}).to_string());
            }
            let (mut hosts, mut zones, mut certs, mut upto) = (Vec::new(), Vec::new(), Vec::new(), since);
            for (seq, name, named) in s.log.iter().filter(|(seq, ..)| *seq > since) {
                if hosts.len() + zones.len() + certs.len() == 1000 {
                    break;
                }
                match named {
                    Named::Host => hosts.push(name.clone()),
                    Named::Zone => zones.push(name.clone()),
                    Named::Certificate => certs.push(name.clone()),
                }
                upto = *seq;
            }
            if hosts.len() + zones.len() + certs.len() < 1000 {
                upto = s.seq;
            }
            let mut answer = serde_json::json!({"seq": upto, "hosts": hosts, "zones": zones});
            // Absent when empty, as the reference service writes it.
            if !certs.is_empty() {
                answer["certificates"] = serde_json::json!(certs);
            }
            Reply::Json(200, answer.to_string())
        })
    }
}
