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
#   make bench-flood      issue 22: 20,000 unique hosts against 200 hot ones, real Envoy,
#                         both builds: how many hot hosts needed a new lookup
#   make bench-tls        issue 24: certificates by on-demand SDS, real Envoy and service,
#                         both builds: first handshakes, cached vs static handshake, Envoy's
#                         memory for 10,000 certificates with and without the per-node bound,
#                         requests/s over TLS (h2load)
#   make bench-propagation  change propagation through the feed, real Envoy and service on
#                         SQLite and PostgreSQL, both builds: 20 repetitions of each change,
#                         p50/p99 to the first and to both workers
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
# SQLite and on PostgreSQL (BENCHMARKS.md "The lookup service"). Not part of `make test`.
.PHONY: bench-lookup
bench-lookup: bench-tools postgres-tools
	$(CARGO) build --release -p cname-guard-lookup
	$(PYTHON) scripts/bench_lookup.py $(BENCH_LOOKUP_ARGS)

# Issue 22's flood: 200 hot hosts warmed, 20,000 unique hosts scanned
# (CNAME_GUARD_FLOOD_HOSTS to change it), the hot hosts again; real Envoy
# (2 workers) and a fake lookup service, both builds; prints how many hot
# hosts needed a new lookup and fails over the issue's target (2 of 200).
# Then the overload phase (docs/benchmarks.md): the reference lookup service
# (SQLite, BIND's wildcard) and a ramp of floods of unique hosts on 1,024
# connections (CNAME_GUARD_FLOOD_RATES=1000,2000,4000,0 a second, 0 = as fast
# as answered; CNAME_GUARD_FLOOD_CONNS; CNAME_GUARD_OVERLOAD_SECONDS=15 each)
# from one async client thread, hot hosts at 200/s open loop, Envoy pinned to
# one CPU and the rest to the others (CNAME_GUARD_FLOOD_PIN=0: not pinned;
# CNAME_GUARD_FLOOD_WORKERS: one per Envoy CPU); prints each step's hot-host non-200 answers,
# p50/p99/max, shed lookups, evictions, Envoy's and the service's memory.
.PHONY: bench-flood
bench-flood: deps wasm native services
	@for b in wasm native; do \
	  CNAME_GUARD_BUILD=$$b $(CARGO) test -q -p cname-guard --test e2e_cache -- --ignored --nocapture --exact bench_flood 2>&1 \
	    | grep -E '^(bench-flood|hot requests|test result|thread|  )' ; [ $${PIPESTATUS[0]} = 0 ] || exit 1; \
	done

# Issue 24's TLS figures (BENCHMARKS.md "TLS"): 10,000 custom hostnames with
# certificates seeded into SQLite (lookup/examples/seed_certificates.rs; no
# CA), served to real Envoy by the real service's on-demand SDS
# (tests/bench_tls.rs, ignored by `make test`), both builds.
# CNAME_GUARD_TLS_CERTS changes 10,000 (a quick check: 500), CNAME_GUARD_TLS_BOUND
# the per-node bound of the second pass (1,000). The test's TLS client
# (rustls, ring) is built optimized: its own time is in every handshake it times.
BENCH_TLS_CARGO := --config 'profile.dev.package.rustls.opt-level=3' \
  --config 'profile.dev.package.rustls-webpki.opt-level=3' --config 'profile.dev.package.ring.opt-level=3'
.PHONY: bench-tls
bench-tls: bench-tools deps wasm native services
	$(CARGO) build --release -p cname-guard-lookup --example seed_certificates
	$(CARGO) test -q -p cname-guard --test bench_tls $(BENCH_TLS_CARGO) --no-run
	@start=$$(date +%s); for b in wasm native; do \
	  CNAME_GUARD_BUILD=$$b $(CARGO) test -q -p cname-guard --test bench_tls $(BENCH_TLS_CARGO) -- \
	    --ignored --nocapture --exact bench_tls 2>&1 \
	    | grep -E '^(bench-tls|test result|thread|  )' ; [ $${PIPESTATUS[0]} = 0 ] || exit 1; \
	done; echo "make bench-tls: $$(( $$(date +%s) - start )) s for both builds"

# Change propagation (docs/benchmarks.md "Change propagation"): the ignored
# bench_propagation_* tests of tests/e2e_propagation.rs (`make test` runs the
# same with 3 repetitions and prints nothing), SQLite and PostgreSQL side by
# side, both builds. CNAME_GUARD_PROPAGATION_REPS changes the 20 repetitions.
# The two tests print side by side: libtest's progress dots are stripped.
.PHONY: bench-propagation
bench-propagation: deps build postgres-tools
	$(CARGO) test -q -p cname-guard --test e2e_propagation --no-run
	@start=$$(date +%s); for b in wasm native; do \
	  CNAME_GUARD_BUILD=$$b $(CARGO) test -q -p cname-guard --test e2e_propagation -- \
	    --ignored --nocapture bench_propagation 2>&1 | sed 's/^\.*//' \
	    | grep -E '^(propagation|test result|thread|  )' ; [ $${PIPESTATUS[0]} = 0 ] || exit 1; \
	done; echo "make bench-propagation: $$(( $$(date +%s) - start )) s for both builds"
