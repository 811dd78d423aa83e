# The wasmtime Proxy-Wasm host tests (tests/host), included by the root Makefile.
# The tests build target/wasm32-wasip1/release/cname_guard.wasm themselves when it is
# missing or older than src/; depending on `wasm` just surfaces build errors first.

.PHONY: host-test fuel

# Every test over the compiled filter, in the wasmtime host.
host-test: wasm
	$(CARGO) test -p cname-guard-host

# Wasmtime fuel (~ wasm instructions) per request: cached allow, lookup, cached deny.
fuel: wasm
	$(CARGO) test -p cname-guard-host --release --test fuel -- --nocapture
