#!/usr/bin/env bash
# Prints a named.conf for an authoritative-only BIND serving every
# ZONE_DIR/<zone>.zone as a primary with dynamic updates (RFC 2136) from
# loopback. Used by the tests, `make run` and the compose DNS image.
#   scripts/named-conf.sh DIR PORT [ZONE_DIR] [UPDATE_FROM]
# DIR: named's working directory (zones, journals, logs); PORT: UDP and TCP.
set -euo pipefail
dir=$1 port=$2 zones=${3:-$1} update=${4:-127.0.0.1}
cat <<CONF
options {
  directory "$dir";
  listen-on port $port { any; };
  listen-on-v6 { none; };
  pid-file "$dir/named.pid";
  session-keyfile "$dir/session.key";
  managed-keys-directory "$dir";
  recursion no;
  dnssec-validation no;
  notify no;
  # named -g logs to stderr, one line per question.
  querylog yes;
};
controls { };
CONF
for f in "$zones"/*.zone; do
  zone=$(basename "$f" .zone)
  printf 'zone "%s" { type primary; file "%s"; allow-update { %s; }; };\n' "$zone" "$f" "$update"
done
