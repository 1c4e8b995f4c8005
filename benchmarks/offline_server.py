"""The offline server for benchmarks: in its own process, as the real API would be.

Sharing the benchmark's process (and its GIL) would make the server, not the client, the
thing measured. With two cores or more, the server and the benchmark get one core each:
less scheduler noise between runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from claude_force_nb import Settings


@contextmanager
def served(*flags: str, command: list[str] | None = None) -> Iterator[str]:
    """``python -m claude_force_nb.testing *flags`` (or ``command`` + flags: a script that prints
    the URL first and serves until stdin closes) running; yields its URL, stops it afterwards."""
    server = subprocess.Popen(
        [*(command or [sys.executable, "-m", "claude_force_nb.testing"]), *flags],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    url = server.stdout.readline().strip()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(server.pid, {1})
        os.sched_setaffinity(0, {0})
    try:
        yield url
    finally:
        server.stdin.close()
        server.wait(10)


def bench_settings(url: str, tmp: str, **overrides: Any) -> Settings:
    """Settings for a benchmark against ``url``, with its home in the temporary directory ``tmp``."""
    home = Path(tmp) / "home"
    return Settings(api_key="bench", base_url=url, data_dir=home, secrets_dir=home / "secrets",
                    cache_secret=b"bench-secret", **overrides)


def report_paired(name: str, ideal: float | None, base: tuple[str, list[float]], ours: tuple[str, list[float]],
                  target: float) -> float:
    """Print the medians of a paired benchmark and ``name`` = the median of the paired ratios
    ours/base against ``target``; returns that ratio. ``ideal`` None: no ideal time (a
    zero-latency server), the medians alone."""
    ratio = statistics.median(o / b for o, b in zip(ours[1], base[1]))
    if ideal is not None:
        print(f"{'ideal':<34}{ideal:8.3f} s")
    for label, times in (base, ours):
        mid = statistics.median(times)
        versus_ideal = f"{mid / ideal:5.2f}x ideal   " if ideal is not None else ""
        print(f"{label:<34}{mid:8.3f} s   {versus_ideal}[{min(times):.3f} s]")
    print(f"{name} = {ratio:.3f} (median of paired runs) [best/best {min(ours[1]) / min(base[1]):.3f}]  "
          f"(target <= {target:.2f}: {'PASS' if ratio <= target else 'MISS'})")
    return ratio
