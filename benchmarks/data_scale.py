"""Data-scale runs: ``Orchestrator.map`` over the rows of a DataFrame, in four parts.

  rate      2,000 rows against the offline server limited to 1,200 requests/min (100 ms a
            request, its bucket emptied first, so the ideal is 100 s): throughput as a share
            of the limit (target >= 90%), failed rows (target 0), 429s as a share of the
            requests the server saw (target <= 2%).
  memory    100,000 rows against a zero-latency server in its own process: peak RSS growth of
            the client (target <= 300 MB), for ``map`` and for the bare loop below, each in a
            child process of its own (peak RSS, VmHWM; the frame is built and
            both paths warmed up before the baseline is read).
  overhead  time a row through ``map`` against a bare ``AsyncAnthropic`` + ``asyncio.Semaphore``
            loop over the same rows (same concurrency, server, system prompt and prompts; the
            bare loop builds the DataFrame column too): paired runs, order alternated, median
            of the paired ratios (target <= 1.10). Every map run has a fresh home, so every row
            is a real request, with the cache and the ledger on, as users run it. The same
            calls through ``run_many`` are timed beside them: map's own cost is map / run_many;
            and the bare loop on the orchestrator's wire path (the client's ``post``, the reply
            read as JSON): map / lean is what the bookkeeping costs (context, no target).
  batch     100,000 rows as Message Batches (``map_sync(df, ..., batch=True)``), merged back into
            the DataFrame with their costs: at half the price of the same rows sent one by one.
            Without batch mode (engine/batching.py) in the checkout, it says so and is skipped.

The bare loop is written the way such loops are: one coroutine per row under a semaphore,
``gather``, the answers' texts kept. ``--concurrency`` is its semaphore and the
orchestrator's ``Settings.max_concurrent``; map keeps its default window. The client is
pinned to one core and the server to the other (offline_server.served).

    .venv/bin/python benchmarks/data_scale.py [rate|memory|overhead|batch ...] [--rows N ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import anthropic
import httpx2
import pandas as pd
from offline_server import bench_settings, report_paired, served

from claude_force_nb import AgentRegistry, Orchestrator

MODEL = "claude-haiku-4-5"
AGENT = "assistant"
PROMPT = "Classify the sentiment of this review as positive, negative or mixed: {review}"
MAX_TOKENS = 64
WARM_UP_ROWS = 20
TARGET_OVERHEAD = 1.10
TARGET_RSS_MB = 300
SYSTEM = AgentRegistry().get(AGENT).system  # the bare loop sends the agent's system prompt too


def reviews(rows: int, tag: str = "") -> pd.DataFrame:
    """``rows`` distinct rows: an id and a short review."""
    return pd.DataFrame({"id": range(rows),
                         "review": [f"{tag}review {i}: arrived on time, works as described" for i in range(rows)]})


async def bare_loop(url: str, frame: pd.DataFrame, concurrency: int) -> pd.DataFrame:
    """The frame with an ``answer`` column, from a bare AsyncAnthropic + Semaphore loop."""
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(review: str) -> str:
        async with sem:
            message = await client.messages.create(
                model=MODEL, max_tokens=MAX_TOKENS, system=SYSTEM,
                messages=[{"role": "user", "content": PROMPT.format(review=review)}])
            return message.content[0].text

    try:
        answers = await asyncio.gather(*(one(review) for review in frame["review"]))
    finally:
        await client.close()
    return frame.assign(answer=answers)


async def lean_loop(url: str, frame: pd.DataFrame, concurrency: int) -> pd.DataFrame:
    """``bare_loop`` on the wire path the orchestrator takes (the client's ``post``, the reply
    read as JSON): map / lean is what map's bookkeeping itself costs."""
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(review: str) -> str:
        async with sem:
            body = {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM,
                    "messages": [{"role": "user", "content": PROMPT.format(review=review)}]}
            response = await client.post("/v1/messages", body=body, cast_to=httpx2.Response)
            return str(json.loads(response.content)["content"][0]["text"])

    try:
        answers = await asyncio.gather(*(one(review) for review in frame["review"]))
    finally:
        await client.close()
    return frame.assign(answer=answers)


def map_rows(orch: Orchestrator, frame: pd.DataFrame) -> pd.DataFrame:
    """``map_sync`` as users run it (its default window; Settings.max_concurrent caps the requests
    in flight), without the progress bar, so stderr stays readable."""
    return orch.map_sync(frame, AGENT, PROMPT, progress=False)


