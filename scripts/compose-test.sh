#!/usr/bin/env bash
# The cname-guard stack in Docker compose (envoy/compose/docker-compose.yaml),
# under the compose project `cname-guard` only.
#
#   scripts/compose-test.sh test   up, the end-to-end assertions, and always down
#   scripts/compose-test.sh up     up -d, then wait until the edge answers
#   scripts/compose-test.sh wait   wait until the edge answers
#   scripts/compose-test.sh down   down -v --remove-orphans
#
# The images must exist (`make compose-images`). Nothing sleeps a fixed time:
# every wait polls a condition against a deadline. The assertions are those
# of tests/e2e_verdicts.rs, made with curl against the published edge port,
# plus the failure mode with both lookup replicas stopped and the recovery,
# and with the DNS container stopped.
#
# At scale (two Envoys, two replicas on one PostgreSQL): a hostname activated
# and blocked through lookup-1's API reaches both Envoys within 2 s (the
# feed), a replica killed under load loses no request, a replica cut off from
# PostgreSQL is taken out by Envoy's health check, and PostgreSQL stopped
# leaves known hosts served (stale-if-error) and new ones in the failure mode.
#
# Environment: COMPOSE (the compose command; default docker-compose, else
# `docker compose`), CNAME_GUARD_COMPOSE_PROJECT [cname-guard],
# CNAME_GUARD_EDGE_PORT [18000], CNAME_GUARD_ADMIN_PORT [18901],
# CNAME_GUARD_EDGE2_PORT [18001], CNAME_GUARD_ADMIN2_PORT [18902],
# CNAME_GUARD_LOOKUP1_ADMIN_PORT [18091], CNAME_GUARD_LOOKUP2_ADMIN_PORT [18092],
# CNAME_GUARD_LOOKUP1_PORT [18081], CNAME_GUARD_LOOKUP2_PORT [18082],
# ENVOY_IMAGE, CNAME_GUARD_WASM, and the other variables of the compose file.
set -uo pipefail
cd "$(dirname "$0")/.."

