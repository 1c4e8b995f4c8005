"""engine/background.py: a job's future resolves only after its bookkeeping, whatever the outcome."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from claude_force_nb.engine import runner
from claude_force_nb.engine.background import BackgroundJob

TIMEOUT = 10


class Recorder:
    """What happened, in order, and on which thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.started = threading.Event()

    def note(self, what: str) -> None:
        self.events.append((what, threading.current_thread().name))

    async def forever(self) -> None:
        self.note("work")
        self.started.set()
        await asyncio.Event().wait()  # until cancelled


def test_the_future_holds_the_works_value():
    async def work() -> int:
        return 42

    job = BackgroundJob(work)
    assert job.future.result(TIMEOUT) == 42 and job.done()
    assert job.cancel() is False and not job.future.cancelled()


def test_the_future_holds_the_works_exception():
    async def work() -> None:
        raise ZeroDivisionError("a bug")

    job = BackgroundJob(work, on_cancel=lambda: pytest.fail("not cancelled"))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        job.future.result(TIMEOUT)


def test_cancel_runs_the_clean_up_on_the_loop_before_the_future_resolves():
    seen = Recorder()
    job = BackgroundJob(seen.forever, on_cancel=lambda: seen.note("on_cancel"))
    assert seen.started.wait(TIMEOUT) and not job.done()
    job.future.add_done_callback(lambda _f: seen.note("resolved"))
    assert job.cancel() is True
    concurrent.futures.wait([job.future], TIMEOUT)
    assert job.future.cancelled()
    assert [what for what, _ in seen.events] == ["work", "on_cancel", "resolved"]
    assert seen.events[1][1] == "claude-force-nb-loop"  # after the work saw its CancelledError
    assert job.cancel() is False


def test_cancel_before_start_never_runs_the_work_and_still_cleans_up():
    seen = Recorder()
    release = threading.Event()

    async def hold_the_loop() -> None:
        release.wait(TIMEOUT)  # blocks the runner loop: the job below cannot start yet

    holder = runner.submit(hold_the_loop())
    try:
        job = BackgroundJob(seen.forever, on_cancel=lambda: seen.note("on_cancel"))
        assert job.cancel() is True
    finally:
        release.set()
    holder.result(TIMEOUT)
    concurrent.futures.wait([job.future], TIMEOUT)
    assert job.future.cancelled() and [what for what, _ in seen.events] == ["on_cancel"]
    assert runner.run_sync(asyncio.sleep(0, "the loop is free")) == "the loop is free"


def test_a_failing_clean_up_is_logged_and_still_cancels_the_future(caplog):
    seen = Recorder()

    def broken_clean_up() -> None:
        raise RuntimeError("clean-up bug")

    job = BackgroundJob(seen.forever, on_cancel=broken_clean_up)
    assert seen.started.wait(TIMEOUT)
    job.cancel()
    concurrent.futures.wait([job.future], TIMEOUT)
    assert job.future.cancelled()
    (record,) = caplog.records
    assert record.name == "claude_force_nb.engine.background" and "clean-up bug" in str(record.exc_info[1])


def test_starting_from_the_runner_thread_raises_without_creating_the_work():
    calls: list[str] = []

    async def work() -> None:
        calls.append("work")

    async def start_on_the_loop() -> None:
        BackgroundJob(work)

    with pytest.raises(RuntimeError, match="its own event loop thread"):
        runner.run_sync(start_on_the_loop())
    assert calls == []


def test_repr_says_the_state():
    seen = Recorder()
    job = BackgroundJob(seen.forever)
    assert seen.started.wait(TIMEOUT) and repr(job) == "<BackgroundJob running>"
    job.cancel()
    concurrent.futures.wait([job.future], TIMEOUT)
    assert repr(job) == "<BackgroundJob cancelled>"
