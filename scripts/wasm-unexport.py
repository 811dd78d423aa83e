#!/usr/bin/env python3
"""Removes the Proxy-Wasm callbacks cname-guard does not use from the
export section of a built .wasm, in place (`make wasm` runs it).

The Rust SDK exports every callback of the ABI, and Envoy calls each one a
module exports: on every request that is a call into V8 and a context
lookup in the SDK for response headers, response body, log and done, none
of which cname-guard implements. Envoy (proxy-wasm-cpp-host) skips a
callback that is not exported (headers and body continue, done is true),
which is what the SDK's defaults do anyway. The functions stay in the
module; only their exports go. Measured: 7,700 Envoy instructions per
cached request (BENCHMARKS.md).

Before implementing one of these in src/filter.rs or src/worker.rs, take
it off UNUSED.

    python3 scripts/wasm-unexport.py target/wasm32-wasip1/release/cname_guard.wasm
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

UNUSED = ("proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers",
          "proxy_on_log", "proxy_on_done")
# What makes it a Proxy-Wasm HTTP filter at all: never removed, must be there.
REQUIRED = ("proxy_on_context_create", "proxy_on_request_headers", "proxy_on_delete")
EXPORT_SECTION = 7


def uleb(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated LEB128")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def to_uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def unexport(module: bytes, drop: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """The module without the exports named in `drop`, and the names removed."""
    if module[:4] != b"\0asm" or module[4:8] != b"\1\0\0\0":
        raise ValueError("not a wasm module (version 1)")
    out, i, removed, names = bytearray(module[:8]), 8, [], []
    while i < len(module):
        section = module[i]
        size, start = uleb(module, i + 1)
        body = module[start:start + size]
        if len(body) != size:
            raise ValueError("truncated section")
        if section == EXPORT_SECTION:
            count, k = uleb(body, 0)
            kept = []
            for _ in range(count):
                length, k2 = uleb(body, k)
                name = body[k2:k2 + length].decode()
                _, end = uleb(body, k2 + length + 1)  # kind byte, then the index
                names.append(name)
                if name in drop:
                    removed.append(name)
                else:
                    kept.append(body[k:end])
                k = end
            body = to_uleb(len(kept)) + b"".join(kept)
        out += bytes([section]) + to_uleb(len(body)) + body
        i = start + size
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise ValueError(f"not a Proxy-Wasm HTTP filter: no export {', '.join(missing)}")
    return bytes(out), removed


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(sys.argv[1])
    try:
        stripped, removed = unexport(path.read_bytes(), UNUSED)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"wasm-unexport: {path}: {e}", file=sys.stderr)
        return 1
    if removed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(stripped)
        os.replace(tmp, path)
    print(f"{path.name}: unexported {', '.join(removed) if removed else 'nothing (already done)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
