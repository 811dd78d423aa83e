#!/usr/bin/env python3
"""cname-guard benchmarks, side by side, in one run (`make bench`).

Every configuration is the same Envoy (generated from envoy/envoy.yaml: same
listener, route, origin cluster and lookup cluster) with a different HTTP
filter in front of the router:

  A  router only (the ceiling)
  B  a no-op Proxy-Wasm filter that reads :authority (bench/noop)
  C  cname-guard, host cached
  D  cname-guard, cache off, a new host on every request (one lookup each)
  E  Envoy's native ext_authz HTTP filter -> cname-guard-lookup /ext_authz
  M  cname-guard, 90% cached host / 10% new hosts
  X  cname-guard, deny path (Error 1014 page) for a cached host
  Ad, Bd, Cd  A, B and C on a direct_response route (same Envoys, path
     /bench-direct): no upstream, so Envoy and the filter alone

Each Envoy runs with --concurrency 1 pinned to one core, the load generator
(wrk, h2load), the origin and the lookup service on the other. Runs are
interleaved (A B C D E M X, A B C ...) for --rounds rounds. Each run reads
/proc/<envoy>/task/*/schedstat (ns on CPU) and the Envoy counter
http.<stat_prefix>.downstream_rq_completed before and after, so every run
gives requests/s and Envoy CPU per request. Then p50/p99 latency at a fixed
request rate for A, C, E (h2load --rps, per-request log).

Stdlib only. Every process is started on free loopback ports in its own
process group and stopped at the end, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVOY_YAML = ROOT / "envoy" / "envoy.yaml"
REGISTRY = ROOT / "envoy" / "registry.json"
GUARD_WASM = ROOT / "target/wasm32-wasip1/release/cname_guard.wasm"
NOOP_WASM = ROOT / "target/wasm32-wasip1/release/cname_guard_bench_noop.wasm"
# N and N0: Envoy dynamic modules, found through ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
NATIVE_DIR = ROOT / "target/native/modules"
NATIVE_MODULES = {"cname_guard": NATIVE_DIR / "libcname_guard.so",
                  "cname_guard_bench_noop_native": NATIVE_DIR / "libcname_guard_bench_noop_native.so"}
NATIVE_ENV = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(NATIVE_DIR))
LOOKUP_BIN = ROOT / "target/release/cname-guard-lookup"
ORIGIN_BIN = ROOT / "target/release/cname-guard-origin"
WRK_DIR = ROOT / "bench" / "wrk"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RESULTS_JSON = ROOT / "bench" / "results.json"
BEGIN = "<!-- bench:results:begin (written by scripts/bench.py; edits here are overwritten) -->"
END = "<!-- bench:results:end -->"

CACHED_HOST = "www.saas.example"
DENY_HOST = "custom.myclientsite.com"
ACCOUNT = "acct-saas"
BUILTIN = {"A", "B", "C", "D", "E", "M", "X", "N", "N0", "Ad", "Bd", "Cd"}
# The route of the direct-response workloads, answered by Envoy itself.
DIRECT_PATH = "/bench-direct"
DIRECT_BODY = "direct"
DISTURBED = 0.15   # a run is left out when other processes took more of Envoy's core
MIN_CLEAN = 3      # ... as long as this many undisturbed runs remain


def log(msg: str) -> None:
    print(msg, flush=True)


class Stop(Exception):
    """SIGTERM/SIGHUP: unwind through the finally blocks like Ctrl-C."""


def _on_signal(signum, _frame):
    raise Stop(f"signal {signum}")


# --- processes -----------------------------------------------------------------


class Procs:
    """Every child in its own process group; stop_all() ends each group."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.items.append((name, p))
        return p

    def run(self, name: str, argv: list[str], timeout: float, env=None) -> tuple[int, str, str]:
        """A short-lived child (wrk, h2load), tracked while it runs."""
        p = self.start(name, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop(name, p)
            raise RuntimeError(f"{name} did not finish within {timeout:.0f}s")
        finally:
            self.items = [(n, q) for (n, q) in self.items if q is not p]
        return p.returncode, out, err

    @staticmethod
    def _stop(name: str, p: subprocess.Popen) -> None:
        if p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
        log(f"warning: {name} (pid {p.pid}) did not exit")

    def stop_all(self) -> None:
        for name, p in reversed(self.items):
            self._stop(name, p)
        self.items.clear()


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return (["taskset", "-c", str(cpu)] + argv) if cpu is not None else argv


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one handed out before in this
    run (Envoys are started before any of them binds)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def http_get(port: int, path: str, host: str = "127.0.0.1", timeout: float = 5.0) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def start_service(procs: Procs, name: str, argv: list[str], cpu: int | None) -> tuple[subprocess.Popen, int]:
    p = procs.start(name, pinned(cpu, argv + ["--listen", "127.0.0.1:0"]), stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        raise RuntimeError(f"{name} printed {line!r}, not `listening on ADDR`")
    port = int(m.group(1))
    deadline = time.time() + 10
    while True:
        try:
            if http_get(port, "/healthz")[0] == 200:
                return p, port
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{name} did not answer /healthz")
        time.sleep(0.05)


def start_lookup(procs: Procs, scratch: Path, cpu: int | None, extra: list[str],
                 database: str | None = None) -> tuple[subprocess.Popen, int]:
    """The reference lookup service over a BIND serving the demo zones
    (envoy/dns), as `make run` has it: verdicts come from real DNS, platform
    data from a store (`database`, default a fresh SQLite file) with the demo
    registry imported."""
    dns_dir = scratch / "dns"
    dns_dir.mkdir(parents=True, exist_ok=True)
    for z in (ROOT / "envoy" / "dns").glob("*.zone"):
        shutil.copy(z, dns_dir / z.name)
    dns_port = free_port()
    conf = subprocess.run(["bash", str(ROOT / "scripts" / "named-conf.sh"), str(dns_dir), str(dns_port)],
                          capture_output=True, text=True, check=True, timeout=30).stdout
    (dns_dir / "named.conf").write_text(conf)
    named_log = dns_dir / "named.log"
    named = shutil.which("named") or "/usr/sbin/named"
    p = procs.start("named", pinned(cpu, [named, "-g", "-c", str(dns_dir / "named.conf")]),
                    stdout=subprocess.DEVNULL, stderr=open(named_log, "w"))
    deadline = time.time() + 30
    while not re.search(r"running$", named_log.read_text(errors="replace"), re.M):
        if p.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"named did not start:\n{named_log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    database = database or f"sqlite:{scratch / 'store.db'}"
    return start_service(procs, "lookup", [str(LOOKUP_BIN), "serve", "--database", database,
                                           "--import", str(REGISTRY), "--admin-listen", "127.0.0.1:0",
                                           "--verifier", "off",
                                           "--dns-server", f"127.0.0.1:{dns_port}"] + extra, cpu)


# --- Envoy configurations ------------------------------------------------------------


def shipped_plugin_config(text: str) -> dict:
    for line in text.splitlines():
        if line.rstrip().endswith("# plugin-config"):
            m = re.search(r"value:\s*'(.*)'\s*# plugin-config", line)
            if m:
                return json.loads(m.group(1).replace("''", "'"))
    raise RuntimeError("envoy/envoy.yaml lost its `# plugin-config` line")


def stat_prefix(text: str) -> str:
    m = re.search(r"^\s*stat_prefix:\s*(\S+)", text, re.M)
    if not m:
        raise RuntimeError("no stat_prefix in envoy/envoy.yaml")
    return m.group(1)


def merge(base: dict, extra: dict) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


EXT_AUTHZ = """\
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    # Like cname-guard's failure_mode deny: no answer, no request.
    failure_mode_allow: false
    http_service:
      server_uri:
        uri: http://127.0.0.1:{lookup_port}
        cluster: cname_guard_lookup
        timeout: {timeout}
      path_prefix: /ext_authz
      authorization_response:
        # The account reaches the origin, as cname-guard's header does.
        allowed_upstream_headers:
          patterns: [{{ exact: x-cname-guard-account }}]
"""


def envoy_yaml(kind: str, *, port: int, admin: int, lookup_port: int, origin_port: int,
               wasm: Path | None = None, plugin_config: dict | None = None) -> str:
    """envoy/envoy.yaml with the ports of this run and the HTTP filter of
    `kind` (router | wasm | ext_authz) in place of the cname_guard filter."""
    text = ENVOY_YAML.read_text()
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if re.fullmatch(r"\s*- name: cname_guard\s*", l)), None)
    if start is None:
        raise RuntimeError("envoy/envoy.yaml: no `- name: cname_guard` HTTP filter")
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith(indent + "- name: ") or
                (lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) < len(indent))), None)
    if end is None or "envoy.filters.http.router" not in lines[end]:
        raise RuntimeError("envoy/envoy.yaml: the cname_guard filter is not followed by the router")
    block = lines[start:end]
    timeout_ms = (plugin_config or shipped_plugin_config(text)).get("lookup", {}).get("timeout_ms", 500)
    if kind == "router":
        block = []
    elif kind == "wasm":
        assert wasm is not None and plugin_config is not None
        out = []
        for l in block:
            if "filename:" in l and "cname_guard.wasm" in l:
                l = re.sub(r"filename: \S+ ", f"filename: {wasm} ", l)
            elif l.rstrip().endswith("# plugin-config"):
                ind = l[: len(l) - len(l.lstrip())]
                l = f"{ind}value: '{json.dumps(plugin_config).replace(chr(39), chr(39) * 2)}'"
            out.append(l)
        if not any(str(wasm) in l for l in out):
            raise RuntimeError("envoy/envoy.yaml: no `filename: ...cname_guard.wasm` line to replace")
        block = out
    elif kind.startswith("native:"):
        block = native_block(indent, kind.split(":", 1)[1], plugin_config or {})
    elif kind == "ext_authz":
        block = [indent + l for l in EXT_AUTHZ.format(lookup_port=lookup_port, timeout=f"{timeout_ms / 1000}s").splitlines()]
    else:
        raise ValueError(kind)
    lines = lines[:start] + block + lines[end:]
    # A direct_response route before the proxied one: the filter runs the
    # same, the router answers without an upstream.
    route = next((i for i, l in enumerate(lines) if re.fullmatch(r'\s*- match: \{ prefix: "/" \}\s*', l)), None)
    if route is None:
        raise RuntimeError('envoy/envoy.yaml: no `- match: { prefix: "/" }` route')
    ind = lines[route][: len(lines[route]) - len(lines[route].lstrip())]
    lines[route:route] = [f'{ind}- match: {{ path: "{DIRECT_PATH}" }}',
                          f'{ind}  direct_response: {{ status: 200, body: {{ inline_string: "{DIRECT_BODY}" }} }}']
    subs = {"# admin": ("port_value: 9901", admin), "# listener": ("port_value: 10000", port),
            "# lookup": ("port_value: 8081", lookup_port), "# origin": ("port_value: 8082", origin_port)}
    seen = set()
    for i, l in enumerate(lines):
        for marker, (old, new) in subs.items():
            if l.rstrip().endswith(marker):
                if old not in l:
                    raise RuntimeError(f"envoy/envoy.yaml: `{marker}` line has no `{old}`")
                lines[i] = l.replace(old, f"port_value: {new}")
                seen.add(marker)
    missing = set(subs) - seen
    if missing:
        raise RuntimeError(f"envoy/envoy.yaml lost its {sorted(missing)} lines")
    header = f"# Generated by scripts/bench.py from envoy/envoy.yaml: HTTP filter `{kind}`.\n"
    return header + "\n".join(lines) + "\n"


