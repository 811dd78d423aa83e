//! The filter's release `.wasm` as `make wasm` leaves it: found, and built and
//! trimmed first when missing or older than its sources (for tests run without
//! `make`). `CNAME_GUARD_WASM` names another file, taken as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{filter_src, trim_file};

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// Where `make wasm` leaves the filter.
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

/// The filter's `.wasm`: `CNAME_GUARD_WASM`, or the release build, which is
/// built (`cargo build`, then trimmed as `make wasm` does) when it is missing
/// or older than `src/` or `crates/core/src/`, unless `CNAME_GUARD_NO_BUILD` is set.
pub fn filter_wasm() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CNAME_GUARD_WASM") {
        return Ok(PathBuf::from(p));
    }
    let ws = workspace_dir();
    let wasm = default_wasm_path();
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
    // The filter's own code and the core it shares with the native build.
    let sources = [ws.join("src"), ws.join("crates/core/src")].iter().filter_map(|d| newest_mtime(d)).max();
    let stale = match (built, sources) {
        (None, _) => true,
        (Some(b), Some(src)) => src > b,
        (Some(_), None) => false,
    };
    if !stale || std::env::var_os("CNAME_GUARD_NO_BUILD").is_some() {
        return Ok(wasm);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building {} (missing or older than src/ or crates/core/src/)", wasm.display());
    let out = Command::new(cargo)
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", ws.join("target"))
        .args(["build", "--release", "--target", "wasm32-wasip1", "-p", "cname-guard"])
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the filter failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    // As `make wasm` does: the callbacks the filter does not implement are unexported.
    trim_file(&wasm, &filter_src()).map_err(|e| format!("{}: {e}", wasm.display()))?;
    // Cargo leaves an up-to-date artifact untouched; mark it checked so the next test
    // binary does not run cargo again.
    if let Ok(f) = std::fs::File::options().append(true).open(&wasm) {
        let _ = f.set_modified(SystemTime::now());
    }
    Ok(wasm)
}
