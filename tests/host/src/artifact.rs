//! Finding (and building, when stale) the filter's release .wasm, and compiling it once.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use wasmtime::error::Context as _;
use wasmtime::Result;
use wasmtime::{Config, Engine, Module};

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace dir")
}

/// Where `cargo build --release --target wasm32-wasip1 -p cname-guard` puts the filter.
pub fn default_wasm_path() -> PathBuf {
    workspace_dir().join("target/wasm32-wasip1/release/cname_guard.wasm")
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().ok().and_then(|m| m.modified().ok()) };
        if let Some(t) = t {
            newest = Some(newest.map_or(t, |n: SystemTime| n.max(t)));
        }
    }
    newest
}

fn build_filter() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CNAME_GUARD_WASM") {
        return Ok(PathBuf::from(p));
    }
    let ws = workspace_dir();
    let wasm = default_wasm_path();
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
    let stale = match (built, newest_mtime(&ws.join("src"))) {
        (None, _) => true,
        (Some(b), Some(src)) => src > b,
        (Some(_), None) => false,
    };
    if !stale || std::env::var_os("CNAME_GUARD_NO_BUILD").is_some() {
        return Ok(wasm);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("cname-guard-host: building {} (missing or older than src/)", wasm.display());
    let out = Command::new(cargo)
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", ws.join("target"))
        .args(["build", "--release", "--target", "wasm32-wasip1", "-p", "cname-guard"])
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the filter failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    if !wasm.exists() {
        return Err(format!("cargo built the filter but {} is missing", wasm.display()));
    }
    // As `make wasm` does: the callbacks the filter does not use are unexported.
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(ws.join("scripts/wasm-unexport.py"))
        .arg(&wasm)
        .output()
        .map_err(|e| format!("could not run python3 scripts/wasm-unexport.py: {e}"))?;
    if !out.status.success() {
        return Err(format!("scripts/wasm-unexport.py failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    // Cargo leaves an up-to-date artifact untouched; mark it checked so the next test
    // binary does not run cargo again.
    if let Ok(f) = std::fs::File::options().append(true).open(&wasm) {
        let _ = f.set_modified(SystemTime::now());
    }
    Ok(wasm)
}

/// The filter's .wasm, built first when missing or older than any file in `src/`.
/// Guarded so that parallel tests build it once. `CNAME_GUARD_WASM` overrides the path.
pub fn filter_wasm() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_filter) {
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
