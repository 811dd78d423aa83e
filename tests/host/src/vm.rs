//! One VM: a wasmtime instance of the module with its root context (one simulated Envoy
//! worker thread), the per-VM host state the imports work on, and the stream lifecycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::error::Context as _;
use wasmtime::{format_err as anyhow, Result};
use wasmtime::{Engine, Extern, Linker, Memory, Module, Store, TypedFunc, WasmParams, WasmResults};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::abi::{self, Action, BufferType, LogLevel, MapType, Status};
use crate::http::{Call, CallResponse};
use crate::maps::HeaderMap;
use crate::metrics::Metrics;
use crate::shared::{SharedData, SharedQueues};
use crate::stream::{LocalResponse, Phase, Response, Stream, Upstream};

/// The fuel each store starts with: far more than any test uses.
const FUEL: u64 = 1 << 62;

/// One line the guest logged (proxy_log, or a line of its WASI stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub worker: usize,
    pub ctx: u32,
    pub level: LogLevel,
    pub message: String,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[w{} ctx{} {:?}] {}", self.worker, self.ctx, self.level, self.message)
    }
}

/// State shared by every VM of one host: Envoy's process-wide (per vm_id) facilities.
#[derive(Debug, Default)]
pub(crate) struct HostShared {
    pub clock: Arc<AtomicU64>,
    pub data: SharedData,
    pub queues: SharedQueues,
    pub metrics: Metrics,
    pub clusters: Vec<String>,
    pub new_calls: Vec<Call>,
    pub next_token: u32,
    pub logs: Vec<LogEntry>,
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
    pub vm_id: String,
    pub anomalies: Vec<String>,
    pub echo_logs: bool,
}

/// 4 KiB of deterministic pseudo-random bytes (splitmix64), cycled by WASI's random_get.
fn random_bytes(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(4096);
    while out.len() < 4096 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// The test clock as WASI sees it.
struct TestClock(Arc<AtomicU64>);

impl HostWallClock for TestClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

impl HostMonotonicClock for TestClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The store data of one VM: what the imports read and write.
pub struct VmState {
    pub(crate) worker: usize,
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) shared: Arc<Mutex<HostShared>>,
    pub(crate) memory: Option<Memory>,
    pub(crate) alloc: Option<TypedFunc<i32, i32>>,
    pub(crate) root_id: u32,
    /// The context the host called into, and the one host calls act on.
    pub(crate) current: u32,
    pub(crate) effective: u32,
    pub(crate) streams: BTreeMap<u32, Stream>,
    /// The streams not closed yet: `settle` looks at these only (a test may
    /// keep tens of thousands of closed streams for inspection).
    pub(crate) open: BTreeSet<u32>,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) in_configure: bool,
    pub(crate) call_response: Option<CallResponse>,
    pub(crate) status: (u32, String),
    pub(crate) log_level: LogLevel,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick: Option<u64>,
    pub(crate) root_properties: Vec<(Vec<u8>, Vec<u8>)>,
}

fn upsert(list: &mut Vec<(Vec<u8>, Vec<u8>)>, key: Vec<u8>, value: Vec<u8>) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(e) => e.1 = value,
        None => list.push((key, value)),
    }
}