def failed_rows(out: pd.DataFrame) -> int:
    failed = out["error"].notna()
    if failed.any():
        print(f"{int(failed.sum())} rows failed, e.g. {out.loc[failed, 'error'].iloc[0]}", file=sys.stderr)
    return int(failed.sum())


# -- rate --------------------------------------------------------------------------------


def rate(args: argparse.Namespace) -> bool:
    """map under a per-minute request limit: the Pacer must keep it near the limit without 429s."""
    from rate_limits import empty_the_bucket

    from claude_force_nb.testing import FakeAnthropicServer

    concurrency = 8
    # In this process (20 requests/s cost it nothing), so its own counters say what it saw.
    with FakeAnthropicServer(latency_s=args.latency, requests_per_minute=args.rpm) as server, \
            tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(server.url, tmp, default_model=MODEL, max_tokens=MAX_TOKENS,
                                  max_concurrent=concurrency, max_attempts=30, retry_max_wait_s=20.0)
        with Orchestrator(settings) as orch:
            asyncio.run(empty_the_bucket(server.url, concurrency))
            server.reset_metrics()
            started = time.perf_counter()
            out = map_rows(orch, reviews(args.rows))
            seconds = time.perf_counter() - started
            pacing = orch.pacer.stats()
        requests, refused = server.request_count, server.counters["rate_limited"]
    failed = failed_rows(out)
    ideal = args.rows / (args.rpm / 60.0)
    share = args.rows / seconds / (args.rpm / 60.0)
    print(f"rate: {args.rows:,} rows through map, server limit {args.rpm:,} requests/min, latency "
          f"{args.latency * 1000:.0f} ms, concurrency {concurrency}; bucket emptied first, ideal {ideal:.1f} s")
    print(f"  {seconds:.1f} s, {args.rows / seconds * 60:,.0f} rows/min = {share:.1%} of the limit; server saw "
          f"{requests:,} requests, {refused:,} answered 429 ({refused / requests:.2%}); failed rows {failed}; "
          f"pacer: {pacing.rate_limited} 429s seen, rows held back {pacing.waited_s:.0f} s summed")
    checks = {"throughput >= 90% of the limit": share >= 0.90, "no failed row": failed == 0,
              "429s <= 2% of requests": refused / requests <= 0.02}
    print("  " + "; ".join(f"{name}: {'PASS' if ok else 'MISS'}" for name, ok in checks.items()))
    return all(checks.values())


