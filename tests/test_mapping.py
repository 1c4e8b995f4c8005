"""Orchestrator.map over real HTTP: columns, costs, the window, the estimate, the budget, resume."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading

import pandas as pd
import pytest

from claude_force_nb.core.errors import BudgetExceededError, InvalidInputError
from claude_force_nb.engine.map_progress import TextProgress
from claude_force_nb.engine.mapping import INTERRUPTED, MapProgress, MapRun
from claude_force_nb.testing import Fault

HAIKU = "claude-haiku-4-5"


def reviews(n: int) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"review {i}" for i in range(n)], "stars": [i % 5 for i in range(n)]})


def sent(server) -> list[dict]:
    return [r.body for r in server.requests if r.path.endswith("/v1/messages")]


def test_every_row_gets_its_answer_cost_and_ledger_row(orch, server):
    frame = reviews(12)
    out = orch.map_sync(frame, "assistant", "Classify: {review} ({stars} stars)", model=HAIKU, progress=False)
    assert list(out.columns) == ["review", "stars", "answer", "cost_usd", "cached", "error"]
    assert out.index.equals(frame.index) and out[["review", "stars"]].equals(frame)
    prompts = sorted(body["messages"][0]["content"] for body in sent(server))
    assert prompts == sorted(f"Classify: review {i} ({i % 5} stars)" for i in range(12))
    assert all(f"review {i} (" in out.answer[i] for i in range(12))  # each answer is its own row's
    rows = orch.ledger.rows()
    assert len(rows) == 12 and sorted(r["cost_usd"] for r in rows) == sorted(out.cost_usd)
    assert out.cost_usd.sum() == pytest.approx(sum(r["cost_usd"] for r in rows)) and (out.cost_usd > 0).all()
    assert not out.cached.any() and out.error.isna().all()
    assert out.attrs["claude_force"] == {"rows": 12, "done": 12, "cached": 0, "failed": 0,
                                         "cost_usd": pytest.approx(out.cost_usd.sum()), "interrupted": False,
                                         "batch_ids": []}


def test_a_rerun_is_all_cache_hits_and_sends_nothing(orch, server):
    frame = reviews(20)
    first = orch.map_sync(frame, "assistant", "Label: {review}", model=HAIKU, progress=False)
    again = orch.map_sync(frame, "assistant", "Label: {review}", model=HAIKU, progress=False)
    assert len(sent(server)) == 20
    assert again.cached.all() and (again.cost_usd == 0).all() and again.answer.equals(first.answer)


def test_schema_fields_become_typed_columns(orch, server):
    out = orch.map_sync(reviews(4), "assistant", "Rate: {review}", schema="label, score int, sure bool",
                        model=HAIKU, progress=False)
    assert list(out.columns) == ["review", "stars", "label", "score", "sure", "cost_usd", "cached", "error"]
    assert {c: str(out[c].dtype) for c in ("label", "score", "sure", "cached")} == {
        "label": "string", "score": "Int64", "sure": "boolean", "cached": "boolean"}
    assert out.score.notna().all() and out.error.isna().all()
    assert all("output_config" in body for body in sent(server))


def test_output_columns_never_replace_input_columns(orch):
    frame = reviews(2).assign(label="x", cost_usd=1.0)
    with pytest.raises(InvalidInputError, match="already has a column 'label': pass into="):
        orch.map_sync(frame, "assistant", "{review}", into="label", progress=False)
    out = orch.map_sync(frame, "assistant", "{review}", into="verdict", model=HAIKU, progress=False)
    assert list(out.columns) == ["review", "stars", "label", "cost_usd", "verdict", "verdict_cost_usd", "cached",
                                 "error"]
    assert (out.cost_usd == 1.0).all() and (out.verdict_cost_usd > 0).all()


def test_a_bad_template_is_one_error_before_anything_is_sent(orch, server):
    frame = reviews(3)
    with pytest.raises(InvalidInputError, match=r"names \{reveiw\}, which is not a column .*did you mean \{review\}"):
        orch.map_sync(frame, "assistant", "Classify: {reveiw}")
    with pytest.raises(InvalidInputError, match="positional field"):
        orch.map_sync(frame, "assistant", "Classify: {}")
    with pytest.raises(InvalidInputError, match="names no column"):
        orch.map_sync(frame, "assistant", "The same for every row")
    with pytest.raises(InvalidInputError, match="not a valid template"):
        orch.map_sync(frame, "assistant", "Classify: {review")
    with pytest.raises(InvalidInputError, match="needs a pandas DataFrame"):
        orch.map_sync([1, 2], "assistant", "{review}")
    assert server.request_count == 0


def test_literal_braces_and_missing_values(orch, server):
    frame = pd.DataFrame({"text": ["a", None, float("nan")], "n": pd.array([1, None, 3], dtype="Int64")})
    orch.map_sync(frame, "assistant", 'JSON {{"t": "{text}", "n": "{n}"}}', model=HAIKU, progress=False)
    assert sorted(body["messages"][0]["content"] for body in sent(server)) == sorted(
        ['JSON {"t": "a", "n": "1"}', 'JSON {"t": "", "n": ""}', 'JSON {"t": "", "n": "3"}'])


def test_a_row_refused_before_sending_does_not_stop_the_others(make_orch, server):
    orch = make_orch(max_task_chars=30)
    frame = pd.DataFrame({"text": ["short", "x" * 40, "also short"]})
    out = orch.map_sync(frame, "assistant", "{text}", model=HAIKU, progress=False)
    assert out.error.notna().tolist() == [False, True, False]
    assert "limit is 30" in out.error[1] and pd.isna(out.answer[1])
    assert len(sent(server)) == 2 and out.attrs["claude_force"]["failed"] == 1


def test_an_api_failure_is_that_rows_error(orch, server):
    server.script(Fault(status=400, error_type="invalid_request_error"))
    out = orch.map_sync(reviews(3), "assistant", "{review}", model=HAIKU, window=1, progress=False)
    assert out.error.notna().tolist() == [True, False, False] and out.answer.isna().tolist() == [True, False, False]


def test_the_window_bounds_the_rows_in_flight(make_orch, server):
    orch = make_orch(max_concurrent=50)
    server.latency_s = 0.02
    orch.map_sync(reviews(40), "assistant", "{review}", model=HAIKU, window=3, progress=False)
    assert server.max_in_flight == 3


def test_the_default_window_is_the_calls_that_may_be_sent_at_once(make_orch, server):
    orch = make_orch(max_concurrent=5)
    assert MapRun.of(orch, reviews(3), "assistant", "{review}", progress=False).window == 5
    server.latency_s = 0.02
    out = orch.map_sync(reviews(30), "assistant", "{review}", model=HAIKU, progress=False)
    assert out.error.isna().all() and server.max_in_flight == 5


def test_the_estimate_counts_cached_rows_and_sends_nothing(orch, server):
    frame = reviews(10)
    orch.map_sync(frame.head(4), "assistant", "Label: {review}", model=HAIKU, max_tokens=100, progress=False)
    before = server.request_count
    estimate = orch.estimate_map(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=100)
    assert server.request_count == before
    assert (estimate.rows, estimate.cached, estimate.to_send, estimate.model) == (10, 4, 6, HAIKU)
    mean_output = round(sum(row["output_tokens"] for row in orch.ledger.rows()) / 4)  # what the cached rows took
    assert estimate.output_tokens == 6 * mean_output and estimate.max_output_tokens == 100
    assert 0 < estimate.cost_usd < estimate.worst_cost_usd  # the worst case: 100 tokens a row
    assert orch.cache.stats()["hits"] == 0  # looking is not a hit
    halved = orch.estimate_map(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=100, batch=True)
    assert halved.cost_usd == pytest.approx(estimate.cost_usd / 2)
    assert str(estimate).startswith(f"10 rows: 4 cached, 6 to send to {HAIKU}")


def test_once_some_rows_are_answered_the_estimate_uses_their_output_length(orch):
    frame = reviews(10)
    first = orch.estimate_map(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=1000)
    assert first.output_tokens == 10 * 300  # nothing answered yet: the heuristic
    orch.map_sync(frame.head(4), "assistant", "Label: {review}", model=HAIKU, max_tokens=1000, progress=False)
    taken = [row["output_tokens"] for row in orch.ledger.rows()]
    then = orch.estimate_map(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=1000)
    assert then.output_tokens == 6 * round(sum(taken) / 4) and then.output_tokens != 6 * 300


def test_a_run_the_budget_cannot_pay_for_is_refused_with_its_figures(make_orch, server):
    orch = make_orch(budget_usd=0.05)
    with pytest.raises(BudgetExceededError, match=r"estimated at \$[\d.]+ \(200 rows to send.*budget has \$0\.05 left"):
        orch.map_sync(reviews(200), "assistant", "Label: {review}", model=HAIKU, max_tokens=300)
    assert server.request_count == 0
    assert orch.map_sync(reviews(2), "assistant", "Label: {review}", model=HAIKU, max_tokens=50,
                         progress=False).error.isna().all()


def test_progress_reaches_every_row_with_cached_failed_and_cost(orch, server):
    seen: list[MapProgress] = []
    orch.map_sync(reviews(3), "assistant", "{review}", model=HAIKU, progress=False)
    server.script(Fault(status=400, error_type="invalid_request_error"))
    out = orch.map_sync(reviews(5), "assistant", "{review}", model=HAIKU, window=1, progress=seen.append)
    assert seen[0].done == 0 and seen[0].estimate is not None and seen[0].estimate.cached == 3
    last = seen[-1]
    assert (last.total, last.done, last.cached, last.failed) == (5, 5, 3, 1)
    assert last.cost_usd == pytest.approx(out.cost_usd.sum()) and last.eta_s == 0
    assert [p.done for p in seen] == list(range(6))


def test_the_text_bar_shows_the_estimate_and_the_counts(orch):
    stream = io.StringIO()
    orch.map_sync(reviews(4), "assistant", "{review}", model=HAIKU, progress=TextProgress(file=stream, mininterval=0))
    text = stream.getvalue()
    assert text.startswith("Estimate: 4 rows: 0 cached, 4 to send")
    assert "4/4" in text and "cached 0, failed 0, $0.0" in text


def test_an_interrupt_returns_the_partial_frame_and_a_rerun_sends_only_the_rest(make_orch, server, ctrl_c):
    orch = make_orch(max_concurrent=4)
    frame = reviews(60)

    def stop_button() -> None:  # SIGINT once 20 rows are answered and recorded and the rest are held
        assert server.wait_for(lambda s: len(orch.ledger) >= 20, timeout=30)
        server.latency_s = 60
        assert server.wait_for(lambda s: s.in_flight >= 1, timeout=30)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=stop_button, daemon=True).start()
    partial = orch.map_sync(frame, "assistant", "{review}", model=HAIKU, window=4, progress=False)
    finished = int(partial.error.isna().sum())
    assert 20 <= finished < 60 and partial.attrs["claude_force"]["interrupted"] is True
    assert (partial.error[partial.answer.isna()] == INTERRUPTED).all()
    assert partial.answer.notna().sum() == finished
    server.latency_s = 0
    before = len(sent(server))
    again = orch.map_sync(frame, "assistant", "{review}", model=HAIKU, window=4, progress=False)
    # A request the interrupt cut while it was being sent may reach the busy server only now
    # (whole or cut short): at most one per window slot, and always for an unfinished row.
    resent = [body["messages"][0]["content"] for body in sent(server)[before:] if body]
    unfinished = set(partial.review[partial.answer.isna()])
    assert set(resent) == unfinished  # the server sees only the unfinished rows
    assert len(unfinished) <= len(resent) <= len(unfinished) + 4
    assert again.error.isna().all() and int(again.cached.sum()) == finished


def test_async_map_from_another_loop(orch):
    async def cell():
        return await orch.map(reviews(3), "assistant", "{review}", model=HAIKU, progress=False)

    out = asyncio.run(cell())
    assert out.answer.notna().all() and len(out) == 3


class HeldValue:
    """A cell value whose rendering waits for the test: the plan is caught mid-row."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.rendered = 0

    def __format__(self, spec: str) -> str:
        self.rendered += 1
        self.entered.set()
        self.release.wait(5)
        return "held"