impl VmState {
    pub(crate) fn shared(&self) -> MutexGuard<'_, HostShared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.shared().clock.load(Ordering::SeqCst)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        let entry = LogEntry { worker: self.worker, ctx: self.effective, level, message };
        let mut sh = self.shared();
        if sh.echo_logs {
            eprintln!("{entry}");
        }
        sh.logs.push(entry);
    }

    pub(crate) fn anomaly(&mut self, what: String) {
        let line = format!("worker {} ctx {}: {what}", self.worker, self.effective);
        self.log(LogLevel::Warn, format!("[host] {line}"));
        self.shared().anomalies.push(line);
    }

    pub(crate) fn set_tick_period(&mut self, ms: u32) {
        self.tick_period_ms = ms;
        self.next_tick = if ms == 0 { None } else { Some(self.now_nanos() + ms as u64 * 1_000_000) };
    }

    fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective).filter(|s| s.phase != Phase::Closed || s.log_phase)
    }

    fn stream_mut(&mut self) -> Option<&mut Stream> {
        let id = self.effective;
        self.streams.get_mut(&id).filter(|s| s.phase != Phase::Closed || s.log_phase)
    }

    /// A map as Envoy exposes it for reading right now (`getConstMap`).
    pub(crate) fn map(&self, kind: MapType) -> Result<&HeaderMap, Status> {
        match kind {
            MapType::CallResponseHeaders => self.call_response.as_ref().map(|r| &r.headers).ok_or(Status::BadArgument),
            MapType::CallResponseTrailers => {
                self.call_response.as_ref().map(|r| &r.trailers).ok_or(Status::BadArgument)
            }
            MapType::GrpcInitialMetadata | MapType::GrpcTrailingMetadata => Err(Status::BadArgument),
            _ => {
                let s = self.stream().ok_or(Status::BadArgument)?;
                match kind {
                    MapType::RequestHeaders if s.request_open || s.log_phase => Ok(&s.request_headers),
                    MapType::RequestTrailers if s.request_open || s.log_phase => Ok(&s.request_trailers),
                    MapType::ResponseHeaders if s.response_open || s.log_phase => Ok(&s.response_headers),
                    MapType::ResponseTrailers if s.response_open || s.log_phase => Ok(&s.response_trailers),
                    _ => Err(Status::BadArgument),
                }
            }
        }
    }

    /// A map as Envoy exposes it for writing right now (`getMap`); BadArgument otherwise.
    pub(crate) fn map_mut(&mut self, kind: MapType, what: &str) -> Result<&mut HeaderMap, Status> {
        let writable = match self.stream() {
            Some(s) => match kind {
                MapType::RequestHeaders | MapType::RequestTrailers => s.request_open,
                MapType::ResponseHeaders | MapType::ResponseTrailers => s.response_open,
                _ => false,
            },
            None => false,
        };
        if !writable {
            self.anomaly(format!("{what}({kind:?}): map not writable now (BadArgument)"));
            return Err(Status::BadArgument);
        }
        let s = self.stream_mut().ok_or(Status::BadArgument)?;
        Ok(match kind {
            MapType::RequestHeaders => &mut s.request_headers,
            MapType::RequestTrailers => &mut s.request_trailers,
            MapType::ResponseHeaders => &mut s.response_headers,
            _ => &mut s.response_trailers,
        })
    }

    pub(crate) fn buffer(&self, kind: BufferType) -> Result<&[u8], Status> {
        match kind {
            BufferType::VmConfiguration => Ok(&self.vm_config),
            BufferType::PluginConfiguration if self.in_configure => Ok(&self.plugin_config),
            BufferType::PluginConfiguration => Err(Status::NotFound),
            BufferType::CallResponseBody => {
                self.call_response.as_ref().map(|r| r.body.as_slice()).ok_or(Status::NotFound)
            }
            BufferType::RequestBody => {
                Ok(self.stream().filter(|s| s.request_body_open).map_or(&[][..], |s| &s.request_body))
            }
            BufferType::ResponseBody => {
                Ok(self.stream().filter(|s| s.response_body_open).map_or(&[][..], |s| &s.response_body))
            }
            _ => Ok(&[]),
        }
    }

    pub(crate) fn set_buffer(
        &mut self,
        kind: BufferType,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), Status> {
        let buf = match (kind, self.stream_mut()) {
            (BufferType::RequestBody, Some(s)) if s.request_body_open => &mut s.request_body,
            (BufferType::ResponseBody, Some(s)) if s.response_body_open => &mut s.response_body,
            (BufferType::RequestBody | BufferType::ResponseBody, _) => return Err(Status::NotFound),
            _ => return Err(Status::BadArgument),
        };
        if start >= buf.len() {
            buf.extend_from_slice(data);
        } else {
            let end = start.saturating_add(size).min(buf.len());
            buf.splice(start..end, data.iter().copied());
        }
        Ok(())
    }

    pub(crate) fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        let find = |list: &[(Vec<u8>, Vec<u8>)]| list.iter().find(|(k, _)| k == path).map(|(_, v)| v.clone());
        if let Some(v) = self.stream().and_then(|s| find(&s.properties)) {
            return Some(v);
        }
        find(&self.root_properties).or_else(|| find(&self.shared().properties))
    }

    pub(crate) fn set_property(&mut self, path: Vec<u8>, value: Vec<u8>) {
        match self.stream_mut() {
            Some(s) => upsert(&mut s.properties, path, value),
            None => upsert(&mut self.root_properties, path, value),
        }
    }

    pub(crate) fn continue_stream(&mut self, kind: i32) -> Result<(), Status> {
        match kind {
            0 => {
                let Some(s) = self.stream_mut() else { return Ok(()) };
                let problem = if s.phase != Phase::Request {
                    Some("proxy_continue_stream(HttpRequest) after the request was already forwarded or answered")
                } else if s.headers_action.is_none() {
                    Some("proxy_continue_stream(HttpRequest) from inside proxy_on_request_headers (Envoy continues twice)")
                } else if s.want_local.is_some() {
                    Some("proxy_continue_stream(HttpRequest) after proxy_send_local_response")
                } else {
                    None
                };
                if s.phase == Phase::Request {
                    s.resumed = s.headers_action == Some(Action::Pause);
                    s.want_continue = true;
                    // Envoy drops its pointer to the request headers right away.
                    s.request_open = false;
                }
                if let Some(p) = problem {
                    self.anomaly(p.to_string());
                }
                Ok(())
            }
            1 => {
                if let Some(s) = self.stream_mut() {
                    s.response_open = false;
                }
                Ok(())
            }
            2 => Ok(()),
            3 => Err(Status::Unimplemented),
            _ => Err(Status::BadArgument),
        }
    }

    pub(crate) fn close_stream(&mut self, kind: i32) -> Result<(), Status> {
        match kind {
            0 | 1 => {
                if let Some(s) = self.stream_mut() {
                    s.want_reset = true;
                }
                Ok(())
            }
            2 | 3 => Ok(()),
            _ => Err(Status::BadArgument),
        }
    }

    pub(crate) fn send_local_response(
        &mut self,
        status: u32,
        details: String,
        body: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
        grpc: i32,
    ) {
        let lr = LocalResponse {
            status,
            headers: headers.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect(),
            body,
            details,
            grpc_status: grpc,
        };
        let problem = match self.stream_mut() {
            None => Some("proxy_send_local_response outside a stream context (ignored, as Envoy does)".to_string()),
            Some(s) => {
                let p = if s.phase != Phase::Request {
                    Some(format!("proxy_send_local_response({status}) after the request was forwarded or answered"))
                } else if s.want_local.is_some() {
                    Some(format!("second proxy_send_local_response({status}) for the same request"))
                } else {
                    None
                };
                if s.phase == Phase::Request && s.want_local.is_none() {
                    s.want_local = Some(lr);
                }
                p
            }
        };
        if let Some(p) = problem {
            self.anomaly(p);
        }
    }

    pub(crate) fn http_call(
        &mut self,
        cluster: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        trailers: Vec<(String, Vec<u8>)>,
        timeout_ms: u32,
    ) -> Result<u32, Status> {
        if timeout_ms > i32::MAX as u32 {
            return Err(Status::BadArgument);
        }
        let headers = HeaderMap::from_pairs(headers);
        let now = self.now_nanos();
        let (worker, root, dispatcher) = (self.worker, self.root_id, self.effective);
        let mut sh = self.shared();
        if !sh.clusters.contains(&cluster) {
            return Err(Status::BadArgument);
        }
        if headers.get(":path").is_none() || headers.get(":method").is_none() || headers.get(":authority").is_none() {
            return Err(Status::BadArgument);
        }
        sh.next_token += 1;
        let token = sh.next_token;
        sh.new_calls.push(Call {
            token,
            worker,
            root_ctx: root,
            dispatched_from: dispatcher,
            cluster,
            headers: headers.to_vec(),
            body,
            trailers: HeaderMap::from_pairs(trailers).to_vec(),
            timeout: Duration::from_millis(timeout_ms as u64),
            sent_at_nanos: now,
            outcome: None,
        });
        Ok(token)
    }

    pub(crate) fn set_effective(&mut self, ctx: u32) -> Result<(), Status> {
        if ctx == self.root_id || self.streams.get(&ctx).is_some_and(|s| s.phase != Phase::Closed) {
            self.effective = ctx;
            Ok(())
        } else {
            Err(Status::BadArgument)
        }
    }

    pub(crate) fn done(&mut self) -> Result<(), Status> {
        // Only a root context that returned false from proxy_on_done at shutdown may call it;
        // this host never shuts roots down.
        Err(Status::NotFound)
    }
}

