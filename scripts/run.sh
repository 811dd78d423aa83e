#!/usr/bin/env bash
# The demo stack on loopback, in the foreground: BIND serving the demo zones
# (envoy/dns/), Pebble as the ACME CA, the lookup service asking both, the
# origin, and Envoy with cname-guard. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

DNS_PORT=${CNAME_GUARD_DEMO_DNS_PORT:-5353}
NAMED=$(command -v named || echo /usr/sbin/named)
pids=()
dns_dir=$(mktemp -d "${TMPDIR:-/tmp}/cname-guard-demo-dns.XXXXXX")
# A fresh store each run, and an admin token only this run knows.
admin_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dns_dir"
}
trap cleanup EXIT INT TERM

# named works on copies: dynamic updates write journals beside the zones.
# It also resolves for loopback (CNAMEs chased across its zones), as the
# public resolvers a CA validates with do.
cp envoy/dns/*.zone "$dns_dir/"
NAMED_RECURSION=yes bash scripts/named-conf.sh "$dns_dir" "$DNS_PORT" > "$dns_dir/named.conf"
: > "$dns_dir/named.log"
"$NAMED" -g -c "$dns_dir/named.conf" 2> "$dns_dir/named.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q 'running$' "$dns_dir/named.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$dns_dir/named.log" >&2; echo "named did not start" >&2; exit 1; }
  sleep 0.1
done
grep -q 'running$' "$dns_dir/named.log" || { echo "named did not come up on port $DNS_PORT" >&2; exit 1; }

wait_http() { # url, name
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not come up ($1)" >&2
  exit 1
}

# Pebble, the ACME test CA: its directory's TLS certificate made here, its
# HTTP-01 fetches sent to the edge (Envoy, port 10000), its DNS to BIND.
ca=$dns_dir/pebble
mkdir -p "$ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
  -subj "/CN=cname-guard demo Pebble TLS root" -keyout "$ca/root.key" -out "$ca/root.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$ca/key.pem" -out "$ca/cert.csr" 2>/dev/null
openssl x509 -req -in "$ca/cert.csr" -CA "$ca/root.pem" -CAkey "$ca/root.key" -CAcreateserial -days 7 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n') -out "$ca/cert.pem" 2>/dev/null
cat > "$ca/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$ca/cert.pem", "privateKey": "$ca/key.pem", "httpPort": 10000, "tlsPort": 10001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$ca/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" -strict=false \
  >"$ca/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q 'Listening on' "$ca/pebble.log" && break
  sleep 0.1
done
grep -q 'Listening on' "$ca/pebble.log" || { cat "$ca/pebble.log" >&2; echo "pebble did not come up on 127.0.0.1:14000" >&2; exit 1; }
# The key-encryption key: certificates' private keys are sealed under it.
openssl rand -hex 32 > "$dns_dir/kek"
# The token Envoy shows the SDS server (node.metadata in envoy/envoy*.yaml).
echo demo-xds-token-change-me > "$dns_dir/xds-token"

CNAME_GUARD_ADMIN_TOKEN=$admin_token target/release/cname-guard-lookup serve \
  --database "sqlite:$dns_dir/store.db" --import envoy/registry.json \
  --listen 127.0.0.1:8081 --admin-listen 127.0.0.1:8091 \
  --dns-server "127.0.0.1:$DNS_PORT" --verifier off \
  --acme-directory https://127.0.0.1:14000/dir --acme-ca-root "$ca/root.pem" --kek-file "$dns_dir/kek" --acme-retry-min 5s \
  --xds-listen 127.0.0.1:8093 --xds-token-file "$dns_dir/xds-token" \
  >/dev/null 2>"$dns_dir/lookup.log" &
pids+=($!)
target/release/cname-guard-origin --name demo-origin --listen 127.0.0.1:8082 >/dev/null &
pids+=($!)
wait_http http://127.0.0.1:8081/healthz "cname-guard-lookup"
wait_http http://127.0.0.1:8082/healthz "cname-guard-origin"
# Something else may answer on those ports: ours must be the ones alive.
for i in 1 2 3; do kill -0 "${pids[$i]}" 2>/dev/null || { echo "a demo service exited (port 14000, 15000, 8081 or 8082 in use?)" >&2; exit 1; }; done

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

dig="dig @127.0.0.1 -p $DNS_PORT"
show() { # host, what it answers
  printf '  curl -i -H %-30s http://127.0.0.1:10000/   # %s\n' "'Host: $1'" "$2"
  printf '  %s %s CNAME +short\n\n' "$dig" "$1"
}

cat <<TXT

cname-guard demo edge on http://127.0.0.1:10000 (admin http://127.0.0.1:9901), DNS (BIND, the
zones of envoy/dns/) on 127.0.0.1:$DNS_PORT. Try each request, and dig beside it:

TXT
show custom.myclientsite.com "409, Error 1014 (the seed)"
show shop.customer.example "200, x-cname-guard-account: acct-saas"
show pending.customer.example "530, Error 1016"
show broken.saas.example "530, Error 1016"
show www.frozen.example "403, Error 1004"
show nobody.example "409, Error 1001"
cat <<TXT
  curl -i -H 'Host: 192.0.2.1' http://127.0.0.1:10000/                   # 403, Error 1003
  curl -i -H 'Host: bad_host' http://127.0.0.1:10000/                    # 400
  curl -s -H 'Host: custom.myclientsite.com' -H 'Accept: application/json' http://127.0.0.1:10000/
  curl -s http://127.0.0.1:9901/stats | grep cname_guard

Change DNS and watch the verdict follow within the TTL (60 s here, 30 s for a name that did not exist):

  printf 'server 127.0.0.1 $DNS_PORT\nzone example\nupdate add new.customer.example. 60 IN CNAME edge.saas.example.\nsend\n' | nsupdate
  curl -i -H 'Host: new.customer.example' http://127.0.0.1:10000/        # 409 1001, then 1014

Take a hostname from 1014 to active: custom.brand.example already CNAMEs into acct-saas's zone
(real-time validation), so creating it as acct-saas's custom hostname makes it active at once.
The management API is on http://127.0.0.1:8091 (admin token below; docs/api.md):

  export CNAME_GUARD_TOKEN=$admin_token
  curl -i -H 'Host: custom.brand.example' http://127.0.0.1:10000/        # 409, Error 1014
  curl -s -H "authorization: Bearer \$CNAME_GUARD_TOKEN" -H 'content-type: application/json' \\
    -d '{"hostname": "custom.brand.example"}' http://127.0.0.1:8091/v1/accounts/acct-saas/custom_hostnames
  # or: target/release/cname-guard-lookup hostnames add acct-saas custom.brand.example
  curl -i -H 'Host: custom.brand.example' http://127.0.0.1:10000/        # 200 once the filter's cached 1014 expires (<= 60 s)
  target/release/cname-guard-lookup hostnames list acct-saas
  target/release/cname-guard-lookup diagnose custom.brand.example

Its certificate comes from Pebble (the ACME CA on 127.0.0.1:14000) within seconds: Pebble fetches
http://custom.brand.example/.well-known/acme-challenge/... from this edge, whose ACME route hands
it to the lookup service ahead of the filter (docs/certificates.md):

  target/release/cname-guard-lookup hostnames list acct-saas --hostname custom.brand.example   # "ssl": {"status": "active", ...}
  curl -s -H "authorization: Bearer \$CNAME_GUARD_TOKEN" \
    http://127.0.0.1:8091/v1/accounts/acct-saas/custom_hostnames/ID/ssl/certificate | openssl x509 -noout -subject -issuer -enddate

Envoy serves it on https://127.0.0.1:10443, fetched by SNI from the service's SDS listener (docs/tls.md);
verify it against Pebble's root:

  curl -s --cacert $ca/root.pem https://127.0.0.1:15000/roots/0 > $ca/issuing-root.pem
  curl -i --cacert $ca/issuing-root.pem --resolve custom.brand.example:10443:127.0.0.1 https://custom.brand.example:10443/

The store is $dns_dir/store.db (fresh each run, envoy/registry.json imported). The background
verifier is off here so the table above holds (pending and moved hosts CNAME into acct-saas,
which proves them); \`serve\` runs it by default. Ctrl-C to stop.
TXT
wait "${pids[4]}"
