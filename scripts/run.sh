#!/usr/bin/env bash
# The demo stack on loopback, in the foreground: lookup service, origin and
# Envoy with cname-guard. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_http() { # url, name
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not come up ($1)" >&2
  exit 1
}

target/release/cname-guard-lookup --registry envoy/registry.json --listen 127.0.0.1:8081 >/dev/null &
pids+=($!)
target/release/cname-guard-origin --name demo-origin --listen 127.0.0.1:8082 >/dev/null &
pids+=($!)
wait_http http://127.0.0.1:8081/healthz "cname-guard-lookup"
wait_http http://127.0.0.1:8082/healthz "cname-guard-origin"

# NATIVE=1: the dynamic module (libcname_guard.so) instead of the .wasm.
if [ "${NATIVE:-}" = 1 ]; then
  echo "build: native (target/native/modules/libcname_guard.so, envoy/envoy-native.yaml)"
  ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$PWD/target/native/modules" \
    .venv/bin/envoy -c envoy/envoy-native.yaml --disable-hot-restart --concurrency 2 -l warn --component-log-level dynamic_modules:info &
else
  echo "build: wasm (target/wasm32-wasip1/release/cname_guard.wasm, envoy/envoy.yaml)"
  .venv/bin/envoy -c envoy/envoy.yaml --disable-hot-restart --concurrency 2 -l warn --component-log-level wasm:info &
fi
pids+=($!)
wait_http http://127.0.0.1:9901/ready "envoy"

cat <<'TXT'

cname-guard demo edge on http://127.0.0.1:10000 (admin http://127.0.0.1:9901). Try:

  curl -i -H 'Host: custom.myclientsite.com' http://127.0.0.1:10000/     # 409, Error 1014 (the seed)
  curl -i -H 'Host: shop.customer.example' http://127.0.0.1:10000/       # 200, x-cname-guard-account: acct-saas
  curl -i -H 'Host: pending.customer.example' http://127.0.0.1:10000/    # 530, Error 1016
  curl -i -H 'Host: broken.saas.example' http://127.0.0.1:10000/         # 530, Error 1016
  curl -i -H 'Host: www.frozen.example' http://127.0.0.1:10000/          # 403, Error 1004
  curl -i -H 'Host: nobody.example' http://127.0.0.1:10000/              # 409, Error 1001
  curl -i -H 'Host: 192.0.2.1' http://127.0.0.1:10000/                   # 403, Error 1003
  curl -i -H 'Host: bad_host' http://127.0.0.1:10000/                    # 400
  curl -s -H 'Host: custom.myclientsite.com' -H 'Accept: application/json' http://127.0.0.1:10000/
  curl -s http://127.0.0.1:9901/stats | grep cname_guard

Edit envoy/registry.json and the lookup service reloads it. Ctrl-C to stop.
TXT
wait "${pids[2]}"
