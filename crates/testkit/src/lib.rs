//! The test kit every harness shares (a dev-dependency): real Envoy, BIND,
//! PostgreSQL, Pebble and the services, raw HTTP on loopback. Every process
//! is owned by a guard that kills it on drop, so nothing is left running
//! when a test fails.

pub mod dns;
pub mod fake;
pub mod feed;
pub mod flood;
pub mod load;
pub mod pebble;
pub mod postgres;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root (this crate is `crates/testkit`).
pub fn root() -> PathBuf {
    dns::repo()
}

fn artifact(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| root().join(default));
    assert!(path.exists(), "{} is missing: run `make build` (or set {env})", path.display());
    path
}

pub fn envoy_bin() -> PathBuf {
    artifact("ENVOY_BIN", ".venv/bin/envoy")
}
pub fn wasm() -> PathBuf {
    artifact("CNAME_GUARD_WASM", "target/wasm32-wasip1/release/cname_guard.wasm")
}
/// The directory holding libcname_guard.so (Envoy's dynamic-module search path).
pub fn native_dir() -> PathBuf {
    let so = artifact("CNAME_GUARD_NATIVE", "target/native/modules/libcname_guard.so");
    so.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Which build of the filter the end-to-end suite runs against:
/// `CNAME_GUARD_BUILD=wasm` (the default) or `native`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    Wasm,
    Native,
}

pub fn build() -> Build {
    match std::env::var("CNAME_GUARD_BUILD").as_deref() {
        Ok("native") => Build::Native,
        Ok("wasm") | Err(_) => Build::Wasm,
        Ok(other) => panic!("CNAME_GUARD_BUILD={other:?}: expected wasm or native"),
    }
}

impl Build {
    /// The shipped Envoy YAML of this build.
    pub fn yaml(self) -> &'static str {
        match self {
            Build::Wasm => "envoy/envoy.yaml",
            Build::Native => "envoy/envoy-native.yaml",
        }
    }

    /// Envoy's stats prefix for the filter's own metrics.
    pub fn stats_prefix(self) -> &'static str {
        match self {
            Build::Wasm => "wasmcustom.",
            Build::Native => "dynamicmodulescustom.",
        }
    }
}

/// The full `/stats` name of a filter metric (`cname_guard.` + name).
pub fn stat_name(name: &str) -> String {
    format!("{}cname_guard.{name}", build().stats_prefix())
}
pub fn lookup_bin() -> PathBuf {
    artifact("CNAME_GUARD_LOOKUP", "target/release/cname-guard-lookup")
}
pub fn origin_bin() -> PathBuf {
    artifact("CNAME_GUARD_ORIGIN", "target/release/cname-guard-origin")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A fresh scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(dns::fresh_dir(tag))
    }

    /// A SQLite store's URL in this directory.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite:{}", self.0.join("store.db").display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Replaces a file in one step (write + rename), as config tools do.
    pub fn put(&self, name: &str, body: &str) -> PathBuf {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, body).expect("write");
        let path = self.path(name);
        std::fs::rename(&tmp, &path).expect("rename");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline
/// (the DNS harness's, which `lookup/tests` shares).
pub use dns::wait as wait_for;

/// Starts one of our service binaries on port 0 and reads the port it bound.
pub fn start_service(bin: &Path, args: &[&str]) -> (Proc, u16) {
    let (proc, ports) = start_service_ports(bin, args, 1);
    (proc, ports[0])
}

/// Starts a service on port 0 and reads the ports of its first `lines`
/// `... listening on ADDR` lines (the lookup service prints `listening on`,
/// then `admin listening on` when its management API is on).
pub fn start_service_ports(bin: &Path, args: &[&str], lines: usize) -> (Proc, Vec<u16>) {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("stdout");
    let mut proc = Proc { child, name: bin.display().to_string() };
    let mut reader = BufReader::new(stdout);
    let mut ports = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{} printed {line:?}, not `listening on ADDR`", bin.display()));
        ports.push(port);
    }
    assert!(proc.alive(), "{} exited", bin.display());
    (proc, ports)
}

