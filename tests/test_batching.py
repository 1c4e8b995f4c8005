"""Batch mode (engine/batching.py) with the real SDK against FakeAnthropicServer on a ManualClock.

A "kernel restart" is a new Orchestrator on the same home; an interrupt is the cancelled
future of a run on the runner loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading

import pytest

from claude_force_nb.core.errors import UnknownBatchError
from claude_force_nb.core.options import RunOptions
from claude_force_nb.engine import runner
from claude_force_nb.engine.batch_collect import cache_key_of, custom_id_of, split_requests
from claude_force_nb.engine.batching import (
    BatchProgress,
    batch_list,
    batch_params,
    cancel_batch,
    resume_batch,
    run_batched,
)
from claude_force_nb.store.batches import BatchStore
from claude_force_nb.testing import FakeAnthropicServer, ManualClock

HAIKU = "claude-haiku-4-5"
DELAY_S = 60.0
POLL_S = 20.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock):
    with FakeAnthropicServer(clock=clock, batch_delay_s=DELAY_S) as srv:
        yield srv


def calls_for(orch, tasks, **options):
    """(row, call with its cache key) for each task, as Orchestrator.map builds them."""
    made = []
    for row, task in enumerate(tasks):
        call = orch._prepare("assistant", task, RunOptions(model=HAIKU, **options))
        made.append((row, dataclasses.replace(call, cache_key=orch.cache.key_for(call.body))))
    return made


def run(orch, calls, clock, **kwargs):
    """run_batched to the end, the server clock moving by each poll's wait; returns results by row and progress."""
    results: dict[int, object] = {}
    progress: list[BatchProgress] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    def on_result(row, result):
        assert row not in results, f"row {row} got two results"
        results[row] = result

    runner.run_sync(run_batched(orch, calls, on_result=on_result, on_progress=progress.append, poll_s=POLL_S,
                                sleep=sleep, **kwargs))
    return results, progress


def interrupted(orch, calls, server, batches: int = 1) -> None:
    """Start run_batched and interrupt it while it waits, once ``batches`` batches exist."""
    future = runner.submit(run_batched(orch, calls, on_result=lambda row, result: None, poll_s=POLL_S,
                                       sleep=lambda seconds: asyncio.sleep(0.01)))
    assert server.wait_for(lambda s: len(batch_list(orch)) >= batches)  # recorded before the wait begins
    future.cancel()
    with pytest.raises(BaseException):  # noqa: B017 (CancelledError of a concurrent future)
        future.result(timeout=5)


def ledger_rows(orch):
    return [row for row in orch.ledger.rows()]


# ----------------------------------------------------------------------------------- pure parts

def test_split_requests_cuts_at_the_request_and_byte_limits():
    assert split_requests([10] * 5, max_requests=2, max_bytes=100) == [[0, 1], [2, 3], [4]]
    assert split_requests([40, 40, 40, 10, 90], max_requests=10, max_bytes=100) == [[0, 1], [2, 3], [4]]
    assert split_requests([100, 1], max_requests=10, max_bytes=100) == [[0], [1]]
    assert split_requests([], max_requests=10, max_bytes=100) == []
    with pytest.raises(ValueError, match="over the 100-byte limit"):
        split_requests([101], max_requests=10, max_bytes=100)


def test_custom_id_is_the_cache_key_without_its_prefix():
    key = "v1:" + "ab" * 32
    assert custom_id_of(key) == "ab" * 32 and cache_key_of(custom_id_of(key)) == key
    with pytest.raises(ValueError):
        custom_id_of("v1:" + "a" * 65)


# ----------------------------------------------------------------------------------- a full run

def test_rows_are_deduplicated_priced_at_batch_rates_cached_and_ledgered(orch, server, clock):
    tasks = ["Classify: red", "Classify: green", "Classify: red", "Classify: blue"]
    calls = calls_for(orch, tasks)
    results, progress = run(orch, calls, clock)

    assert [len(ids) for ids in server.batches.submitted] == [3]             # the repeated row is sent once
    assert set(server.batches.submitted[0]) == {custom_id_of(c.cache_key) for _, c in calls}
    assert sorted(results) == [0, 1, 2, 3]
    for row, task in enumerate(tasks):
        assert f'You asked: "{task}"' in results[row].text                   # matched on custom_id, any order
    first, again = results[0], results[2]
    assert first.ok and first.batch and not first.cached
    assert first.cost_usd == orch.prices.cost(HAIKU, first.usage) / 2 > 0
    assert again.cached and again.cost_usd == 0.0 and again.saved_usd == first.cost_usd and not again.batch

    rows = ledger_rows(orch)
    assert len(rows) == 3 and all(r["batch"] == 1 and r["ok"] == 1 and r["cached"] == 0 for r in rows)
    assert sorted(r["cost_usd"] for r in rows) == sorted(results[i].cost_usd for i in (0, 1, 3))
    assert {r["task_head"] for r in rows} == {"Classify: red", "Classify: green", "Classify: blue"}

    # the request counts moved while the batch was in progress, and the cost arrived with the results
    assert [(p.processing, p.succeeded) for p in progress] == [(3, 0), (3, 0), (2, 1), (1, 2), (0, 3)]  # created, then each poll
    assert progress[-1].total == 3 and progress[-1].cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows))

    # a normal run of the same task is a cache hit that saved the batch price; the API's standard price is twice it
    hit = orch.run_sync("assistant", "Classify: green", model=HAIKU)
    assert hit.cached and hit.saved_usd == results[1].cost_usd
    fresh = orch.run_sync("assistant", "Classify: green", model=HAIKU, refresh=True)
    assert fresh.usage == results[1].usage and fresh.cost_usd == 2 * results[1].cost_usd
    [record] = batch_list(orch)
    assert record["collected"] and record["state"] == "ended" and record["requests"] == 3
    assert record["succeeded"] == 3 and record["cost_usd"] == pytest.approx(progress[-1].cost_usd)
    assert record["agent"] == "assistant" and record["model"] == HAIKU
    assert progress[-1].batch_ids == (record["id"],)
    assert progress[-1].line() == (f"Batch {record['id']}: 3/3 requests done (3 succeeded) · "
                                   f"${record['cost_usd']:.4f} so far")


