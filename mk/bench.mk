# Benchmarks (BENCHMARKS.md), included by the root Makefile. Not part of `make test`.
#
#   make bench            builds, installs wrk/h2load if missing, runs scripts/bench.py:
#                         A router only, B no-op Wasm, C cname-guard cached, D cache off,
#                         E ext_authz, N native cname-guard cached, N0 no-op native module,
#                         plus the 90/10 mix, the deny path and latency;
#                         prints the table as it goes and rewrites BENCHMARKS.md's results
#   make bench-validate   the generated Envoy YAMLs through `envoy --mode validate`
#   make bench-variants   cname-guard variants built outside the repo (no metrics, ...)
#   make bench-callgrind  instructions per request of A, B, C, N0, N on the direct_response
#                         route, Envoy under valgrind (deterministic; installs valgrind)
#
#   BENCH_ARGS="--rounds 7 --duration 10"   passed to scripts/bench.py (see --help)
#   BENCH_FUEL=0                            skip `make fuel` (it compiles wasmtime once)
#   BENCH_QUICK=1                           1 short round of A B C Ad Bd Cd, no perf, no
#                                           latency, BENCHMARKS.md left alone: checks it works
#   CALLGRIND_ARGS="--requests 4000 --path /"  passed to scripts/bench_callgrind.py

BENCH_ARGS ?=
CALLGRIND_ARGS ?=
ifeq ($(BENCH_QUICK),1)
BENCH_ARGS := --only A,B,C,Ad,Bd,Cd --rounds 1 --extra-rounds 0 --duration 2 --warmup 1 \
  --latency-rounds 0 --no-perf --no-write $(BENCH_ARGS)
BENCH_FUEL ?= 0
export BENCH_FUEL
endif
BENCH_NOOP_WASM := target/wasm32-wasip1/release/cname_guard_bench_noop.wasm
BENCH_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

CALLGRIND_ARGS ?=

.PHONY: bench bench-tools bench-build bench-validate bench-variants bench-callgrind

# wrk and h2load (Debian: wrk, nghttp2-client); binaryen's wasm-opt is optional.
bench-tools:
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v taskset >/dev/null || missing="$$missing util-linux"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then \
	  echo "bench: installing$$missing"; \
	  $(BENCH_SUDO) apt-get update -qq && $(BENCH_SUDO) apt-get install -y -qq $$missing; \
	fi; \
	command -v wasm-opt >/dev/null || { echo "bench: installing binaryen (optional, for wasm-opt)"; \
	  $(BENCH_SUDO) apt-get install -y -qq binaryen >/dev/null 2>&1 || \
	  echo "bench: binaryen not installed; the wasm-opt size is left out"; }

bench-build: deps build
	$(CARGO) build --release --target wasm32-wasip1 -p cname-guard-bench-noop

bench: bench-tools bench-build
	@start=$$(date +%s); \
	$(PYTHON) scripts/bench.py $(BENCH_ARGS); rc=$$?; \
	echo "make bench: $$(( $$(date +%s) - start )) s in scripts/bench.py"; exit $$rc

bench-validate: deps bench-build
	@$(PYTHON) scripts/bench.py --emit-yaml target/bench-yaml

bench-variants: bench-tools bench-build
	@bash scripts/bench-variants.sh $(BENCH_ARGS)

bench-callgrind: bench-build
	@command -v valgrind >/dev/null || { echo "bench: installing valgrind"; \
	  $(BENCH_SUDO) apt-get update -qq && $(BENCH_SUDO) apt-get install -y -qq valgrind; }
	@$(PYTHON) scripts/bench_callgrind.py $(CALLGRIND_ARGS)

# The lookup service alone: GET /v1/ownership with DNS cached, store on
# SQLite and on PostgreSQL (README "Performance"). Not part of `make test`.
.PHONY: bench-lookup
bench-lookup: bench-tools postgres-tools
	$(CARGO) build --release -p cname-guard-lookup
	$(PYTHON) scripts/bench_lookup.py $(BENCH_LOOKUP_ARGS)
