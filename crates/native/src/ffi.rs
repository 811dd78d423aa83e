//! Every `unsafe` of the native module: the subset of Envoy's dynamic-module
//! ABI (v0.2.0, Envoy 1.40) that cname-guard uses, declared by hand, the
//! safe wrappers over it, and the exported event hooks. Each hook catches
//! panics (`guard`) so none crosses into Envoy.

use crate::module;
use cname_guard_core::stats::Kind;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `envoy_dynamic_module_type_{envoy,module}_buffer`: a pointer and a length.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buf {
    ptr: *const u8,
    len: usize,
}

/// `envoy_dynamic_module_type_{envoy,module}_http_header`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Hdr {
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
}

impl Buf {
    fn of(s: &[u8]) -> Buf {
        Buf { ptr: s.as_ptr(), len: s.len() }
    }
    const NULL: Buf = Buf { ptr: std::ptr::null(), len: 0 };

    /// SAFETY (for callers): `self` must come from Envoy and be used inside
    /// the hook that handed it over, the lifetime Envoy guarantees for it.
    unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: non-null, `len` bytes owned by Envoy for this hook.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl Hdr {
    fn of(k: &str, v: &str) -> Hdr {
        Hdr { key: k.as_ptr(), key_len: k.len(), value: v.as_ptr(), value_len: v.len() }
    }
}

const REQUEST_HEADER: u32 = 0;
/// `envoy_dynamic_module_type_attribute_id_ConnectionRequestedServerName`:
/// its ordinal in ABI v0.2.0's attribute-id enum (`connection.requested_server_name`).
/// A wrong ordinal would silently read another attribute; tests/e2e_tls.rs
/// checks this one against a real Envoy 1.40 (SNI equal to the host passes,
/// another host gets 421).
const ATTRIBUTE_REQUESTED_SERVER_NAME: u32 = 30;
/// `envoy_dynamic_module_type_attribute_id_ConnectionTlsVersion`, the next
/// ordinal (`connection.tls_version`): "TLSv1.3" on the shipped HTTPS
/// listener, absent on plain HTTP (Envoy 1.40.0). tests/e2e_tls.rs holds
/// it: plain HTTP is redirected to HTTPS only if this reads nothing there,
/// and an HTTP/1.1 request over TLS whose `:scheme` says http (from its
/// `x-forwarded-proto`) is not redirected only if it reads the version.
const ATTRIBUTE_TLS_VERSION: u32 = 31;
const METRICS_SUCCESS: u32 = 0;
const CALLOUT_INIT_SUCCESS: u32 = 0;
const CALLOUT_SUCCESS: u32 = 0;
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_AND_BUFFER: u32 = 1;
pub const TRAILERS_CONTINUE: u32 = 0;
pub const TRAILERS_STOP: u32 = 1;

#[allow(improper_ctypes)]
extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: Buf);
    fn envoy_dynamic_module_callback_http_get_header(f: *mut c_void, kind: u32, key: Buf, out: *mut Buf, index: usize, count: *mut usize) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(f: *mut c_void, kind: u32, key: Buf, value: Buf) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(f: *mut c_void, id: u32, out: *mut Buf) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(f: *mut c_void, status: u32, headers: *mut Hdr, n: usize, body: Buf, details: Buf);
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(f: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(c: *mut c_void, name: Buf, labels: *mut Buf, n: usize, id: *mut usize) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(c: *mut c_void, name: Buf, labels: *mut Buf, n: usize, id: *mut usize) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(c: *mut c_void, name: Buf, labels: *mut Buf, n: usize, id: *mut usize) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(f: *mut c_void, id: usize, labels: *mut Buf, n: usize, v: u64) -> u32;
    fn envoy_dynamic_module_callback_http_filter_set_gauge(f: *mut c_void, id: usize, labels: *mut Buf, n: usize, v: u64) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(f: *mut c_void, id: usize, labels: *mut Buf, n: usize, v: u64) -> u32;
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(f: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(s: *mut c_void, event: u64);
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(s: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_http_callout(f: *mut c_void, id: *mut u64, cluster: Buf, headers: *mut Hdr, n: usize, body: Buf, timeout_ms: u64) -> u32;
    // Config level (the change feed, on the main thread).
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(c: *mut c_void, id: usize, labels: *mut Buf, n: usize, v: u64) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(c: *mut c_void, id: usize, labels: *mut Buf, n: usize, v: u64) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(c: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(s: *mut c_void, event: u64);
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(s: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(c: *mut c_void, id: *mut u64, cluster: Buf, headers: *mut Hdr, n: usize, body: Buf, timeout_ms: u64) -> u32;
}

/// Envoy's log levels (`envoy_dynamic_module_type_log_level`).
#[derive(Clone, Copy)]
pub enum Level {
    Info = 2,
    Warn = 3,
    Error = 4,
}

pub fn log(level: Level, msg: &str) {
    // SAFETY: the message buffer is valid for the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level as u32, Buf::of(msg.as_bytes())) }
}

/// The two Envoy objects cname-guard counts, schedules and calls out on:
/// the filter config (`OnConfig`: the config-level hooks, main thread) and
/// one HTTP stream (`OnStream`: the stream's hooks, its worker). The ABI
/// has one entry point per object for each; the wrappers on `Handle` and
/// `Scheduler` are written once over them.
pub trait Scope {
    const INCREMENT_COUNTER: SetMetric;
    const SET_GAUGE: SetMetric;
    const SCHEDULER_NEW: unsafe extern "C" fn(*mut c_void) -> *mut c_void;
    const SCHEDULER_COMMIT: unsafe extern "C" fn(*mut c_void, u64);
    const SCHEDULER_DELETE: unsafe extern "C" fn(*mut c_void);
    const HTTP_CALLOUT: HttpCallout;
}

/// `(object, metric id, labels, label count, value) -> result`.
type SetMetric = unsafe extern "C" fn(*mut c_void, usize, *mut Buf, usize, u64) -> u32;
/// `(object, out id, cluster, headers, header count, body, timeout ms) -> result`.
type HttpCallout = unsafe extern "C" fn(*mut c_void, *mut u64, Buf, *mut Hdr, usize, Buf, u64) -> u32;

/// The filter config: a scheduler's `commit` ends up in
/// `on_http_filter_config_scheduled` on the main thread, a callout's answer
/// (not tied to any request) in `on_http_filter_config_http_callout_done`.
#[derive(Clone, Copy)]
pub enum OnConfig {}

impl Scope for OnConfig {
    const INCREMENT_COUNTER: SetMetric = envoy_dynamic_module_callback_http_filter_config_increment_counter;
    const SET_GAUGE: SetMetric = envoy_dynamic_module_callback_http_filter_config_set_gauge;
    const SCHEDULER_NEW: unsafe extern "C" fn(*mut c_void) -> *mut c_void = envoy_dynamic_module_callback_http_filter_config_scheduler_new;
    const SCHEDULER_COMMIT: unsafe extern "C" fn(*mut c_void, u64) = envoy_dynamic_module_callback_http_filter_config_scheduler_commit;
    const SCHEDULER_DELETE: unsafe extern "C" fn(*mut c_void) = envoy_dynamic_module_callback_http_filter_config_scheduler_delete;
    const HTTP_CALLOUT: HttpCallout = envoy_dynamic_module_callback_http_filter_config_http_callout;
}

/// One HTTP stream: a scheduler's `commit` ends up in
/// `on_http_filter_scheduled` on the stream's own worker, a callout's answer
/// in `on_http_filter_http_callout_done`. Envoy's stream scheduler holds
/// only a weak reference to its stream, so committing after the stream is
/// gone is a no-op.
#[derive(Clone, Copy)]
pub enum OnStream {}

impl Scope for OnStream {
    const INCREMENT_COUNTER: SetMetric = envoy_dynamic_module_callback_http_filter_increment_counter;
    const SET_GAUGE: SetMetric = envoy_dynamic_module_callback_http_filter_set_gauge;
    const SCHEDULER_NEW: unsafe extern "C" fn(*mut c_void) -> *mut c_void = envoy_dynamic_module_callback_http_filter_scheduler_new;
    const SCHEDULER_COMMIT: unsafe extern "C" fn(*mut c_void, u64) = envoy_dynamic_module_callback_http_filter_scheduler_commit;
    const SCHEDULER_DELETE: unsafe extern "C" fn(*mut c_void) = envoy_dynamic_module_callback_http_filter_scheduler_delete;
    const HTTP_CALLOUT: HttpCallout = envoy_dynamic_module_callback_http_filter_http_callout;
}

/// An Envoy object of scope `S`, valid only inside the hook it came with
/// (a config hook on the main thread, or one of the stream's hooks).
#[derive(Clone, Copy)]
pub struct Handle<S>(*mut c_void, PhantomData<S>);

/// The Envoy filter config, valid during `on_http_filter_config_new` and
/// the config-level hooks (main thread) it is handed to.
pub type ConfigHandle = Handle<OnConfig>;

/// One HTTP stream's Envoy filter, valid only inside the hook it came with.
pub type Stream = Handle<OnStream>;

impl<S: Scope> Handle<S> {
    fn of(p: *mut c_void) -> Handle<S> {
        Handle(p, PhantomData)
    }

    pub fn count(&self, id: Option<usize>, n: u64) {
        if let Some(id) = id {
            // SAFETY: live pointer of the running hook of this scope; the id
            // came from this config; no labels.
            unsafe { S::INCREMENT_COUNTER(self.0, id, std::ptr::null_mut(), 0, n) };
        }
    }

    pub fn gauge_set(&self, id: Option<usize>, v: u64) {
        if let Some(id) = id {
            // SAFETY: as for `count`.
            unsafe { S::SET_GAUGE(self.0, id, std::ptr::null_mut(), 0, v) };
        }
    }

    /// A scheduler of this config or stream (see `OnConfig`, `OnStream` for
    /// where a `commit` from any thread ends up).
    pub fn scheduler(&self) -> Option<Scheduler<S>> {
        // SAFETY: live pointer of the running hook; the result is ours
        // (deleted in Drop).
        let s = unsafe { S::SCHEDULER_NEW(self.0) };
        (!s.is_null()).then_some(Scheduler(s, PhantomData))
    }

    /// Starts a callout (see `OnConfig`, `OnStream` for the hook its answer
    /// comes to).
    pub fn callout(&self, cluster: &str, headers: &[(&str, &str)], timeout_ms: u64) -> Result<u64, u32> {
        let mut hs: Vec<Hdr> = headers.iter().map(|(k, v)| Hdr::of(k, v)).collect();
        let mut id = 0u64;
        // SAFETY: live pointer of the running hook, on its thread; every
        // buffer outlives the call and Envoy copies the request; `id` is a
        // valid out-pointer.
        let r = unsafe {
            S::HTTP_CALLOUT(self.0, &mut id, Buf::of(cluster.as_bytes()), hs.as_mut_ptr(), hs.len(), Buf::NULL, timeout_ms)
        };
        if r == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(r)
        }
    }
}

impl Handle<OnConfig> {
    /// A metric id, or `None` if Envoy refused it (metrics never fail a request).
    pub fn define(&self, kind: Kind, name: &str) -> Option<usize> {
        let mut id = 0usize;
        let name = Buf::of(name.as_bytes());
        // SAFETY: `self.0` is the config pointer of the running config_new
        // hook; no labels (null, 0); `id` is a valid out-pointer.
        let r = unsafe {
            match kind {
                Kind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter(self.0, name, std::ptr::null_mut(), 0, &mut id),
                Kind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge(self.0, name, std::ptr::null_mut(), 0, &mut id),
                Kind::Histogram => envoy_dynamic_module_callback_http_filter_config_define_histogram(self.0, name, std::ptr::null_mut(), 0, &mut id),
            }
        };
        (r == METRICS_SUCCESS).then_some(id)
    }
}

impl Handle<OnStream> {
    /// The first value of a request header, copied.
    pub fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        let mut out = Buf::NULL;
        // SAFETY: the stream pointer is live for this hook; `out` is a valid
        // out-pointer; the count pointer may be null.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(self.0, REQUEST_HEADER, Buf::of(name.as_bytes()), &mut out, 0, std::ptr::null_mut())
        };
        if !found || out.ptr.is_null() {
            return None;
        }
        // SAFETY: Envoy filled `out` with a header value valid for this hook.
        Some(unsafe { out.bytes() }.to_vec())
    }

    /// The TLS SNI of the stream's connection, copied; `None` on plain HTTP
    /// and on TLS without SNI (Envoy reports an empty name as absent).
    pub fn requested_server_name(&self) -> Option<Vec<u8>> {
        self.attribute_string(ATTRIBUTE_REQUESTED_SERVER_NAME)
    }

    /// The TLS version of the stream's connection ("TLSv1.3"), copied;
    /// `None` on plain HTTP.
    pub fn tls_version(&self) -> Option<Vec<u8>> {
        self.attribute_string(ATTRIBUTE_TLS_VERSION)
    }

    /// A string attribute of the stream, copied; `None` when absent or empty.
    fn attribute_string(&self, id: u32) -> Option<Vec<u8>> {
        let mut out = Buf::NULL;
        // SAFETY: the stream pointer is live for this hook; `out` is a valid
        // out-pointer Envoy fills only when it returns true.
        let found = unsafe { envoy_dynamic_module_callback_http_filter_get_attribute_string(self.0, id, &mut out) };
        if !found {
            return None;
        }
        // SAFETY: Envoy filled `out` with a string of the connection, valid
        // for this hook; a null or empty one reads as empty.
        Some(unsafe { out.bytes() }.to_vec()).filter(|s| !s.is_empty())
    }

    /// Sets a request header, or removes it with `None`.
    pub fn set_request_header(&self, name: &str, value: Option<&str>) {
        let v = value.map_or(Buf::NULL, |v| Buf::of(v.as_bytes()));
        // SAFETY: live stream pointer; Envoy copies both buffers.
        unsafe { envoy_dynamic_module_callback_http_set_header(self.0, REQUEST_HEADER, Buf::of(name.as_bytes()), v) };
    }

    pub fn send_response(&self, status: u16, headers: &[(String, String)], body: &str, details: &str) {
        let mut hs: Vec<Hdr> = headers.iter().map(|(k, v)| Hdr::of(k, v)).collect();
        // SAFETY: live stream pointer; `hs` and the buffers outlive the call
        // and Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                u32::from(status),
                hs.as_mut_ptr(),
                hs.len(),
                Buf::of(body.as_bytes()),
                Buf::of(details.as_bytes()),
            )
        }
    }

    pub fn continue_decoding(&self) {
        // SAFETY: live stream pointer, on its worker thread.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }

    pub fn record(&self, id: Option<usize>, v: u64) {
        if let Some(id) = id {
            // SAFETY: as for `count`.
            unsafe { envoy_dynamic_module_callback_http_filter_record_histogram_value(self.0, id, std::ptr::null_mut(), 0, v) };
        }
    }
}

