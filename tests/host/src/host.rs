//! The multi-VM host and the test API.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};

use crate::abi::{self, Action, LogLevel};
use crate::artifact;
use crate::http::{Call, CallOutcome, CallResponse};
use crate::maps::HeaderMap;
use crate::metrics::Metric;
use crate::stream::{LocalResponse, Phase, Response, Stream, Upstream};
use crate::vm::{build_linker, GuestError, HostShared, LogEntry, Vm, VmOptions};

/// The test clock starts here: 2026-01-01T00:00:00Z.
pub const EPOCH_SECS: u64 = 1_767_225_600;

/// Serializes a property path the way the SDK does (segments joined by NUL).
pub fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

/// Configures a [`Host`].
#[derive(Debug, Clone)]
pub struct HostBuilder {
    wasm: Option<PathBuf>,
    config: Vec<u8>,
    vm_config: Vec<u8>,
    workers: usize,
    clusters: Vec<String>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
    log_level: LogLevel,
    vm_id: String,
    root_id: String,
    inherit_stdio: bool,
    echo_logs: bool,
    upstream: Upstream,
    callout_timeouts: bool,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            wasm: None,
            config: Vec::new(),
            vm_config: Vec::new(),
            workers: 1,
            clusters: Vec::new(),
            properties: Vec::new(),
            log_level: LogLevel::Info,
            vm_id: String::new(),
            root_id: String::new(),
            inherit_stdio: false,
            echo_logs: std::env::var_os("PROXY_WASM_HOST_LOG").is_some(),
            upstream: Upstream::default(),
            callout_timeouts: true,
        }
    }
}

