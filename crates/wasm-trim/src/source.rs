//! The callbacks a filter implements, read from its Rust source with syn.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

use crate::{Error, CALLBACKS, TRAITS};

/// What the source implements and calls that decides the exports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Implemented {
    /// Methods `on_*` written in impls of the SDK's context traits.
    pub methods: BTreeSet<String>,
    /// Host calls named anywhere whose answer comes back through a callback
    /// (the `answers` of [`CALLBACKS`]).
    pub host_calls: BTreeSet<String>,
}

/// The callbacks implemented in every `.rs` file under `src` (all of them,
/// whatever `mod` and `cfg` select: an export kept for a file that is not
/// compiled costs a little speed, one dropped would lose a callback).
pub fn implemented(src: &Path) -> Result<Implemented, Error> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    if files.is_empty() {
        return Err(Error::NoSource(src.to_path_buf()));
    }
    files.sort();
    let mut out = Implemented::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Io(file.clone(), e))?;
        let found = implemented_in(&text).map_err(|e| e.in_file(&file))?;
        out.methods.extend(found.methods);
        out.host_calls.extend(found.host_calls);
    }
    Ok(out)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::Io(dir.to_path_buf(), e))?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

impl Error {
    fn in_file(self, file: &Path) -> Error {
        match self {
            Error::Parse(_, e) => Error::Parse(file.to_path_buf(), e),
            Error::UnknownMethod { imp, method, .. } => Error::UnknownMethod { file: file.to_path_buf(), imp, method },
            Error::ImplInMacro { mac, .. } => Error::ImplInMacro { file: file.to_path_buf(), mac },
            e => e,
        }
    }
}

/// The callbacks implemented in one file's text.
pub fn implemented_in(text: &str) -> Result<Implemented, Error> {
    let file = syn::parse_file(text).map_err(|e| Error::Parse(PathBuf::new(), e.to_string()))?;
    // `use proxy_wasm::traits::HttpContext as Http;` makes `Http` one of the traits.
    let mut aliases = Aliases(TRAITS.iter().map(|t| t.to_string()).collect());
    aliases.visit_file(&file);
    let mut v = Reader { traits: aliases.0, found: Implemented::default(), error: None };
    v.visit_file(&file);
    match v.error {
        Some(e) => Err(e),
        None => Ok(v.found),
    }
}

struct Aliases(BTreeSet<String>);

impl<'ast> Visit<'ast> for Aliases {
    fn visit_use_rename(&mut self, r: &'ast syn::UseRename) {
        if self.0.contains(&r.ident.to_string()) {
            self.0.insert(r.rename.to_string());
        }
    }
}

struct Reader {
    traits: BTreeSet<String>,
    found: Implemented,
    error: Option<Error>,
}

fn is_answered(name: &str) -> bool {
    CALLBACKS.iter().any(|c| c.answers.contains(&name))
}

fn is_known_method(name: &str) -> bool {
    CALLBACKS.iter().any(|c| c.methods.contains(&name))
}

impl Reader {
    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    fn call(&mut self, name: &syn::Ident) {
        let name = name.to_string();
        if is_answered(&name) {
            self.found.host_calls.insert(name);
        }
    }

    /// Macro bodies are not parsed: their host calls are found by name, and an
    /// `impl <context trait> for` in one is refused.
    fn tokens(&mut self, mac: &str, tokens: TokenStream) {
        let mut flat = Vec::new();
        flatten(tokens, &mut flat);
        for (i, t) in flat.iter().enumerate() {
            let TokenTree::Ident(id) = t else { continue };
            self.call(id);
            if id != "impl" {
                continue;
            }
            // The impl's header: up to its body or the end of the statement.
            let header = flat[i + 1..].iter().take_while(|t| !matches!(t, TokenTree::Punct(p) if p.as_char() == ';'));
            let header: Vec<String> = header.take(64).map(|t| t.to_string()).collect();
            let names_trait = header.iter().any(|t| self.traits.contains(t));
            if names_trait && header.iter().any(|t| t == "for") {
                self.fail(Error::ImplInMacro { file: PathBuf::new(), mac: mac.to_string() });
            }
        }
    }
}

/// Every token, groups opened (a group's body follows its opening as a group token).
fn flatten(tokens: TokenStream, out: &mut Vec<TokenTree>) {
    for t in tokens {
        if let TokenTree::Group(g) = &t {
            let inner = g.stream();
            // A brace group ends an impl header: keep a marker for it.
            let brace = g.delimiter() == proc_macro2::Delimiter::Brace;
            if brace {
                out.push(TokenTree::Punct(proc_macro2::Punct::new(';', proc_macro2::Spacing::Alone)));
            }
            flatten(inner, out);
        } else {
            out.push(t);
        }
    }
}

