# The wasmtime Proxy-Wasm host tests (tests/host), included by the root Makefile.
# The tests build target/wasm32-wasip1/release/cname_guard.wasm themselves when it is
# missing or older than src/ or crates/core/src/; depending on `wasm` just surfaces build errors first.

.PHONY: host-test fuel

# Every test over the compiled filter, in the wasmtime host.
host-test: wasm
	$(CARGO) test -p cname-guard-host

# Wasmtime fuel (~ wasm instructions) per request: cached allow, lookup, cached deny;
# then the no-op filter (bench/noop) as the SDK builds it and with the callbacks
# cname-guard does not implement unexported (`--src src`: cname-guard's, not the
# no-op's), as `make wasm` does for cname-guard.
NOOP_WASM := target/wasm32-wasip1/release/cname_guard_bench_noop.wasm
NOOP_UNEXPORTED := target/wasm32-wasip1/release/cname_guard_bench_noop_unexported.wasm
fuel: wasm
	$(CARGO) test -p cname-guard-host --release --test fuel -- --nocapture
	$(CARGO) build --release --target wasm32-wasip1 -p cname-guard-bench-noop
	cp $(NOOP_WASM) $(NOOP_UNEXPORTED) && $(CARGO) run -q -p cname-guard-wasm-trim -- --src src $(NOOP_UNEXPORTED)
	for w in $(abspath $(NOOP_WASM) $(NOOP_UNEXPORTED)); do \
	  CNAME_GUARD_NOOP_WASM=$$w $(CARGO) test -p cname-guard-host --release --test fuel -- \
	    --nocapture --ignored fuel_noop || exit 1; \
	done
