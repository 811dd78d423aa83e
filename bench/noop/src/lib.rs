//! The no-op baseline of `make bench` (configuration B): an HTTP filter that
//! does the least a host-based filter must do, one `:authority` read per
//! request, and continues. Everything between Envoy's router alone and this
//! filter is the price of having a Proxy-Wasm filter at all (context
//! creation, the calls into the VM, the V8 boundary); everything between
//! this filter and cname-guard's cached path is cname-guard's own work.
//!
//! The Proxy-Wasm glue is compiled for wasm32 only, so the workspace's
//! native `cargo test` builds this crate as an empty library.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType};

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Noop))
        }
    }

    struct Noop;

    impl Context for Noop {}

    impl HttpContext for Noop {
        fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
            // Read it as cname-guard does (bytes, no UTF-8 check), and keep
            // the result observable so the call is not optimized away.
            let host = self.get_http_request_header_bytes(":authority");
            std::hint::black_box(host);
            Action::Continue
        }
    }

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}
}
