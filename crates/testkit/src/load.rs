//! Load and fault helpers: a keep-alive HTTP/1.1 client that checks every
//! response, a multi-threaded load runner with a report, the reference
//! lookup service on a fixed port (to restart it where it was), Envoy with an
//! edited configuration, and Envoy's memory figures.

use super::{lookup_bin, reference_lookup_args, try_get, wait_for, Envoy, EnvoyOpts, Proc};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One response read off a keep-alive connection: the harness's `Response`.
pub use super::Response as Reply;

/// A keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened as needed.
pub struct Conn {
    port: u16,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
    /// Requests resent once because a reused connection was closed under them.
    pub retries: u64,
    /// Connections opened.
    pub opened: u64,
}

const MAX_RESPONSE: usize = 1 << 20;

fn invalid(m: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.into())
}

impl Conn {
    /// `timeout` bounds every read and write: a request that hangs fails.
    pub fn new(port: u16, timeout: Duration) -> Conn {
        Conn { port, timeout, stream: None, retries: 0, opened: 0 }
    }

    fn open(&mut self) -> std::io::Result<()> {
        let s = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        s.set_nodelay(true)?;
        self.stream = Some(BufReader::new(s));
        self.opened += 1;
        Ok(())
    }

    /// `GET /` with this Host and extra headers.
    pub fn get(&mut self, host: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
        let mut req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n");
        for (n, v) in headers {
            req.push_str(n);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let reused = self.stream.is_some();
        match self.exchange(req.as_bytes()) {
            // A reused connection the server closed before reading our
            // request: what every HTTP client retries, once, on a new one.
            Err(e) if reused && stale(&e) => {
                self.retries += 1;
                self.exchange(req.as_bytes())
            }
            other => other,
        }
    }

    fn exchange(&mut self, req: &[u8]) -> std::io::Result<Reply> {
        if self.stream.is_none() {
            self.open()?;
        }
        let start = Instant::now();
        let result = self.round_trip(req, start);
        match &result {
            Ok(r) if !r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) => {}
            _ => self.stream = None,
        }
        result
    }

    fn round_trip(&mut self, req: &[u8], start: Instant) -> std::io::Result<Reply> {
        let s = self.stream.as_mut().ok_or_else(|| invalid("no connection"))?;
        s.get_mut().write_all(req)?;
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the status line"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if s.read_line(&mut line)? == 0 {
                return Err(invalid("closed in the headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            if headers.len() > 200 {
                return Err(invalid("too many headers"));
            }
        }
        let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                line.clear();
                s.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    // Trailers, up to the blank line.
                    loop {
                        line.clear();
                        if s.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                if body.len() + size > MAX_RESPONSE {
                    return Err(invalid("body too large"));
                }
                let at = body.len();
                body.resize(at + size, 0);
                s.read_exact(&mut body[at..])?;
                let mut crlf = [0u8; 2];
                s.read_exact(&mut crlf)?;
            }
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
            if len > MAX_RESPONSE {
                return Err(invalid("body too large"));
            }
            body.resize(len, 0);
            s.read_exact(&mut body)?;
        } else if status >= 200 && status != 204 && status != 304 {
            s.take(MAX_RESPONSE as u64).read_to_end(&mut body)?;
            headers.push(("connection".into(), "close".into()));
        }
        Ok(Reply { status, headers, body, elapsed: start.elapsed() })
    }
}

