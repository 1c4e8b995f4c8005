"""Throughput under a rate limit: 2,000 calls against the offline server limited to 1,200 requests/min.

The server (its own process, as the real API would be) answers 429 with ``retry-after``
beyond its limit and sends the ``anthropic-ratelimit-*`` headers on every response. The
same run is made twice, against the same server:

  header-driven pacing  the Pacer spreads the budget the headers announce until their reset
  pacing off            the headers are ignored (Pacer.follow_headers = False): the run only
                        learns from 429s (their retry-after pauses the whole run)

The server's bucket is emptied before each run (requests are sent until one is refused),
so both start from the steady state: ideal = calls / (rpm / 60), 100 s for the defaults.
Targets for header-driven pacing: throughput >= 90% of the limit, no failed call, 429s
<= 2% of requests.

    .venv/bin/python benchmarks/rate_limits.py [--calls 2000] [--rpm 1200] [--latency 0.1] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic
from offline_server import served

from claude_force_nb import Orchestrator, Settings

MODEL = "claude-haiku-4-5"
TARGET_THROUGHPUT = 0.90
TARGET_429_SHARE = 0.02


@dataclass
class Run:
    label: str
    seconds: float
    calls: int
    failed: int
    requests: int
    rate_limited: int
    waited_s: float

    def throughput(self, rpm: int) -> float:
        """Calls per second as a share of what the limit allows."""
        return self.calls / self.seconds / (rpm / 60.0)


async def empty_the_bucket(url: str, concurrency: int) -> int:
    """Send requests until the server refuses one: its request bucket is then empty."""
    refused = asyncio.Event()
    sent = 0

    async def worker(client: anthropic.AsyncAnthropic) -> None:
        nonlocal sent
        while not refused.is_set():
            sent += 1
            try:
                await client.messages.create(model=MODEL, max_tokens=16,
                                             messages=[{"role": "user", "content": f"drain {sent}"}])
            except anthropic.RateLimitError:
                refused.set()

    async with anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency * 4)))
    return sent


def run(label: str, url: str, args: argparse.Namespace, tmp: Path, *, follow_headers: bool) -> Run:
    settings = Settings(
        api_key="bench", base_url=url, data_dir=tmp / label, secrets_dir=tmp / label / "secrets",
        cache_secret=b"bench-secret", default_model=MODEL, max_tokens=64, max_concurrent=args.concurrency,
        max_attempts=30, retry_max_wait_s=20.0,
    )
    with Orchestrator(settings) as orch:
        orch.pacer.follow_headers = follow_headers
        asyncio.run(empty_the_bucket(url, args.concurrency))
        started = time.perf_counter()
        results = orch.run_many_sync([("assistant", f"{label} task {i}") for i in range(args.calls)], use_cache=False)
        seconds = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{label}: {len(failed)} calls failed, e.g. {failed[0].error}", file=sys.stderr)
    return Run(label, seconds, len(results), len(failed), sum(r.attempts for r in results),
               sum(r.rate_limited for r in results), sum(r.waited_s for r in results))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rpm", type=int, default=1200)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with served("--latency", str(args.latency), "--rpm", str(args.rpm)) as url, tempfile.TemporaryDirectory() as tmp:
        runs = [run("header-driven pacing", url, args, Path(tmp), follow_headers=True),
                run("pacing off", url, args, Path(tmp), follow_headers=False)]
    return report(runs, args)


def report(runs: list[Run], args: argparse.Namespace) -> int:
    ideal = args.calls / (args.rpm / 60.0)
    print(f"{args.calls:,} calls, server limit {args.rpm:,} requests/min, latency {args.latency * 1000:.0f} ms, "
          f"concurrency {args.concurrency}; bucket emptied before each run, ideal {ideal:.1f} s")
    print(f"{'':<22}{'time':>9}{'calls/min':>11}{'of limit':>10}{'requests':>10}{'429s':>7}{'429 share':>11}"
          f"{'failed':>8}{'waited/call':>13}")
    for r in runs:
        print(f"{r.label:<22}{r.seconds:8.1f}s{r.calls / r.seconds * 60:11,.0f}{r.throughput(args.rpm):10.1%}"
              f"{r.requests:10,}{r.rate_limited:7,}{r.rate_limited / r.requests:11.1%}{r.failed:8}"
              f"{r.waited_s / r.calls:12.1f}s")
    paced = runs[0]
    checks = {
        f"throughput >= {TARGET_THROUGHPUT:.0%} of the limit": paced.throughput(args.rpm) >= TARGET_THROUGHPUT,
        "no failed call": paced.failed == 0,
        f"429s <= {TARGET_429_SHARE:.0%} of requests": paced.rate_limited / paced.requests <= TARGET_429_SHARE,
    }
    print("header-driven pacing: " + "; ".join(f"{name}: {'PASS' if ok else 'MISS'}" for name, ok in checks.items()))
    print("(waited/call: AgentResult.waited_s on average: held back by pacing and between retries; every call "
          "is queued at the start, so half the run is typical)")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
