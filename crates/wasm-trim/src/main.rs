//! `cname-guard-wasm-trim [--src DIR] MODULE.wasm...`: removes, in place, the
//! exports of the Proxy-Wasm callbacks the filter under DIR (default: this
//! checkout's `src/`) does not implement. `make wasm` runs it after cargo.
//!
//! `--list` prints what the source implements and what each module exports,
//! changing nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use cname_guard_wasm_trim::{callback_exports, filter_src, implemented, trim_file, wanted, Error};

const USAGE: &str = "usage: cname-guard-wasm-trim [--src DIR] [--list] MODULE.wasm...";

fn run() -> Result<(), String> {
    let mut src = filter_src();
    let mut list = false;
    let mut modules = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--src") => src = args.next().map(PathBuf::from).ok_or(USAGE)?,
            Some("--list") => list = true,
            Some("-h" | "--help") => return Err(USAGE.into()),
            Some(a) if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => modules.push(PathBuf::from(arg)),
        }
    }
    if modules.is_empty() && !list {
        return Err(USAGE.into());
    }
    let show = |e: Error| e.to_string();
    if list {
        let wanted = wanted(&implemented(&src).map_err(show)?);
        println!("{}: {}", src.display(), wanted.into_iter().collect::<Vec<_>>().join(" "));
        for m in &modules {
            let bytes = std::fs::read(m).map_err(|e| format!("{}: {e}", m.display()))?;
            let exports = callback_exports(&bytes).map_err(|e| format!("{}: {e}", m.display()))?;
            println!("{}: {}", m.display(), exports.into_iter().collect::<Vec<_>>().join(" "));
        }
        return Ok(());
    }
    for m in &modules {
        let removed = trim_file(m, &src).map_err(|e| format!("{}: {e}", m.display()))?;
        let name = m.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if removed.is_empty() {
            println!("{name}: unexported nothing (already done)");
        } else {
            println!("{name}: unexported {}", removed.join(", "));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cname-guard-wasm-trim: {e}");
            ExitCode::FAILURE
        }
    }
}