fn stale(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// One request of a load: a class (for the report), the Host to send, and
/// extra headers.
#[derive(Debug, Clone)]
pub struct Target {
    pub class: &'static str,
    pub host: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Target {
    pub fn new(class: &'static str, host: impl Into<String>) -> Target {
        Target { class, host: host.into(), headers: Vec::new() }
    }
}

/// Makes the `i`-th request of client thread `t`.
pub type Gen = dyn Fn(usize, u64) -> Target + Send + Sync;
/// Judges a response: `Err(why)` makes it a bad response in the report.
pub type Check = dyn Fn(&Target, &Reply) -> Result<(), String> + Send + Sync;

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_class: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    /// Requests without a response: refused, reset, timed out, malformed.
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Responses the check refused.
    pub bad: u64,
    pub bad_samples: Vec<String>,
    pub retries: u64,
    pub connections: u64,
    pub elapsed: Duration,
    pub(crate) latencies_us: Vec<u32>,
}

impl Report {
    pub(crate) fn merge(&mut self, o: Report) {
        self.requests += o.requests;
        for (s, n) in o.by_status {
            *self.by_status.entry(s).or_default() += n;
        }
        for (c, m) in o.by_class {
            let e = self.by_class.entry(c).or_default();
            for (s, n) in m {
                *e.entry(s).or_default() += n;
            }
        }
        self.errors += o.errors;
        self.bad += o.bad;
        self.retries += o.retries;
        self.connections += o.connections;
        for (mine, theirs) in [(&mut self.error_samples, o.error_samples), (&mut self.bad_samples, o.bad_samples)] {
            mine.extend(theirs);
            mine.truncate(20);
        }
        self.latencies_us.extend(o.latencies_us);
    }

    /// Latency percentile (0..=100) of the answered requests.
    pub fn latency(&self, pct: f64) -> Duration {
        if self.latencies_us.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((pct / 100.0) * (v.len() - 1) as f64).round() as usize;
        Duration::from_micros(u64::from(v[i.min(v.len() - 1)]))
    }

    pub fn max_latency(&self) -> Duration {
        Duration::from_micros(u64::from(self.latencies_us.iter().copied().max().unwrap_or(0)))
    }

    pub fn count(&self, class: &str, status: u16) -> u64 {
        self.by_class.get(class).and_then(|m| m.get(&status)).copied().unwrap_or(0)
    }

    /// Panics with the samples unless every request was answered and passed.
    pub fn assert_clean(&self, what: &str) {
        assert_eq!(
            self.errors, 0,
            "{what}: {} requests got no answer, e.g. {:#?}\n{self}",
            self.errors, self.error_samples
        );
        assert_eq!(self.bad, 0, "{what}: {} bad responses, e.g. {:#?}\n{self}", self.bad, self.bad_samples);
        assert!(self.requests > 0, "{what}: no requests were made");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        writeln!(
            f,
            "requests {} in {:.1} s ({:.0}/s), connection errors {}, bad responses {}, retried on reused connections {}, connections {}",
            self.requests,
            secs,
            self.requests as f64 / secs,
            self.errors,
            self.bad,
            self.retries,
            self.connections
        )?;
        writeln!(f, "statuses {:?}", self.by_status)?;
        for (c, m) in &self.by_class {
            writeln!(f, "  {c:<10} {m:?}")?;
        }
        write!(f, "latency p50 {:?} p99 {:?} max {:?}", self.latency(50.0), self.latency(99.0), self.max_latency())
    }
}

/// A load running in client threads until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Report>>,
    started: Instant,
}

impl Load {
    /// `threads` clients, each on its own keep-alive connection, as fast as
    /// they are answered; `timeout` is each client's read timeout.
    pub fn start(port: u16, threads: usize, timeout: Duration, gen: Arc<Gen>, check: Arc<Check>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|t| {
                let (stop, served, gen, check) = (stop.clone(), served.clone(), gen.clone(), check.clone());
                std::thread::spawn(move || client(t, port, timeout, &stop, &served, &*gen, &*check))
            })
            .collect();
        Load { stop, served, threads: handles, started: Instant::now() }
    }

    /// Requests answered or failed so far, across threads.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have been made (bounded by `limit`).
    pub fn wait_served(&self, n: u64, limit: Duration) {
        let target = self.served() + n;
        wait_for(&format!("{n} requests of load"), limit, || (self.served() >= target).then_some(()));
    }

    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = Report::default();
        for h in std::mem::take(&mut self.threads) {
            report.merge(h.join().expect("load client thread panicked"));
        }
        report.elapsed = self.started.elapsed();
        report
    }

    /// Runs a load for `d` and reports.
    pub fn run_for(
        port: u16,
        threads: usize,
        timeout: Duration,
        d: Duration,
        gen: Arc<Gen>,
        check: Arc<Check>,
    ) -> Report {
        let load = Load::start(port, threads, timeout, gen, check);
        std::thread::sleep(d);
        load.stop()
    }
}

