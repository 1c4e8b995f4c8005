"""engine/runner.py: work on worker threads that an interrupt cannot leave running."""

from __future__ import annotations

import asyncio
import threading

import pytest

from claude_force_nb.engine import runner


def test_an_interrupted_thread_call_is_cut_short_and_waited_for():
    """to_thread_to_the_end: the interrupt calls ``stop`` and returns only once the thread is done."""
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def work() -> None:
        entered.set()
        release.wait(5)
        order.append("thread done")

    async def cell() -> bool:
        task = asyncio.ensure_future(runner.to_thread_to_the_end(work, stop=lambda: order.append("stopped")))
        await asyncio.to_thread(entered.wait, 5)
        for _ in range(2):  # a second interrupt (closing after a Ctrl-C) does not cut the wait short
            task.cancel()
            for _ in range(5):
                await asyncio.sleep(0)
        done_while_working = task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        order.append("raised")
        return done_while_working

    assert asyncio.run(cell()) is False
    assert order == ["stopped", "thread done", "raised"]


def test_a_failure_of_work_that_outlived_its_interrupt_is_logged(caplog):
    entered, release = threading.Event(), threading.Event()

    def work() -> None:
        entered.set()
        release.wait(5)
        raise OSError("disk full")

    async def cell() -> None:
        task = asyncio.ensure_future(runner.to_thread_to_the_end(work))
        await asyncio.to_thread(entered.wait, 5)
        task.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cell())
    [record] = [r for r in caplog.records if r.name == "claude_force_nb.engine.runner"]
    assert record.levelname == "WARNING" and "outlived an interrupt" in record.message
    assert isinstance(record.exc_info[1], OSError)


def test_a_thread_call_returns_its_value_and_raises_its_error():
    assert asyncio.run(runner.to_thread_to_the_end(lambda x, *, y: x + y, 1, y=2)) == 3
    with pytest.raises(ZeroDivisionError):
        asyncio.run(runner.to_thread_to_the_end(lambda: 1 / 0))


def test_ctrl_c_handed_to_another_thread_still_interrupts_a_blocking_call(ctrl_c):
    """The OS may deliver a process's SIGINT to any thread; run_sync notices it at its next wake-up
    and cancels the work, rather than sleeping on until the work is done."""
    import signal

    started = threading.Event()
    seen: list[str] = []

    async def long_work() -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("finished")
        return "done"

    def press_ctrl_c_here() -> None:  # the signal lands on this thread, not the main one
        started.wait(5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c_here, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        runner.run_sync(long_work())
    assert seen == [] or seen == ["cancelled"]
    runner.run_sync(asyncio.sleep(0))   # the loop has run the cancellation by now
    assert seen == ["cancelled"]


def test_run_sync_gives_up_after_its_timeout_and_cancels_the_work():
    seen: list[str] = []

    async def never_done() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with pytest.raises(TimeoutError):
        runner.run_sync(never_done(), timeout=0.05)
    runner.run_sync(asyncio.sleep(0))
    assert seen == ["cancelled"]
