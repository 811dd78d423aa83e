//! Benchmark baseline N0: the smallest Envoy dynamic module that does what
//! every filter must, reading `:authority`, then lets the request continue.
//! The difference N − N0 is what cname-guard itself costs natively.
//! Envoy resolves every HTTP-filter hook, so all are exported.

use std::ffi::c_void;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buf {
    ptr: *const u8,
    len: usize,
}

extern "C" {
    fn envoy_dynamic_module_callback_http_get_header(f: *mut c_void, kind: u32, key: Buf, out: *mut Buf, index: usize, count: *mut usize) -> bool;
}

static ABI_VERSION: &[u8] = b"v0.2.0\0";
/// Any non-null pointer: the module has no state.
static STATELESS: u8 = 0;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    ABI_VERSION.as_ptr()
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(_c: *mut c_void, _n: Buf, _cfg: Buf) -> *const c_void {
    &STATELESS as *const u8 as *const c_void
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(_c: *const c_void, _f: *mut c_void) -> *const c_void {
    &STATELESS as *const u8 as *const c_void
}
// Envoy is the only caller, with its live stream pointer.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(f: *mut c_void, _m: *const c_void, _end: bool) -> u32 {
    let key = b":authority";
    let mut out = Buf { ptr: std::ptr::null(), len: 0 };
    // SAFETY: `f` is the live stream of this hook; `out` is a valid out-pointer.
    let found = unsafe { envoy_dynamic_module_callback_http_get_header(f, 0, Buf { ptr: key.as_ptr(), len: key.len() }, &mut out, 0, std::ptr::null_mut()) };
    std::hint::black_box((found, out.len));
    0
}

macro_rules! unused_hooks {
    ($($name:ident ( $($arg:ty),* ) -> $ret:ty = $val:expr;)*) => {
        $(#[no_mangle]
        pub extern "C" fn $name($(_: $arg),*) -> $ret { $val })*
    };
}

unused_hooks! {
    envoy_dynamic_module_on_http_filter_config_destroy(*const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_destroy(*const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_request_body(*mut c_void, *const c_void, bool) -> u32 = 0;
    envoy_dynamic_module_on_http_filter_request_trailers(*mut c_void, *const c_void) -> u32 = 0;
    envoy_dynamic_module_on_http_filter_response_headers(*mut c_void, *const c_void, bool) -> u32 = 0;
    envoy_dynamic_module_on_http_filter_response_body(*mut c_void, *const c_void, bool) -> u32 = 0;
    envoy_dynamic_module_on_http_filter_response_trailers(*mut c_void, *const c_void) -> u32 = 0;
    envoy_dynamic_module_on_http_filter_stream_complete(*mut c_void, *const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_per_route_config_new(Buf, Buf) -> *const c_void = std::ptr::null();
    envoy_dynamic_module_on_http_filter_per_route_config_destroy(*const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_config_scheduled(*mut c_void, *const c_void, u64) -> () = ();
    envoy_dynamic_module_on_http_filter_scheduled(*mut c_void, *const c_void, u64) -> () = ();
    envoy_dynamic_module_on_http_filter_http_callout_done() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_callout_done() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_stream_headers() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_stream_data() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_stream_trailers() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_stream_complete() -> () = ();
    envoy_dynamic_module_on_http_filter_config_http_stream_reset() -> () = ();
    envoy_dynamic_module_on_http_filter_http_stream_headers() -> () = ();
    envoy_dynamic_module_on_http_filter_http_stream_data() -> () = ();
    envoy_dynamic_module_on_http_filter_http_stream_trailers() -> () = ();
    envoy_dynamic_module_on_http_filter_http_stream_complete() -> () = ();
    envoy_dynamic_module_on_http_filter_http_stream_reset() -> () = ();
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(*mut c_void, *const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(*mut c_void, *const c_void) -> () = ();
    envoy_dynamic_module_on_http_filter_local_reply(*mut c_void, *const c_void, u32, Buf, bool) -> u32 = 0;
}
