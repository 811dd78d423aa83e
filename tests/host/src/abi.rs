//! Proxy-Wasm ABI 0.2.1 host functions (module "env"), as Envoy implements them.
//!
//! Status codes and the availability rules for header maps and buffers follow Envoy
//! (`source/extensions/common/wasm/context.cc`) and proxy-wasm-cpp-host (`src/exports.cc`).

use wasmtime::{bail, format_err as anyhow, Result};
use wasmtime::{Caller, Linker, Module};

use crate::maps::{deserialize_pairs, HeaderMap};
use crate::metrics::MetricType;
use crate::vm::VmState;

/// `proxy_status_t` / Envoy's `WasmResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    BadExpression = 5,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    ResultMismatch = 9,
    InternalFailure = 10,
    BrokenConnection = 11,
    Unimplemented = 12,
}

/// `proxy_action_t`: what a stream callback asks the host to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

impl Action {
    pub(crate) fn from_abi(v: i32) -> Action {
        if v == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// `proxy_log_level_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_abi(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// `proxy_map_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitialMetadata,
    GrpcTrailingMetadata,
    CallResponseHeaders,
    CallResponseTrailers,
}

impl MapType {
    fn from_abi(v: i32) -> Result<MapType, Status> {
        Ok(match v {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcInitialMetadata,
            5 => MapType::GrpcTrailingMetadata,
            6 => MapType::CallResponseHeaders,
            7 => MapType::CallResponseTrailers,
            _ => return Err(Status::BadArgument),
        })
    }
}

/// `proxy_buffer_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferType {
    RequestBody,
    ResponseBody,
    DownstreamData,
    UpstreamData,
    CallResponseBody,
    GrpcReceive,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    fn from_abi(v: i32) -> Result<BufferType, Status> {
        Ok(match v {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::CallResponseBody,
            5 => BufferType::GrpcReceive,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            _ => return Err(Status::BadArgument),
        })
    }
}

/// Every "env" function this host provides. A module importing anything else is refused.
pub const PROVIDED: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_continue_request",
    "proxy_continue_response",
    "proxy_clear_route_cache",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
];

/// Refuses a module that imports something this host does not provide, naming it.
pub fn check_imports(module: &Module) -> Result<()> {
    let mut missing = Vec::new();
    for imp in module.imports() {
        let ok = match imp.module() {
            "env" => PROVIDED.contains(&imp.name()),
            "wasi_snapshot_preview1" => true, // checked against the WASI linker at instantiation
            _ => false,
        };
        if !ok {
            missing.push(format!("unsupported import {}.{}", imp.module(), imp.name()));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        bail!("{}", missing.join("; "))
    }
}

type C<'a> = Caller<'a, VmState>;

fn code(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => Status::Ok as i32,
        Err(s) => s as i32,
    }
}