/// A load dropped without `stop` (a test that failed) stops its clients.
impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn client(
    t: usize,
    port: u16,
    timeout: Duration,
    stop: &AtomicBool,
    served: &AtomicU64,
    gen: &Gen,
    check: &Check,
) -> Report {
    let mut conn = Conn::new(port, timeout);
    let mut r = Report::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let target = gen(t, i);
        i += 1;
        let headers: Vec<(&str, &str)> = target.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let sent = Instant::now();
        let result = conn.get(&target.host, &headers);
        r.requests += 1;
        served.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(reply) => {
                *r.by_status.entry(reply.status).or_default() += 1;
                *r.by_class.entry(target.class).or_default().entry(reply.status).or_default() += 1;
                r.latencies_us.push(reply.elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
                if let Err(why) = check(&target, &reply) {
                    r.bad += 1;
                    if r.bad_samples.len() < 5 {
                        r.bad_samples.push(format!(
                            "{} {:?}: {} {} after {:?}: {}",
                            target.class,
                            target.host,
                            reply.status,
                            why,
                            reply.elapsed,
                            reply.body_text().chars().take(200).collect::<String>()
                        ));
                    }
                }
            }
            Err(e) => {
                r.errors += 1;
                if r.error_samples.len() < 5 {
                    r.error_samples.push(format!("{} {:?}: {e} after {:?}", target.class, target.host, sent.elapsed()));
                }
                // Don't spin on a refused port.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    r.retries = conn.retries;
    r.connections = conn.opened;
    r
}

/// A random-looking label unique per (thread, index, salt).
pub fn unique_label(t: usize, i: u64, salt: u64) -> String {
    let mut x = (t as u64) << 48 ^ i ^ salt.rotate_left(17);
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("r{x:016x}-{t}-{i}")
}

/// `n` distinct random-looking names under `suffix`, the same for the same
/// `seed`: the scans and floods of the cache tests.
pub fn unique_names(seed: u64, n: usize, suffix: &str) -> impl Iterator<Item = String> + '_ {
    (0..n as u64).map(move |i| format!("{}.{suffix}", unique_label(0, i, seed)))
}

/// A salt that differs between runs, so caches of a previous run don't help.
pub fn run_salt() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

/// The reference lookup service over the demo registry on a fixed
/// 127.0.0.1 port, so that it can be killed and restarted where Envoy
/// expects it. Retries the bind until `limit`.
pub fn reference_lookup_on(port: u16, limit: Duration) -> Proc {
    let args = reference_lookup_args();
    let listen = format!("127.0.0.1:{port}");
    wait_for(&format!("the lookup service to listen on {listen}"), limit, || {
        let mut child = Command::new(lookup_bin())
            .args(&args)
            .args(["--quiet", "--listen", &listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cname-guard-lookup");
        let stdout = child.stdout.take().expect("stdout");
        let mut proc = Proc { child, name: format!("cname-guard-lookup on {listen}") };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        (line.trim().ends_with(&listen) && proc.alive()).then_some(proc)
    })
}

/// Kills a process now (SIGKILL) and reaps it.
pub fn kill(mut proc: Proc) {
    let _ = proc.child.kill();
    let _ = proc.child.wait();
}

/// Starts Envoy on the build's YAML with the test's ports (as `Envoy::start`)
/// after `edit` has changed the YAML text, and waits until it is ready.
pub fn envoy_edited(opts: &EnvoyOpts, edit: impl Fn(String) -> String) -> Envoy {
    Envoy::start_with(opts, Some(&edit))
}

/// Inserts `lines` (already indented for a cluster) after the
/// `connect_timeout` line of the cluster named `cluster`.
pub fn edit_cluster(yaml: String, cluster: &str, lines: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + lines.len());
    let mut in_cluster = false;
    let mut done = false;
    for line in yaml.lines() {
        out.push_str(line);
        out.push('\n');
        let t = line.trim_start();
        if t.starts_with("- name:") {
            in_cluster = t == format!("- name: {cluster}");
        }
        if in_cluster && !done && t.starts_with("connect_timeout:") {
            out.push_str(lines);
            done = true;
        }
    }
    assert!(done, "no cluster {cluster} with a connect_timeout in envoy/envoy.yaml");
    out
}

/// Envoy's memory: its heap (admin `/memory`) and its resident set.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub allocated: u64,
    pub heap_size: u64,
    pub rss: u64,
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allocated {} heap_size {} rss {}", mib(self.allocated), mib(self.heap_size), mib(self.rss))
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn memory(envoy: &Envoy) -> Memory {
    let r = try_get(envoy.admin, "/memory").expect("GET /memory");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("/memory is JSON");
    // Envoy prints these uint64 as JSON strings.
    let num = |k: &str| {
        v[k].as_str().and_then(|s| s.parse().ok()).or_else(|| v[k].as_u64()).unwrap_or_else(|| panic!("no {k} in {v}"))
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", envoy.proc.child.id())).expect("/proc/PID/status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    Memory { allocated: num("allocated"), heap_size: num("heap_size"), rss: rss_kb * 1024 }
}

/// Resident kB of each mapping of a process, keyed by its start address
/// (a mapping that grows keeps its start), with its path if any.
pub fn mappings(pid: u32) -> BTreeMap<String, (String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            let start = first.split('-').next().unwrap_or("").to_string();
            let path = line.split_whitespace().nth(5).unwrap_or("[anon]").to_string();
            current = Some((start, path));
        } else if first == "Rss:" {
            if let Some((start, path)) = current.take() {
                let kb = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                out.insert(start, (path, kb));
            }
        }
    }
    out
}

/// The mappings whose resident size changed most between two snapshots.
pub fn mapping_growth(
    before: &BTreeMap<String, (String, u64)>,
    after: &BTreeMap<String, (String, u64)>,
    top: usize,
) -> Vec<String> {
    let mut d: Vec<(i64, String)> = after
        .iter()
        .map(|(start, (path, kb))| {
            let was = before.get(start).map_or(0, |(_, k)| *k);
            (*kb as i64 - was as i64, format!("{start} {path}: {was} kB -> {kb} kB"))
        })
        .chain(
            before
                .iter()
                .filter(|(s, _)| !after.contains_key(*s))
                .map(|(s, (p, kb))| (-(*kb as i64), format!("{s} {p}: {kb} kB -> gone"))),
        )
        .filter(|(delta, _)| *delta != 0)
        .collect();
    d.sort_by_key(|(delta, _)| -delta.abs());
    d.into_iter().take(top).map(|(delta, what)| format!("{delta:+} kB  {what}")).collect()
}
