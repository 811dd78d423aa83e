#!/usr/bin/env bash
# Prints a named.conf for an authoritative-only BIND serving every
# ZONE_DIR/<zone>.zone as a primary with dynamic updates (RFC 2136) from
# loopback. Used by the tests, `make run` and the compose DNS image.
#   scripts/named-conf.sh DIR PORT [ZONE_DIR] [UPDATE_FROM] [ZONE_PATH]
# DIR: named's working directory (pid, keys); PORT: UDP and TCP; ZONE_DIR:
# where the zone files are now [DIR]; UPDATE_FROM: who may send updates
# [127.0.0.1; `none` for nobody]; ZONE_PATH: where named will find the zone
# files, when not ZONE_DIR (an image) [ZONE_DIR]. Journals go beside them.
# NAMED_RECURSION=yes: also a resolver (for BIND's default clients, local
# networks; NAMED_RECURSION_FROM="ADDR; ..." for those only), which chases
# CNAMEs across the zones it serves (an ACME CA's validation needs that).
# NAMED_KEY_FILE=FILE NAMED_KEY_ZONES="ZONE ...": include FILE (a BIND key
# file, as `tsig-keygen NAME` prints it); those zones accept updates signed
# with that key only, not UPDATE_FROM (delegated DCV, lookup/tests/dcv.rs).
set -euo pipefail
dir=$1 port=$2 zones=${3:-$1} update=${4:-127.0.0.1}
zone_path=${5:-$zones}
cat <<CONF
options {
  directory "$dir";
  listen-on port $port { any; };
  listen-on-v6 { none; };
  pid-file "$dir/named.pid";
  session-keyfile "$dir/session.key";
  managed-keys-directory "$dir";
  recursion ${NAMED_RECURSION:-no};
CONF
[ -n "${NAMED_RECURSION_FROM:-}" ] && printf '  allow-recursion { %s; };\n' "$NAMED_RECURSION_FROM"
cat <<CONF
  dnssec-validation no;
  notify no;
  # named -g logs to stderr, one line per question.
  querylog yes;
};
controls { };
CONF
key_zones=" ${NAMED_KEY_ZONES:-} "
if [ -n "${NAMED_KEY_FILE:-}" ]; then
  key=$(sed -n 's/^[[:space:]]*key[[:space:]]*"\{0,1\}\([^"[:space:]{]*\)"\{0,1\}.*/\1/p;T;q' "$NAMED_KEY_FILE")
  [ -n "$key" ] || { echo "named-conf.sh: no key statement in $NAMED_KEY_FILE" >&2; exit 1; }
  printf 'include "%s";\n' "$NAMED_KEY_FILE"
fi
for f in "$zones"/*.zone; do
  zone=$(basename "$f" .zone)
  allow=$update
  if [ -n "${NAMED_KEY_FILE:-}" ] && [[ $key_zones == *" $zone "* ]]; then
    allow="key \"$key\""
  fi
  printf 'zone "%s" { type primary; file "%s/%s"; allow-update { %s; }; };\n' "$zone" "$zone_path" "$(basename "$f")" "$allow"
done