/// A scheduler of a config (the feed's timer posts through it) or of a
/// stream (a waiting stream is resumed through it); deleted when the last
/// holder drops it.
pub struct Scheduler<S: Scope>(*mut c_void, PhantomData<S>);

/// The feed's timer.
pub type ConfigScheduler = Scheduler<OnConfig>;

// SAFETY: the ABI documents `scheduler_commit` as callable from any thread,
// and the object is deleted exactly once (Drop).
unsafe impl<S: Scope> Send for Scheduler<S> {}
// SAFETY: `commit` takes `&self` and the Envoy side is thread-safe.
unsafe impl<S: Scope> Sync for Scheduler<S> {}

impl<S: Scope> Scheduler<S> {
    pub fn commit(&self, event: u64) {
        // SAFETY: `self.0` is a live scheduler (not yet deleted).
        unsafe { S::SCHEDULER_COMMIT(self.0, event) }
    }
}

impl<S: Scope> Drop for Scheduler<S> {
    fn drop(&mut self) {
        // SAFETY: created by this scope's scheduler_new, deleted once, here.
        unsafe { S::SCHEDULER_DELETE(self.0) }
    }
}

/// A callout's response, read inside `on_http_filter_http_callout_done`.
pub struct CalloutResponse {
    pub ok: bool,
    pub status: Option<String>,
    /// Total body length as Envoy reported it; `body` holds at most `limit` bytes.
    pub body_len: usize,
    pub body: Vec<u8>,
}