impl HostBuilder {
    /// The module to load (default: the filter's release build, built when stale).
    pub fn wasm(mut self, path: impl AsRef<Path>) -> Self {
        self.wasm = Some(path.as_ref().to_path_buf());
        self
    }
    /// Plugin configuration as JSON.
    pub fn config(mut self, json: serde_json::Value) -> Self {
        self.config = serde_json::to_vec(&json).expect("json");
        self
    }
    /// Plugin configuration as raw bytes (for malformed-config tests).
    pub fn raw_config(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.config = bytes.as_ref().to_vec();
        self
    }
    pub fn vm_config(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.vm_config = bytes.as_ref().to_vec();
        self
    }
    /// Number of VMs (simulated Envoy worker threads).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }
    /// A cluster `proxy_http_call` may name (others get BadArgument, like Envoy).
    pub fn cluster(mut self, name: &str) -> Self {
        self.clusters.push(name.to_string());
        self
    }
    /// A host-wide property (streams can override theirs with [`Req::property`]).
    pub fn property(mut self, path: &[&str], value: impl AsRef<[u8]>) -> Self {
        self.properties.push((property_path(path), value.as_ref().to_vec()));
        self
    }
    /// What `proxy_get_log_level` answers (default Info, Envoy's default).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }
    pub fn vm_id(mut self, id: &str) -> Self {
        self.vm_id = id.to_string();
        self
    }
    pub fn root_id(mut self, id: &str) -> Self {
        self.root_id = id.to_string();
        self
    }
    /// Let the guest's WASI stdout/stderr through instead of capturing them.
    pub fn inherit_stdio(mut self) -> Self {
        self.inherit_stdio = true;
        self
    }
    /// Print every guest log line to stderr as it happens (also: env PROXY_WASM_HOST_LOG=1).
    pub fn echo_logs(mut self) -> Self {
        self.echo_logs = true;
        self
    }
    /// What the upstream answers to every forwarded request (default 200, a small body).
    pub fn upstream(mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> Self {
        self.upstream = Upstream {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        };
        self
    }

    /// Whether [`Host::advance`] fires callout timeouts (default true, as Envoy). Turn off to
    /// model a callout that never ends, to test the filter's own deadlines.
    pub fn callout_timeouts(mut self, on: bool) -> Self {
        self.callout_timeouts = on;
        self
    }

    /// Instantiates every worker and starts its root context (vm_start, configure).
    /// A configuration the filter refuses is not an error: see [`Host::configured`].
    pub fn build(self) -> Result<Host> {
        let path = self.wasm.clone().unwrap_or_else(artifact::filter_wasm);
        let engine = artifact::engine();
        let module = artifact::load_module(&path)?;
        abi::check_imports(&module)?;
        let linker = build_linker(engine)?;
        let mut properties = vec![
            (property_path(&["plugin_root_id"]), self.root_id.clone().into_bytes()),
            (property_path(&["plugin_vm_id"]), self.vm_id.clone().into_bytes()),
            (property_path(&["plugin_name"]), b"cname-guard".to_vec()),
        ];
        for (k, v) in self.properties {
            match properties.iter_mut().find(|(pk, _)| *pk == k) {
                Some(e) => e.1 = v,
                None => properties.push((k, v)),
            }
        }
        let shared = Arc::new(Mutex::new(HostShared {
            clusters: self.clusters,
            properties,
            vm_id: self.vm_id,
            echo_logs: self.echo_logs,
            ..Default::default()
        }));
        shared.lock().unwrap().clock.store(EPOCH_SECS * 1_000_000_000, Ordering::SeqCst);
        let mut host = Host {
            vms: Vec::new(),
            shared,
            calls: Vec::new(),
            upstream: self.upstream,
            callout_timeouts: self.callout_timeouts,
        };
        for worker in 0..self.workers {
            let opts = VmOptions {
                worker,
                vm_config: self.vm_config.clone(),
                plugin_config: self.config.clone(),
                log_level: self.log_level,
                inherit_stdio: self.inherit_stdio,
            };
            let mut vm = Vm::new(engine, &module, &linker, host.shared.clone(), opts)?;
            vm.start().map_err(|e| anyhow!("{e}"))?;
            host.vms.push(vm);
            host.collect_calls();
        }
        host.pump();
        Ok(host)
    }
}

/// A set of VMs running one module, sharing data, queues, metrics and a clock.
pub struct Host {
    vms: Vec<Vm>,
    shared: Arc<Mutex<HostShared>>,
    calls: Vec<Call>,
    upstream: Upstream,
    callout_timeouts: bool,
}

/// The test API for one worker: sends requests into its VM.
pub struct Worker<'h> {
    host: &'h mut Host,
    index: usize,
}

/// A request to send: headers (pseudo-headers included), body, per-stream properties,
/// and what the upstream answers if the filter lets it through.
#[derive(Debug, Clone)]
pub struct Req {
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
    upstream: Option<Upstream>,
}

impl Req {
    pub fn new(headers: &[(&str, &str)]) -> Req {
        Req {
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: None,
            properties: Vec::new(),
            upstream: None,
        }
    }
    /// `GET /` over https to `authority`.
    pub fn get(authority: &str) -> Req {
        Req::new(&[(":authority", authority), (":path", "/"), (":method", "GET"), (":scheme", "https")])
    }
    /// Sets (replaces) a header; pseudo-headers too.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// Adds one more value of a header.
    pub fn add_header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }
    pub fn method(self, m: &str) -> Req {
        self.header(":method", m)
    }
    pub fn path(self, p: &str) -> Req {
        self.header(":path", p)
    }
    pub fn body(mut self, b: impl AsRef<[u8]>) -> Req {
        self.body = Some(b.as_ref().to_vec());
        self
    }
    pub fn property(mut self, path: &[&str], value: impl AsRef<[u8]>) -> Req {
        self.properties.push((property_path(path), value.as_ref().to_vec()));
        self
    }
    pub fn upstream(mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> Req {
        self.upstream = Some(Upstream {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        });
        self
    }
}

/// A handle on one stream; read its outcome from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub worker: usize,
    pub ctx: u32,
    action: Action,
}

fn fail(e: GuestError) -> ! {
    panic!("{e}")
}