# -- memory ------------------------------------------------------------------------------


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB: Linux's VmHWM, which starts
    afresh at exec (``ru_maxrss`` keeps the peak of the process that ran us, so a child of a
    big parent would show no growth); ``ru_maxrss`` elsewhere (Linux reports kilobytes)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ResidentSplit(threading.Thread):
    """Samples /proc/self/status (Linux) every 0.2 s: the peaks of anonymous memory (the heap)
    and of file-backed pages (SQLite maps its files: shared with the OS page cache, which
    can reclaim them), whose sum is what ru_maxrss reports."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = {"RssAnon": 0.0, "RssFile": 0.0}
        self.done = threading.Event()

    def sample(self) -> dict[str, float]:
        try:
            with open("/proc/self/status") as status:
                lines = [line.split() for line in status]
        except OSError:
            return {}
        return {fields[0].rstrip(":"): int(fields[1]) / 1024 for fields in lines if fields[0][:-1] in self.peak_mb}

    def run(self) -> None:
        while not self.done.wait(0.2):
            for name, mb in self.sample().items():
                self.peak_mb[name] = max(self.peak_mb[name], mb)


def memory_child(args: argparse.Namespace) -> None:
    """One variant in this (child) process: print its peak RSS growth and time as JSON."""
    frame = reviews(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(args.url, tmp, default_model=MODEL, max_tokens=MAX_TOKENS,
                                  max_concurrent=args.concurrency)
        with Orchestrator(settings) as orch:
            warm = reviews(WARM_UP_ROWS, tag="warm ")
            if args.variant == "map":
                map_rows(orch, warm)
            else:
                asyncio.run(bare_loop(args.url, warm, args.concurrency))
            gc.collect()
            baseline, split = rss_mb(), ResidentSplit()
            split_baseline = split.sample()
            split.start()
            started = time.perf_counter()
            if args.variant == "map":
                out = map_rows(orch, frame)
            else:
                out = asyncio.run(bare_loop(args.url, frame, args.concurrency))
            seconds = time.perf_counter() - started
            split.done.set()
            split.join()
    growth = {f"{name}_mb": split.peak_mb[name] - mb for name, mb in split_baseline.items()}
    print(json.dumps({"baseline_mb": baseline, "growth_mb": rss_mb() - baseline, "seconds": seconds,
                      "rows": len(out), "failed": failed_rows(out) if "error" in out else 0, **growth}))


def memory(args: argparse.Namespace) -> bool:
    """Both variants over the same rows and server, each in a child process of its own."""
    figures: dict[str, dict[str, float]] = {}
    with served("--latency", "0") as url:
        for variant in ("bare", "map"):
            child = subprocess.run(
                [sys.executable, __file__, "memory-child", "--variant", variant, "--url", url,
                 "--rows", str(args.rows), "--concurrency", str(args.concurrency)],
                check=True, capture_output=True, text=True)
            figures[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"memory: {args.rows:,} rows, zero-latency server in its own process, concurrency {args.concurrency}")
    for variant, label in (("bare", "bare AsyncAnthropic + Semaphore"), ("map", "Orchestrator.map_sync")):
        f = figures[variant]
        split = (f" (peaks: heap +{f['RssAnon_mb']:.0f} MB, mapped files +{f['RssFile_mb']:.0f} MB)"
                 if "RssAnon_mb" in f else "")
        print(f"  {label:<34}peak RSS growth {f['growth_mb']:6.1f} MB from {f['baseline_mb']:.0f} MB{split}   "
              f"{f['seconds']:6.1f} s = {f['seconds'] / f['rows'] * 1e6:5.0f} us/row   failed {f['failed']}")
    ratio = figures["map"]["seconds"] / figures["bare"]["seconds"]
    growth = figures["map"]["growth_mb"]
    print(f"  map peak RSS growth {growth:.0f} MB (target <= {TARGET_RSS_MB}: "
          f"{'PASS' if growth <= TARGET_RSS_MB else 'MISS'}); time map / bare over {args.rows:,} rows "
          f"= {ratio:.3f} (one run each; target <= {TARGET_OVERHEAD:.2f}: "
          f"{'PASS' if ratio <= TARGET_OVERHEAD else 'MISS'})")
    return growth <= TARGET_RSS_MB and figures["map"]["failed"] == 0


# -- overhead ----------------------------------------------------------------------------


def orchestrated(variant: str, url: str, home: str, frame: pd.DataFrame, concurrency: int) -> tuple[float, int]:
    """Seconds for ``frame`` through a fresh Orchestrator (home ``home``, warmed up): ``map`` or
    ``run_many`` (the same calls as jobs: the orchestrator's own cost, without map's); failed rows."""
    settings = bench_settings(url, home, default_model=MODEL, max_tokens=MAX_TOKENS, max_concurrent=concurrency)
    with Orchestrator(settings) as orch:
        map_rows(orch, reviews(WARM_UP_ROWS, tag="warm "))
        gc.collect()
        started = time.perf_counter()
        if variant == "map":
            out = map_rows(orch, frame)
        else:
            results = orch.run_many_sync([(AGENT, PROMPT.format(review=review)) for review in frame["review"]],
                                         stream=False)
            out = frame.assign(answer=[r.text for r in results], error=[r.error for r in results],
                               cached=[r.cached for r in results])
        seconds = time.perf_counter() - started
    if out["cached"].any():
        raise SystemExit(f"{variant}: a row came from the cache; every row must be a real request")
    return seconds, failed_rows(out)


def overhead(args: argparse.Namespace) -> bool:
    """Paired runs of map and the bare loop (and run_many) over the same rows; a fresh home for every run."""
    frame = reviews(args.rows)
    variants = ("bare", "lean", "run_many", "map")
    loops = {"bare": bare_loop, "lean": lean_loop}
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    with served("--latency", "0") as url, tempfile.TemporaryDirectory() as tmp:
        for loop in loops.values():
            asyncio.run(loop(url, reviews(WARM_UP_ROWS, tag="warm "), args.concurrency))
        for pair in range(args.pairs):
            for variant in variants[pair % 4:] + variants[:pair % 4]:
                if variant in loops:
                    gc.collect()
                    started = time.perf_counter()
                    asyncio.run(loops[variant](url, frame, args.concurrency))
                    times[variant].append(time.perf_counter() - started)
                    continue
                seconds, failed = orchestrated(variant, url, f"{tmp}/{variant}{pair}", frame, args.concurrency)
                if failed:
                    return False
                times[variant].append(seconds)
    print(f"overhead: {args.rows:,} rows a run, zero-latency server in its own process, concurrency "
          f"{args.concurrency}, {args.pairs} grouped runs (order rotated), median [best]")
    print("  per row: " + ", ".join(f"{variant} {statistics.median(times[variant]) / args.rows * 1e6:.0f} us"
                                    for variant in variants))
    own = statistics.median(m / r for m, r in zip(times["map"], times["run_many"]))
    print(f"  map / run_many = {own:.3f} (median of paired runs: map's own cost over the orchestrator's calls)")
    lean = statistics.median(m / r for m, r in zip(times["map"], times["lean"]))
    print(f"  map / lean = {lean:.3f} (median of paired runs: map's bookkeeping over the same wire path; "
          f"context, no target)")
    ratio = report_paired("map / bare", None, ("bare AsyncAnthropic + Semaphore", times["bare"]),
                          ("Orchestrator.map_sync", times["map"]), target=TARGET_OVERHEAD)
    return ratio <= TARGET_OVERHEAD


# -- batch -------------------------------------------------------------------------------


def batch_available() -> bool:
    """Whether this checkout has batch mode (engine/batching.py)."""
    import importlib.util

    return importlib.util.find_spec("claude_force_nb.engine.batching") is not None


def batch(args: argparse.Namespace) -> bool:
    """A batch map of ``rows`` rows, merged back with its costs; checked against the one-by-one price."""
    if not batch_available():
        print("batch: batch mode not available in this checkout (no claude_force_nb/engine/batching.py); skipped")
        return True
    frame = reviews(args.rows)
    sample = frame.head(args.price_sample)
    with served("--latency", "0") as url, tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(url, f"{tmp}/batch", default_model=MODEL, max_tokens=MAX_TOKENS)
        with Orchestrator(settings) as orch:
            started = time.perf_counter()
            out = orch.map_sync(frame, AGENT, PROMPT, batch=True, progress=False)
            seconds = time.perf_counter() - started
        one_by_one = bench_settings(url, f"{tmp}/one-by-one", default_model=MODEL, max_tokens=MAX_TOKENS)
        with Orchestrator(one_by_one) as orch:
            sent = map_rows(orch, sample)
        batches = list(anthropic.Anthropic(api_key="bench", base_url=url).messages.batches.list(limit=100))
    failed = failed_rows(out)
    submitted = sum(b.request_counts.succeeded + b.request_counts.errored + b.request_counts.expired
                    + b.request_counts.canceled for b in batches)
    price_ratio = out["cost_usd"].head(len(sample)).sum() / sent["cost_usd"].sum()
    print(f"batch: {args.rows:,} rows through map_sync(..., batch=True), zero-latency server in its own process")
    print(f"  {seconds:.1f} s; server: {len(batches)} batches, {submitted:,} requests; frame: {len(out):,} rows, "
          f"{int(out['cost_usd'].notna().sum()):,} with a cost, total ${out['cost_usd'].sum():.4f}, failed {failed}")
    print(f"  price of the first {len(sample)} rows, batch / one by one = {price_ratio:.3f} (expected 0.500)")
    ok = failed == 0 and submitted == args.rows and abs(price_ratio - 0.5) < 1e-9
    print(f"  submitted and merged back with costs at batch price: {'PASS' if ok else 'MISS'}")
    return ok


# -- command line ------------------------------------------------------------------------

PARTS = {"rate": rate, "memory": memory, "overhead": overhead, "batch": batch}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)} (default: all four)")
    ap.add_argument("--rows", type=int, help="rows per run (default: 2,000 rate, 100,000 memory and batch, "
                                             "5,000 overhead)")
    ap.add_argument("--rpm", type=int, default=1200, help="rate: the server's requests/min limit")
    ap.add_argument("--latency", type=float, default=0.1, help="rate: the server's latency, seconds")
    ap.add_argument("--concurrency", type=int, default=32, help="memory, overhead: requests in flight at most")
    ap.add_argument("--pairs", type=int, default=5, help="overhead: paired runs")
    ap.add_argument("--price-sample", type=int, default=200, help="batch: rows also sent one by one, for the price")
    ap.add_argument("--variant", choices=("map", "bare"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    return ap


DEFAULT_ROWS = {"rate": 2000, "memory": 100_000, "overhead": 5000, "batch": 100_000, "memory-child": 100_000}


def main() -> int:
    ap = parser()
    args = ap.parse_args()
    unknown = set(args.parts) - set(PARTS) - {"memory-child"}
    if unknown:
        ap.error(f"no part {sorted(unknown)[0]!r}: choose from {', '.join(PARTS)}")
    if args.parts == ["memory-child"]:
        args.rows = args.rows or DEFAULT_ROWS["memory-child"]
        memory_child(args)
        return 0
    ok = True
    for part in args.parts or list(PARTS):
        part_args = argparse.Namespace(**{**vars(args), "rows": args.rows or DEFAULT_ROWS[part]})
        ok = PARTS[part](part_args) and ok
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