def test_a_rerun_after_a_restart_waits_for_the_pending_batch_instead_of_submitting_again(
        make_orch, server, clock):
    first = make_orch()
    interrupted(first, calls_for(first, ["one", "two", "three"]), server)
    assert len(ledger_rows(first)) == 0
    [pending] = batch_list(first)
    assert not pending["collected"] and pending["state"] == "in_progress"

    restarted = make_orch()                                                  # a new kernel on the same home
    results, _ = run(restarted, calls_for(restarted, ["one", "two", "three", "four"]), clock)
    assert [len(ids) for ids in server.batches.submitted] == [3, 1]          # only the new row is submitted
    assert all(results[row].ok and results[row].batch for row in range(4))
    assert len(ledger_rows(restarted)) == 4
    assert all(record["collected"] for record in batch_list(restarted))


def test_an_interrupt_lets_a_store_call_in_flight_finish_before_the_store_is_closed(make_orch, server, monkeypatch):
    """Closing the store under a query running on a worker thread crashes SQLite: the
    interrupted run waits for the call, then closes."""
    orch = make_orch()
    entered, release, closed = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []
    real_update, real_close = BatchStore.update, BatchStore.close

    def slow_update(self, *args, **kwargs):
        entered.set()
        release.wait(5)
        real_update(self, *args, **kwargs)
        order.append("update")

    def close(self):
        order.append("close")
        real_close(self)
        closed.set()

    monkeypatch.setattr(BatchStore, "update", slow_update)
    monkeypatch.setattr(BatchStore, "close", close)
    future = runner.submit(run_batched(orch, calls_for(orch, ["held"]), on_result=lambda row, result: None,
                                       poll_s=POLL_S, sleep=lambda seconds: asyncio.sleep(0.01)))
    assert entered.wait(5)  # the waiter is writing the batch's counts on a worker thread
    future.cancel()
    release.set()
    assert closed.wait(5)
    assert order == ["update", "close"]


def test_closing_after_an_interrupt_waits_for_answers_being_merged(make_orch, server, clock, monkeypatch):
    """Answers already claimed from an ended batch are paid for: an interrupt followed by
    close() still writes them to the ledger; a resume then finishes the batch, recording
    nothing twice."""
    orch = make_orch()
    entered, release = threading.Event(), threading.Event()
    real_claim = BatchStore.claim

    def slow_claim(self, *args, **kwargs):
        entered.set()
        release.wait(5)
        return real_claim(self, *args, **kwargs)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    monkeypatch.setattr(BatchStore, "claim", slow_claim)
    future = runner.submit(run_batched(orch, calls_for(orch, ["one", "two", "three"]),
                                       on_result=lambda row, result: None, poll_s=POLL_S, sleep=sleep))
    assert entered.wait(5)  # the batch ended; its answers are being claimed
    assert len(orch._tasks) == 1  # the merge is work in flight: close() waits for it
    future.cancel()
    closer = threading.Thread(target=orch.close)
    closer.start()
    release.set()
    closer.join(10)
    restarted = make_orch()
    assert len(restarted.ledger.rows()) == 3
    [record] = batch_list(restarted)
    restarted.resume_batch_sync(record["id"], sleep=sleep)
    assert batch_list(restarted)[0]["collected"] and len(restarted.ledger.rows()) == 3