impl<'h> Worker<'h> {
    /// Sends a request with these headers (no body) and drives it as far as it goes.
    pub fn request(self, headers: &[(&str, &str)]) -> Request {
        self.send(Req::new(headers))
    }

    /// `GET /` to `authority`.
    pub fn get(self, authority: &str) -> Request {
        self.send(Req::get(authority))
    }

    /// Sends a request and drives it as far as it goes: through the filter, upstream (or
    /// the local response), the response callbacks and on_log/on_done/on_delete. A paused
    /// request waits for a callout answer or a clock advance.
    pub fn send(self, req: Req) -> Request {
        let Worker { host, index } = self;
        let upstream = req.upstream.unwrap_or_else(|| host.upstream.clone());
        let headers = HeaderMap::from_pairs(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        let r = host.vms[index].open_stream(headers, req.body, req.properties, upstream);
        host.collect_calls();
        let (ctx, action) = r.unwrap_or_else(|e| fail(e));
        host.pump();
        Request { worker: index, ctx, action }
    }
}

impl Host {
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// `workers` VMs of `wasm_path` with this plugin configuration (JSON text).
    pub fn new(wasm_path: impl AsRef<Path>, config_json: &str, workers: usize) -> Result<Host> {
        Host::builder().wasm(wasm_path).raw_config(config_json).workers(workers).build()
    }

    fn shared(&self) -> MutexGuard<'_, HostShared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn workers(&self) -> usize {
        self.vms.len()
    }