impl<'ast> Visit<'ast> for Reader {
    fn visit_item_impl(&mut self, imp: &'ast syn::ItemImpl) {
        let sdk_trait = imp.trait_.as_ref().and_then(|(_, path, _)| path.segments.last()).map(|s| s.ident.to_string());
        if let Some(tr) = sdk_trait.filter(|t| self.traits.contains(t)) {
            let ty = &imp.self_ty;
            let ty = quote_type(ty);
            for item in &imp.items {
                let name = match item {
                    syn::ImplItem::Fn(f) => f.sig.ident.to_string(),
                    syn::ImplItem::Macro(m) => {
                        let mac = path_name(&m.mac.path);
                        self.fail(Error::ImplInMacro {
                            file: PathBuf::new(),
                            mac: format!("{mac} in impl {tr} for {ty}"),
                        });
                        continue;
                    }
                    _ => continue,
                };
                if !name.starts_with("on_") {
                    continue; // create_http_context, get_type, ...: not callbacks
                }
                if !is_known_method(&name) {
                    self.fail(Error::UnknownMethod {
                        file: PathBuf::new(),
                        imp: format!("impl {tr} for {ty}"),
                        method: name,
                    });
                    continue;
                }
                self.found.methods.insert(name);
            }
        }
        syn::visit::visit_item_impl(self, imp);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.call(&call.method);
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some(last) = path.segments.last() {
            self.call(&last.ident);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(&path_name(&mac.path), mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

fn path_name(path: &syn::Path) -> String {
    path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::")
}

fn quote_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => path_name(&p.path),
        _ => "_".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wanted;

    fn read(text: &str) -> Implemented {
        implemented_in(text).expect("reads")
    }

    fn exports(text: &str) -> Vec<&'static str> {
        wanted(&read(text)).into_iter().filter(|e| !crate::ALWAYS.contains(e)).collect()
    }

    #[test]
    fn callbacks_come_from_the_trait_impls() {
        let src = r#"
            use proxy_wasm::traits::{Context, HttpContext, RootContext};
            struct Root; struct F;
            impl Context for F {}
            impl HttpContext for F {
                fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action { Action::Continue }
                /// Doc comments, attributes and helpers change nothing.
                #[inline]
                fn on_http_response_body(&mut self, _: usize, _: bool) -> Action { Action::Continue }
            }
            impl F { fn on_http_response_headers(&mut self) {} } // not a trait impl
            impl Other for F { fn on_log(&mut self) {} }         // not an SDK trait
            impl RootContext for Root {
                fn on_configure(&mut self, _: usize) -> bool { true }
                fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> { None }
                fn get_type(&self) -> Option<ContextType> { None }
            }
        "#;
        assert_eq!(exports(src), ["proxy_on_configure", "proxy_on_request_headers", "proxy_on_response_body"]);
    }

    #[test]
    fn paths_aliases_and_nested_modules_are_read() {
        let src = r#"
            mod filter {
                use proxy_wasm::traits::StreamContext as Stream;
                impl proxy_wasm::traits::Context for S { fn on_done(&mut self) -> bool { true } }
                impl Stream for S { fn on_downstream_close(&mut self, _: PeerType) {} }
                fn helper() { struct L; impl proxy_wasm::traits::HttpContext for L { fn on_log(&mut self) {} } }
            }
        "#;
        assert_eq!(exports(src), ["proxy_on_done", "proxy_on_downstream_connection_close", "proxy_on_log"]);
    }

    #[test]
    fn a_host_call_keeps_the_callback_that_answers_it() {
        // The SDK's dispatcher removes the call's token when the answer comes.
        let src = r#"
            fn lookup() { let _ = hostcalls::dispatch_http_call("c", vec![], None, vec![], t); }
            fn grpc(&self) { self.dispatch_grpc_call("c", "s", "m", vec![], None, t); }
        "#;
        assert_eq!(exports(src), ["proxy_on_grpc_close", "proxy_on_grpc_receive", "proxy_on_http_call_response"]);
        let in_macro = r#"fn f() { log::info!("{:?}", hostcalls::dispatch_http_call("c", h, None, t, d)); }"#;
        assert_eq!(exports(in_macro), ["proxy_on_http_call_response"]);
    }

    #[test]
    fn an_unknown_callback_method_is_refused() {
        let src = "impl HttpContext for F { fn on_http_request_metadata(&mut self) -> Action { todo!() } }";
        let err = implemented_in(src).unwrap_err();
        assert!(
            matches!(err, Error::UnknownMethod { ref method, .. } if method == "on_http_request_metadata"),
            "{err}"
        );
        assert!(err.to_string().contains("impl HttpContext for F"), "{err}");
    }

    #[test]
    fn an_impl_inside_a_macro_is_refused() {
        let src = "my_macro! { impl HttpContext for F { fn on_log(&mut self) {} } }";
        let err = implemented_in(src).unwrap_err();
        assert!(matches!(err, Error::ImplInMacro { ref mac, .. } if mac == "my_macro"), "{err}");
        // The SDK's entry point names a context trait but implements none.
        let main = "proxy_wasm::main! {{ proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(R) }); }}";
        assert_eq!(read(main), Implemented::default());
        // `impl Trait` in argument or return position is not an impl block.
        let arg = "m! { fn f(x: impl Fn() -> u8) -> impl Iterator<Item = u8> { todo!() } }";
        assert_eq!(read(arg), Implemented::default());
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error() {
        let err = implemented_in("impl HttpContext for {").unwrap_err();
        assert!(matches!(err, Error::Parse(..)), "{err}");
    }

    #[test]
    fn every_method_of_the_table_is_an_sdk_callback_name() {
        for c in CALLBACKS {
            assert!(c.export.starts_with("proxy_on_"), "{}", c.export);
            assert!(!c.methods.is_empty(), "{}", c.export);
            assert!(c.methods.iter().all(|m| m.starts_with("on_")), "{}", c.export);
        }
    }
}