def native_block(indent: str, module: str, config: dict) -> list[str]:
    """The HTTP filter of a dynamic module (`kind` native:<module>)."""
    value = json.dumps(config).replace("'", "''")
    return [indent + l for l in [
        "- name: cname_guard",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter',
        f"    dynamic_module_config: {{ name: {module} }}",
        "    filter_name: cname_guard",
        "    filter_config:",
        '      "@type": type.googleapis.com/google.protobuf.StringValue',
        f"      value: '{value}'"]]


# --- workloads -----------------------------------------------------------------------


@dataclass
class Workload:
    key: str
    title: str
    envoy: str                      # which Envoy serves it
    host: str | None = None         # static Host header, or
    script: str | None = None       # a wrk Lua script under bench/wrk/
    expect_status: int = 200
    expect_account: str | None = None
    check_account: bool = True
    path: str = "/"                 # DIRECT_PATH: Envoy answers itself


@dataclass
class EnvoySpec:
    name: str
    kind: str
    wasm: Path | None = None
    plugin_config: dict | None = None


@dataclass
class EnvoyProc:
    spec: EnvoySpec
    proc: subprocess.Popen
    port: int
    admin: int
    log: Path


@dataclass
class Sample:
    rps: float
    requests: int
    cpu_ns_per_req: float
    busy: float                     # Envoy CPU / wall time (1.0 = one core)
    foreign: float                  # other work on Envoy's core / wall time
    load_busy: float                # the load core's non-idle time / wall time
    lookups_per_req: float
    lookup_svc_ns_per_req: float
    origin_ns_per_req: float
    non2xx: int
    errors: int
    wrk_p50_ms: float | None = None
    wrk_p99_ms: float | None = None


