"""Tool-loop overhead: a 5-step tool loop through the Orchestrator against the same loop
written directly on AsyncAnthropic, on the same offline server (50 ms per request).

Each loop is 5 requests: four replies that call ``lookup`` and a final answer (the server,
in its own process, is scripted with exactly that sequence for every loop, so both sides
get the same replies in the same order). The direct loop streams each reply, runs the
tool inline and appends the turn; ours is ``Orchestrator.run_sync(..., tools=[lookup])``
with ``refresh=True``, so it pays for everything a fresh run does (tool threads, budget,
pacing, a ledger row and a signed cache write per step) but no step is served from the
cache. Runs are paired (order swapped every repeat, gc.collect() before each) and the
target is checked on the median of the paired ratios.

    .venv/bin/python benchmarks/tool_loop.py [--loops 4] [--latency 0.05] [--repeats 11]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "claude-haiku-4-5"
STEPS = 5  # requests per loop: STEPS - 1 tool turns, then the answer
WARM_UP = 2  # loops per side before measuring


def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key to look up.
    """
    return f"value of {key}"


def serve(loops: int, latency: float) -> None:
    """The server process: scripted for ``loops`` loops, serving until stdin closes."""
    from claude_force_nb.testing import FakeAnthropicServer, Fault

    with FakeAnthropicServer(latency_s=latency) as server:
        for _ in range(loops):
            server.script(*(Fault(tool_calls=[("lookup", {"key": f"k{step}"})]) for step in range(STEPS - 1)))
            server.script(Fault(text="All keys looked up."))
        print(server.url, flush=True)
        sys.stdin.read()


async def direct_loops(url: str, loops: int, system: str, tools: list[dict[str, Any]], tag: str) -> None:
    """The loop written directly on AsyncAnthropic: stream, run the tool calls, append, repeat."""
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
    try:
        for n in range(loops):
            messages: list[dict[str, Any]] = [{"role": "user", "content": f"{tag} loop {n}"}]
            while True:
                async with client.messages.stream(model=MODEL, max_tokens=256, system=system,
                                                  messages=messages, tools=tools) as stream:
                    async for _ in stream.text_stream:
                        pass
                    message = await stream.get_final_message()
                if message.stop_reason != "tool_use":
                    break
                results = [{"type": "tool_result", "tool_use_id": block.id, "content": lookup(**block.input)}
                           for block in message.content if block.type == "tool_use"]
                messages += [{"role": "assistant", "content": message.content}, {"role": "user", "content": results}]
    finally:
        await client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=4, help="loops per measured run")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--serve", type=int, metavar="LOOPS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve, args.latency)
        return 0
    from offline_server import served

    total = 2 * (WARM_UP + args.repeats * args.loops)
    command = [sys.executable, __file__, "--serve", str(total)]
    with served("--latency", str(args.latency), command=command) as url:
        return measure(url, args)


def measure(url: str, args: argparse.Namespace) -> int:
    from offline_server import report_paired

    from claude_force_nb import AgentRegistry, Orchestrator, Settings, tool

    system = AgentRegistry().get("assistant").system  # both sides send the same bytes
    lookup_tool = tool(lookup)
    tools = [lookup_tool.definition()]
    direct_times: list[float] = []
    our_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(api_key="bench", base_url=url, data_dir=Path(tmp) / "home",
                            secrets_dir=Path(tmp) / "home" / "secrets", cache_secret=b"bench-secret",
                            default_model=MODEL, max_tokens=256)
        with Orchestrator(settings) as orch:

            def ours(tag: str, loops: int) -> None:
                for n in range(loops):
                    result = orch.run_sync("assistant", f"{tag} loop {n}", tools=[lookup_tool], refresh=True)
                    if not result.ok or len(result.steps) != STEPS - 1:
                        raise SystemExit(f"the loop did not run as scripted: {result.error or result.steps}")

            asyncio.run(direct_loops(url, WARM_UP, system, tools, "warm"))
            ours("warm", WARM_UP)
            for rep in range(args.repeats):
                for side in (("direct", "ours") if rep % 2 == 0 else ("ours", "direct")):
                    gc.collect()
                    t0 = time.perf_counter()
                    if side == "direct":
                        asyncio.run(direct_loops(url, args.loops, system, tools, f"direct{rep}"))
                        direct_times.append(time.perf_counter() - t0)
                    else:
                        ours(f"ours{rep}", args.loops)
                        our_times.append(time.perf_counter() - t0)
            rows = len(orch.ledger.rows())
    ideal = args.loops * STEPS * args.latency
    print(f"{args.loops} loops of {STEPS} steps, server latency {args.latency * 1000:.0f} ms, "
          f"median of {args.repeats} [best]; {rows} ledger rows")
    report_paired("ours / direct", ideal, ("direct AsyncAnthropic loop", direct_times),
                  ("Orchestrator.run_sync(tools=)", our_times), target=1.10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
