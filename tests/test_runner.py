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


def test_a_thread_call_returns_its_value_and_raises_its_error():
    assert asyncio.run(runner.to_thread_to_the_end(lambda x, *, y: x + y, 1, y=2)) == 3
    with pytest.raises(ZeroDivisionError):
        asyncio.run(runner.to_thread_to_the_end(lambda: 1 / 0))