/// Runs `f`, turning a panic into `fallback` (and an error log).
fn guard<T>(hook: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            // Logging itself must not unwind out either.
            let _ = catch_unwind(|| log(Level::Error, &format!("cname-guard: panic caught in {hook}; answered by the failure mode")));
            fallback
        }
    }
}

/// The module-side pointer of a filter: a `Box<module::Filter>`.
fn filter<'a>(p: *const c_void) -> Option<&'a mut module::Filter> {
    // SAFETY: Envoy hands back exactly the pointer `on_http_filter_new`
    // returned, on the stream's thread, until `on_http_filter_destroy`.
    unsafe { (p as *mut module::Filter).as_mut() }
}

fn config<'a>(p: *const c_void) -> Option<&'a module::FilterConfig> {
    // SAFETY: the pointer `on_http_filter_config_new` returned, live until
    // `on_http_filter_config_destroy`.
    unsafe { (p as *const module::FilterConfig).as_ref() }
}

static ABI_VERSION: &[u8] = b"v0.2.0\0";

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    ABI_VERSION.as_ptr()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(c: *mut c_void, name: Buf, cfg: Buf) -> *const c_void {
    guard("config_new", std::ptr::null(), || {
        // SAFETY: both buffers are Envoy's, valid for this hook.
        let (name, cfg) = unsafe { (name.bytes(), cfg.bytes()) };
        match module::FilterConfig::new(&ConfigHandle::of(c), name, cfg) {
            Some(fc) => Box::into_raw(Box::new(fc)) as *const c_void,
            None => std::ptr::null(),
        }
    })
}

