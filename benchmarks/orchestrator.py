"""Orchestrator overhead: 500 calls, 50 ms server latency, concurrency 50.

Compares, in one run and against the same FakeAnthropicServer:
  ideal  = calls / concurrency * latency (0.5 s)
  raw    = AsyncAnthropic + asyncio.Semaphore + asyncio.gather (streaming), no bookkeeping
  ours   = Orchestrator.run_many_sync: retries, limits, signed cache writes, ledger rows
Each is measured REPEATS times, with the server and the client pinned to one core each.
Runs are paired (raw and ours back to back, the order swapped every repeat so neither
always inherits the other's leftovers; a full gc.collect() before each run) and the
target is checked on the median of the paired ratios, which cancels the slow drift of a
shared VM; the best runs are printed beside the medians.

    .venv/bin/python benchmarks/orchestrator.py [--calls 500] [--latency 0.05] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time

import anthropic
from offline_server import bench_settings, report_paired, served

from claude_force_nb import AgentRegistry, Orchestrator

MODEL = "claude-haiku-4-5"
REPEATS = 11


# The raw loop sends the same system prompt as the orchestrator, so both move the same bytes.
SYSTEM = AgentRegistry().get("assistant").system


async def raw_fanout(url: str, calls: int, concurrency: int, tag: str) -> None:
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with sem:
            async with client.messages.stream(
                model=MODEL, max_tokens=256, system=SYSTEM,
                messages=[{"role": "user", "content": f"{tag} task {i}"}],
            ) as stream:
                async for _ in stream.text_stream:
                    pass
                return (await stream.get_final_message()).content[0].text

    try:
        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    with served("--latency", str(args.latency)) as url:
        return measure(url, args)


def measure(url: str, args: argparse.Namespace) -> int:
    ideal = args.calls / args.concurrency * args.latency
    raw_times: list[float] = []
    our_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(url, tmp, max_concurrent=args.concurrency, default_model=MODEL, max_tokens=256)
        with Orchestrator(settings) as orch:
            asyncio.run(raw_fanout(url, 20, args.concurrency, "warm"))  # warm-up both paths
            orch.run_many_sync([("assistant", f"warm {i}") for i in range(20)])
            for rep in range(REPEATS):
                order = ("raw", "ours") if rep % 2 == 0 else ("ours", "raw")
                for path in order:
                    gc.collect()
                    t0 = time.perf_counter()
                    if path == "raw":
                        asyncio.run(raw_fanout(url, args.calls, args.concurrency, f"raw{rep}"))
                        raw_times.append(time.perf_counter() - t0)
                        continue
                    results = orch.run_many_sync([("assistant", f"ours{rep} task {i}") for i in range(args.calls)])
                    our_times.append(time.perf_counter() - t0)
                    failed = [r for r in results if not r.ok]
                    if failed:
                        print(f"{len(failed)} calls failed: {failed[0].error}", file=sys.stderr)
                        return 1
    print(f"{args.calls} calls, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"median of {REPEATS} [best]")
    report_paired("ours / raw", ideal, ("raw AsyncAnthropic + Semaphore", raw_times),
                  ("Orchestrator.run_many_sync", our_times), target=1.10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