/// `serve` over a fresh SQLite store with `registry` imported, the
/// management API off (no admin token) on a free port: what every test that
/// needs the lookup service starts it with, before its own flags.
pub fn lookup_serve_args(registry: &Path) -> Vec<String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let db = store_dir().join(format!("store-{n}.db"));
    lookup_serve_args_on(&format!("sqlite:{}", db.to_str().expect("utf-8 path")), registry)
}

/// As `lookup_serve_args`, on the store at `database` (a PostgreSQL URL).
pub fn lookup_serve_args_on(database: &str, registry: &Path) -> Vec<String> {
    let registry = registry.to_str().expect("utf-8 path").to_string();
    ["serve", "--database", database, "--import", &registry, "--admin-listen", "127.0.0.1:0"].map(String::from).to_vec()
}

/// This test process's SQLite stores, removed at exit.
fn store_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove() {
        if let Some(dir) = DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    DIR.get_or_init(|| {
        // SAFETY: registers a plain function; it only removes a directory.
        unsafe {
            libc::atexit(remove);
        }
        dns::fresh_dir("lookup-stores")
    })
}

/// The reference lookup service's arguments for the demo: the demo
/// registry imported into a fresh store, and the process's BIND serving the
/// demo zones (started on first use). The verifier is off so the demo's
/// statuses hold: `pending` and `moved` hosts CNAME into acct-saas, which
/// proves them, and the verifier would make them `active`.
pub fn reference_lookup_args() -> Vec<String> {
    let mut args = lookup_serve_args(&root().join("envoy/registry.json"));
    args.extend(["--verifier", "off", "--dns-server", &dns::demo().addr()].map(String::from));
    args
}

