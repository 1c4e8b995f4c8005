"""Team tier latency: a Redis-tier hit against a bare redis-py GET of the same bytes, and a
local hit with the team tier on against one with it off.

Run: ``.venv/bin/python benchmarks/redis_tier.py`` (about 10 s; needs Debian's redis-server).

- One redis-server on a free loopback port (``tests/redis_support.RedisServer``), 2,000
  entries of ~2 KB written through a ResponseCache with the team tier on.
- (a) Redis-tier hit: ``get`` on a cache whose local file holds nothing and keeps nothing
  (entry size cap 1 byte), so every lookup is a local miss, a Redis GET, the signature
  check and the parse — the whole path a second machine takes.  (b) a bare redis-py
  ``GET`` of the same key (the envelope bytes, nothing checked).  Target: a/b p50 <= 2.
- (c) local hit with the team tier on, (d) the same file with it off. Target: c/d p50 <= 1.1.
Warm-up pass, then 3 shuffled passes; the two sides of each ratio alternate key by key, so
both meet the same load on a shared machine; the timer's own overhead is subtracted.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from cache import PASSES, make_response, pct, settings_for, timer_overhead_ns  # noqa: E402

from claude_force_nb.store.cache import ResponseCache  # noqa: E402
from claude_force_nb.store.redis_tier import team_prefix  # noqa: E402
from tests.redis_support import RedisServer  # noqa: E402

N = 2_000
TARGETS = {"team hit p50 / bare GET": 2.0, "local hit p50 on / off": 1.1}


def time_pair(a: Callable[[str], object], b: Callable[[str], object], keys: list[str],
              overhead: int) -> tuple[list[int], list[int]]:
    """Latencies of ``a`` and ``b`` over shuffled passes of ``keys``, alternating call by call."""
    for key in keys:                  # warm-up, and every key is found by both
        assert a(key) is not None and b(key) is not None
    samples: tuple[list[int], list[int]] = ([], [])
    perf = time.perf_counter_ns
    rng = random.Random(7)
    for _ in range(PASSES):
        order = keys[:]
        rng.shuffle(order)
        for i, key in enumerate(order):
            pair = ((a, samples[0]), (b, samples[1]))
            for fn, out in pair if i % 2 else pair[::-1]:      # each side goes first half the time
                t0 = perf()
                fn(key)
                out.append(max(0, perf() - t0 - overhead))
    return samples


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = RedisServer(root / "redis")
        server.start()
        try:
            return run(root, server)
        finally:
            server.kill()


def run(root: Path, server: RedisServer) -> int:
    rng = random.Random(1)
    base = settings_for(root)
    with_redis = base.replace(redis_url=server.url)
    writer = ResponseCache(with_redis)
    keys = [writer.key_for({"model": "claude-sonnet-4-6", "n": i}) for i in range(N)]
    writer.put_many((key, make_response(rng, i)) for i, key in enumerate(keys))
    remote_only = ResponseCache(with_redis.replace(cache_max_entry_bytes=1), path=root / "empty.sqlite3")
    local_off = ResponseCache(base)
    bare = server.client()
    prefix = team_prefix(writer.kid)
    overhead = timer_overhead_ns()

    figures: dict[str, list[int]] = {}
    figures["team hit"], figures["bare GET"] = time_pair(
        lambda k: remote_only.get(k, defer_writes=True), lambda k: bare.get(prefix + k), keys, overhead)
    figures["local hit, tier on"], figures["local hit, tier off"] = time_pair(writer.get, local_off.get, keys, overhead)
    assert remote_only.stats()["redis"]["hits"] == len(figures["team hit"]) + N     # never served locally
    print(f"{N:,} entries of ~2 KB, redis-server on loopback; microseconds")
    print(f"{'':22} {'p50':>8} {'p95':>8}")
    for name, samples in figures.items():
        print(f"{name:22} {pct(samples, 0.5):8.1f} {pct(samples, 0.95):8.1f}")
    ratios = {
        "team hit p50 / bare GET": pct(figures["team hit"], 0.5) / pct(figures["bare GET"], 0.5),
        "local hit p50 on / off": pct(figures["local hit, tier on"], 0.5) / pct(figures["local hit, tier off"], 0.5),
    }
    for name, value in ratios.items():
        target = TARGETS[name]
        print(f"{name:26} {value:6.2f}   target <= {target:<4} {'PASS' if value <= target else 'MISS'}")
    for cache in (writer, remote_only, local_off):
        cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