/// Frees what a `*_new` hook leaked as `Box<T>`.
fn release<T>(hook: &str, p: *const c_void) {
    guard(hook, (), || {
        if !p.is_null() {
            // SAFETY: `p` is the `Box<T>` leaked by the matching `*_new`
            // hook, and Envoy calls the destroy hook once per pointer.
            drop(unsafe { Box::from_raw(p as *mut T) });
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(p: *const c_void) {
    release::<module::FilterConfig>("config_destroy", p)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(c: *const c_void, _f: *mut c_void) -> *const c_void {
    guard("filter_new", std::ptr::null(), || match config(c) {
        Some(fc) => Box::into_raw(Box::new(module::Filter::new(fc))) as *const c_void,
        None => std::ptr::null(),
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(f: *mut c_void, m: *const c_void, _end: bool) -> u32 {
    let s = Stream::of(f);
    let Some(filter) = filter(m) else { return HEADERS_CONTINUE };
    let fallback = filter.fallback_status();
    match catch_unwind(AssertUnwindSafe(|| filter.on_request_headers(s))) {
        Ok(v) => v,
        Err(_) => {
            log(Level::Error, "cname-guard: panic caught in request_headers; answered by the failure mode");
            fallback.perform(s)
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(_f: *mut c_void, m: *const c_void, _end: bool) -> u32 {
    guard("request_body", BODY_CONTINUE, || filter(m).map_or(BODY_CONTINUE, |fl| fl.on_request_body()))
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(_f: *mut c_void, m: *const c_void) -> u32 {
    guard("request_trailers", TRAILERS_CONTINUE, || filter(m).map_or(TRAILERS_CONTINUE, |fl| fl.on_request_trailers()))
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    f: *mut c_void,
    m: *const c_void,
    id: u64,
    result: u32,
    headers: *const Hdr,
    headers_size: usize,
    chunks: *const Buf,
    chunks_size: usize,
) {
    let s = Stream::of(f);
    guard("http_callout_done", (), || {
        let Some(filter) = filter(m) else { return };
        // SAFETY: Envoy's arrays for this hook.
        let resp = unsafe { read_response(result, headers, headers_size, chunks, chunks_size, cname_guard_core::lookup::MAX_BODY) };
        filter.on_callout_done(s, id, resp);
    })
}

/// Copies a callout's status and up to `limit` bytes of its body.
///
/// SAFETY (for callers): the pointers and sizes are those Envoy passed to
/// the running callout-done hook.
unsafe fn read_response(result: u32, headers: *const Hdr, headers_size: usize, chunks: *const Buf, chunks_size: usize, limit: usize) -> CalloutResponse {
    let hs: &[Hdr] = if headers.is_null() {
        &[]
    } else {
        // SAFETY: Envoy passes `headers_size` headers, valid for this hook.
        unsafe { std::slice::from_raw_parts(headers, headers_size) }
    };
    let cs: &[Buf] = if chunks.is_null() {
        &[]
    } else {
        // SAFETY: as above, `chunks_size` body chunks.
        unsafe { std::slice::from_raw_parts(chunks, chunks_size) }
    };
    let status = hs.iter().find_map(|h| {
        // SAFETY: key and value buffers of a header Envoy passed us.
        let (k, v) = unsafe { (Buf { ptr: h.key, len: h.key_len }.bytes(), Buf { ptr: h.value, len: h.value_len }.bytes()) };
        (k == b":status").then(|| String::from_utf8_lossy(v).into_owned())
    });
    let mut body = Vec::new();
    let mut body_len = 0usize;
    for c in cs {
        body_len = body_len.saturating_add(c.len);
        if body.len() < limit {
            // SAFETY: a body chunk Envoy passed us for this hook.
            let bytes = unsafe { c.bytes() };
            body.extend_from_slice(&bytes[..bytes.len().min(limit - body.len())]);
        }
    }
    CalloutResponse { ok: result == CALLOUT_SUCCESS, status, body_len, body }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(f: *mut c_void, m: *const c_void, event: u64) {
    let s = Stream::of(f);
    guard("scheduled", (), || {
        if let Some(filter) = filter(m) {
            filter.on_scheduled(s, event);
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(m: *const c_void) {
    release::<module::Filter>("filter_destroy", m)
}

// The hooks this module does not use: Envoy resolves every one of them, so
// they are exported and do nothing (or let the stream continue).

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(_f: *mut c_void, _m: *const c_void, _end: bool) -> u32 {
    HEADERS_CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(_f: *mut c_void, _m: *const c_void, _end: bool) -> u32 {
    BODY_CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(_f: *mut c_void, _m: *const c_void) -> u32 {
    TRAILERS_CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(_f: *mut c_void, _m: *const c_void) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(_n: Buf, _c: Buf) -> *const c_void {
    std::ptr::null() // no per-route configuration: refused
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_p: *const c_void) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(c: *mut c_void, p: *const c_void, e: u64) {
    guard("config_scheduled", (), || {
        if let Some(fc) = config(p) {
            fc.on_scheduled(ConfigHandle::of(c), e);
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    c: *mut c_void,
    p: *const c_void,
    id: u64,
    result: u32,
    headers: *const Hdr,
    headers_size: usize,
    chunks: *const Buf,
    chunks_size: usize,
) {
    guard("config_http_callout_done", (), || {
        let Some(fc) = config(p) else { return };
        // SAFETY: Envoy's arrays for this hook.
        let resp = unsafe { read_response(result, headers, headers_size, chunks, chunks_size, cname_guard_core::changes::MAX_BODY) };
        fc.on_feed_done(ConfigHandle::of(c), id, resp);
    })
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset() {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(_f: *mut c_void, _m: *const c_void) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(_f: *mut c_void, _m: *const c_void) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(_f: *mut c_void, _m: *const c_void, _code: u32, _d: Buf, _reset: bool) -> u32 {
    0 // Continue: let the local reply go out
}
