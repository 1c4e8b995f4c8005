"""Orchestrator overhead: 500 calls, 50 ms server latency, concurrency 50.

Compares, in one run and against the same FakeAnthropicServer:
  ideal  = calls / concurrency * latency (0.5 s)
  raw    = AsyncAnthropic + asyncio.Semaphore + asyncio.gather (streaming with the SDK's
           messages.stream), no bookkeeping: the loop people write, and the target's base
  lean   = the same loop on the wire path the orchestrator takes (the client's post, the raw
           event stream, replies.MessageBuilder), no bookkeeping: ours / lean is what the
           bookkeeping itself costs (context, no target)
  ours   = Orchestrator.run_many_sync: retries, limits, signed cache writes, ledger rows
Each is measured REPEATS times, with the server and the client pinned to one core each.
Runs are grouped (the three back to back, the order rotated every repeat so none always
inherits another's leftovers; a full gc.collect() before each run) and the target is
checked on the median of the paired ratios, which cancels the slow drift of a shared VM;
the best runs are printed beside the medians.

    .venv/bin/python benchmarks/orchestrator.py [--calls 500] [--latency 0.05] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time

import anthropic
from anthropic.types import Message, RawMessageStreamEvent
from offline_server import bench_settings, report_paired, served

from claude_force_nb import AgentRegistry, Orchestrator
from claude_force_nb.engine.replies import MessageBuilder

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


async def lean_fanout(url: str, calls: int, concurrency: int, tag: str) -> None:
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with sem:
            body = {"model": MODEL, "max_tokens": 256, "system": SYSTEM, "stream": True,
                    "messages": [{"role": "user", "content": f"{tag} task {i}"}]}
            stream = await client.post("/v1/messages", body=body, cast_to=Message, stream=True,
                                       stream_cls=anthropic.AsyncStream[RawMessageStreamEvent])
            builder = MessageBuilder()
            async for event in stream:
                builder.add(event)
            message = builder.finish()
            assert message is not None
            return str(message["content"][0]["text"])

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
    times: dict[str, list[float]] = {"raw": [], "lean": [], "ours": []}
    loops = {"raw": raw_fanout, "lean": lean_fanout}
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(url, tmp, max_concurrent=args.concurrency, default_model=MODEL, max_tokens=256)
        with Orchestrator(settings) as orch:
            for loop in loops.values():  # warm-up every path
                asyncio.run(loop(url, 20, args.concurrency, "warm"))
            orch.run_many_sync([("assistant", f"warm {i}") for i in range(20)])
            for rep in range(REPEATS):
                paths = list(times)
                for path in paths[rep % 3:] + paths[:rep % 3]:
                    gc.collect()
                    t0 = time.perf_counter()
                    if path in loops:
                        asyncio.run(loops[path](url, args.calls, args.concurrency, f"{path}{rep}"))
                        times[path].append(time.perf_counter() - t0)
                        continue
                    results = orch.run_many_sync([("assistant", f"ours{rep} task {i}") for i in range(args.calls)])
                    times["ours"].append(time.perf_counter() - t0)
                    failed = [r for r in results if not r.ok]
                    if failed:
                        print(f"{len(failed)} calls failed: {failed[0].error}", file=sys.stderr)
                        return 1
    print(f"{args.calls} calls, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"median of {REPEATS} [best]")
    report_paired("ours / raw", ideal, ("raw AsyncAnthropic + Semaphore", times["raw"]),
                  ("Orchestrator.run_many_sync", times["ours"]), target=1.10)
    lean = statistics.median(o / b for o, b in zip(times["ours"], times["lean"]))
    print(f"{'lean loop, our wire path':<34}{statistics.median(times['lean']):8.3f} s   "
          f"[{min(times['lean']):.3f} s]")
    print(f"ours / lean = {lean:.3f} (median of paired runs): what retries, limits, the cache and the ledger cost "
          f"(context, no target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
