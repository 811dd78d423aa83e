#!/usr/bin/env bash
# Where does cname-guard's cached path spend its time? Builds modified copies
# of the filter OUTSIDE the repository (src/ is never touched) and measures
# them side by side with B (no-op) and C (cname-guard as is), host cached.
# The cached path (src/filter.rs, local_allow) makes three host calls: the
# :authority read, the clock read and the account header write; its metric
# counts are tallied in the VM and added on the slow path (Worker::flush).
#
#   bare       without the clock read and the header write: the :authority
#              read and cname-guard's own Rust code only
#   noclock    without the clock read (a fresh local entry is any entry)
#   noheader   without the account header write
#   mN         N metric increments per request (cname_guard.requests), the
#              cost the tally saves
#   cN         the clock read done N times             (+(N-1) get_current_time_nanoseconds)
#   hN         the header write done N times           (+(N-1) replace_header_map_value)
#   aN         the :authority read done N times        (+(N-1) get_header_map_value)
#   clear      noheader, with Envoy's clear_route_cache foreign function instead of the write:
#              what clearing the route cache costs (the router matches again)
#   wclear     the header write and that clear both: wclear - C is the clear's call
#              alone if the write already cleared the route cache
#   clone2     one extra copy of the :authority bytes (for norm2)
#   norm2      normalization done twice (on a copy): norm2 - clone2 = normalize
#   hash2      one extra SipHash of the host (the map's hasher)
#   local2     the worker-map lookup done twice: hash, probe, compare, tally
#
# BENCH_VARIANTS="bare clear" picks variants (default: the first seven);
# BENCH_VARIANTS_BUILD_ONLY=1 builds them into $work/wasm and stops, for
# `scripts/bench_callgrind.py --variant` and for fuel (CNAME_GUARD_WASM=$work/wasm/V.wasm
# cargo test -p cname-guard-host --release --test fuel fuel_per_request -- --nocapture).
#
# N is BENCH_VARIANT_REPEAT (default 100): a host call costs well under a
# microsecond and a run's Envoy CPU per request wanders by a few, so the
# calls are multiplied until they stand out. Per-call cost = (variant - C) /
# added calls, in Envoy CPU per request; a call repeated in a tight loop is
# the cheap case (caches warm), so these are lower bounds.
# Arguments go to scripts/bench.py (e.g. --rounds 7 --duration 8).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_VARIANTS_DIR:-/tmp/cname-guard-bench-variants}
case "$work" in "$root"|"$root"/*) echo "BENCH_VARIANTS_DIR must be outside the repository" >&2; exit 2;; esac
mkdir -p "$work/wasm"
export CARGO_TARGET_DIR="$work/target"

# The trimming `make wasm` does after cargo (crates/wasm-trim), built in this checkout's target/.
CARGO_TARGET_DIR="$root/target" cargo build -q -p cname-guard-wasm-trim
trim=("$root/target/debug/cname-guard-wasm-trim")

n=${BENCH_VARIANT_REPEAT:-100}
read -r -a variants <<<"${BENCH_VARIANTS:-bare noclock noheader m$n c$n h$n a$n}"
for v in "${variants[@]}"; do
  echo "== variant $v"
  rm -rf "$work/$v" && mkdir -p "$work/$v"
  mkdir -p "$work/$v/crates"
  cp -r src Cargo.lock "$work/$v/"
  cp -r crates/core "$work/$v/crates/"   # the shared logic, a path dependency
  # The package alone: the root manifest without the workspace sections.
  python3 - "$root/Cargo.toml" "$work/$v/Cargo.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
sections = re.split(r"(?m)^(?=\[)", text)
keep = [s for s in sections if not s.startswith(("[workspace]", "[dev-dependencies]"))]
open(sys.argv[2], "w").write("".join(keep).rstrip() + "\n\n[workspace]\n")
PY
  python3 - "$work/$v/src/filter.rs" "$v" "$n" <<'PY'
import re, sys
path, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = open(path).read()

def sub(pattern, repl, count=1):
    """Exactly `count` matches of a regex, or the variant is refused."""
    global src
    found = len(re.findall(pattern, src))
    if found != count:
        sys.exit(f"{variant}: {pattern!r} matched {found} times in src/filter.rs, expected {count}; "
                 "the filter changed: update scripts/bench-variants.sh")
    src = re.sub(pattern, repl, src)

COUNT = r"w\.count_request\(\);"
CLOCK = r"let now = now_ms\(\);"
# The account header write, on both cached forms (canonical and normalized).
HEADER = r"return stamp\(&self\.cfg\.account_header, account\);"
AUTHORITY = r"let raw = hostcalls::get_map_value_bytes\(MapType::HttpRequestHeaders, \":authority\"\)"
SLOW = r"w\.flush\(\);\n(\s*)if let Lookup::Fresh"
# The cached path's lookup of the authority as it came.
FAST = r"if let Some\(account\) = std::str::from_utf8\(&raw\)\.ok\(\)\.and_then\(\|h\| w\.local_allow\(h, now\)\) \{"

if variant in ("bare", "noclock"):
    # A fresh local entry is any local entry (now = 0); the clock is read
    # past the cached path only.
    sub(CLOCK, "let now = 0u64;")
    sub(SLOW, r"let now = now_ms();\n\1\g<0>")
if variant in ("bare", "noheader"):
    sub(HEADER, "let _ = account; return Action::Continue;", count=2)
if variant == f"m{n}":
    sub(COUNT, rf"\g<0>\n        for _ in 0..{n} {{ metrics::inc(w.metrics.requests); }}")
if variant == f"c{n}":
    sub(CLOCK, rf"for _ in 0..{n - 1} {{ std::hint::black_box(now_ms()); }}\n        \g<0>")
if variant == f"h{n}":
    sub(HEADER, rf"for _ in 0..{n - 1} {{ let _ = stamp(&self.cfg.account_header, account); }} \g<0>", count=2)
if variant == "clear":
    # Envoy offers it as a foreign function (ABI 0.2 has no proxy_clear_route_cache).
    sub(HEADER, "let _ = account; let _ = hostcalls::call_foreign_function(\"clear_route_cache\", None); "
                "return Action::Continue;", count=2)
if variant == "wclear":
    # The write and an explicit clear: the route is matched again once, not twice.
    sub(HEADER, "let _ = hostcalls::call_foreign_function(\"clear_route_cache\", None); \\g<0>", count=2)
if variant == "clone2":
    sub(FAST, "std::hint::black_box(raw.clone());\n        \\g<0>")
if variant == "norm2":
    sub(FAST, "let _ = std::hint::black_box(authority::normalize(raw.clone()));\n        \\g<0>")
if variant == "hash2":
    sub(FAST, "{ use std::hash::BuildHasher; std::hint::black_box("
              "std::collections::hash_map::RandomState::new().hash_one(&raw[..])); }\n        \\g<0>")
if variant == "local2":
    sub(FAST, "std::hint::black_box(std::str::from_utf8(&raw).ok().and_then(|h| w.local_allow(h, now)).is_some());"
              "\n        \\g<0>")
if variant == f"a{n}":
    sub(AUTHORITY, f"for _ in 0..{n - 1} {{ std::hint::black_box(hostcalls::get_map_value_bytes("
                   "MapType::HttpRequestHeaders, \":authority\").ok()); }\n        \\g<0>")
open(path, "w").write(src)
PY
  built="$CARGO_TARGET_DIR/wasm32-wasip1/release/cname_guard.wasm"
  rm -f "$built"
  if ! (cd "$work/$v" && cargo build --release --target wasm32-wasip1 --offline) >"$work/$v/build.log" 2>&1; then
    tail -30 "$work/$v/build.log" >&2; echo "variant $v did not build" >&2; exit 1
  fi
  cp "$built" "$work/wasm/$v.wasm"
  # As `make wasm` does, from the variant's own source (this checkout's tool).
  "${trim[@]}" --src "$work/$v/src" "$work/wasm/$v.wasm" >/dev/null
  rm -f "$built"
  echo "   $work/wasm/$v.wasm ($(stat -c %s "$work/wasm/$v.wasm") bytes)"
done

if [ -n "${BENCH_VARIANTS_BUILD_ONLY:-}" ]; then exit 0; fi
args=()
for v in "${variants[@]}"; do args+=(--variant "$v=$work/wasm/$v.wasm"); done
only="B,C,$(IFS=,; echo "${variants[*]}")"
BENCH_FUEL=0 python3 scripts/bench.py --only "$only" "${args[@]}" --latency-rounds 0 --no-write \
  --json "$work/medians.json" "$@" | tee "$work/results.txt"
python3 - "$work/medians.json" "$n" <<'PY' | tee -a "$work/results.txt"
import json, sys
m, n = json.load(open(sys.argv[1])), int(sys.argv[2])
us = {k: v["cpu_ns_per_req"] / 1000 for k, v in m.items() if v["cpu_ns_per_req"]}
c = us["C"]
print(f"\n-- per host call (Envoy CPU per request, medians; C = {c:.2f} us, B = {us['B']:.2f} us)")
print(f"   C - B (cname-guard's cached path over a no-op filter): {c - us['B']:+.2f} us")
print(f"   C - bare (clock read, header write):                   {c - us['bare']:+.2f} us")
print(f"   C - noclock (clock read):                              {c - us['noclock']:+.2f} us")
print(f"   C - noheader (header write, and the header upstream):  {c - us['noheader']:+.2f} us")
print(f"   bare - B (cname-guard's own code; both read :authority): {us['bare'] - us['B']:+.2f} us")
for key, calls, what in ((f"m{n}", n, "proxy_increment_metric"),
                         (f"c{n}", n - 1, "proxy_get_current_time_nanoseconds"),
                         (f"h{n}", n - 1, "proxy_replace_header_map_value (account header)"),
                         (f"a{n}", n - 1, "proxy_get_header_map_value (:authority, + the VM malloc it calls)")):
    print(f"   {what:<66} {(us[key] - c) / calls * 1000:6.0f} ns per call ({calls} added)")
PY
echo "bench-variants: results in $work/results.txt"