/// A trap (or a failed host expectation) while the guest ran, with the guest's log.
#[derive(Debug, Clone)]
pub struct GuestError {
    pub message: String,
    pub log: String,
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n--- guest log ---\n{}--- end of guest log ---", self.message, self.log)
    }
}

impl std::error::Error for GuestError {}

/// proxy_on_http_call_response(root, token, headers, body size, trailers).
type CallResponseFn = TypedFunc<(i32, i32, i32, i32, i32), ()>;

struct Exports {
    init: Option<TypedFunc<(), ()>>,
    context_create: TypedFunc<(i32, i32), ()>,
    // Optional like in Envoy (proxy-wasm-cpp-host): a callback the module does not
    // export is skipped (started and configured are true, headers continue, done is true).
    vm_start: Option<TypedFunc<(i32, i32), i32>>,
    configure: Option<TypedFunc<(i32, i32), i32>>,
    request_headers: TypedFunc<(i32, i32, i32), i32>,
    request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    log: Option<TypedFunc<i32, ()>>,
    done: Option<TypedFunc<i32, i32>>,
    delete: TypedFunc<i32, ()>,
    http_call_response: Option<CallResponseFn>,
    tick: Option<TypedFunc<i32, ()>>,
    queue_ready: Option<TypedFunc<(i32, i32), ()>>,
}

