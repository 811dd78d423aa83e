#!/usr/bin/env bash
# Prints a named.conf for an authoritative-only BIND serving every
# ZONE_DIR/<zone>.zone as a primary with dynamic updates (RFC 2136) from
# loopback. Used by the tests, `make run` and the compose DNS image.
#   scripts/named-conf.sh DIR PORT [ZONE_DIR] [UPDATE_FROM] [ZONE_PATH]
# DIR: named's working directory (pid, keys); PORT: UDP and TCP; ZONE_DIR:
# where the zone files are now [DIR]; UPDATE_FROM: who may send updates
# [127.0.0.1; `none` for nobody]; ZONE_PATH: where named will find the zone
# files, when not ZONE_DIR (an image) [ZONE_DIR]. Journals go beside them.
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
  printf 'zone "%s" { type primary; file "%s/%s"; allow-update { %s; }; };\n' "$zone" "$zone_path" "$(basename "$f")" "$update"
done