def test_an_interrupted_async_map_stops_its_plan_and_waits_for_it(orch, server):
    """The plan reads the cache on a worker thread: the interrupt returns only once that thread
    has stopped, so closing the orchestrator next cannot close the cache under it."""
    value = HeldValue()
    frame = pd.DataFrame({"x": [value] * 50})

    async def cell() -> bool:
        task = asyncio.ensure_future(orch.map(frame, "assistant", "Say {x}", model=HAIKU, progress=False))
        await asyncio.to_thread(value.entered.wait, 5)  # the plan is rendering the first row
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        done_while_planning = task.done()
        value.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return done_while_planning

    assert asyncio.run(cell()) is False
    assert value.rendered == 1 and server.request_count == 0  # stopped at the next row; nothing sent


def test_thread_and_tools_are_refused(orch):
    with pytest.raises(InvalidInputError, match="thread= and tools= are not available"):
        orch.map_sync(reviews(2), "assistant", "{review}", thread="t")


def test_window_zero_is_refused(orch):
    with pytest.raises(InvalidInputError, match="window=0 must be at least 1"):
        orch.map_sync(reviews(2), "assistant", "{review}", window=0)


def test_batch_mode_sends_only_uncached_rows_at_half_price(orch, server):
    frame = reviews(6)
    orch.map_sync(frame.head(2), "assistant", "Label: {review}", model=HAIKU, max_tokens=50, progress=False)
    seen: list[MapProgress] = []
    out = orch.map_sync(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=50, batch=True, poll_s=0.01,
                        progress=seen.append)
    assert [len(ids) for ids in server.batches.submitted] == [4]  # the two cached rows were not submitted
    assert out.error.isna().all() and out.cached.tolist() == [True, True, False, False, False, False]
    rows = {r["cache_key"]: r for r in orch.ledger.rows() if r["batch"]}
    assert len(rows) == 4 and all(r["cost_usd"] > 0 for r in rows.values())
    standard = orch.map_sync(frame, "assistant", "Label: {review}", model=HAIKU, max_tokens=50, refresh=True,
                             progress=False)
    assert out.cost_usd[2:].sum() == pytest.approx(standard.cost_usd[2:].sum() / 2)
    assert seen[-1].done == 6 and any(p.batch is not None for p in seen)