pub(crate) struct VmOptions {
    pub worker: usize,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub log_level: LogLevel,
    pub inherit_stdio: bool,
}

pub(crate) struct Vm {
    pub(crate) store: Store<VmState>,
    exports: Exports,
    stdout: Option<MemoryOutputPipe>,
    stderr: Option<MemoryOutputPipe>,
    next_ctx: u32,
    dead: Option<String>,
    pub(crate) fuel_total: u64,
    pub(crate) last_fuel: u64,
    pub(crate) configured: bool,
    pub(crate) vm_started: bool,
}

impl Vm {
    pub(crate) fn new(
        engine: &Engine,
        module: &Module,
        linker: &Linker<VmState>,
        shared: Arc<Mutex<HostShared>>,
        opts: VmOptions,
    ) -> Result<Vm> {
        let clock = shared.lock().unwrap().clock.clone();
        let mut b = WasiCtxBuilder::new();
        let (stdout, stderr) = if opts.inherit_stdio {
            b.inherit_stdout().inherit_stderr();
            (None, None)
        } else {
            let (o, e) = (MemoryOutputPipe::new(1 << 20), MemoryOutputPipe::new(1 << 20));
            b.stdout(o.clone()).stderr(e.clone());
            (Some(o), Some(e))
        };
        // Deterministic randomness (hash seeds...) so fuel figures repeat run to run.
        // Distinct per worker, as real VMs get distinct random bytes.
        b.secure_random(wasmtime_wasi::Deterministic::new(random_bytes(opts.worker as u64 * 2 + 1)));
        b.insecure_random(wasmtime_wasi::Deterministic::new(random_bytes(opts.worker as u64 * 2 + 2)));
        b.insecure_random_seed(0x5eed + opts.worker as u128);
        b.wall_clock(TestClock(clock.clone())).monotonic_clock(TestClock(clock));
        let state = VmState {
            worker: opts.worker,
            wasi: b.build_p1(),
            shared,
            memory: None,
            alloc: None,
            root_id: 1,
            current: 0,
            effective: 0,
            streams: BTreeMap::new(),
            open: BTreeSet::new(),
            vm_config: opts.vm_config,
            plugin_config: opts.plugin_config,
            in_configure: false,
            call_response: None,
            status: (0, String::new()),
            log_level: opts.log_level,
            tick_period_ms: 0,
            next_tick: None,
            root_properties: Vec::new(),
        };
        let mut store = Store::new(engine, state);
        store.set_fuel(FUEL)?;
        for imp in module.imports() {
            if linker.get_by_import(&mut store, &imp).is_none() {
                wasmtime::bail!("unsupported import {}.{}", imp.module(), imp.name());
            }
        }
        let instance = linker.instantiate(&mut store, module).context("instantiating the module")?;
        let memory = match instance.get_export(&mut store, "memory") {
            Some(Extern::Memory(m)) => m,
            _ => wasmtime::bail!("the module exports no memory"),
        };
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .context("the module exports neither proxy_on_memory_allocate nor malloc")?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(alloc);

        macro_rules! req {
            ($name:literal) => {
                instance.get_typed_func(&mut store, $name).with_context(|| format!("export {}", $name))?
            };
        }
        macro_rules! opt {
            ($name:literal) => {
                match instance.get_export(&mut store, $name) {
                    Some(_) => {
                        Some(instance.get_typed_func(&mut store, $name).with_context(|| format!("export {}", $name))?)
                    }
                    None => None,
                }
            };
        }
        let init = match opt!("_initialize") {
            Some(f) => Some(f),
            None => opt!("_start"),
        };
        let exports = Exports {
            init,
            context_create: req!("proxy_on_context_create"),
            vm_start: opt!("proxy_on_vm_start"),
            configure: opt!("proxy_on_configure"),
            request_headers: req!("proxy_on_request_headers"),
            request_body: opt!("proxy_on_request_body"),
            response_headers: opt!("proxy_on_response_headers"),
            response_body: opt!("proxy_on_response_body"),
            log: opt!("proxy_on_log"),
            done: opt!("proxy_on_done"),
            delete: req!("proxy_on_delete"),
            http_call_response: opt!("proxy_on_http_call_response"),
            tick: opt!("proxy_on_tick"),
            queue_ready: opt!("proxy_on_queue_ready"),
        };
        Ok(Vm {
            store,
            exports,
            stdout,
            stderr,
            next_ctx: 2,
            dead: None,
            fuel_total: 0,
            last_fuel: 0,
            configured: false,
            vm_started: false,
        })
    }

