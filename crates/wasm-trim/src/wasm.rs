//! The module's export section: read with wasmparser, written back with
//! wasm-encoder; every other section is copied byte for byte.

use std::collections::BTreeSet;

use wasm_encoder::{ExportKind, ExportSection, RawSection};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

use crate::{is_callback_export, Error, ALWAYS, CALLBACKS};

fn wasm_err(e: wasmparser::BinaryReaderError) -> Error {
    Error::Wasm(e.to_string())
}

/// Every export name of a module, in order.
pub fn exports(module: &[u8]) -> Result<Vec<String>, Error> {
    if !module.starts_with(b"\0asm") {
        return Err(Error::Wasm("no WebAssembly header (\\0asm)".into()));
    }
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(wasm_err)? {
            Payload::Version { encoding: Encoding::Component, .. } => {
                return Err(Error::Wasm("a component, not a core module".into()))
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    names.push(export.map_err(wasm_err)?.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The module's `proxy_on_*` exports.
pub fn callback_exports(module: &[u8]) -> Result<BTreeSet<String>, Error> {
    Ok(exports(module)?.into_iter().filter(|n| is_callback_export(n)).collect())
}

/// The module without the `proxy_on_*` exports that are not in `keep`, and the
/// names removed. Fails, leaving nothing half done, when the module exports a
/// callback [`CALLBACKS`] does not know, or lacks one of `keep` or [`ALWAYS`].
/// The functions stay in the module; only their exports go.
pub fn trim(module: &[u8], keep: &BTreeSet<&str>) -> Result<(Vec<u8>, Vec<String>), Error> {
    let present = callback_exports(module)?;
    let known = |n: &str| ALWAYS.contains(&n) || CALLBACKS.iter().any(|c| c.export == n);
    if let Some(unknown) = present.iter().find(|n| !known(n)) {
        return Err(Error::UnknownExport(unknown.clone()));
    }
    let missing: Vec<String> =
        keep.iter().chain(ALWAYS).filter(|n| !present.contains(**n)).map(|n| n.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Missing(missing.into_iter().collect::<BTreeSet<_>>().into_iter().collect()));
    }

    let mut out = wasm_encoder::Module::new();
    let mut removed = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(wasm_err)?;
        if let Payload::ExportSection(reader) = &payload {
            let mut section = ExportSection::new();
            for export in reader.clone() {
                let export = export.map_err(wasm_err)?;
                if is_callback_export(export.name) && !keep.contains(export.name) && !ALWAYS.contains(&export.name) {
                    removed.push(export.name.to_string());
                    continue;
                }
                let kind = match export.kind {
                    ExternalKind::Func => ExportKind::Func,
                    ExternalKind::Table => ExportKind::Table,
                    ExternalKind::Memory => ExportKind::Memory,
                    ExternalKind::Global => ExportKind::Global,
                    ExternalKind::Tag => ExportKind::Tag,
                    ExternalKind::FuncExact => {
                        return Err(Error::Wasm(format!(
                            "export {}: exact function exports are not supported",
                            export.name
                        )))
                    }
                };
                section.export(export.name, kind, export.index);
            }
            out.section(&section);
        } else if let Some((id, range)) = payload.as_section() {
            out.section(&RawSection { id, data: &module[range] });
        }
    }
    removed.sort();
    Ok((out.finish(), removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, CustomSection, Function, FunctionSection, Instruction, MemorySection, MemoryType, Module,
        TypeSection,
    };

    /// A module exporting a function under each name, a memory, and a custom section.
    fn module(names: &[&str]) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut mem = MemorySection::new();
        mem.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
        m.section(&mem);
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        for n in names {
            exports.export(n, ExportKind::Func, 0);
        }
        m.section(&exports);
        let mut code = CodeSection::new();
        let mut f = Function::new([]);
        f.instruction(&Instruction::End);
        code.function(&f);
        m.section(&code);
        m.section(&CustomSection { name: "producers".into(), data: b"\x00".as_slice().into() });
        m.finish()
    }

    const SDK: &[&str] = &[
        "proxy_on_context_create",
        "proxy_on_delete",
        "proxy_on_memory_allocate",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_log",
        "proxy_abi_version_0_2_1",
        "_initialize",
    ];

    #[test]
    fn removes_only_callbacks_not_kept() {
        let keep: BTreeSet<&str> = ["proxy_on_request_headers"].into();
        let (out, removed) = trim(&module(SDK), &keep).expect("trims");
        assert_eq!(removed, ["proxy_on_log", "proxy_on_response_headers"]);
        let left = exports(&out).expect("valid");
        assert_eq!(
            left,
            [
                "memory",
                "proxy_on_context_create",
                "proxy_on_delete",
                "proxy_on_memory_allocate",
                "proxy_on_request_headers",
                "proxy_abi_version_0_2_1",
                "_initialize"
            ]
        );
        // The rest of the module is untouched: trimming again changes nothing.
        let (again, removed) = trim(&out, &keep).expect("trims");
        assert!(removed.is_empty());
        assert_eq!(again, out);
        // wasmparser's validator accepts it.
        wasmparser::Validator::new().validate_all(&out).expect("a valid module");
    }

    #[test]
    fn keeping_everything_reproduces_the_module_byte_for_byte() {
        let m = module(SDK);
        let keep: BTreeSet<&str> = ["proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_log"].into();
        let (out, removed) = trim(&m, &keep).expect("trims");
        assert!(removed.is_empty());
        assert_eq!(out, m);
    }

    #[test]
    fn an_unknown_callback_export_is_refused() {
        let err = trim(&module(&[SDK, &["proxy_on_something_new"]].concat()), &BTreeSet::new()).unwrap_err();
        assert!(matches!(err, Error::UnknownExport(ref n) if n == "proxy_on_something_new"), "{err}");
    }

    #[test]
    fn a_wanted_export_the_module_lacks_is_refused() {
        let keep: BTreeSet<&str> = ["proxy_on_tick"].into();
        let err = trim(&module(SDK), &keep).unwrap_err();
        assert!(matches!(err, Error::Missing(ref n) if n == &["proxy_on_tick"]), "{err}");
        let err = trim(&module(&["proxy_on_request_headers"]), &BTreeSet::new()).unwrap_err();
        assert!(err.to_string().contains("proxy_on_context_create"), "{err}");
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        for bad in [&b""[..], b"\0asm", b"not wasm at all", &module(SDK)[..40]] {
            let err = trim(bad, &BTreeSet::new()).unwrap_err();
            assert!(matches!(err, Error::Wasm(_)), "{err}");
            assert!(err.to_string().starts_with("not a valid WebAssembly module"), "{err}");
        }
    }
}