fn read(c: &mut C, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    if l == 0 {
        return Ok(Vec::new());
    }
    mem.data(&*c)
        .get(p..p.checked_add(l).ok_or(Status::InvalidMemoryAccess)?)
        .map(|s| s.to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

fn read_str(c: &mut C, ptr: i32, len: i32) -> Result<String, Status> {
    String::from_utf8(read(c, ptr, len)?).map_err(|_| Status::BadArgument)
}

fn write_bytes(c: &mut C, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let p = ptr as u32 as usize;
    let dst = mem.data_mut(&mut *c).get_mut(p..p + bytes.len()).ok_or(Status::InvalidMemoryAccess)?;
    dst.copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut C, ptr: i32, v: u32) -> Result<(), Status> {
    write_bytes(c, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C, ptr: i32, v: u64) -> Result<(), Status> {
    write_bytes(c, ptr, &v.to_le_bytes())
}

/// Copies `data` into guest memory obtained from the guest's allocator, then writes the
/// pointer and size. Empty data gives a null pointer and size 0, as Envoy does.
/// Allocator traps propagate as traps.
fn copy_out(c: &mut C, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> Result<Result<(), Status>> {
    let mut addr = 0u32;
    if !data.is_empty() {
        let alloc = c
            .data()
            .alloc
            .clone()
            .ok_or_else(|| anyhow!("module exports no allocator (proxy_on_memory_allocate / malloc)"))?;
        addr = alloc.call(&mut *c, data.len() as i32)? as u32;
        if addr == 0 {
            return Ok(Err(Status::InvalidMemoryAccess));
        }
        if let Err(s) = write_bytes(c, addr as i32, data) {
            return Ok(Err(s));
        }
    }
    if let Err(s) = write_u32(c, ptr_ptr, addr) {
        return Ok(Err(s));
    }
    Ok(write_u32(c, size_ptr, data.len() as u32))
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return Ok(s as i32),
        }
    };
}

fn unsupported(name: &str) -> wasmtime::Error {
    anyhow!("{name} is not implemented by the test host")
}

/// Adds every function of [`PROVIDED`] to the linker.
pub fn add_to_linker(l: &mut Linker<VmState>) -> Result<()> {
    // ---- logging, time, ticks -------------------------------------------------------------
    l.func_wrap("env", "proxy_log", |mut c: C, level: i32, ptr: i32, len: i32| -> Result<i32> {
        let level = tri!(LogLevel::from_abi(level).ok_or(Status::BadArgument));
        let msg = tri!(read(&mut c, ptr, len));
        c.data_mut().log(level, String::from_utf8_lossy(&msg).into_owned());
        Ok(0)
    })?;
    l.func_wrap("env", "proxy_get_log_level", |mut c: C, ptr: i32| -> Result<i32> {
        let level = c.data().log_level as u32;
        Ok(code(write_u32(&mut c, ptr, level)))
    })?;
    l.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: C, ptr: i32| -> Result<i32> {
        let now = c.data().now_nanos();
        Ok(code(write_u64(&mut c, ptr, now)))
    })?;
    l.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: C, period: i32| -> Result<i32> {
        c.data_mut().set_tick_period(period as u32);
        Ok(0)
    })?;

    // ---- buffers -----------------------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let kind = tri!(BufferType::from_abi(kind));
            let buf = tri!(c.data().buffer(kind));
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            if start.checked_add(max).is_none() {
                return Ok(Status::BadArgument as i32);
            }
            let slice: Vec<u8> =
                if start >= buf.len() { Vec::new() } else { buf[start..(start + max).min(buf.len())].to_vec() };
            Ok(code(copy_out(&mut c, &slice, ptr_ptr, size_ptr)?))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C, kind: i32, start: i32, size: i32, ptr: i32, len: i32| -> Result<i32> {
            let kind = tri!(BufferType::from_abi(kind));
            let data = tri!(read(&mut c, ptr, len));
            Ok(code(c.data_mut().set_buffer(kind, start as u32 as usize, size as u32 as usize, &data)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: C, kind: i32, len_ptr: i32, flags_ptr: i32| -> Result<i32> {
            let kind = tri!(BufferType::from_abi(kind));
            let len = tri!(c.data().buffer(kind)).len();
            tri!(write_u32(&mut c, len_ptr, len as u32));
            Ok(code(write_u32(&mut c, flags_ptr, 0)))
        },
    )?;

    // ---- header maps -------------------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C, kind: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let kind = tri!(MapType::from_abi(kind));
            // Envoy: an unavailable map reads as empty here (not an error).
            let bytes = match c.data().map(kind) {
                Ok(m) if !m.is_empty() => m.serialize(),
                _ => Vec::new(),
            };
            Ok(code(copy_out(&mut c, &bytes, ptr_ptr, size_ptr)?))
        },
    )?;
    l.func_wrap("env", "proxy_set_header_map_pairs", |mut c: C, kind: i32, ptr: i32, len: i32| -> Result<i32> {
        let kind = tri!(MapType::from_abi(kind));
        let data = tri!(read(&mut c, ptr, len));
        let pairs = tri!(deserialize_pairs(&data).map_err(|_| Status::BadArgument));
        let map = tri!(c.data_mut().map_mut(kind, "proxy_set_header_map_pairs"));
        *map = HeaderMap::from_pairs(pairs);
        Ok(0)
    })?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C, kind: i32, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let kind = tri!(MapType::from_abi(kind));
            let key = tri!(read_str(&mut c, kptr, klen));
            let value = {
                let st = c.data_mut();
                let map = match st.map(kind) {
                    Ok(m) => m,
                    Err(s) => {
                        st.anomaly(format!(
                            "proxy_get_header_map_value({kind:?}, {key:?}): map not available now ({s:?})"
                        ));
                        return Ok(s as i32);
                    }
                };
                tri!(map.get(&key).map(|v| v.to_vec()).ok_or(Status::NotFound))
            };
            Ok(code(copy_out(&mut c, &value, ptr_ptr, size_ptr)?))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: C, kind: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> Result<i32> {
            let kind = tri!(MapType::from_abi(kind));
            let key = tri!(read_str(&mut c, kptr, klen));
            let value = tri!(read(&mut c, vptr, vlen));
            tri!(c.data_mut().map_mut(kind, "proxy_add_header_map_value")).add(&key, &value);
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C, kind: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> Result<i32> {
            let kind = tri!(MapType::from_abi(kind));
            let key = tri!(read_str(&mut c, kptr, klen));
            let value = tri!(read(&mut c, vptr, vlen));
            tri!(c.data_mut().map_mut(kind, "proxy_replace_header_map_value")).replace(&key, &value);
            Ok(0)
        },
    )?;
    l.func_wrap("env", "proxy_remove_header_map_value", |mut c: C, kind: i32, kptr: i32, klen: i32| -> Result<i32> {
        let kind = tri!(MapType::from_abi(kind));
        let key = tri!(read_str(&mut c, kptr, klen));
        tri!(c.data_mut().map_mut(kind, "proxy_remove_header_map_value")).remove(&key);
        Ok(0)
    })?;
    l.func_wrap("env", "proxy_get_header_map_size", |mut c: C, kind: i32, ptr: i32| -> Result<i32> {
        let kind = tri!(MapType::from_abi(kind));
        // The spec: the size of the serialized pairs.
        let size = tri!(c.data().map(kind)).serialize().len();
        Ok(code(write_u32(&mut c, ptr, size as u32)))
    })?;

    // ---- properties --------------------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C, ptr: i32, len: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let path = tri!(read(&mut c, ptr, len));
            let value = tri!(c.data().property(&path).ok_or(Status::NotFound));
            Ok(code(copy_out(&mut c, &value, ptr_ptr, size_ptr)?))
        },
    )?;
    l.func_wrap("env", "proxy_set_property", |mut c: C, ptr: i32, len: i32, vptr: i32, vlen: i32| -> Result<i32> {
        let path = tri!(read(&mut c, ptr, len));
        let value = tri!(read(&mut c, vptr, vlen));
        c.data_mut().set_property(path, value);
        Ok(0)
    })?;

    // ---- shared data & queues ----------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| -> Result<i32> {
            let key = tri!(read_str(&mut c, kptr, klen));
            let (value, cas) = tri!(c.data().shared().data.get(&key));
            tri!(copy_out(&mut c, &value, ptr_ptr, size_ptr)?);
            Ok(code(write_u32(&mut c, cas_ptr, cas)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> Result<i32> {
            let key = tri!(read_str(&mut c, kptr, klen));
            let value = tri!(read(&mut c, vptr, vlen));
            let r = c.data().shared().data.set(&key, &value, cas as u32);
            Ok(code(r))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: C, nptr: i32, nlen: i32, token_ptr: i32| -> Result<i32> {
            let name = tri!(read_str(&mut c, nptr, nlen));
            let (worker, root) = (c.data().worker, c.data().root_id);
            let token = {
                let mut sh = c.data().shared();
                let vm_id = sh.vm_id.clone();
                sh.queues.register(&vm_id, &name, worker, root)
            };
            Ok(code(write_u32(&mut c, token_ptr, token)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C, vptr: i32, vlen: i32, nptr: i32, nlen: i32, token_ptr: i32| -> Result<i32> {
            let vm_id = tri!(read_str(&mut c, vptr, vlen));
            let name = tri!(read_str(&mut c, nptr, nlen));
            let token = tri!(c.data().shared().queues.resolve(&vm_id, &name));
            Ok(code(write_u32(&mut c, token_ptr, token)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C, token: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let value = tri!(c.data().shared().queues.dequeue(token as u32));
            Ok(code(copy_out(&mut c, &value, ptr_ptr, size_ptr)?))
        },
    )?;
    l.func_wrap("env", "proxy_enqueue_shared_queue", |mut c: C, token: i32, vptr: i32, vlen: i32| -> Result<i32> {
        let value = tri!(read(&mut c, vptr, vlen));
        let r = c.data().shared().queues.enqueue(token as u32, &value);
        Ok(code(r))
    })?;

    // ---- stream control ----------------------------------------------------------------------
    l.func_wrap("env", "proxy_continue_stream", |mut c: C, kind: i32| -> Result<i32> {
        Ok(code(c.data_mut().continue_stream(kind)))
    })?;
    l.func_wrap("env", "proxy_close_stream", |mut c: C, kind: i32| -> Result<i32> {
        Ok(code(c.data_mut().close_stream(kind)))
    })?;
    l.func_wrap("env", "proxy_continue_request", |mut c: C| -> Result<i32> {
        Ok(code(c.data_mut().continue_stream(0)))
    })?;
    l.func_wrap("env", "proxy_continue_response", |mut c: C| -> Result<i32> {
        Ok(code(c.data_mut().continue_stream(1)))
    })?;
    l.func_wrap("env", "proxy_clear_route_cache", |_c: C| -> Result<i32> { Ok(0) })?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C,
         status: i32,
         dptr: i32,
         dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         grpc: i32|
         -> Result<i32> {
            let details = tri!(read(&mut c, dptr, dlen));
            let body = tri!(read(&mut c, bptr, blen));
            let headers = tri!(read(&mut c, hptr, hlen));
            let headers = tri!(deserialize_pairs(&headers).map_err(|_| Status::BadArgument));
            c.data_mut().send_local_response(
                status as u32,
                String::from_utf8_lossy(&details).into_owned(),
                body,
                headers,
                grpc,
            );
            Ok(0)
        },
    )?;

    // ---- callouts ----------------------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         tptr: i32,
         tlen: i32,
         timeout: i32,
         token_ptr: i32|
         -> Result<i32> {
            let cluster = tri!(read_str(&mut c, uptr, ulen));
            let headers = tri!(read(&mut c, hptr, hlen));
            let headers = tri!(deserialize_pairs(&headers).map_err(|_| Status::BadArgument));
            let body = tri!(read(&mut c, bptr, blen));
            let trailers = tri!(read(&mut c, tptr, tlen));
            let trailers = tri!(deserialize_pairs(&trailers).map_err(|_| Status::BadArgument));
            // Check the token pointer first, as cpp-host does.
            tri!(write_u32(&mut c, token_ptr, 0));
            let token = tri!(c.data_mut().http_call(cluster, headers, body, trailers, timeout as u32));
            Ok(code(write_u32(&mut c, token_ptr, token)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |_c: C,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> Result<i32> { Err(unsupported("proxy_grpc_call")) },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_c: C, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Result<i32> {
            Err(unsupported("proxy_grpc_stream"))
        },
    )?;
    l.func_wrap("env", "proxy_grpc_send", |_c: C, _: i32, _: i32, _: i32, _: i32| -> Result<i32> {
        Err(unsupported("proxy_grpc_send"))
    })?;
    l.func_wrap("env", "proxy_grpc_cancel", |_c: C, _: i32| -> Result<i32> { Err(unsupported("proxy_grpc_cancel")) })?;
    l.func_wrap("env", "proxy_grpc_close", |_c: C, _: i32| -> Result<i32> { Err(unsupported("proxy_grpc_close")) })?;
    l.func_wrap("env", "proxy_get_status", |mut c: C, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        let (status, msg) = c.data().status.clone();
        tri!(write_u32(&mut c, code_ptr, status));
        Ok(code(copy_out(&mut c, msg.as_bytes(), ptr_ptr, size_ptr)?))
    })?;

    // ---- contexts ----------------------------------------------------------------------------
    l.func_wrap("env", "proxy_set_effective_context", |mut c: C, ctx: i32| -> Result<i32> {
        Ok(code(c.data_mut().set_effective(ctx as u32)))
    })?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_c: C, _n: i32, _nl: i32, _a: i32, _al: i32, _rp: i32, _rs: i32| -> Result<i32> {
            Ok(Status::NotFound as i32)
        },
    )?;
    l.func_wrap("env", "proxy_done", |mut c: C| -> Result<i32> { Ok(code(c.data_mut().done())) })?;

    // ---- metrics -----------------------------------------------------------------------------
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C, kind: i32, nptr: i32, nlen: i32, id_ptr: i32| -> Result<i32> {
            let kind = tri!(MetricType::from_abi(kind as u32).ok_or(Status::BadArgument));
            let name = tri!(read_str(&mut c, nptr, nlen));
            let id = c.data().shared().metrics.define(kind, &name);
            Ok(code(write_u32(&mut c, id_ptr, id)))
        },
    )?;
    l.func_wrap("env", "proxy_get_metric", |mut c: C, id: i32, ptr: i32| -> Result<i32> {
        let v = tri!(c.data().shared().metrics.get(id as u32));
        Ok(code(write_u64(&mut c, ptr, v)))
    })?;
    l.func_wrap("env", "proxy_record_metric", |c: C, id: i32, value: i64| -> Result<i32> {
        let r = c.data().shared().metrics.record(id as u32, value as u64);
        Ok(code(r))
    })?;
    l.func_wrap("env", "proxy_increment_metric", |c: C, id: i32, offset: i64| -> Result<i32> {
        let r = c.data().shared().metrics.increment(id as u32, offset);
        Ok(code(r))
    })?;
    Ok(())
}
