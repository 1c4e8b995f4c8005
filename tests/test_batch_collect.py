"""engine/batch_collect.py's Shield: work an interrupt must not cut short, even a second one."""

from __future__ import annotations

import asyncio

import pytest

from claude_force_nb.engine.batch_collect import Shield


def test_settle_outlasts_a_second_interrupt_and_the_shielded_work_completes():
    async def cell() -> list[str]:
        shield, gate, order = Shield(), asyncio.Event(), []

        async def critical() -> None:  # e.g. a batch just posted, being recorded
            await gate.wait()
            order.append("recorded")

        async def run() -> None:
            try:
                await shield.run(critical())
            finally:
                try:
                    await shield.settle()
                finally:
                    order.append("closed")

        task = asyncio.ensure_future(run())
        for _ in range(3):
            await asyncio.sleep(0)
        for _ in range(2):  # the interrupt, then another while settling (closing the orchestrator)
            task.cancel()
            for _ in range(3):
                await asyncio.sleep(0)
        assert not task.done()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return order

    assert asyncio.run(cell()) == ["recorded", "closed"]


def test_settle_returns_at_once_when_nothing_runs():
    asyncio.run(Shield().settle())