def test_the_bar_text_says_what_the_batches_have_processed():
    from claude_force_nb.engine.batching import BatchProgress
    from claude_force_nb.engine.map_progress import progress_postfix

    waiting = BatchProgress(("msgbatch_1",), total=200, succeeded=120, errored=0, canceled=0, expired=0,
                            processing=80, cost_usd=0.0)
    progress = MapProgress(total=210, done=10, cached=10, batch=waiting)
    assert progress_postfix(progress) == "cached 10, failed 0, $0.00, batch 120/200 processed"


def test_a_row_answered_as_the_interrupt_landed_is_read_back_from_the_cache(orch, server):
    frame = reviews(2)
    first = orch.map_sync(frame.head(1), "assistant", "{review}", model=HAIKU, progress=False)  # row 0 paid, cached
    run = MapRun.of(orch, frame, "assistant", "{review}", model=HAIKU, progress=False)
    run.wall_started = 0.0  # as if the answer was made by this run, whose worker was stopped while recording it
    run._taken = {0: "review 0"}
    run._recover_taken()
    run._mark_unfinished()
    out = run.frame_out()
    assert out.answer[0] == first.answer[0] and out.cost_usd[0] == first.cost_usd[0] and not out.cached[0]
    assert out.error[1] == INTERRUPTED and out.attrs["claude_force"]["done"] == 1
    assert server.request_count == 1