    pub fn worker(&mut self, index: usize) -> Worker<'_> {
        assert!(index < self.vms.len(), "worker {index} of {}", self.vms.len());
        Worker { host: self, index }
    }

    /// Shorthand for `worker(0).request(headers)`.
    pub fn request(&mut self, headers: &[(&str, &str)]) -> Request {
        self.worker(0).request(headers)
    }

    /// True when every worker's root context accepted the configuration (on_vm_start and
    /// on_configure both returned true).
    pub fn configured(&self) -> bool {
        self.vms.iter().all(|vm| vm.vm_started && vm.configured)
    }

    /// The on_configure result of each worker.
    pub fn configure_results(&self) -> Vec<bool> {
        self.vms.iter().map(|vm| vm.vm_started && vm.configured).collect()
    }

    // ---- callouts ------------------------------------------------------------------------

    fn collect_calls(&mut self) {
        let new = std::mem::take(&mut self.shared().new_calls);
        self.calls.extend(new);
    }

    /// Every callout made so far, answered or not, in dispatch order.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Callouts not answered yet, in dispatch order.
    pub fn pending_calls(&self) -> impl DoubleEndedIterator<Item = &Call> {
        self.calls.iter().filter(|c| c.pending())
    }

    /// The newest callout (cloned), answered or not.
    pub fn last_call(&self) -> Option<Call> {
        self.calls.last().cloned()
    }

    pub fn call(&self, token: u32) -> Option<&Call> {
        self.calls.iter().find(|c| c.token == token)
    }

    fn deliver(&mut self, token: u32, outcome: CallOutcome, response: Option<CallResponse>) {
        let Some(i) = self.calls.iter().rposition(|c| c.token == token) else { panic!("no callout with token {token}") };
        assert!(self.calls[i].pending(), "callout {token} was already {:?}", self.calls[i].outcome);
        self.calls[i].outcome = Some(outcome);
        let worker = self.calls[i].worker;
        let r = self.vms[worker].http_call_response(token, response);
        self.collect_calls();
        r.unwrap_or_else(|e| fail(e));
        self.pump();
    }

    /// Answers a callout: status, headers (`:status` and `content-length` are added), body.
    pub fn answer(&mut self, token: u32, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        self.deliver(token, CallOutcome::Answered(status), Some(CallResponse::new(status, headers, body, &[])));
    }

    /// Answers a callout with trailers too.
    pub fn answer_with_trailers(
        &mut self,
        token: u32,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) {
        self.deliver(token, CallOutcome::Answered(status), Some(CallResponse::new(status, headers, body, trailers)));
    }

    /// The callout's timeout fires. Envoy's router then answers the call itself with
    /// `504` and the body `upstream request timeout` (the filter sees a normal response).
    pub fn timeout(&mut self, token: u32) {
        self.deliver(token, CallOutcome::TimedOut, Some(CallResponse::gateway_timeout()));
    }

    /// The callout fails without a response (reset, connection failure): Envoy calls
    /// `proxy_on_http_call_response` with 0 headers, 0 body, 0 trailers.
    pub fn fail(&mut self, token: u32) {
        self.deliver(token, CallOutcome::Failed, None);
    }

    // ---- clock ---------------------------------------------------------------------------

    /// The test clock (starts at 2026-01-01T00:00:00Z).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.shared().clock.load(Ordering::SeqCst))
    }

    fn now_nanos(&self) -> u64 {
        self.shared().clock.load(Ordering::SeqCst)
    }

    /// Moves the clock forward, firing in time order every tick (`proxy_on_tick`) and
    /// every callout timeout (504, as Envoy) that falls due on the way.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now_nanos() + by.as_nanos() as u64;
        loop {
            let tick =
                self.vms.iter().enumerate().filter_map(|(i, vm)| vm.store.data().next_tick.map(|t| (t, i))).min();
            let deadline = self
                .calls
                .iter()
                .filter(|c| c.pending() && self.callout_timeouts)
                .filter_map(|c| c.deadline_nanos().map(|d| (d, c.token)))
                .min();
            let next = match (tick, deadline) {
                (Some(t), Some(d)) if d.0 <= t.0 => Some((d.0, None, Some(d.1))),
                (Some(t), _) => Some((t.0, Some(t.1), None)),
                (None, Some(d)) => Some((d.0, None, Some(d.1))),
                (None, None) => None,
            };
            match next {
                Some((at, worker, token)) if at <= target => {
                    let at = at.max(self.now_nanos());
                    self.shared().clock.store(at, Ordering::SeqCst);
                    if let Some(token) = token {
                        self.timeout(token);
                    } else if let Some(w) = worker {
                        let r = self.vms[w].tick();
                        self.collect_calls();
                        r.unwrap_or_else(|e| fail(e));
                        self.pump();
                    }
                }
                _ => break,
            }
        }
        self.shared().clock.store(target, Ordering::SeqCst);
    }

    // ---- queues --------------------------------------------------------------------------

    /// Delivers pending `proxy_on_queue_ready` notifications (done after every operation).
    pub fn pump(&mut self) {
        loop {
            let next = self.shared().queues.take_ready();
            let Some((worker, root, token)) = next else { break };
            let r = self.vms[worker].queue_ready(root, token);
            self.collect_calls();
            r.unwrap_or_else(|e| fail(e));
        }
    }

    /// Enqueues into a shared queue from outside (like another plugin would).
    pub fn enqueue(&mut self, vm_id: &str, queue: &str, data: &[u8]) -> Result<(), abi::Status> {
        {
            let mut sh = self.shared();
            let token = sh.queues.resolve(vm_id, queue)?;
            sh.queues.enqueue(token, data)?;
        }
        self.pump();
        Ok(())
    }

    // ---- shared data, metrics, logs ---------------------------------------------------------

    /// A shared-data entry: value and cas.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared().data.get(key).ok()
    }

    pub fn shared_data_keys(&self) -> Vec<String> {
        self.shared().data.keys()
    }

    pub fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        self.shared().data.set(key, value, 0).expect("unconditional set");
    }

    /// A counter or gauge by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.shared().metrics.value(name)
    }

    /// A histogram's samples by name.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.shared().metrics.samples(name)
    }

    pub fn metrics(&self) -> Vec<Metric> {
        self.shared().metrics.all()
    }

    /// Every log line of every worker, in order.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.shared().logs.clone()
    }

    /// The logs as text, one line each.
    pub fn log_text(&self) -> String {
        self.logs().iter().map(|e| format!("{e}\n")).collect()
    }

    /// True when some log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.shared().logs.iter().any(|e| e.message.contains(needle))
    }

    pub fn clear_logs(&mut self) {
        self.shared().logs.clear();
    }

    /// ABI misuse the host noticed (continue twice, writing a map no longer available,
    /// a local response after forwarding...). Envoy would misbehave or the SDK would panic.
    pub fn anomalies(&self) -> Vec<String> {
        self.shared().anomalies.clone()
    }

    pub fn assert_no_anomalies(&self) {
        let a = self.anomalies();
        assert!(a.is_empty(), "ABI misuse:\n{}\n--- log ---\n{}", a.join("\n"), self.log_text());
    }

    // ---- fuel ----------------------------------------------------------------------------

    /// Fuel (≈ wasm instructions) consumed by the last export call on `worker`.
    pub fn last_fuel(&self, worker: usize) -> u64 {
        self.vms[worker].last_fuel
    }

    /// Fuel consumed by `worker` since it was created.
    pub fn fuel(&self, worker: usize) -> u64 {
        self.vms[worker].fuel_total
    }

    fn stream(&self, r: &Request) -> &Stream {
        self.vms[r.worker].store.data().streams.get(&r.ctx).expect("stream of this host")
    }
}