    pub(crate) fn worker(&self) -> usize {
        self.store.data().worker
    }

    pub(crate) fn root_id(&self) -> u32 {
        self.store.data().root_id
    }

    /// The guest's log lines of this worker, and its captured WASI output.
    pub(crate) fn log_dump(&self) -> String {
        let w = self.worker();
        let mut out = String::new();
        for e in self.store.data().shared().logs.iter().filter(|e| e.worker == w) {
            out.push_str(&e.to_string());
            out.push('\n');
        }
        for (name, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if let Some(p) = pipe {
                let c = p.contents();
                if !c.is_empty() {
                    out.push_str(&format!("[w{w} wasi {name}]\n{}\n", String::from_utf8_lossy(&c)));
                }
            }
        }
        out
    }

    /// Calls an export into context `ctx`, measuring fuel; a trap becomes a [`GuestError`].
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        what: &str,
        ctx: u32,
        f: TypedFunc<P, R>,
        args: P,
    ) -> Result<R, GuestError> {
        if let Some(why) = &self.dead {
            return Err(GuestError {
                message: format!("worker {} is unusable: {why}", self.worker()),
                log: self.log_dump(),
            });
        }
        {
            let s = self.store.data_mut();
            s.current = ctx;
            s.effective = ctx;
        }
        let before = self.store.get_fuel().unwrap_or(0);
        let r = f.call(&mut self.store, args);
        let used = before.saturating_sub(self.store.get_fuel().unwrap_or(0));
        self.last_fuel = used;
        self.fuel_total += used;
        let effective = self.store.data().effective;
        let charge_to = if self.store.data().streams.contains_key(&effective) { effective } else { ctx };
        if let Some(s) = self.store.data_mut().streams.get_mut(&charge_to) {
            s.fuel += used;
        }
        {
            let s = self.store.data_mut();
            s.current = 0;
            s.effective = 0;
        }
        r.map_err(|e| {
            let message = format!("guest trapped in {what} (context {ctx}) on worker {}: {e:?}", self.worker());
            self.dead = Some(message.clone());
            GuestError { message, log: self.log_dump() }
        })
    }

    /// `_initialize`, then the root context: create, vm_start, configure (as Envoy starts a plugin).
    pub(crate) fn start(&mut self) -> Result<bool, GuestError> {
        if let Some(init) = self.exports.init.clone() {
            self.call("_initialize", 0, init, ())?;
        }
        let root = self.root_id() as i32;
        self.call("proxy_on_context_create", root as u32, self.exports.context_create.clone(), (root, 0))?;
        let vm_len = self.store.data().vm_config.len() as i32;
        self.vm_started = match self.exports.vm_start.clone() {
            Some(f) => self.call("proxy_on_vm_start", root as u32, f, (root, vm_len))? != 0,
            None => true,
        };
        if !self.vm_started {
            self.configured = false;
            return Ok(false);
        }
        let Some(configure) = self.exports.configure.clone() else {
            self.configured = true;
            return Ok(true);
        };
        let len = self.store.data().plugin_config.len() as i32;
        self.store.data_mut().in_configure = true;
        let r = self.call("proxy_on_configure", root as u32, configure, (root, len));
        self.store.data_mut().in_configure = false;
        self.configured = r? != 0;
        Ok(self.configured)
    }

    fn stream_mut(&mut self, ctx: u32) -> &mut Stream {
        self.store.data_mut().streams.get_mut(&ctx).expect("stream exists")
    }

    /// Creates a stream context and runs its request headers (and body) through the filter.
    pub(crate) fn open_stream(
        &mut self,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        properties: Vec<(Vec<u8>, Vec<u8>)>,
        upstream: Upstream,
    ) -> Result<(u32, Action), GuestError> {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let root = self.root_id();
        self.store.data_mut().streams.insert(ctx, Stream::new(ctx, headers, body, properties, upstream));
        self.store.data_mut().open.insert(ctx);
        self.call("proxy_on_context_create", ctx, self.exports.context_create.clone(), (ctx as i32, root as i32))?;
        let s = self.stream_mut(ctx);
        s.request_open = true;
        let (n, eos) = (s.request_headers.len() as i32, !s.has_body);
        let action = Action::from_abi(self.call(
            "proxy_on_request_headers",
            ctx,
            self.exports.request_headers.clone(),
            (ctx as i32, n, eos as i32),
        )?);
        let s = self.stream_mut(ctx);
        s.headers_action = Some(action);
        if action == Action::Continue && s.want_local.is_none() && !s.want_reset {
            s.want_continue = true;
            s.request_open = false;
        }
        self.settle()?;
        Ok((ctx, action))
    }

    /// Carries out what the guest asked for during the last calls (local responses,
    /// continues, resets), as Envoy does after each VM call.
    pub(crate) fn settle(&mut self) -> Result<(), GuestError> {
        loop {
            let data = self.store.data();
            let next = data.open.iter().copied().find(|c| data.streams.get(c).is_some_and(Stream::has_pending_action));
            let Some(ctx) = next else { return Ok(()) };
            let s = self.stream_mut(ctx);
            if let Some(lr) = s.want_local.take() {
                s.want_continue = false;
                s.request_open = false;
                s.local = Some(lr.clone());
                let mut headers: Vec<(String, Vec<u8>)> =
                    lr.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
                if !lr.body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                    headers.push(("content-type".into(), b"text/plain".to_vec()));
                }
                self.encode(ctx, lr.status, headers, lr.body, true)?;
            } else if s.want_reset {
                s.want_reset = false;
                s.want_continue = false;
                s.reset = true;
                self.complete(ctx)?;
            } else if s.want_continue {
                s.want_continue = false;
                s.request_open = false;
                if s.has_body && s.forwarded_body.is_none() {
                    s.request_body_open = true;
                    let len = s.request_body.len() as i32;
                    if let Some(f) = self.exports.request_body.clone() {
                        self.call("proxy_on_request_body", ctx, f, (ctx as i32, len, 1))?;
                    }
                    let s = self.stream_mut(ctx);
                    s.request_body_open = false;
                    s.forwarded_body = Some(s.request_body.clone());
                    if s.want_local.is_some() || s.want_reset {
                        continue;
                    }
                }
                let s = self.stream_mut(ctx);
                s.forwarded = Some(s.request_headers.clone());
                let up = s.upstream.clone();
                let headers = up.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
                self.encode(ctx, up.status, headers, up.body, false)?;
            }
        }
    }

    /// Sends a response (local or upstream) through the filter's response callbacks, then closes.
    fn encode(
        &mut self,
        ctx: u32,
        status: u32,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        local: bool,
    ) -> Result<(), GuestError> {
        let s = self.stream_mut(ctx);
        s.phase = Phase::Response;
        let mut map = HeaderMap::new();
        map.add(":status", status.to_string().as_bytes());
        for (k, v) in &headers {
            map.add(k, v);
        }
        if !body.is_empty() && map.get("content-length").is_none() {
            map.add("content-length", body.len().to_string().as_bytes());
        }
        let eos = body.is_empty() || s.is_head;
        s.response_headers = map;
        s.response_open = true;
        let n = s.response_headers.len() as i32;
        if let Some(f) = self.exports.response_headers.clone() {
            self.call("proxy_on_response_headers", ctx, f, (ctx as i32, n, eos as i32))?;
        }
        let s = self.stream_mut(ctx);
        s.response_open = false;
        let mut body = body;
        if !eos {
            s.response_body = std::mem::take(&mut body);
            s.response_body_open = true;
            let len = s.response_body.len() as i32;
            if let Some(f) = self.exports.response_body.clone() {
                self.call("proxy_on_response_body", ctx, f, (ctx as i32, len, 1))?;
            }
            let s = self.stream_mut(ctx);
            s.response_body_open = false;
            body = std::mem::take(&mut s.response_body);
        }
        let s = self.stream_mut(ctx);
        let late = s.want_local.take().is_some();
        s.want_continue = false;
        let status = s.response_headers.get_str(":status").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut wire = s.response_headers.clone();
        wire.remove(":status");
        if s.is_head {
            body.clear();
        }
        s.response = Some(Response { status, headers: wire, body, local });
        if late {
            self.store.data_mut().effective = ctx;
            self.store.data_mut().anomaly("proxy_send_local_response from a response callback (ignored)".into());
            self.store.data_mut().effective = 0;
        }
        self.complete(ctx)
    }

    /// on_log, on_done, on_delete: the stream is over.
    fn complete(&mut self, ctx: u32) -> Result<(), GuestError> {
        let s = self.stream_mut(ctx);
        s.log_phase = true;
        let r = match self.exports.log.clone() {
            Some(f) => self.call("proxy_on_log", ctx, f, ctx as i32),
            None => Ok(()),
        };
        self.stream_mut(ctx).log_phase = false;
        r?;
        if let Some(f) = self.exports.done.clone() {
            self.call("proxy_on_done", ctx, f, ctx as i32)?;
        }
        self.call("proxy_on_delete", ctx, self.exports.delete.clone(), ctx as i32)?;
        let s = self.stream_mut(ctx);
        s.phase = Phase::Closed;
        s.want_continue = false;
        s.want_local = None;
        s.want_reset = false;
        self.store.data_mut().open.remove(&ctx);
        Ok(())
    }

    /// The client went away: Envoy logs and destroys the stream.
    pub(crate) fn reset_stream(&mut self, ctx: u32) -> Result<(), GuestError> {
        match self.store.data().streams.get(&ctx) {
            Some(s) if s.phase != Phase::Closed => {}
            _ => return Ok(()),
        }
        let s = self.stream_mut(ctx);
        s.reset = true;
        s.request_open = false;
        self.complete(ctx)?;
        self.settle()
    }

    /// Delivers a callout answer (`None`: the call failed) to the root context, like Envoy.
    pub(crate) fn http_call_response(&mut self, token: u32, response: Option<CallResponse>) -> Result<(), GuestError> {
        let f = self.exports.http_call_response.clone().ok_or_else(|| GuestError {
            message: "the module dispatched an HTTP call but exports no proxy_on_http_call_response".into(),
            log: String::new(),
        })?;
        let (nh, nb, nt) = response.as_ref().map_or((0, 0, 0), |r| (r.headers.len(), r.body.len(), r.trailers.len()));
        let failed = response.is_none();
        {
            let st = self.store.data_mut();
            st.call_response = response;
            st.status = if failed { (Status::BrokenConnection as u32, "reset".into()) } else { (0, String::new()) };
        }
        let root = self.root_id();
        let r = self.call(
            "proxy_on_http_call_response",
            root,
            f,
            (root as i32, token as i32, nh as i32, nb as i32, nt as i32),
        );
        {
            let st = self.store.data_mut();
            st.call_response = None;
            st.status = (0, String::new());
        }
        r?;
        self.settle()
    }

    pub(crate) fn tick(&mut self) -> Result<(), GuestError> {
        let period = self.store.data().tick_period_ms as u64;
        {
            let st = self.store.data_mut();
            st.next_tick = st.next_tick.map(|t| t + period * 1_000_000);
        }
        if let Some(f) = self.exports.tick.clone() {
            let root = self.root_id();
            self.call("proxy_on_tick", root, f, root as i32)?;
        }
        self.settle()
    }

    pub(crate) fn queue_ready(&mut self, root: u32, token: u32) -> Result<(), GuestError> {
        if let Some(f) = self.exports.queue_ready.clone() {
            self.call("proxy_on_queue_ready", root, f, (root as i32, token as i32))?;
        }
        self.settle()
    }
}

pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<VmState>> {
    let mut linker: Linker<VmState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut VmState| &mut s.wasi).map_err(|e| anyhow!("{e:?}"))?;
    abi::add_to_linker(&mut linker)?;
    Ok(linker)
}
