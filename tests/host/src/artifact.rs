//! Finding (and building, when stale, as `make wasm` does: crates/wasm-trim) the filter's
//! release .wasm, and compiling it once.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use wasmtime::error::Context as _;
use wasmtime::Result;
use wasmtime::{Config, Engine, Module};

pub use cname_guard_wasm_trim::artifact::{default_wasm_path, workspace_dir};

/// The filter's .wasm, built first when missing or older than any file in `src/`.
/// Guarded so that parallel tests build it once. `CNAME_GUARD_WASM` overrides the path.
pub fn filter_wasm() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(cname_guard_wasm_trim::artifact::filter_wasm) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// One engine for the process: fuel metering on.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut c = Config::new();
        c.consume_fuel(true);
        Engine::new(&c).expect("wasmtime engine")
    })
}

/// Compiles a module once per process and caches the machine code on disk (under
/// `target/cname-guard-host/`) so the next test binary skips Cranelift.
pub fn load_module(path: &Path) -> Result<Module> {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, u64), Module>>> = OnceLock::new();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    "wasmtime-48/fuel".hash(&mut h);
    let key = h.finish();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cache.get(&(path.to_path_buf(), key)) {
        return Ok(m.clone());
    }
    let dir = workspace_dir().join("target/cname-guard-host");
    let file = dir.join(format!("{key:016x}.cwasm"));
    // SAFETY: the file is one this function wrote from `Module::serialize` for the same
    // input; wasmtime checks the engine configuration and version on load.
    let module = match unsafe { Module::deserialize_file(engine(), &file) } {
        Ok(m) => m,
        Err(_) => {
            let m = Module::new(engine(), &bytes).with_context(|| format!("compiling {}", path.display()))?;
            if let Ok(ser) = m.serialize() {
                let _ = std::fs::create_dir_all(&dir);
                let tmp = dir.join(format!("{key:016x}.{}.tmp", std::process::id()));
                if std::fs::write(&tmp, ser).is_ok() {
                    let _ = std::fs::rename(&tmp, &file);
                }
            }
            m
        }
    };
    cache.insert((path.to_path_buf(), key), module.clone());
    Ok(module)
}
