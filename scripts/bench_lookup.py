#!/usr/bin/env python3
"""`make bench-lookup`: latency (p50, p99) and requests/s of the lookup
service's `GET /v1/ownership` for a host whose DNS is cached, with the store
on SQLite and on PostgreSQL. Not a test: figures for BENCHMARKS.md.

The service runs over a BIND serving the demo zones with the demo registry
imported (scripts/bench.py's start_lookup); wrk --latency drives it from
another core when there are two. PostgreSQL is Debian's, started with initdb
and pg_ctl in a scratch directory as an unprivileged user, as the tests do.
Every lookup reads the store (nothing is cached there); DNS answers are
cached, so this measures the service plus its database.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the processes, ports, BIND and wrk helpers)

HOST = "shop.customer.example"
NOBODY = "nobody"


def postgres(procs: bench.Procs, scratch: Path) -> str:
    """A fresh PostgreSQL on a free port; its URL. Stopped with `procs`."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[4]) if p.parts[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL not found under /usr/lib/postgresql (apt-get install postgresql)")
    bin_dir = found[-1].parent
    root = scratch / "pg"
    root.mkdir()
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", NOBODY, "--"] if as_root else []
    if as_root:
        pw = pwd.getpwnam(NOBODY)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chmod(scratch, 0o711)  # the server's user passes through to its own directory
    data = root / "data"
    subprocess.run(run_as + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
    port = bench.free_port()
    # In the foreground, in its own process group: procs stops it.
    p = procs.start("postgres", run_as + [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                          "-h", "127.0.0.1", "-k", str(root), "-F"],
                    stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))
    deadline = time.time() + 60
    while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode != 0:
        if p.poll() is not None or time.time() > deadline:
            raise RuntimeError("postgres did not start:\n" + (root / "server.log").read_text()[-2000:])
        time.sleep(0.1)
    return f"postgres://postgres@127.0.0.1:{port}/postgres"


def measure(procs: bench.Procs, port: int, args, cpu: int | None) -> dict:
    url = f"http://127.0.0.1:{port}/v1/ownership?host={HOST}"
    # Warm: the DNS cache holds the chain, the pool its connections.
    status = bench.http_get(port, f"/v1/ownership?host={HOST}")[0]
    if status != 200:
        raise RuntimeError(f"{url} answered {status}")
    rc, out, err = procs.run("wrk", bench.pinned(cpu, ["wrk", f"-t{args.threads}", f"-c{args.connections}",
                                                       f"-d{args.seconds}s", "--latency", url]),
                             timeout=args.seconds + 60)
    if rc != 0:
        raise RuntimeError(f"wrk failed: {err}")
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "p50_ms": bench.wrk_latency_ms(out, "50"),
        "p99_ms": bench.wrk_latency_ms(out, "99"),
        "rps": float(rps.group(1)) if rps else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="wrk runs per store; the median is reported")
    ap.add_argument("--stores", default="sqlite,postgres")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench-lookup: wrk is missing (make bench-tools)", file=sys.stderr)
        return 1
    ncpu = os.cpu_count() or 1
    svc_cpu, load_cpu = (0, 1) if ncpu >= 2 and shutil.which("taskset") else (None, None)
    procs = bench.Procs()
    scratch = Path(tempfile.mkdtemp(prefix="cname-guard-bench-lookup-"))
    rows = []
    try:
        for store in args.stores.split(","):
            database = postgres(procs, scratch) if store == "postgres" else None
            work = scratch / store
            work.mkdir()
            _, port = bench.start_lookup(procs, work, svc_cpu, ["--quiet"], database=database)
            runs = [measure(procs, port, args, load_cpu) for _ in range(args.rounds)]
            med = lambda k: sorted(r[k] for r in runs)[len(runs) // 2]  # noqa: E731
            row = (store, med("p50_ms"), med("p99_ms"), med("rps"), sum(r["non_2xx"] for r in runs))
            rows.append(row)
            bench.log(f"{store}: p50 {row[1]:.3f} ms  p99 {row[2]:.3f} ms  {row[3]:.0f} req/s  "
                      f"(non-2xx {row[4]}; runs {[round(r['rps']) for r in runs]})")
            procs.stop_all()
    finally:
        procs.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"GET /v1/ownership?host={HOST} (DNS cached), wrk -t{args.threads} -c{args.connections} "
          f"-d{args.seconds}s --latency, median of {args.rounds}; service pinned to CPU {svc_cpu}, wrk to {load_cpu}")
    print("| store | p50 | p99 | requests/s |")
    print("|---|---|---|---|")
    for store, p50, p99, rps, _ in rows:
        print(f"| {store} | {p50:.2f} ms | {p99:.2f} ms | {rps:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