def test_resume_after_a_restart_fills_the_cache_so_a_normal_run_is_all_hits(make_orch, server, clock):
    first = make_orch()
    interrupted(first, calls_for(first, ["alpha", "beta", "gamma"]), server)
    [record] = batch_list(first)

    restarted = make_orch()
    seen: list[BatchProgress] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    summary = runner.run_sync(resume_batch(restarted, record["id"], on_progress=seen.append, poll_s=POLL_S,
                                           sleep=sleep))
    assert (summary.state, summary.answers, summary.failed) == ("ended", 3, 0)
    assert summary.line() == f"Batch {record['id']} ended: 3 answers cached, 0 failed (see the ledger) · " \
                             f"${summary.cost_usd:.4f}"
    rows = ledger_rows(restarted)
    assert len(rows) == 3 and {r["batch"] for r in rows} == {1}
    assert summary.cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert seen[-1].processing == 0 and seen[-1].succeeded == 3

    before = server.request_count
    hits = restarted.run_many_sync([("assistant", task, {"model": HAIKU}) for task in ("alpha", "beta", "gamma")])
    assert all(hit.cached for hit in hits) and server.request_count == before

    again = runner.run_sync(resume_batch(restarted, record["id"]))          # collecting twice writes nothing
    assert again.already_collected and (again.answers, again.failed) == (3, 0)
    assert len(ledger_rows(restarted)) == 6                                 # 3 batch rows + 3 hits, no more
    assert len(server.batches.submitted) == 1


def test_retryable_errors_are_submitted_once_more_and_invalid_requests_are_reported(orch, server, clock):
    tasks = ["fine", "busy [[fake:error=529]]", "bad [[fake:error=400]]"]
    results, _ = run(orch, calls_for(orch, tasks), clock)

    busy, bad = custom_id_of(results[1].cache_key), custom_id_of(results[2].cache_key)
    assert [len(ids) for ids in server.batches.submitted] == [3, 1] and server.batches.submitted[1] == [busy]
    assert results[0].ok and results[0].batch
    assert results[1].error_type == "batch_errored" and "overloaded_error" in results[1].error
    assert results[2].error_type == "batch_errored" and "invalid_request_error" in results[2].error
    assert "fix the request" in results[2].error and results[2].cost_usd == 0.0
    rows = ledger_rows(orch)
    assert sorted((r["ok"], r["error_type"]) for r in rows) == [(0, "batch_errored"), (0, "batch_errored"), (1, None)]
    assert bad != busy


def test_cancel_keeps_what_was_answered_and_reports_the_rest(make_orch, server, clock):
    first = make_orch()
    interrupted(first, calls_for(first, [f"row {i}" for i in range(4)]), server)
    [record] = batch_list(first)
    clock.advance(DELAY_S / 2)                                               # half the requests have finished
    summary = runner.run_sync(cancel_batch(first, record["id"]))
    assert summary.state == "canceling"
    assert summary.line() == f"Batch {record['id']} is canceling: `%agent batch resume {record['id']}` collects it."
    [after] = batch_list(first)
    assert after["cancel_requested"] and not after["collected"]

    collected = runner.run_sync(resume_batch(make_orch(), record["id"]))
    assert (collected.answers, collected.failed) == (2, 2)
    rows = ledger_rows(first)
    assert sorted(r["error_type"] or "" for r in rows) == ["", "", "batch_canceled", "batch_canceled"]
    assert len(server.batches.submitted) == 1


def test_requests_too_big_for_a_batch_fail_and_the_rest_is_split(orch, server, clock):
    [(_, small)] = calls_for(orch, ["a"])
    size = len(json.dumps({"custom_id": "c" * 64, "params": batch_params(small)}).encode()) + 1
    tasks = ["a", "b", "c", "d", "x" * 2 * size]
    results, _ = run(orch, calls_for(orch, tasks), clock, max_requests=3, max_bytes=2 * size)
    assert [len(ids) for ids in server.batches.submitted] == [2, 2]        # two requests fill max_bytes
    results_3, _ = run(orch, calls_for(orch, ["e", "f", "g", "h"]), clock, max_requests=3, max_bytes=10 * size)
    assert [len(ids) for ids in server.batches.submitted] == [2, 2, 3, 1]  # at most max_requests
    assert all(results[row].ok for row in range(4)) and all(r.ok for r in results_3.values())
    assert all(results[row].ok for row in range(3))
    assert results[4].error_type == "request_too_large" and "without batch mode" in results[4].error
    assert len(ledger_rows(orch)) == 9


def test_an_unknown_batch_id_is_one_clear_error(orch):
    with pytest.raises(UnknownBatchError, match="`%agent batches` lists"):
        runner.run_sync(resume_batch(orch, "msgbatch_nope"))
    with pytest.raises(UnknownBatchError):
        runner.run_sync(cancel_batch(orch, "msgbatch_nope"))


def test_a_batch_the_api_does_not_know_ends_as_missing(orch, server, clock):
    from claude_force_nb.store.batches import BatchRequest

    with BatchStore(orch.settings) as store:
        store.add("msgbatch_gone", [BatchRequest("c" * 64, "assistant", HAIKU, "lost")])

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    summary = runner.run_sync(resume_batch(orch, "msgbatch_gone", poll_s=1.0, sleep=sleep))
    assert (summary.state, summary.failed) == ("missing", 1)
    assert batch_list(orch)[0]["collected"]
