"""Workflow engine overhead: a DAG run by ``run_workflow_sync`` vs the same DAG by hand.

The DAG: ``plan`` -> BRANCHES parallel branches of two nodes each (``p{i}`` then ``c{i}``) ->
``report`` that reads every branch: 2 + 2 * BRANCHES calls, four calls deep. "By hand" is what
a user would write without the engine: ``await orch.run`` for each node and ``asyncio.gather``
over the branches, sending exactly the same prompts. Both run on one Orchestrator against the
same FakeAnthropicServer (in its own process), with a fresh task each run so nothing is cached.
Runs are paired, the order swapped every repeat, and the target is checked on the median of the
paired ratios (as benchmarks/orchestrator.py does).

    .venv/bin/python benchmarks/workflows.py [--branches 20] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time

from offline_server import bench_settings, served

from claude_force_nb import Orchestrator, Workflow
from claude_force_nb.engine import runner

MODEL = "claude-haiku-4-5"
REPEATS = 11
TARGET = 1.05


def dag_text(branches: int) -> str:
    lines = ["plan = data-analyst: Plan {task}"]
    for i in range(branches):
        lines += [f"p{i} = python-expert: Part {i} of {{plan}}", f"c{i} = code-reviewer: Check {{p{i}}}"]
    lines.append("report = technical-writer: Merge " + " ".join(f"{{c{i}}}" for i in range(branches)))
    return "\n".join(lines)


async def by_hand(orch: Orchestrator, task: str, branches: int) -> str:
    plan = await orch.run("data-analyst", f"Plan {task}")

    async def branch(i: int) -> str:
        part = await orch.run("python-expert", f"Part {i} of {plan.text}")
        return (await orch.run("code-reviewer", f"Check {part.text}")).text

    checks = await asyncio.gather(*(branch(i) for i in range(branches)))
    return (await orch.run("technical-writer", "Merge " + " ".join(checks))).text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    with served("--latency", str(args.latency)) as url:
        return measure(url, args)


def measure(url: str, args: argparse.Namespace) -> int:
    wf = Workflow.parse(dag_text(args.branches))
    hand_times: list[float] = []
    engine_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(url, tmp, max_concurrent=args.branches, default_model=MODEL, max_tokens=256)
        with Orchestrator(settings) as orch:
            runner.run_sync(by_hand(orch, "warm-up by hand", args.branches))
            orch.run_workflow_sync(wf, "warm-up engine")
            for rep in range(REPEATS):
                order = ("hand", "engine") if rep % 2 == 0 else ("engine", "hand")
                for path in order:
                    gc.collect()
                    t0 = time.perf_counter()
                    if path == "hand":
                        runner.run_sync(by_hand(orch, f"hand {rep}", args.branches))
                        hand_times.append(time.perf_counter() - t0)
                        continue
                    result = orch.run_workflow_sync(wf, f"engine {rep}")
                    engine_times.append(time.perf_counter() - t0)
                    if not result.ok or any(s != "done" for s in result.states.values()):
                        print(f"the workflow did not finish: {result.states}", file=sys.stderr)
                        return 1
    ratio = statistics.median(e / h for e, h in zip(engine_times, hand_times))
    calls = 2 + 2 * args.branches
    print(f"{calls} calls ({args.branches} branches, 4 deep), server latency {args.latency * 1000:.0f} ms, "
          f"median of {REPEATS} [best]")
    for label, times in (("by hand: orch.run + asyncio.gather", hand_times), ("Orchestrator.run_workflow_sync",
                                                                              engine_times)):
        print(f"{label:<38}{statistics.median(times):8.3f} s   [{min(times):.3f} s]")
    print(f"engine / hand = {ratio:.3f} (median of paired runs)  "
          f"(target <= {TARGET:.2f}: {'PASS' if ratio <= TARGET else 'MISS'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