FILE=envoy/compose/docker-compose.yaml
PROJECT=${CNAME_GUARD_COMPOSE_PROJECT:-cname-guard}
EDGE=http://127.0.0.1:${CNAME_GUARD_EDGE_PORT:-18000}
ADMIN=http://127.0.0.1:${CNAME_GUARD_ADMIN_PORT:-18901}
EDGE2=http://127.0.0.1:${CNAME_GUARD_EDGE2_PORT:-18001}
ADMIN2=http://127.0.0.1:${CNAME_GUARD_ADMIN2_PORT:-18902}
API1=http://127.0.0.1:${CNAME_GUARD_LOOKUP1_ADMIN_PORT:-18091}
API2=http://127.0.0.1:${CNAME_GUARD_LOOKUP2_ADMIN_PORT:-18092}
LOOKUP1=http://127.0.0.1:${CNAME_GUARD_LOOKUP1_PORT:-18081}
LOOKUP2=http://127.0.0.1:${CNAME_GUARD_LOOKUP2_PORT:-18082}
HTTPS_PORT=${CNAME_GUARD_HTTPS_PORT:-18443}
HTTPS2_PORT=${CNAME_GUARD_HTTPS2_PORT:-18444}
PEBBLE_MGMT=https://127.0.0.1:${CNAME_GUARD_PEBBLE_PORT:-18150}
PEBBLE_TLS_ROOT=target/docker/pebble-tls/root.pem
ISSUE_DEADLINE=60                            # seconds, for Pebble to issue through the edge
TOKEN_FILE=${CNAME_GUARD_ADMIN_TOKEN_FILE:-envoy/compose/admin-token}
[[ $TOKEN_FILE == /* || -f $TOKEN_FILE ]] || TOKEN_FILE=envoy/compose/$TOKEN_FILE
PROPAGATION_MS=2000                          # a change reaches every Envoy within this
UP_DEADLINE=${CNAME_GUARD_UP_DEADLINE:-90}   # seconds, for the stack to answer
RECOVERY_DEADLINE=30                         # seconds, after the lookups return
WASM=${CNAME_GUARD_WASM:-target/wasm32-wasip1/release/cname_guard.wasm}

if [[ -z ${COMPOSE:-} ]]; then
  if docker-compose version >/dev/null 2>&1; then COMPOSE=docker-compose
  elif docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"
  else echo "compose-test: neither docker-compose nor \`docker compose\` works" >&2; exit 1
  fi
fi
# shellcheck disable=SC2086 # COMPOSE may be two words
compose() { $COMPOSE -p "$PROJECT" -f "$FILE" "$@"; }

log() { echo "compose-test: $*"; }
die() { echo "compose-test: $*" >&2; exit 1; }

# --- the stack ----------------------------------------------------------------
preflight() {
  # A missing file would be bind-mounted as a new, empty directory.
  [[ -f $WASM ]] || die "no $WASM: run \`make wasm\` (or \`make compose-images\`)"
  [[ -f $PEBBLE_TLS_ROOT ]] || die "no $PEBBLE_TLS_ROOT: run \`make compose-images\`"
  local img
  for img in "cname-guard/lookup:${CNAME_GUARD_TAG:-latest}" "cname-guard/origin:${CNAME_GUARD_TAG:-latest}" \
             "cname-guard/dns:${CNAME_GUARD_TAG:-latest}" "cname-guard/postgres:${CNAME_GUARD_TAG:-latest}" \
             "cname-guard/pebble:${CNAME_GUARD_TAG:-latest}" \
             "${ENVOY_IMAGE:-cname-guard/envoy:1.40.0}"; do
    # Another ENVOY_IMAGE (envoyproxy/envoy:v1.40.0) may come from a registry.
    [[ $img == cname-guard/* ]] || continue
    docker image inspect "$img" >/dev/null 2>&1 || die "no image $img: run \`make compose-images\`"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  preflight
  if [[ -z $(compose ps -q envoy-1 2>/dev/null) ]]; then
    local p
    for p in "${EDGE##*:}" "${ADMIN##*:}" "${EDGE2##*:}" "${ADMIN2##*:}" "${API1##*:}" "${API2##*:}" \
             "${LOOKUP1##*:}" "${LOOKUP2##*:}"; do
      port_free "$p" || die "127.0.0.1:$p is in use: choose another CNAME_GUARD_*_PORT (docs/compose.md)"
    done
  fi
  compose up -d || die "compose up failed"
  wait_ready
}

down() { compose down -v --remove-orphans; }

code() { # host [curl args]: the status of a request to the edge, 000 if none
  code_at "$EDGE" "$@"
}
code_at() { # edge-url host [curl args]
  local edge=$1 host=$2; shift 2
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $host" "$@" "$edge/" 2>/dev/null || true
}

# Healthy hosts of the lookup replicas' cluster, as an Envoy's active health
# check sees them (envoy-1's admin unless another is named).
healthy_lookups() { # [admin-url]
  curl -s --max-time 2 "${1:-$ADMIN}/clusters" 2>/dev/null |
    grep -c '^cname_guard_lookup_replicas::.*::health_flags::healthy$' || true
}
both_healthy() { [[ $(healthy_lookups "$ADMIN") == 2 && $(healthy_lookups "$ADMIN2") == 2 ]]; }

# The stack answers: both Envoys are ready, both lookup replicas pass both
# Envoys' health checks, and a request through each edge gets a lookup
# answer and the origin.
wait_ready() {
  local deadline=$((SECONDS + UP_DEADLINE)) step="Envoy admin /ready"
  while ((SECONDS < deadline)); do
    case $step in
      "Envoy admin /ready")
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ADMIN/ready" 2>/dev/null) == 200 &&
           $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ADMIN2/ready" 2>/dev/null) == 200 ]] \
          && step="both lookup replicas healthy" && continue ;;
      "both lookup replicas healthy")
        both_healthy && step="a lookup through each Envoy" && continue ;;
      "a lookup through each Envoy")
        if [[ $(code compose-ready.tenants.saas.example) == 200 &&
              $(code_at "$EDGE2" compose-ready.tenants.saas.example) == 200 ]]; then
          log "stack ready: edges $EDGE $EDGE2, admins $ADMIN $ADMIN2, management API $API1 $API2"
          return 0
        fi ;;
    esac
    sleep 0.2
  done
  compose ps >&2
  compose logs --tail 30 >&2
  die "the stack did not come up within ${UP_DEADLINE}s (waiting for: $step)"
}

# --- assertions ---------------------------------------------------------------
PASSED=0
FAILED=0
TMP=
STATUS= HDRS= BODY=

ok() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
check() { # description, then a command that must succeed
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# req host [curl args]: sets STATUS, HDRS (file), BODY (file).
req() {
  local host=$1; shift
  HDRS=$TMP/headers BODY=$TMP/body
  : >"$HDRS"; : >"$BODY"
  STATUS=$(curl -s -D "$HDRS" -o "$BODY" -w '%{http_code}' --max-time 5 -H "Host: $host" "$@" "$EDGE/" 2>/dev/null) || true
}
# raw_head host: a HEAD request on a raw connection; sets STATUS, HDRS, BODY
# (BODY: whatever came after the headers).
raw_head() {
  local port=${EDGE##*:}
  HDRS=$TMP/headers BODY=$TMP/body
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "HEAD / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" >&3
    cat <&3' _ "$port" "$1" >"$TMP/raw" 2>/dev/null || true
  python3 - "$TMP/raw" "$HDRS" "$BODY" <<'PY'
import sys
raw = open(sys.argv[1], "rb").read()
head, _, rest = raw.partition(b"\r\n\r\n")
open(sys.argv[2], "wb").write(head + b"\r\n")
open(sys.argv[3], "wb").write(rest)
PY
  STATUS=$(head -n1 "$HDRS" | awk '{print $2}')
}
# metrics-url: its /metrics is Prometheus text with a lookup counter above 0.
# Captured first: curl piped into an early-exiting grep would die of SIGPIPE.
lookups_counted() {
  local text
  text=$(curl -s --max-time 5 "$1/metrics" 2>/dev/null) || return 1
  [[ $text == *"# TYPE cname_guard_lookups_total counter"* &&
     $text =~ cname_guard_lookups_total\{result=\"[a-z_]+\"\}\ [1-9] ]]
}
header() { grep -i "^$1:" "$HDRS" | tail -n1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'; }
body() { cat "$BODY"; }
# json KEY: the value in the body, strings raw, others as JSON (true, 409, null).
json() {
  python3 -c 'import json,sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$BODY" "$1" 2>/dev/null
}
is() { [[ $1 == "$2" ]] || { echo "     got '$1', want '$2'" >&2; return 1; }; }
has() { grep -qF -- "$1" "$BODY" || { echo "     body lacks '$1': $(head -c 300 "$BODY")" >&2; return 1; }; }
ray_ok() { [[ $(header cf-ray) =~ ^[0-9a-f]{16}-ARN$ ]] || { echo "     cf-ray '$(header cf-ray)'" >&2; return 1; }; }
counter() { # name [admin-url]: a counter of the filter
  curl -s --max-time 2 "${2:-$ADMIN}/stats?filter=cname_guard" |
    sed -n -E "s/^(wasmcustom|dynamicmodulescustom)\.cname_guard\.$1: //p"
}
# ssl_field KEY: a field of the `ssl` object of the last API answer.
ssl_field() {
  python3 -c 'import json,sys
print(json.load(open(sys.argv[1])).get("ssl", {}).get(sys.argv[2]) or "")' "$BODY" "$1" 2>/dev/null
}
# https_code port host root: the status of GET https://host/ on that HTTPS
# port, verified against root; 000 when the handshake fails.
https_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$3" --resolve "$2:$1:127.0.0.1" "https://$2:$1/" || true
}
ge() { [[ ${1:-0} -ge $2 ]] || { echo "     got '${1:-}', want >= $2" >&2; return 1; }; }

page_ok() { # status code name host: the HTML error page, as assert_page in e2e_verdicts.rs
  is "$STATUS" "$1" && is "$(header server)" cloudflare && is "$(header content-type)" "text/html; charset=UTF-8" \
    && is "$(header cache-control)" "private, max-age=0, no-store, no-cache, must-revalidate" \
    && is "$(header x-frame-options)" SAMEORIGIN && is "$(header referrer-policy)" same-origin && ray_ok \
    && has "<title>$4 | Error $2</title>" && has "<h1>Error $2: $3</h1>" && has "$(header cf-ray)"
}
echo_ok() { # host account: the origin's echo of an allowed request
  is "$STATUS" 200 && is "$(json host)" "$1" && is "$(json account)" "$2" && is "$(json account_headers)" 1
}

# wait_until seconds command...: polls the command until it succeeds or the
# deadline passes (the check after it says which).
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}

# api METHOD URL [JSON]: the management API with the admin token; sets
# STATUS, BODY, and API_MS (when the answer came, in ms).
api() {
  BODY=$TMP/body
  local args=(-s -o "$BODY" -w '%{http_code}' --max-time 10 -X "$1" -H "authorization: Bearer $(tr -d '\n' <"$TOKEN_FILE")")
  [[ -n ${3:-} ]] && args+=(-H 'content-type: application/json' --data "$3")
  STATUS=$(curl "${args[@]}" "$2" 2>/dev/null) || true
  API_MS=$(now_ms)
}

now_ms() { date +%s%3N; }
# until_both status host: milliseconds from the last API answer until both
# Envoys answer host with status (polled every 20 ms), or "timeout" after 10 s.
until_both() {
  local t0=$API_MS t
  while :; do
    t=$(now_ms)
    if [[ $(code_at "$EDGE" "$2") == "$1" && $(code_at "$EDGE2" "$2") == "$1" ]]; then echo $((t - t0)); return; fi
    ((t - t0 < 10000)) || { echo timeout; return; }
    sleep 0.02
  done
}

# A steady load on both Envoys: one request at a time, alternating, each for
# a host never asked before (so each is a lookup). Statuses go to $TMP/load.
LOAD_PID= LOADED=0
load_start() {
  : >"$TMP/load"; touch "$TMP/load.on"
  (
    i=0
    while [[ -e $TMP/load.on ]]; do
      i=$((i + 1))
      if ((i % 2)); then e=$EDGE; else e=$EDGE2; fi
      code_at "$e" "load-$i-$$.tenants.saas.example" >>"$TMP/load"; echo >>"$TMP/load"
    done
  ) &
  LOAD_PID=$!
}
load_until() { # count: wait until that many requests are done (60 s at most)
  wait_until 60 eval '(( $(wc -l <"$TMP/load") >= '"$1"' ))'
  LOADED=$(wc -l <"$TMP/load")
}
load_stop() {
  rm -f "$TMP/load.on"
  [[ -n $LOAD_PID ]] && wait "$LOAD_PID"
  LOAD_PID=
  LOADED=$(wc -l <"$TMP/load")
}

retries() { # admin-url: the lookup route's retries so far
  curl -s --max-time 2 "$1/stats" | sed -n 's/^cluster\.cname_guard_lookup_replicas\.upstream_rq_retry: //p'
}

health_flags() { # both Envoys' view of the replicas, for a failed check
  local a
  for a in "$ADMIN" "$ADMIN2"; do
    curl -s --max-time 2 "$a/clusters" | grep '^cname_guard_lookup_replicas::.*::health_flags::' | sed "s|^|     $a |"
  done
}

# replica_failed ip: both Envoys mark that replica failed_active_hc.
replica_failed() {
  local a
  for a in "$ADMIN" "$ADMIN2"; do
    # Read whole, then matched: `curl | grep -q` under pipefail fails when
    # grep exits before curl's last write (SIGPIPE).
    grep -q "^cname_guard_lookup_replicas::$1:8081::health_flags::.*failed_active_hc" \
      <<<"$(curl -s --max-time 2 "$a/clusters" 2>/dev/null)" || return 1
  done
}

only_lookup1_healthy() { # lookup-2's ip
  replica_failed "$1" && [[ $(healthy_lookups) == 1 && $(healthy_lookups "$ADMIN2") == 1 ]]
}

# stale_served_since n host: a request for host, then cache.stale_served above n.
stale_served_since() {
  code "$2" >/dev/null
  (( $(counter cache.stale_served) > $1 ))
}

plugin_config() { sed -n "s/.*value: '\(.*\)'  # plugin-config$/\1/p" "$1"; }
# The compose configuration without its `cache` (short TTL, stale-if-error).
plugin_config_sans_cache() {
  plugin_config "$1" | python3 -c 'import json,sys; c = json.load(sys.stdin); c.pop("cache", None); print(json.dumps(c))'
}

# validate_in_image envoy-yaml: Envoy's --mode validate in the Envoy image,
# which also loads the .wasm and runs its configuration check (on_configure).
validate_in_image() {
  local out
  out=$(docker run --rm --network none --entrypoint /usr/local/bin/envoy \
    -v "$(realpath "$1"):/etc/envoy/envoy.yaml:ro" -v "$(realpath "$WASM"):/etc/envoy/cname_guard.wasm:ro" \
    "${ENVOY_IMAGE:-cname-guard/envoy:1.40.0}" --mode validate -c /etc/envoy/envoy.yaml -l error 2>&1)
  [[ $out == *"configuration '/etc/envoy/envoy.yaml' OK"* ]] || { echo "$out" | tail -n 5 | sed 's/^/     /' >&2; return 1; }
}

# The compose Envoy config with the pluginConfig of envoy/istio/wasmplugin.yaml
# and a lookup cluster named as Istio names it (needs PyYAML).
istio_config() { # out-file
  python3 - "$1" <<'PY'
import json, re, sys, yaml
plugin = next(d for d in yaml.safe_load_all(open("envoy/istio/wasmplugin.yaml")) if d and d.get("kind") == "WasmPlugin")
cfg = plugin["spec"]["pluginConfig"]
assert plugin["spec"]["url"].startswith("oci://") and plugin["spec"]["failStrategy"] == "FAIL_CLOSE"
text = open("envoy/compose/envoy.yaml").read()
text = re.sub(r"value: '.*'  # plugin-config", lambda _: "value: '%s'" % json.dumps(cfg), text)
text = text.replace("cname_guard_lookup", cfg["lookup"]["cluster"])
open(sys.argv[1], "w").write(text)
PY
}

assertions() {
  local seed=custom.myclientsite.com host ray status code name account accept run=$$

  echo "== configuration"
  check "envoy/compose/envoy.yaml has the plugin configuration of envoy/envoy.yaml (plus cache)" \
    is "$(plugin_config_sans_cache envoy/compose/envoy.yaml)" "$(plugin_config_sans_cache envoy/envoy.yaml)"
  check "envoy/compose/envoy-native.yaml has the same plugin configuration as envoy.yaml" \
    is "$(plugin_config envoy/compose/envoy-native.yaml)" "$(plugin_config envoy/compose/envoy.yaml)"
  check "envoy/compose/envoy.yaml passes envoy --mode validate in the image" validate_in_image envoy/compose/envoy.yaml
  if python3 -c 'import yaml' 2>/dev/null; then
    check "envoy/istio/wasmplugin.yaml: the filter accepts its pluginConfig" \
      eval 'istio_config "$TMP/istio.yaml" && validate_in_image "$TMP/istio.yaml"'
  else
    echo "skip envoy/istio/wasmplugin.yaml check (no PyYAML)"
  fi

  echo "== the seed request"
  req "$seed" -H "User-Agent: Mozilla/5.0" -H "Accept: text/html"
  check "$seed: 409, Error 1014 page, server: cloudflare, cf-ray <16 hex>-ARN" \
    page_ok 409 1014 "CNAME cross-user banned" "$seed"
  check "$seed: the page tells the owner about custom hostnames and A records" \
    eval 'has "custom hostname" && has "A record"'
  ray=$(header cf-ray)
  req "$seed"
  check "$seed: a fresh ray id per response" eval '[[ -n $ray && $(header cf-ray) != "$ray" ]]'

  echo "== every verdict of the demo registry, from the DNS container"
  while IFS='|' read -r host status code name; do
    req "$host"
    check "$host: $status, Error $code" page_ok "$status" "$code" "$name" "$host"
  done <<'EOF'
blocked.customer.example|409|1014|CNAME cross-user banned
pending.customer.example|530|1016|Origin DNS error
moved.customer.example|530|1016|Origin DNS error
broken.saas.example|530|1016|Origin DNS error
www.frozen.example|403|1004|Host not configured to serve web traffic
orphan.example|409|1001|DNS resolution error
nobody.example|409|1001|DNS resolution error
EOF
  for host in shop.customer.example www.saas.example app.saas.example anything.tenants.saas.example; do
    req "$host"
    check "$host: 200 from the origin with account acct-saas" echo_ok "$host" acct-saas
  done

  echo "== the account header"
  req shop.customer.example -H "x-cname-guard-account: acct-client" -H "X-Cname-Guard-Account: root"
  check "shop.customer.example with spoofed account headers: the origin sees one, acct-saas" \
    echo_ok shop.customer.example acct-saas
  check "the origin's echo reads \"account\":\"acct-saas\"" has '"account":"acct-saas"'

  echo "== content negotiation"
  for accept in "application/json" "application/problem+json" "text/html;q=0.5, application/json"; do
    req "$seed" -H "Accept: $accept"
    check "Accept: $accept -> 409 application/problem+json, error_code 1014" eval '
      is "$STATUS" 409 && is "$(header content-type)" application/problem+json && is "$(json status)" 409 &&
      is "$(json error_code)" 1014 && is "$(json error_name)" "CNAME cross-user banned" && is "$(json host)" "$seed" &&
      is "$(json ray_id)" "$(header cf-ray)" && is "$(json retryable)" false && is "$(json owner_action_required)" true'
  done
  req "$seed" -H "Accept: text/plain"
  check "Accept: text/plain -> error code: 1014" \
    eval 'is "$(header content-type)" "text/plain; charset=UTF-8" && is "$(body)" "error code: 1014"'
  req "$seed"
  local length
  length=$(header content-length)
  # HEAD over a raw connection (curl would not show bytes after the headers).
  raw_head "$seed"
  check "HEAD: 409, no body, the content-length of the page" \
    eval 'is "$STATUS" 409 && [[ ! -s $BODY ]] && is "$(header content-length)" "$length" && ray_ok'

  echo "== refused without a lookup"
  for host in 192.0.2.1 192.0.2.7:8080 "[2001:db8::1]"; do
    req "$host"
    check "$host: 403, Error 1003" \
      eval 'is "$STATUS" 403 && has "Error 1003: Direct IP access not allowed" && ray_ok'
  done
  for host in bad_host a..b exa_mple.com "example.com:http" 1.2.3.4.5; do
    req "$host"
    check "$host: 400, text/plain" \
      eval 'is "$STATUS" 400 && is "$(header content-type)" "text/plain; charset=UTF-8" && has "400 Bad Request"'
  done
  # Envoy's HTTP/1 codec refuses these before any filter runs: still 400.
  for host in "<script>.example" "bad host.example"; do
    req "$host"
    check "$host: 400 (from Envoy's codec)" is "$STATUS" 400
  done

  echo "== metrics and the two lookup replicas"
  check "denied_1014 counted" ge "$(counter denied_1014)" 1
  check "allowed counted" ge "$(counter allowed)" 5
  check "bad_request counted" ge "$(counter bad_request)" 5
  check "both lookup replicas healthy in Envoy" is "$(healthy_lookups)" 2
  check "both lookup replicas answered lookups" eval '
    [[ $(curl -s "$ADMIN/clusters" | grep -E "^cname_guard_lookup_replicas::.*::rq_total::[1-9]" | wc -l) -eq 2 ]]'
  check "lookup-1's /metrics (Prometheus text) counts its lookups" lookups_counted "$LOOKUP1"
  check "lookup-2's /metrics (Prometheus text) counts its lookups" lookups_counted "$LOOKUP2"


  echo "== propagation: a change through lookup-1's API reaches both Envoys"
  local brand=custom.brand.example id t0 ms
  check "both Envoys poll the change feed" eval 'ge "$(counter changes.polls)" 1 && ge "$(counter changes.polls "$ADMIN2")" 1'
  # Cached on both Envoys first (TTL 5 s): a verdict seen within 2 s is the feed's doing.
  check "$brand: 1014 on both Envoys before it is a custom hostname" \
    eval 'is "$(code_at "$EDGE" "$brand")" 409 && is "$(code_at "$EDGE2" "$brand")" 409'
  local applied1 applied2
  applied1=$(counter changes.applied) applied2=$(counter changes.applied "$ADMIN2")
  api POST "$API1/v1/accounts/acct-saas/custom_hostnames" "{\"hostname\": \"$brand\"}"
  id=$(json id)
  check "POST custom_hostnames through lookup-1: 201, active (its CNAME is in place)" \
    eval 'is "$STATUS" 201 && is "$(json status)" active'
  ms=$(until_both 200 "$brand")
  check "$brand: 200 on both Envoys ${ms} ms after lookup-1's answer (< ${PROPAGATION_MS} ms)" \
    eval '[[ $ms =~ ^[0-9]+$ ]] && ((ms < PROPAGATION_MS))'
  check "the feed evicted it on both Envoys (changes.applied went up)" \
    eval '(( $(counter changes.applied) > applied1 && $(counter changes.applied "$ADMIN2") > applied2 ))'
  check "$brand: served as acct-saas" eval 'req "$brand" && echo_ok "$brand" acct-saas'
  api GET "$API2/v1/accounts/acct-saas/custom_hostnames/$id"
  check "lookup-2's API answers the same record (one PostgreSQL)" \
    eval 'is "$STATUS" 200 && is "$(json hostname)" "$brand" && is "$(json status)" active'

  echo "== HTTPS: the certificate from Pebble, HTTP-01 through the edge, served by both Envoys"
  wait_until "$ISSUE_DEADLINE" eval 'api GET "$API1/v1/accounts/acct-saas/custom_hostnames/$id" && [[ $(ssl_field status) == active ]]'
  api GET "$API1/v1/accounts/acct-saas/custom_hostnames/$id"
  check "$brand: ssl.status active (Pebble validated through envoy-1)" \
    eval 'is "$(ssl_field status)" active && is "$(ssl_field method)" http'
  local issuing=$TMP/pebble-issuing-root.pem
  check "Pebble's issuing root from its management port" \
    eval 'curl -sS --fail --cacert "$PEBBLE_TLS_ROOT" "$PEBBLE_MGMT/roots/0" -o "$issuing"'
  check "$brand over HTTPS on envoy-1: 200, the certificate verifies against Pebble's root" \
    eval 'is "$(https_code "$HTTPS_PORT" "$brand" "$issuing")" 200'
  check "$brand over HTTPS on envoy-2: 200 (its own SDS stream)" \
    eval 'is "$(https_code "$HTTPS2_PORT" "$brand" "$issuing")" 200'
  BODY=$TMP/body
  STATUS=$(curl -s -o "$BODY" -w '%{http_code}' --max-time 5 --cacert "$issuing" \
    --resolve "$brand:$HTTPS_PORT:127.0.0.1" "https://$brand:$HTTPS_PORT/" 2>/dev/null) || true
  check "$brand over HTTPS: the filter ran, served as acct-saas" \
    eval 'is "$STATUS" 200 && is "$(json host)" "$brand:$HTTPS_PORT" && is "$(json account)" acct-saas'

  check "a name without a certificate fails the handshake" \
    eval 'is "$(https_code "$HTTPS_PORT" nobody.brand.example "$issuing")" 000'

  api PATCH "$API1/v1/accounts/acct-saas/custom_hostnames/$id" '{"status": "blocked"}'
  ms=$(until_both 409 "$brand")
  check "PATCH status blocked through lookup-1: 200" eval 'is "$STATUS" 200 && is "$(json status)" blocked'
  check "$brand: 1014 on both Envoys ${ms} ms after the block (< ${PROPAGATION_MS} ms)" \
    eval '[[ $ms =~ ^[0-9]+$ ]] && ((ms < PROPAGATION_MS))'
  check "the feed evicted it again on both Envoys" \
    eval '(( $(counter changes.applied) > applied1 + 1 && $(counter changes.applied "$ADMIN2") > applied2 + 1 ))'
  wait_until 5 eval '[[ $(https_code "$HTTPS_PORT" "$brand" "$issuing") == 000 && $(https_code "$HTTPS2_PORT" "$brand" "$issuing") == 000 ]]'
  check "$brand blocked: its certificate withdrawn from both Envoys (new handshakes fail)" \
    eval 'is "$(https_code "$HTTPS_PORT" "$brand" "$issuing")" 000 && is "$(https_code "$HTTPS2_PORT" "$brand" "$issuing")" 000'

  echo "== a replica killed under load"
  load_start
  load_until 40
  if docker kill "$(compose ps -q lookup-2)" >/dev/null 2>&1; then ok "docker kill lookup-2 under load"; else fail "docker kill lookup-2"; fi
  local before=$LOADED
  load_until $((before + 150))
  load_stop
  check "no request lost: $LOADED requests (a fresh host each, so a lookup each), all 200" \
    eval 'is "$(sort "$TMP/load" | uniq -c | awk "{print \$2\":\"\$1}" | tr "\n" " ")" "200:$LOADED "'
  log "lookups retried on the other replica: envoy-1 $(retries "$ADMIN"), envoy-2 $(retries "$ADMIN2")"
  compose start lookup-2 >/dev/null 2>&1 || fail "compose start lookup-2"
  wait_until 30 both_healthy
  check "lookup-2 back and healthy in both Envoys" both_healthy

  echo "== a replica cut off from PostgreSQL"
  local l2 l2ip
  l2=$(compose ps -q lookup-2)
  l2ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${PROJECT}_default\").IPAddress}}" "$l2")
  if docker network disconnect "${PROJECT}_db" "$l2" >/dev/null 2>&1; then ok "lookup-2 disconnected from ${PROJECT}_db"
  else fail "docker network disconnect ${PROJECT}_db lookup-2"; fi
  # The whole state is waited for, not its first part and then checked once.
  check "lookup-2 ($l2ip) fails /readyz: failed_active_hc in both Envoys, lookup-1 healthy" eval '
    wait_until 20 only_lookup1_healthy "$l2ip" || { health_flags >&2; false; }'
  local cut=cut-$run.tenants.saas.example
  check "$cut: 200 on both Envoys meanwhile (lookup-1 answers)" \
    eval 'is "$(code_at "$EDGE" "$cut")" 200 && is "$(code_at "$EDGE2" "$cut")" 200'
  if docker network connect "${PROJECT}_db" "$l2" >/dev/null 2>&1; then ok "lookup-2 reconnected"
  else fail "docker network connect ${PROJECT}_db lookup-2"; fi
  wait_until 30 both_healthy
  check "lookup-2 healthy again in both Envoys" both_healthy

  echo "== failure mode: both lookup replicas stopped"
  local cached fresh
  cached=cached-$run.tenants.saas.example
  fresh=new-$run.tenants.saas.example
  req "$cached"
  check "$cached: 200 before the outage (now cached)" echo_ok "$cached" acct-saas
  if compose stop lookup-1 lookup-2 >/dev/null 2>&1; then ok "stopped lookup-1 and lookup-2"; else fail "compose stop lookup-1 lookup-2"; fi
  req "$fresh"
  check "$fresh (not cached): 503, Ownership lookup unavailable, retry-after: 5" eval '
    is "$STATUS" 503 && is "$(header retry-after)" 5 && is "$(header server)" cloudflare && ray_ok &&
    has "Ownership lookup unavailable"'
  req "$fresh" -H "Accept: application/json"
  check "$fresh as JSON: 503 problem, retryable" eval '
    is "$STATUS" 503 && is "$(header content-type)" application/problem+json && is "$(json retryable)" true'
  req "$cached"
  check "$cached: still 200 from the cache during the outage" echo_ok "$cached" acct-saas
  check "failure_mode_denied counted" ge "$(counter failure_mode_denied)" 2

  echo "== recovery"
  if compose start lookup-1 lookup-2 >/dev/null 2>&1; then ok "started lookup-1 and lookup-2"; else fail "compose start lookup-1 lookup-2"; fi
  local deadline=$((SECONDS + RECOVERY_DEADLINE)) t0=$SECONDS
  while ((SECONDS < deadline)) && [[ $(code "$fresh") != 200 ]]; do sleep 0.2; done
  req "$fresh"
  check "$fresh: 200 with acct-saas again (after $((SECONDS - t0))s)" echo_ok "$fresh" acct-saas
  while ((SECONDS < deadline)) && [[ $(healthy_lookups) != 2 ]]; do sleep 0.2; done
  check "both lookup replicas healthy again" is "$(healthy_lookups)" 2
  req pending.customer.example -H "Accept: application/json"
  check "verdicts still served: pending.customer.example 530, error_code 1016" \
    eval 'is "$STATUS" 530 && is "$(json error_code)" 1016'

  echo "== PostgreSQL stopped"
  local known=known-$run.tenants.saas.example unknown=unknown-$run.tenants.saas.example stale0
  check "$known: 200 on both Envoys before the outage (now cached, TTL 5 s)" \
    eval 'is "$(code_at "$EDGE" "$known")" 200 && is "$(code_at "$EDGE2" "$known")" 200'
  stale0=$(counter cache.stale_served)
  if compose stop postgres >/dev/null 2>&1; then ok "stopped postgres"; else fail "compose stop postgres"; fi
  # Past its TTL, the refresh fails and the stale answer stands in.
  wait_until 30 stale_served_since "${stale0:-0}" "$known"
  check "$known: 200 past its TTL (stale-if-error, cache.stale_served counted)" \
    eval 'stale_served_since "${stale0:-0}" "$known" && req "$known" && echo_ok "$known" acct-saas'
  req "$unknown"
  check "$unknown (never seen): 503, Ownership lookup unavailable" eval '
    is "$STATUS" 503 && has "Ownership lookup unavailable"'
  if compose start postgres >/dev/null 2>&1; then ok "started postgres"; else fail "compose start postgres"; fi
  deadline=$((SECONDS + RECOVERY_DEADLINE)) t0=$SECONDS
  while ((SECONDS < deadline)) && [[ $(code "$unknown") != 200 || $(code_at "$EDGE2" "$unknown") != 200 ]]; do
    sleep 0.2
  done
  check "$unknown: 200 on both Envoys once PostgreSQL is back (after $((SECONDS - t0))s)" \
    eval 'is "$(code_at "$EDGE" "$unknown")" 200 && is "$(code_at "$EDGE2" "$unknown")" 200'
  wait_until 30 both_healthy
  check "both replicas ready again in both Envoys" both_healthy

  echo "== DNS down: the DNS container stopped"
  # Read whole: `grep -q` would close the pipe early, and pipefail is on.
  check "the DNS container answered the lookups' questions" eval '
    [[ $(compose logs --no-color dns 2>/dev/null) == *"query: custom.myclientsite.com IN CNAME"* ]]'
  local nodns=nodns-$run.tenants.saas.example
  if compose stop dns >/dev/null 2>&1; then ok "stopped dns"; else fail "compose stop dns"; fi
  req "$nodns"
  check "$nodns: 503, Ownership lookup unavailable (a lookup failure, not 1016)" eval '
    is "$STATUS" 503 && has "Ownership lookup unavailable"'
  req "$cached"
  check "$cached: still 200 from the cache" echo_ok "$cached" acct-saas
  if compose start dns >/dev/null 2>&1; then ok "started dns"; else fail "compose start dns"; fi
  deadline=$((SECONDS + RECOVERY_DEADLINE)) t0=$SECONDS
  while ((SECONDS < deadline)) && [[ $(code "$nodns") != 200 ]]; do sleep 0.2; done
  req "$nodns"
  check "$nodns: 200 with acct-saas once DNS is back (after $((SECONDS - t0))s)" echo_ok "$nodns" acct-saas
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((FAILED > 0 || rc != 0)); then
    echo "--- compose logs (last 40 lines per service)"
    compose logs --no-color --tail 40 2>&1 | sed 's/^/    /'
  fi
  # The load loop, if a run stopped in the middle of it.
  if [[ -n $LOAD_PID ]]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
  log "down"
  down >/dev/null 2>&1 || down
  [[ -n $TMP ]] && rm -rf "$TMP"
  if ((rc != 0 && FAILED == 0)); then fail "the run stopped early (exit $rc)"; fi
  if ((rc == 0 && FAILED > 0)); then rc=1; fi
  log "took $((SECONDS - T0))s"
  echo "$PASSED passed, $FAILED failed"
  exit "$rc"
}

T0=$SECONDS
run_test() {
  TMP=$(mktemp -d)
  chmod 755 "$TMP"   # files in it are mounted into containers (uid 101)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  preflight
  down >/dev/null 2>&1 || true   # a stack left by an interrupted run
  up
  assertions
  ((FAILED == 0))
}

case ${1:-test} in
  test) run_test ;;
  up) up ;;
  wait) wait_ready ;;
  down) down ;;
  *) die "usage: $0 [test|up|wait|down]" ;;
esac