@dataclass
class Results:
    samples: dict = field(default_factory=dict)       # key -> [Sample]
    latency: dict = field(default_factory=dict)       # key -> [dict]
    perf: dict = field(default_factory=dict)          # key -> {dso: percent}


def cpu_ns(pid: int) -> int:
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return total


def core_busy_ns(cpu: int | None) -> int:
    """Non-idle time of one CPU (all CPUs when None), from /proc/stat."""
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    want = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == want:
                v = [int(x) for x in parts[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                return int((sum(v[:8]) - idle) * tick)
    return 0


def envoy_stats(admin: int) -> dict[str, int]:
    status, _, body = http_get(admin, "/stats")
    if status != 200:
        raise RuntimeError(f"admin /stats answered {status}")
    out = {}
    for line in body.decode().splitlines():
        k, sep, v = line.partition(": ")
        if sep and v.strip().isdigit():
            out[k] = int(v)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def wrk_latency_ms(text: str, which: str) -> float | None:
    m = re.search(rf"^\s*{which}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


# --- the bench -------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = Procs()
        self.dir = Path(tempfile.mkdtemp(prefix="cname-guard-bench-"))
        text = ENVOY_YAML.read_text()
        self.prefix = stat_prefix(text)
        self.guard_cfg = shipped_plugin_config(text)
        ncpu = os.cpu_count() or 1
        self.pin = shutil.which("taskset") is not None and ncpu >= 2 and not args.no_pin
        self.envoy_cpu = args.envoy_cpu if self.pin else None
        self.load_cpu = args.load_cpu if self.pin else None
        self.envoys: dict[str, EnvoyProc] = {}
        self.results = Results()
        self.run_id = f"{int(time.time()) % 100000:05d}"
        self.started = time.time()
        self.load_start = os.getloadavg()

        specs = [
            EnvoySpec("A", "router"),
            EnvoySpec("B", "wasm", NOOP_WASM, {}),
            EnvoySpec("C", "wasm", GUARD_WASM, self.guard_cfg),
            EnvoySpec("D", "wasm", GUARD_WASM, merge(self.guard_cfg, {"cache": {"max_entries": 0}})),
            EnvoySpec("E", "ext_authz"),
            EnvoySpec("M", "wasm", GUARD_WASM, self.guard_cfg),
            # Its own Envoy: the deny path must not leave C's VM in another state.
            EnvoySpec("X", "wasm", GUARD_WASM, self.guard_cfg),
            EnvoySpec("N", "native:cname_guard", None, self.guard_cfg),
            EnvoySpec("N0", "native:cname_guard_bench_noop_native", None, {}),
        ]
        workloads = [
            Workload("A", "Envoy, router only (ceiling)", "A", host=CACHED_HOST),
            Workload("B", "no-op Proxy-Wasm filter (reads :authority)", "B", host=CACHED_HOST),
            Workload("C", "cname-guard, host cached", "C", host=CACHED_HOST, expect_account=ACCOUNT),
            Workload("D", "cname-guard, cache off, new host per request", "D", script="unique.lua",
                     expect_account=ACCOUNT),
            Workload("E", "ext_authz HTTP -> cname-guard-lookup", "E", host=CACHED_HOST, expect_account=ACCOUNT),
            Workload("M", "cname-guard, 90% cached / 10% new hosts", "M", script="mix.lua", expect_account=ACCOUNT),
            Workload("X", "cname-guard, deny 1014 page, cached host", "X", host=DENY_HOST, expect_status=409),
            Workload("N", "cname-guard native module, host cached", "N", host=CACHED_HOST, expect_account=ACCOUNT),
            Workload("N0", "no-op native module (reads :authority)", "N0", host=CACHED_HOST, check_account=False),
            Workload("Ad", "A on a direct_response route", "A", host=CACHED_HOST, path=DIRECT_PATH),
            Workload("Bd", "B on a direct_response route", "B", host=CACHED_HOST, path=DIRECT_PATH),
            Workload("Cd", "C on a direct_response route", "C", host=CACHED_HOST, path=DIRECT_PATH,
                     expect_account=ACCOUNT),
        ]
        for v in args.variant:
            name, _, path = v.partition("=")
            if not name or name in BUILTIN or not path or not Path(path).is_file():
                raise SystemExit(f"--variant wants NAME=PATH.wasm (NAME not one of {' '.join(sorted(BUILTIN))}), got {v!r}")
            specs.append(EnvoySpec(name, "wasm", Path(path).resolve(), self.guard_cfg))
            workloads.append(Workload(name, f"variant {name} ({Path(path).name}), host cached", name,
                                      host=CACHED_HOST, check_account=False))
        if args.only:
            keep = set(args.only.split(","))
            workloads = [w for w in workloads if w.key in keep]
            specs = [s for s in specs if s.name in {w.envoy for w in workloads}]
        self.specs = specs
        self.workloads = workloads

    # -- setup --

    def preflight(self) -> None:
        need = [self.args.envoy, LOOKUP_BIN, ORIGIN_BIN, GUARD_WASM, NOOP_WASM, *NATIVE_MODULES.values()]
        missing = [str(p) for p in need if not Path(p).exists()]
        tools = [t for t in ("wrk", "h2load") if shutil.which(t) is None]
        if missing or tools:
            raise SystemExit(f"missing: {', '.join(missing + tools)} (run `make bench`, which builds and installs them)")
        if not self.pin:
            log("warning: not pinning (no taskset, fewer than 2 CPUs, or --no-pin): figures are noisier")

    def yaml_for(self, spec: EnvoySpec, port: int, admin: int) -> str:
        return envoy_yaml(spec.kind, port=port, admin=admin, lookup_port=self.lookup_port,
                          origin_port=self.origin_port, wasm=spec.wasm, plugin_config=spec.plugin_config)

    def validate(self, path: Path) -> None:
        r = subprocess.run([self.args.envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                            "-l", "error"], capture_output=True, text=True, timeout=120, env=NATIVE_ENV)
        if r.returncode != 0:
            raise RuntimeError(f"envoy --mode validate refused {path}:\n{r.stdout}{r.stderr}")

    def start_envoy(self, spec: EnvoySpec) -> EnvoyProc:
        port, admin = free_port(), free_port()
        yaml = self.dir / f"envoy-{spec.name}.yaml"
        yaml.write_text(self.yaml_for(spec, port, admin))
        self.validate(yaml)
        logf = self.dir / f"envoy-{spec.name}.log"
        p = self.procs.start(f"envoy {spec.name}", pinned(self.envoy_cpu, [
            self.args.envoy, "-c", str(yaml), "--concurrency", "1", "--disable-hot-restart", "-l", "warn",
            "--log-path", str(logf)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=NATIVE_ENV)
        return EnvoyProc(spec, p, port, admin, logf)

    def wait_ready(self, e: EnvoyProc) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if e.proc.poll() is not None:
                tail = e.log.read_text()[-3000:] if e.log.exists() else ""
                raise RuntimeError(f"envoy {e.spec.name} exited ({e.proc.returncode}):\n{tail}")
            try:
                if http_get(e.admin, "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"envoy {e.spec.name} not ready within 60s")

    def check(self, w: Workload) -> None:
        """One request by hand: the workload does what it says."""
        e = self.envoys[w.envoy]
        host = w.host or f"check-{self.run_id}.tenants.saas.example"
        status, headers, body = http_get(e.port, w.path, host=host)
        if status != w.expect_status:
            raise RuntimeError(f"{w.key}: Host {host} answered {status}, expected {w.expect_status}: {body[:300]!r}")
        if w.path == DIRECT_PATH:
            if body != DIRECT_BODY.encode():
                raise RuntimeError(f"{w.key}: the direct_response route answered {body[:300]!r}")
        elif w.expect_status == 200:
            echo = json.loads(body)
            if echo.get("host") != host or (w.check_account and echo.get("account") != w.expect_account):
                raise RuntimeError(f"{w.key}: the origin saw {echo}, expected host {host} account {w.expect_account}")
        elif b"1014" not in body:
            raise RuntimeError(f"{w.key}: no Error 1014 page: {body[:300]!r}")

    def setup(self) -> None:
        log(f"== setup (scratch {self.dir})")
        quiet = ["--quiet"]
        self.lookup, self.lookup_port = start_lookup(self.procs, self.dir, self.load_cpu, quiet)
        self.origin, self.origin_port = start_service(
            self.procs, "origin", [str(ORIGIN_BIN), "--name", "bench-origin"], self.load_cpu)
        log(f"   lookup 127.0.0.1:{self.lookup_port}, origin 127.0.0.1:{self.origin_port}"
            f" (cpu {self.load_cpu if self.pin else 'any'})")
        for spec in self.specs:
            self.envoys[spec.name] = self.start_envoy(spec)
        for name, e in list(self.envoys.items()):
            for attempt in range(3):
                try:
                    self.wait_ready(e)
                    break
                except RuntimeError as err:
                    # Another process took a port between free_port() and bind.
                    if "Address already in use" not in str(err) or attempt == 2:
                        raise
                    log(f"   envoy {name}: a port was taken meanwhile; again on new ports")
                    e = self.envoys[name] = self.start_envoy(e.spec)
            log(f"   envoy {e.spec.name} ({e.spec.kind}{', ' + e.spec.wasm.name if e.spec.wasm else ''}) "
                f"on :{e.port}, admin :{e.admin}, pid {e.proc.pid}, validated")
        for w in self.workloads:
            self.check(w)
        log("   every configuration answers as expected; warming up (JIT tiers, caches, connection pools)")
        for w in self.workloads:
            self.wrk(w, self.args.warmup, tag="warm")

    # -- runs --

    def wrk(self, w: Workload, duration: float, tag: str) -> str:
        e = self.envoys[w.envoy]
        argv = ["wrk", "-t1", f"-c{self.args.connections}", f"-d{max(1, round(duration))}s", "--latency"]
        if w.script:
            argv += ["-s", str(WRK_DIR / w.script)]
        else:
            argv += ["-H", f"Host: {w.host}"]
        argv.append(f"http://127.0.0.1:{e.port}{w.path}")
        env = dict(os.environ, BENCH_HOST_PREFIX=f"{tag}-{self.run_id}-{w.key.lower()}-{time.monotonic_ns() % 10**9}")
        rc, out, err = self.procs.run(f"wrk {w.key}", pinned(self.load_cpu, argv), timeout=duration + 60, env=env)
        if rc != 0:
            raise RuntimeError(f"wrk failed ({rc}): {err or out}")
        return out

    def measure(self, w: Workload) -> Sample:
        e = self.envoys[w.envoy]
        pid = e.proc.pid
        s0 = envoy_stats(e.admin)
        c0, l0, o0, k0, j0, t0 = cpu_ns(pid), cpu_ns(self.lookup.pid), cpu_ns(self.origin.pid), \
            core_busy_ns(self.envoy_cpu), core_busy_ns(self.load_cpu), time.monotonic()
        out = self.wrk(w, self.args.duration, tag="run")
        c1, l1, o1, k1, j1, t1 = cpu_ns(pid), cpu_ns(self.lookup.pid), cpu_ns(self.origin.pid), \
            core_busy_ns(self.envoy_cpu), core_busy_ns(self.load_cpu), time.monotonic()
        s1 = envoy_stats(e.admin)
        key = f"http.{self.prefix}.downstream_rq_completed"
        n = s1.get(key, 0) - s0.get(key, 0)
        if n <= 0:
            raise RuntimeError(f"{w.key}: {key} did not move")
        lk = "cluster.cname_guard_lookup.upstream_rq_completed"
        lookups = s1.get(lk, 0) - s0.get(lk, 0)
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        rps = float(m.group(1)) if m else n / (t1 - t0)
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        non2xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        errors = sum(int(x) for x in m.groups()) if m else 0
        if w.expect_status == 200 and non2xx:
            raise RuntimeError(f"{w.key}: {non2xx} answers were not 2xx:\n{out}")
        if w.expect_status != 200 and non2xx < n * 0.99:
            raise RuntimeError(f"{w.key}: only {non2xx} of {n} answers were the expected {w.expect_status}:\n{out}")
        wall = t1 - t0
        return Sample(rps=rps, requests=n, cpu_ns_per_req=(c1 - c0) / n, busy=(c1 - c0) / 1e9 / wall,
                      foreign=max(0.0, ((k1 - k0) - (c1 - c0)) / 1e9 / wall) if self.pin else float("nan"),
                      load_busy=(j1 - j0) / 1e9 / wall if self.pin else float("nan"),
                      lookups_per_req=lookups / n, lookup_svc_ns_per_req=(l1 - l0) / n,
                      origin_ns_per_req=(o1 - o0) / n, non2xx=non2xx, errors=errors,
                      wrk_p50_ms=wrk_latency_ms(out, "50"), wrk_p99_ms=wrk_latency_ms(out, "99"))

    def latency(self, key: str, rate: int) -> dict:
        w = next(x for x in self.workloads if x.key == key)
        e = self.envoys[w.envoy]
        clients = self.args.latency_clients
        logf = self.dir / f"h2load-{key}.tsv"
        logf.unlink(missing_ok=True)
        argv = ["h2load", "--h1", "-t1", f"-c{clients}", f"--rps={rate / clients:g}",
                f"-D{max(1, round(self.args.latency_duration))}", "--warm-up-time=1",
                "-H", f":authority: {w.host}", f"--log-file={logf}", f"http://127.0.0.1:{e.port}/"]
        rc, out, err = self.procs.run(f"h2load {key}", pinned(self.load_cpu, argv),
                                      timeout=self.args.latency_duration + 60)
        if rc != 0:
            raise RuntimeError(f"h2load failed ({rc}): {err or out}")
        durs, bad = [], 0
        for line in logf.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                if parts[1] != str(w.expect_status):
                    bad += 1
                durs.append(int(parts[2]) / 1000.0)
        if not durs:
            raise RuntimeError(f"h2load {key}: no requests logged:\n{out}")
        return {"rate": rate, "n": len(durs), "bad": bad, "achieved": len(durs) / self.args.latency_duration,
                "p50": pct(durs, 50), "p90": pct(durs, 90), "p99": pct(durs, 99), "p999": pct(durs, 99.9),
                "max": max(durs)}

    def profile(self, w: Workload) -> dict[str, float]:
        """One extra run (not counted) under `perf record -e cpu-clock` on
        Envoy: the share of its CPU in each DSO. Envoy is stripped, so
        this is as deep as it goes: `envoy` (Envoy, V8's runtime and
        builtins, the Proxy-Wasm host calls), `[JIT]` (the Wasm code V8
        compiled), the kernel (loopback TCP), libc."""
        e = self.envoys[w.envoy]
        data = self.dir / f"perf-{w.key}.data"
        secs = max(1, round(self.args.duration) - 1)
        perf = self.procs.start(f"perf {w.key}", pinned(self.load_cpu, [
            "perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-p", str(e.proc.pid), "-o", str(data),
            "--", "sleep", str(secs)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.wrk(w, secs + 1, tag="perf")
            perf.wait(timeout=30)
        finally:
            self.procs._stop("perf", perf)
            self.procs.items = [(n, q) for (n, q) in self.procs.items if q is not perf]
        r = subprocess.run(["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"],
                           capture_output=True, text=True, timeout=120)
        shares: dict[str, float] = {}
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
            if m:
                dso = m.group(2)
                dso = "[JIT] (Wasm code)" if dso.startswith("[JIT]") else \
                    "[kernel]" if dso.startswith("[kernel") else dso
                shares[dso] = shares.get(dso, 0.0) + float(m.group(1))
        return shares

    def run(self) -> None:
        a = self.args
        order = " ".join(w.key for w in self.workloads)
        log(f"== throughput: {a.rounds} rounds of [{order}], wrk -t1 -c{a.connections} -d{a.duration:g}s each")
        r, total = 0, a.rounds
        while r < total:
            r += 1
            for w in self.workloads:
                s = self.measure(w)
                self.results.samples.setdefault(w.key, []).append(s)
                log(f"   [{r}/{total}] {w.key} {w.title:<46} {s.rps:9.0f} req/s  "
                    f"envoy {s.cpu_ns_per_req / 1000:6.1f} us/req  core {s.busy * 100:3.0f}%"
                    f"  other-on-core {s.foreign * 100:3.0f}%  load-core {s.load_busy * 100:3.0f}%"
                    + (f"  lookups/req {s.lookups_per_req:.2f}" if s.lookups_per_req >= 0.005 else "")
                    + (f"  non-2xx {s.non2xx}" if s.non2xx else "") + (f"  socket-errors {s.errors}" if s.errors else "")
                    + ("  DISTURBED" if self.disturbed(s) else ""))
            print_table(self.throughput_table(), f"after round {r}/{total}")
            short = [w.key for w in self.workloads if len(self.kept(w.key)) < MIN_CLEAN]
            if r == total and short and total < a.rounds + a.extra_rounds:
                total += 1
                log(f"   fewer than {MIN_CLEAN} undisturbed runs of {' '.join(short)}: one more round")
        if self.args.perf and perf_works():
            keys = [w for w in self.workloads if w.key in ("A", "B", "C", "X", "N", "Ad", "Bd", "Cd") or w.key not in BUILTIN]
            log(f"== perf record -e cpu-clock on Envoy, one uncounted run each of [{' '.join(w.key for w in keys)}]")
            for w in keys:
                self.results.perf[w.key] = self.profile(w)
                log(f"   {w.key}: " + ", ".join(f"{k} {v:.1f}%" for k, v in sorted(
                    self.results.perf[w.key].items(), key=lambda kv: -kv[1]) if v >= 0.5))
        lat_keys = [k for k in ("A", "C", "E") if any(w.key == k for w in self.workloads)]
        if lat_keys and a.latency_rounds > 0:
            log(f"== latency: {a.latency_rounds} rounds of [{' '.join(lat_keys)}] at {a.rate} req/s "
                f"(h2load --h1 -c{a.latency_clients}, {a.latency_duration:g}s + 1s warm-up)")
            e_rps = self.med("E", "rps")
            if e_rps and a.rate > 0.6 * e_rps:
                log(f"   warning: {a.rate} req/s is over 60% of E's saturation ({e_rps:.0f} req/s)")
            for r in range(1, a.latency_rounds + 1):
                for k in lat_keys:
                    x = self.latency(k, a.rate)
                    self.results.latency.setdefault(k, []).append(x)
                    log(f"   [{r}/{a.latency_rounds}] {k} {x['achieved']:7.0f} req/s  p50 {x['p50']:.3f} ms  "
                        f"p99 {x['p99']:.3f} ms  p99.9 {x['p999']:.3f} ms  max {x['max']:.2f} ms"
                        + (f"  unexpected-status {x['bad']}" if x["bad"] else ""))

    # -- reporting --

    def disturbed(self, s: Sample) -> bool:
        """Other processes took more than DISTURBED of Envoy's core."""
        return self.pin and s.foreign > DISTURBED

    def kept(self, key: str) -> list[Sample]:
        """The undisturbed runs, when there are MIN_CLEAN of them; else all."""
        ss = self.results.samples.get(key, [])
        clean = [s for s in ss if not self.disturbed(s)]
        return clean if len(clean) >= MIN_CLEAN else ss

    def med(self, key: str, attr: str) -> float | None:
        v = [getattr(s, attr) for s in self.kept(key)]
        return statistics.median(v) if v else None

    def throughput_table(self) -> list[str]:
        rows = ["| | configuration | runs used | req/s, median (min-max) | Envoy CPU µs/req, median (min-max) "
                "| Envoy core busy | other load on Envoy's core | load core busy | lookups/req | lookup service µs/req |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for w in self.workloads:
            ss = self.kept(w.key)
            if not ss:
                continue
            used = f"{len(ss)}/{len(self.results.samples[w.key])}"
            rps = [s.rps for s in ss]
            cpu = [s.cpu_ns_per_req / 1000 for s in ss]
            lk = statistics.median(s.lookups_per_req for s in ss)
            svc = statistics.median(s.lookup_svc_ns_per_req for s in ss) / 1000
            foreign = statistics.median(s.foreign for s in ss)
            load = statistics.median(s.load_busy for s in ss)
            rows.append(f"| {w.key} | {w.title} | {used} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
                        f"| {statistics.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f}) "
                        f"| {statistics.median(s.busy for s in ss) * 100:.0f}% "
                        f"| {'n/a' if foreign != foreign else f'{foreign * 100:.0f}%'} "
                        f"| {'n/a' if load != load else f'{load * 100:.0f}%'} "
                        + (f"| {lk:.2f} | {svc:.1f} |" if lk >= 0.005 else "| 0 | - |"))
        return rows

    def paired(self, num: str, den: str) -> list[float]:
        """Per round, the capacity ratio from Envoy CPU/req of two runs made
        side by side (same round), undisturbed both: drift between rounds
        cancels out."""
        out = []
        for sn, sd in zip(self.results.samples.get(num, []), self.results.samples.get(den, [])):
            if not (self.disturbed(sn) or self.disturbed(sd)):
                out.append(sd.cpu_ns_per_req / sn.cpu_ns_per_req)
        return out

    def ratio_table(self) -> list[str]:
        targets = {("C", "B"): ">= 0.95", ("C", "E"): ">= 3", ("N", "A"): "N - A <= 5 µs Envoy CPU", ("Cd", "Bd"): ">= 0.95"}
        rows = ["| ratio | throughput (req/s medians) | from Envoy CPU/req (capacity of Envoy's core) "
                "| same, per round: median (min-max) | from Envoy + lookup service CPU/req | target |",
                "|---|---|---|---|---|---|"]
        for num, den in (("B", "A"), ("C", "A"), ("C", "B"), ("C", "E"), ("D", "E"), ("M", "C"), ("X", "C"),
                         ("N0", "A"), ("N", "A"), ("N", "C"), ("Bd", "Ad"), ("Cd", "Ad"), ("Cd", "Bd")):
            rn, rd = self.med(num, "rps"), self.med(den, "rps")
            cn, cd = self.med(num, "cpu_ns_per_req"), self.med(den, "cpu_ns_per_req")
            if None in (rn, rd, cn, cd):
                continue
            ln, ld = self.med(num, "lookup_svc_ns_per_req"), self.med(den, "lookup_svc_ns_per_req")
            t = targets.get((num, den), "")
            if (num, den) == ("C", "A"):
                ba, bc = self.med("B", "rps"), self.med("B", "cpu_ns_per_req")
                if ba and bc:
                    t = f"close to B/A ({ba / rd:.2f}; CPU {cd / bc:.2f})"
            pr = self.paired(num, den)
            per_round = f"{statistics.median(pr):.2f} ({min(pr):.2f}-{max(pr):.2f})" if pr else "-"
            rows.append(f"| {num}/{den} | {rn / rd:.2f} | {cd / cn:.2f} | {per_round} "
                        f"| {(cd + ld) / (cn + ln):.2f} | {t} |")
        return rows

    def perf_table(self) -> list[str]:
        cols = ["envoy", "[JIT] (Wasm code)", "[kernel]", "libc.so.6"]
        rows = ["| | configuration | Envoy CPU µs/req (median) | " + " | ".join(
                    f"`{c}`" for c in cols) + " | other |", "|---|---|---|" + "---|" * (len(cols) + 1)]
        for w in self.workloads:
            shares = self.results.perf.get(w.key)
            cpu = self.med(w.key, "cpu_ns_per_req")
            if not shares or not cpu:
                continue
            us = cpu / 1000
            cells = [f"{shares.get(c, 0.0):.1f}% ({us * shares.get(c, 0.0) / 100:.1f} µs)" for c in cols]
            other = 100 - sum(shares.get(c, 0.0) for c in cols)
            rows.append(f"| {w.key} | {w.title} | {us:.1f} | " + " | ".join(cells) + f" | {other:.1f}% |")
        return rows

    def latency_table(self) -> list[str]:
        rows = ["| | configuration | offered req/s | p50 ms, median (min-max) | p99 ms, median (min-max) "
                "| p99.9 ms, median | requests | unexpected status |", "|---|---|---|---|---|---|---|---|"]
        for k, xs in self.results.latency.items():
            w = next(x for x in self.workloads if x.key == k)
            p50 = [x["p50"] for x in xs]
            p99 = [x["p99"] for x in xs]
            rows.append(f"| {k} | {w.title} | {xs[0]['rate']} | {statistics.median(p50):.3f} "
                        f"({min(p50):.3f}-{max(p50):.3f}) | {statistics.median(p99):.3f} ({min(p99):.3f}-{max(p99):.3f}) "
                        f"| {statistics.median(x['p999'] for x in xs):.3f} | {sum(x['n'] for x in xs):,} "
                        f"| {sum(x['bad'] for x in xs)} |")
        return rows


def perf_works() -> bool:
    if shutil.which("perf") is None:
        log("   (perf not installed: no profile; Debian package linux-perf)")
        return False
    r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"   (perf record does not work here: {r.stderr.strip()[:120]})")
    return r.returncode == 0


def print_table(rows: list[str], title: str) -> None:
    log(f"-- {title}")
    for r in rows:
        log("   " + r)


# --- sizes, fuel, machine --------------------------------------------------------------


def wasm_sizes(scratch: Path) -> list[str]:
    rows = ["| artifact | release `.wasm` | after `wasm-opt -all -Oz` | target |", "|---|---|---|---|"]
    opt = shutil.which("wasm-opt")
    for name, path, target in (("cname_guard.wasm", GUARD_WASM, "<= 150 KB"),
                               ("cname_guard_bench_noop.wasm (B)", NOOP_WASM, "")):
        size = path.stat().st_size
        oz = "binaryen not installed"
        if opt:
            out = scratch / (path.stem + ".Oz.wasm")
            r = subprocess.run([opt, "-all", "-Oz", str(path), "-o", str(out)], capture_output=True, text=True)
            oz = f"{out.stat().st_size:,} B ({out.stat().st_size / 1024:.0f} KiB)" if r.returncode == 0 else \
                f"wasm-opt failed: {r.stderr.strip()[:80]}"
        rows.append(f"| {name} | {size:,} B ({size / 1024:.0f} KiB) | {oz} | {target} |")
    return rows


def fuel(skip: bool) -> tuple[list[str], str | None]:
    """`make fuel` (tests/host/host.mk), when another engineer has added it."""
    placeholder = ["| wasmtime fuel per request | **PLACEHOLDER**: `make fuel` does not exist yet "
                   "(tests/host/host.mk); rerun `make bench` once it does |"]
    if skip:
        return ["| wasmtime fuel per request | skipped (BENCH_FUEL=0) |"], None
    probe = subprocess.run(["make", "-n", "fuel"], cwd=ROOT, capture_output=True, text=True)
    if probe.returncode != 0:
        return placeholder, None
    log("== make fuel (wasmtime fuel per request, tests/host/host.mk)")
    r = subprocess.run(["make", "--no-print-directory", "fuel"], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800)
    out = (r.stdout + r.stderr).strip()
    for line in out.splitlines()[-40:]:
        log("   " + line)
    if r.returncode != 0:
        return [f"| wasmtime fuel per request | `make fuel` failed (exit {r.returncode}); output below |"], out
    rows, inside = [], False
    for line in out.splitlines():
        if re.search(r"fuel per request", line, re.I):
            inside = True
            continue
        m = re.fullmatch(r"\s*([A-Za-z][\w ./-]*?)\s*:\s*(\d+)\s*(\(.*\))?\s*", line) if inside else None
        if m:
            rows.append(f"| wasmtime fuel per request, {m.group(1)} | {int(m.group(2)):,} {m.group(3) or ''} |")
        elif inside and line.strip():
            inside = False
    return rows or ["| wasmtime fuel per request | see the `make fuel` output below |"], out


def machine(envoy: str) -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip()
    ver = ver.split("version:", 1)[-1].strip()
    return [f"| CPU | {model} |", f"| cores (`os.cpu_count()`) / `nproc` | {os.cpu_count()} / {nproc} |",
            f"| kernel | {platform.system()} {platform.release()} |",
            f"| Envoy | {ver} |", "| Wasm runtime | `envoy.wasm.runtime.v8` (V8, Envoy's default build) |",
            f"| wrk / h2load | {tool_version(['wrk', '-v'])} / {tool_version(['h2load', '--version'])} |",
            f"| Python | {platform.python_version()} |"]


def tool_version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return (r.stdout + r.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def busy_others(exclude: set[int]) -> list[str]:
    """Other processes that used CPU lately (a compile next door)."""
    r = subprocess.run(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and int(parts[0]) not in exclude and float(parts[1]) >= 5.0:
            out.append(f"{parts[2]} ({parts[1]}%)")
    return out[:8]


def write_report(b: Bench, argv: list[str], sizes: list[str], fuel_rows: list[str], fuel_out: str | None,
                 elapsed: float, others: list[str]) -> str:
    a = b.args
    l0, l1 = b.load_start, os.getloadavg()
    lines = [BEGIN, "",
             f"Run of {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
             f"{elapsed / 60:.1f} min for the measurements (builds not included).", "",
             "Command: `make bench`, which ran", "", "```",
             "python3 scripts/bench.py" + (" " + shlex.join(argv) if argv else ""), "```", "",
             f"Settings: `--rounds {a.rounds} --duration {a.duration:g} --warmup {a.warmup:g} "
             f"--connections {a.connections} --rate {a.rate} --latency-clients {a.latency_clients} "
             f"--latency-duration {a.latency_duration:g} --latency-rounds {a.latency_rounds}`.", "",
             "### Machine", "", "| | |", "|---|---|"] + machine(a.envoy) + [
             f"| load average (1/5/15 min) at start, end | {l0[0]:.2f} {l0[1]:.2f} {l0[2]:.2f}; "
             f"{l1[0]:.2f} {l1[1]:.2f} {l1[2]:.2f} |",
             f"| other busy processes at the end | {', '.join(others) if others else 'none over 5% CPU'} |",
             f"| pinning | Envoy (each, `--concurrency 1`) on CPU {b.envoy_cpu}; wrk, h2load, origin, lookup "
             f"service on CPU {b.load_cpu} |" if b.pin else "| pinning | none |",
             "", f"### Throughput ({a.rounds} interleaved rounds, wrk -t1 -c{a.connections}, {a.duration:g} s per run)",
             ""] + b.throughput_table() + [
             "", "### Ratios (of medians)", ""] + b.ratio_table() + [
             "", "*Throughput* divides req/s; *from Envoy CPU/req* is the inverse ratio of Envoy CPU per request "
             "(what the ratio of throughputs would be if Envoy's core were the only limit); the last column "
             "also counts the lookup service's CPU per request (D, E, M call it).", ""]
    if b.results.perf:
        lines += ["### Where Envoy's CPU goes (`perf record -e cpu-clock`, one uncounted run each, by DSO)", ""] + \
            b.perf_table() + ["", "`envoy` is the stripped Envoy binary: Envoy itself, V8's runtime and builtins "
                              "(the Wasm/C++ boundary) and the Proxy-Wasm host calls; `[JIT]` is the Wasm code "
                              "V8 compiled; µs are the share times the median Envoy CPU per request.", ""]
    if b.results.latency:
        lines += [f"### Latency at a fixed rate ({a.rate} req/s offered, h2load --h1 -c{a.latency_clients} "
                  f"--rps {a.rate / a.latency_clients:g} per connection, {a.latency_duration:g} s after 1 s warm-up, "
                  f"{a.latency_rounds} rounds)", ""] + b.latency_table() + [""]
    lines += ["### Size and fuel", ""] + sizes + ["", "| | |", "|---|---|"] + fuel_rows + [""]
    if fuel_out:
        lines += ["<details><summary><code>make fuel</code> output</summary>", "", "```",
                  "\n".join(fuel_out.splitlines()[-60:]), "```", "", "</details>", ""]
    lines.append(END)
    section = "\n".join(lines)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
    RESULTS_JSON.write_text(json.dumps({
        "argv": argv, "elapsed_s": elapsed,
        "samples": {k: [s.__dict__ for s in v] for k, v in b.results.samples.items()},
        "latency": b.results.latency, "perf": b.results.perf}, indent=1) + "\n")
    return section


# --- main -------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--duration", type=float, default=4, help="seconds per throughput run (default 4)")
    p.add_argument("--extra-rounds", type=int, default=2,
                   help="rounds added when a configuration has fewer than 3 undisturbed runs (default 2)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up load per configuration (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--rate", type=int, default=2000, help="offered req/s of the latency runs (default 2000)")
    p.add_argument("--latency-clients", type=int, default=8, help="h2load connections (default 8)")
    p.add_argument("--latency-duration", type=float, default=6, help="seconds per latency run (default 6)")
    p.add_argument("--latency-rounds", type=int, default=3, help="interleaved latency rounds (default 3)")
    p.add_argument("--envoy-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--no-perf", dest="perf", action="store_false",
                   help="skip the uncounted `perf record` runs (where Envoy's CPU goes, by DSO)")
    p.add_argument("--only", help="comma-separated workloads (A,B,C,D,E,M,X,Ad,Bd,Cd and variants)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=WASM",
                   help="an extra configuration: this .wasm with cname-guard's configuration, host cached")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    p.add_argument("--json", metavar="PATH", help="also write the medians (Envoy CPU ns/req, req/s) here")
    p.add_argument("--emit-yaml", metavar="DIR", help="write and validate the Envoy YAMLs (default ports), then exit")
    p.add_argument("--envoy", default=os.environ.get("ENVOY_BIN", str(ROOT / ".venv/bin/envoy")))
    a = p.parse_args()
    argv = sys.argv[1:]

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    # Ctrl-C, even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    if a.emit_yaml:
        out = Path(a.emit_yaml)
        out.mkdir(parents=True, exist_ok=True)
        b = Bench(a)
        b.lookup_port, b.origin_port = 8081, 8082
        try:
            for spec in b.specs:
                f = out / f"envoy-{spec.name}.yaml"
                f.write_text(b.yaml_for(spec, 10000, 9901))
                b.validate(f)
                log(f"valid: {f}")
        finally:
            shutil.rmtree(b.dir, ignore_errors=True)
        return 0

    b = Bench(a)
    b.preflight()
    # Before the measurements: `make fuel` may compile (wasmtime), which
    # must not overlap a run.
    fuel_rows, fuel_out = fuel(os.environ.get("BENCH_FUEL", "1") == "0")
    t0 = time.time()
    ok = False
    try:
        b.setup()
        b.run()
        ok = True
    except (KeyboardInterrupt, Stop) as e:
        log(f"\ninterrupted ({str(e) or 'Ctrl-C'}): stopping every process")
        return 130
    finally:
        ours = {p.pid for _, p in b.procs.items}
        b.procs.stop_all()
        if not ok:
            log(f"logs kept in {b.dir}")
    elapsed = time.time() - t0
    others = busy_others(ours | {os.getpid()})
    sizes = wasm_sizes(b.dir)
    print_table(b.throughput_table(), "throughput (final)")
    print_table(b.ratio_table(), "ratios")
    if b.results.perf:
        print_table(b.perf_table(), "where Envoy's CPU goes (perf, by DSO)")
    if b.results.latency:
        print_table(b.latency_table(), "latency")
    print_table(sizes, "sizes")
    print_table(fuel_rows, "fuel")
    if a.json:
        Path(a.json).write_text(json.dumps({w.key: {"cpu_ns_per_req": b.med(w.key, "cpu_ns_per_req"),
                                                     "rps": b.med(w.key, "rps"), "runs": len(b.kept(w.key))}
                                           for w in b.workloads}, indent=1) + "\n")
    if not a.no_write:
        write_report(b, argv, sizes, fuel_rows, fuel_out, elapsed, others)
        log(f"written: {BENCHMARKS_MD.relative_to(ROOT)} (results section), {RESULTS_JSON.relative_to(ROOT)}")
    shutil.rmtree(b.dir, ignore_errors=True)
    log(f"done in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