/// The reference lookup service over the demo registry and demo zones.
pub fn reference_lookup() -> (Proc, u16) {
    let args = reference_lookup_args();
    start_service(&lookup_bin(), &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Restricts the calling thread, and the threads and processes it starts
/// from now on, to `cpus` (benchmarks that keep Envoy's core to itself).
pub fn pin_this_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET bounds-checks.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets the calling thread's nice value, inherited by the threads and
/// processes it starts from now on (a negative one needs root).
pub fn renice_this_thread(nice: i32) -> std::io::Result<()> {
    // SAFETY: a plain syscall; on Linux who 0 is the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// A process's resident set in bytes (`VmRSS` of /proc/PID/status), 0 if gone.
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds a process has used so far (user + system, all threads), 0 if gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// Each CPU's busy and total time so far, in clock ticks (/proc/stat).
pub fn cpu_busy() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

pub fn origin() -> (Proc, u16) {
    start_service(&origin_bin(), &["--name", "e2e-origin"])
}

/// What an Envoy under test is started with.
pub struct EnvoyOpts {
    pub plugin_config: String,
    pub lookup_port: u16,
    pub origin_port: u16,
    pub concurrency: u32,
    /// The lookup service's SDS listener; by default a port nothing
    /// listens on (the ADS stream retries in the background, harmlessly).
    pub xds_port: u16,
    pub xds_token: String,
    /// Keep the shipped HTTPS listener. Off by default: in the native build
    /// each listener's filter config has its own cache and feed poller, and
    /// the suite counts them per Envoy.
    pub https: bool,
    /// The CPUs Envoy may run on (benchmarks only); by default the test's.
    pub cpus: Option<Vec<usize>>,
}

impl EnvoyOpts {
    pub fn new(plugin_config: serde_json::Value, lookup_port: u16, origin_port: u16) -> EnvoyOpts {
        EnvoyOpts {
            plugin_config: plugin_config.to_string(),
            lookup_port,
            origin_port,
            concurrency: 1,
            xds_port: free_port(),
            xds_token: "demo-xds-token-change-me".into(),
            https: false,
            cpus: None,
        }
    }
}

pub struct Envoy {
    pub proc: Proc,
    pub port: u16,
    /// The HTTPS listener (certificates by on-demand SDS).
    pub https_port: u16,
    pub admin: u16,
    pub log: PathBuf,
    _dir: Scratch,
}

/// The build's shipped YAML (envoy/envoy.yaml or envoy/envoy-native.yaml)
/// with the ports, the .wasm and the plugin configuration of a test: the
/// file users run is the file the tests run. The admin and the listeners
/// bind port 0 (see `Envoy::spawn`).
pub fn envoy_yaml(opts: &EnvoyOpts) -> String {
    let file = build().yaml();
    let shipped = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = String::new();
    let mut lines: Vec<&str> = shipped.lines().collect();
    if !opts.https {
        lines = without_https_listener(lines);
    }
    for line in lines {
        let line = if line.ends_with("# admin") {
            line.replace("port_value: 9901", "port_value: 0")
        } else if line.ends_with("# listener") {
            line.replace("port_value: 10000", "port_value: 0")
        } else if line.ends_with("# https-listener") {
            line.replace("port_value: 10443", "port_value: 0")
        } else if line.ends_with("# xds") {
            line.replace("port_value: 8093", &format!("port_value: {}", opts.xds_port))
        } else if line.ends_with("# xds-token") {
            line.replace("demo-xds-token-change-me", &opts.xds_token)
        } else if line.ends_with("# lookup") {
            line.replace("port_value: 8081", &format!("port_value: {}", opts.lookup_port))
        } else if line.ends_with("# origin") {
            line.replace("port_value: 8082", &format!("port_value: {}", opts.origin_port))
        } else if line.ends_with("# plugin-config") {
            let indent = &line[..line.len() - line.trim_start().len()];
            format!("{indent}value: '{}'", opts.plugin_config.replace('\'', "''"))
        } else if line.contains("filename: target/wasm32-wasip1/release/cname_guard.wasm") {
            line.replace("target/wasm32-wasip1/release/cname_guard.wasm", wasm().to_str().expect("utf-8 path"))
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    for marker in
        ["# admin", "# listener", "# https-listener", "# lookup", "# origin", "# plugin-config", "# xds", "# xds-token"]
    {
        assert!(shipped.contains(marker), "{file} lost its `{marker}` line");
    }
    out
}

/// The shipped YAML's lines less the HTTPS listener: from the comment
/// above `- name: edge_https` to the next `  clusters:`.
fn without_https_listener(lines: Vec<&str>) -> Vec<&str> {
    let Some(at) = lines.iter().position(|l| l.trim() == "- name: edge_https") else {
        return lines;
    };
    let mut start = at;
    while start > 0 && lines[start - 1].trim_start().starts_with('#') {
        start -= 1;
    }
    let end = lines[at..].iter().position(|l| *l == "  clusters:").map_or(lines.len(), |n| at + n);
    lines[..start].iter().chain(&lines[end..]).copied().collect()
}

/// The admin's port from the file `--admin-address-path` names (`127.0.0.1:PORT`),
/// once Envoy has written it.
fn admin_port(file: &Path) -> Option<u16> {
    std::fs::read_to_string(file).ok()?.trim().rsplit(':').next()?.parse().ok().filter(|p| *p != 0)
}

/// Each listener's bound port by name, from the admin's `/listeners`.
fn listener_ports(admin: u16) -> HashMap<String, u16> {
    let listeners = get(admin, "/listeners?format=json").json();
    let statuses = listeners["listener_statuses"].as_array().cloned().unwrap_or_default();
    statuses
        .iter()
        .filter_map(|l| {
            let port = l["local_address"]["socket_address"]["port_value"].as_u64()?;
            Some((l["name"].as_str()?.to_string(), u16::try_from(port).ok()?))
        })
        .collect()
}

/// A change to the YAML text before Envoy reads it (see `Envoy::start_edited`).
pub type Edit<'a> = &'a dyn Fn(String) -> String;

impl Envoy {
    /// Starts Envoy with every port 0 (admin and listeners); `--admin-address-path`
    /// says where the admin bound, and the admin where the listeners did.
    fn spawn(opts: &EnvoyOpts, edit: Option<Edit>) -> (Proc, PathBuf, PathBuf, Scratch) {
        let dir = Scratch::new("envoy");
        let yaml = dir.0.join("envoy.yaml");
        let text = envoy_yaml(opts);
        std::fs::write(&yaml, edit.map_or(text.clone(), |e| e(text))).expect("write yaml");
        let log = dir.0.join("envoy.log");
        let admin_file = dir.0.join("admin.address");
        let mut cmd = Command::new(envoy_bin());
        if build() == Build::Native {
            cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", native_dir());
        }
        if let Some(cpus) = opts.cpus.clone() {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec; sched_setaffinity is a plain syscall.
            unsafe {
                cmd.pre_exec(move || pin_this_thread(&cpus));
            }
        }
        let child = cmd
            .arg("-c")
            .arg(&yaml)
            .args(["--disable-hot-restart", "-l", "info", "--file-flush-interval-msec", "50", "--concurrency"])
            .arg(opts.concurrency.to_string())
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start envoy");
        (Proc { child, name: "envoy".into() }, admin_file, log, dir)
    }

    /// Starts Envoy and waits until it is ready to serve.
    pub fn start(opts: &EnvoyOpts) -> Envoy {
        Envoy::start_with(opts, None)
    }

    /// As `start`, after `edit` has changed the YAML text.
    pub fn start_with(opts: &EnvoyOpts, edit: Option<Edit>) -> Envoy {
        let (mut proc, admin_file, log, dir) = Envoy::spawn(opts, edit);
        let admin = wait_for("envoy to be ready", Duration::from_secs(30), || {
            if !proc.alive() {
                return Some(None);
            }
            let admin = admin_port(&admin_file)?;
            let r = try_get(admin, "/ready")?;
            (r.status == 200).then_some(Some(admin))
        })
        .unwrap_or_else(|| panic!("envoy exited:\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
        let mut envoy = Envoy { proc, port: 0, https_port: 0, admin, log, _dir: dir };
        envoy.port = envoy.listener("edge");
        envoy.https_port = if opts.https { envoy.listener("edge_https") } else { 0 };
        envoy.check_loaded();
        envoy
    }

    /// A native module built against another ABI only logs a warning and
    /// still loads: for the suite that is a failure.
    fn check_loaded(&self) {
        if build() == Build::Native {
            self.wait_log("Dynamic module ABI version v0.2.0 matched.");
            assert!(!self.log().contains("is deprecated"), "ABI mismatch:\n{}", self.log());
        }
    }

    /// Starts Envoy expecting it to refuse the configuration; returns its log.
    pub fn refused(opts: &EnvoyOpts) -> String {
        let (mut proc, admin_file, log, _dir) = Envoy::spawn(opts, None);
        let status = wait_for("envoy to exit", Duration::from_secs(30), || {
            if let Some(r) = admin_port(&admin_file).and_then(|admin| try_get(admin, "/ready")) {
                if r.status == 200 {
                    panic!("envoy accepted a configuration it should refuse");
                }
            }
            proc.child.try_wait().ok().flatten()
        });
        assert!(!status.success(), "envoy exited 0");
        std::fs::read_to_string(&log).unwrap_or_default()
    }

    /// The port a listener of this name bound (port 0 in the YAML).
    pub fn listener(&self, name: &str) -> u16 {
        let ports = listener_ports(self.admin);
        *ports.get(name).unwrap_or_else(|| panic!("no listener {name:?} in {ports:?}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until Envoy's log (flushed every 50 ms) contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        wait_for(&format!("{needle:?} in the Envoy log"), std::time::Duration::from_secs(10), || {
            self.log().contains(needle).then_some(())
        });
    }

    /// A counter or gauge of the filter (`cname_guard.` + name).
    pub fn stat(&self, name: &str) -> u64 {
        let key = format!("{}: ", stat_name(name));
        let stats = get(self.admin, "/stats?filter=cname_guard").body_text();
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no stat {key:?} in:\n{stats}"))
    }

    /// Waits for a stat to reach `want`: the cached path's counters reach
    /// Envoy on the filter's next tick (at most a second late).
    pub fn wait_stat(&self, name: &str, want: u64) {
        wait_for(&format!("stat {name} == {want}"), std::time::Duration::from_secs(5), || {
            (self.stat(name) == want).then_some(())
        });
    }

    pub fn request(&self, host: &str) -> Response {
        send(self.port, &Request::get(host))
    }

    pub fn send(&self, req: &Request) -> Response {
        send(self.port, req)
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(host: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("Host".into(), host.into())],
            body: Vec::new(),
        }
    }
    pub fn method(mut self, m: &str) -> Request {
        self.method = m.into();
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: &[u8]) -> Request {
        self.body = body.to_vec();
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn headers_named(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }
    pub fn try_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body_text()))
    }
}

fn try_get(port: u16, path: &str) -> Option<Response> {
    let req = Request { path: path.into(), ..Request::get("127.0.0.1") };
    try_send(port, &req).ok()
}

/// A call to the management API on `port` with a bearer token; the status
/// and the JSON answer (`Null` when the body is not JSON).
pub fn api(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = Request { path: path.into(), ..Request::get("127.0.0.1").method(method) }
        .header("authorization", &format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string().as_bytes());
    }
    let r = send(port, &req);
    (r.status, r.try_json().unwrap_or(serde_json::Value::Null))
}

pub fn get(port: u16, path: &str) -> Response {
    try_get(port, path).unwrap_or_else(|| panic!("GET {path} on {port} failed"))
}

/// One request on a fresh connection, raw HTTP/1.1 so that any Host header
/// (even an invalid one) can be sent.
pub fn send(port: u16, req: &Request) -> Response {
    try_send(port, req).unwrap_or_else(|e| panic!("{} {} on {port}: {e}", req.method, req.path))
}

pub fn try_send(port: u16, req: &Request) -> std::io::Result<Response> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path).into_bytes();
    for (n, v) in &req.headers {
        head.extend_from_slice(n.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() {
        head.extend_from_slice(format!("content-length: {}\r\n", req.body.len()).as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    s.write_all(&head)?;
    s.write_all(&req.body)?;
    let raw = read_response(&mut s, req.method == "HEAD")?;
    let _ = s.shutdown(Shutdown::Both);
    parse_response(&raw, req.method == "HEAD", start.elapsed())
}

/// Reads one response: up to its content-length or last chunk, not to EOF
/// (Envoy keeps a connection open a while after some error replies).
fn read_response(s: &mut TcpStream, head: bool) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = if head || headers.starts_with("http/1.1 304") || headers.starts_with("http/1.1 204") {
                true
            } else if let Some(n) = length {
                body.len() >= n
            } else if headers.contains("transfer-encoding: chunked") {
                body.ends_with(b"0\r\n\r\n")
            } else {
                false
            };
            if done {
                return Ok(raw);
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn parse_response(raw: &[u8], head: bool, elapsed: Duration) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let text = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 headers"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked && !head {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response { status, headers, body, elapsed })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Parses `/stats` text into a map (tests that read several stats at once).
pub fn stats(admin: u16) -> HashMap<String, u64> {
    get(admin, "/stats")
        .body_text()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// The filter configuration most tests start from.
pub fn plugin_config(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "lookup": {"cluster": "cname_guard_lookup", "authority": "cname-guard-lookup", "timeout_ms": 500},
        "ray": {"colo": "ARN"}
    });
    merge(&mut base, extra);
    base
}

/// Merges `extra` into `base`, key by key (objects recursively).
pub fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A CA and a leaf for 127.0.0.1 and localhost signed by it, as PEM files
/// in `dir`: the CA, the leaf's chain and its key (a TLS server's, or a
/// client's for mutual TLS).
pub fn tls_files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "cname-guard test TLS root");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let leaf_cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    let (root, cert, key_file) = (dir.join("tls-root.pem"), dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    std::fs::write(&root, ca_cert.pem()).expect("write root");
    std::fs::write(&cert, leaf_cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    (root, cert, key_file)
}