impl Request {
    /// What proxy_on_request_headers returned.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The request went upstream (directly or after a pause).
    pub fn continued(&self, h: &Host) -> bool {
        h.stream(self).forwarded.is_some()
    }

    /// It was paused and the filter resumed it with proxy_continue_stream.
    pub fn resumed(&self, h: &Host) -> bool {
        h.stream(self).resumed && self.continued(h)
    }

    /// Still waiting on the filter (paused, neither forwarded nor answered).
    pub fn paused(&self, h: &Host) -> bool {
        h.stream(self).phase == Phase::Request
    }

    /// on_log/on_done/on_delete have run.
    pub fn completed(&self, h: &Host) -> bool {
        h.stream(self).phase == Phase::Closed
    }

    /// The request headers as they went upstream.
    pub fn forwarded_headers<'h>(&self, h: &'h Host) -> Option<&'h HeaderMap> {
        h.stream(self).forwarded.as_ref()
    }

    /// One header of the forwarded request (None if absent or not forwarded).
    pub fn forwarded_header<'h>(&self, h: &'h Host, name: &str) -> Option<&'h str> {
        self.forwarded_headers(h)?.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The forwarded body, when the request had one.
    pub fn forwarded_body<'h>(&self, h: &'h Host) -> Option<&'h [u8]> {
        h.stream(self).forwarded_body.as_deref()
    }

    /// What the filter passed to proxy_send_local_response, if it did.
    pub fn local_response<'h>(&self, h: &'h Host) -> Option<&'h LocalResponse> {
        h.stream(self).local.as_ref()
    }

    /// What the client received (after the filter's response callbacks).
    pub fn response<'h>(&self, h: &'h Host) -> Option<&'h Response> {
        h.stream(self).response.as_ref()
    }

    /// The status the client received.
    pub fn status(&self, h: &Host) -> Option<u32> {
        self.response(h).map(|r| r.status)
    }

    /// The filter reset the stream (proxy_close_stream) or the test did.
    pub fn was_reset(&self, h: &Host) -> bool {
        h.stream(self).reset
    }

    /// Fuel spent on this stream: its own callbacks plus callout responses handled for it.
    pub fn fuel(&self, h: &Host) -> u64 {
        h.stream(self).fuel
    }

    /// The client goes away: on_log, on_done, on_delete without a response.
    pub fn reset(&self, h: &mut Host) {
        let r = h.vms[self.worker].reset_stream(self.ctx);
        h.collect_calls();
        r.unwrap_or_else(|e| fail(e));
        h.pump();
    }
}
