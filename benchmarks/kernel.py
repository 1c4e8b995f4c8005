"""A cached %%agent cell end to end in a real kernel, and %load_ext time.

Runs an ipykernel, warms the cache with one call, then times N executions of the same
%%agent cell from execute_request to the execute_reply (the answer comes from the
signed SQLite cache; no request reaches the server). Also times `%load_ext
claude_force_nb` in fresh kernels. Targets: cached cell p50 <= 20 ms, load_ext <= 300 ms.

    .venv/bin/python benchmarks/kernel.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_force_nb.testing import FakeAnthropicServer  # noqa: E402
from tests.kernels import Kernel, write_kernelspec  # noqa: E402


def timed(kernel: Kernel, code: str) -> float:
    t0 = time.perf_counter()
    reply = kernel.run(code)
    elapsed = time.perf_counter() - t0
    if not reply.ok:
        raise SystemExit(f"cell failed: {reply.content}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropicServer() as server:
        os.environ.update(
            JUPYTER_PATH=str(Path(tmp) / "jupyter"), CLAUDE_FORCE_HOME=str(Path(tmp) / "home"),
            ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=server.url, CLAUDE_FORCE_CACHE_SECRET="bench",
        )
        name = write_kernelspec(Path(tmp) / "jupyter")
        loads = []
        for _ in range(args.loads):
            kernel = Kernel(name, cwd=tmp)
            try:
                loads.append(timed(kernel, "%load_ext claude_force_nb"))
            finally:
                kernel.shutdown()
        kernel = Kernel(name, cwd=tmp)
        try:
            timed(kernel, "%load_ext claude_force_nb")
            cell = "%%agent code-reviewer\ndef mean(xs): return sum(xs) / len(xs)\n"
            timed(kernel, cell)  # the one real call
            baseline = [timed(kernel, "pass") for _ in range(args.runs)]
            cached = [timed(kernel, cell) for _ in range(args.runs)]
        finally:
            kernel.shutdown()
        assert server.request_count == 1, server.request_count
    p50 = statistics.median(cached) * 1000
    p95 = statistics.quantiles(cached, n=20)[-1] * 1000
    empty = statistics.median(baseline) * 1000
    load = statistics.median(loads) * 1000
    print(f"cached %%agent cell, end to end: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(an empty cell: {empty:.1f} ms)   target p50 <= 20 ms: {'PASS' if p50 <= 20 else 'MISS'}")
    print(f"%load_ext claude_force_nb: median {load:.0f} ms of {args.loads} fresh kernels   "
          f"target <= 300 ms: {'PASS' if load <= 300 else 'MISS'}")
    print(f"requests that reached the server: {server.request_count} (the warm-up call)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
