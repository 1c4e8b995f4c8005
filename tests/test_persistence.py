"""The persistence writer: real SQLite ledger and cache files, written in batches off the loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.persistence import PersistenceWriter
from claude_force_nb.store.cache import CachedResponse, ResponseCache
from claude_force_nb.store.ledger import Ledger


@pytest.fixture
def stores(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "home", secrets_dir=tmp_path / "home" / "secrets",
                        cache_secret=b"test-secret-0123456789abcdef0123")
    ledger, cache = Ledger(settings), ResponseCache(settings)
    yield ledger, cache
    ledger.close()
    cache.close()


def result(i: int) -> AgentResult:
    return AgentResult(agent="a", model="claude-haiku-4-5", text=f"answer {i}", usage=Usage(10, i), cost_usd=0.001,
                       stop_reason="end_turn")


def entry(i: int) -> tuple[str, CachedResponse]:
    return f"key-{i}", CachedResponse(text=f"answer {i}", stop_reason="end_turn", usage=Usage(10, i),
                                      model="claude-haiku-4-5", cost_usd=0.001, agent="a", task_head=f"t{i}")


def test_concurrent_calls_share_one_batch_written_on_the_writer_thread(stores) -> None:
    ledger, cache = stores
    writes: list[tuple[int, str]] = []
    record_many = ledger.record_many

    def spy(calls, **kwargs):  # the real method, counted
        calls = list(calls)
        writes.append((len(calls), threading.current_thread().name))
        return record_many(calls, **kwargs)

    ledger.record_many = spy
    writer = PersistenceWriter(lambda: ledger, lambda: cache)

    async def calls() -> None:
        keys = [cache.key_for({"n": i}) for i in range(5)]
        await asyncio.gather(*(writer.record(result(i), f"task {i}", (keys[i], entry(i)[1]) if i % 2 else None)
                               for i in range(5)))
        assert [cache.get(k) is not None for k in keys] == [False, True, False, True, False]

    asyncio.run(calls())
    writer.close()
    assert len(writes) == 1 and writes[0][0] == 5 and writes[0][1].startswith("claude-force-nb-io")
    assert [row["output_tokens"] for row in ledger.rows()] == [0, 1, 2, 3, 4]


def test_calls_finishing_during_a_write_join_the_next_batch(stores) -> None:
    ledger, cache = stores
    sizes: list[int] = []
    first_write_started, release_first = threading.Event(), threading.Event()
    record_many = ledger.record_many

    def slow_first(calls, **kwargs):
        calls = list(calls)
        sizes.append(len(calls))
        if len(sizes) == 1:
            first_write_started.set()
            release_first.wait(5)
        return record_many(calls, **kwargs)

    ledger.record_many = slow_first
    writer = PersistenceWriter(lambda: ledger, lambda: cache)

    async def calls() -> None:
        first = asyncio.ensure_future(writer.record(result(0), "t0"))
        await asyncio.get_running_loop().run_in_executor(None, first_write_started.wait, 5)
        later = [asyncio.ensure_future(writer.record(result(i), f"t{i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0)  # let them queue behind the write in progress
        release_first.set()
        await asyncio.gather(first, *later)
        await writer.drain()

    asyncio.run(calls())
    writer.close()
    assert sizes == [1, 3] and len(ledger.rows()) == 4


def test_a_failing_write_is_logged_and_the_call_still_returns(stores, caplog: pytest.LogCaptureFixture) -> None:
    ledger, cache = stores

    def locked(*args, **kwargs):
        raise OSError("disk full")

    ledger.record_many = locked
    writer = PersistenceWriter(lambda: ledger, lambda: cache)
    asyncio.run(writer.record(result(0), "t"))
    writer.close()
    (record,) = [r for r in caplog.records if r.name == "claude_force_nb.engine.persistence"]
    assert record.levelno == logging.ERROR and record.getMessage() == "could not record 1 call(s) in the ledger/cache"
    assert "OSError: disk full" in caplog.text


def test_stores_are_opened_only_when_a_batch_is_written(stores) -> None:
    ledger, cache = stores
    asked: list[str] = []
    writer = PersistenceWriter(lambda: asked.append("ledger") or ledger, lambda: asked.append("cache") or cache)
    assert asked == []

    async def one_call() -> None:
        await writer.record(result(0), "t")
        await writer.drain()

    asyncio.run(one_call())
    writer.close()
    assert asked == ["ledger"]  # no cache entry: the cache is never opened


def blocked_ledger(ledger: Ledger) -> tuple[threading.Event, threading.Event]:
    """Make ``ledger.record_many`` hold its first write until released: (write started, release)."""
    started, release = threading.Event(), threading.Event()
    record_many = ledger.record_many

    def held(calls, **kwargs):
        started.set()
        release.wait(5)
        return record_many(calls, **kwargs)

    ledger.record_many = held
    return started, release


def test_a_write_behind_record_returns_before_its_commit_and_drain_waits_for_it(stores) -> None:
    ledger, cache = stores
    started, release = blocked_ledger(ledger)
    writer = PersistenceWriter(lambda: ledger, lambda: cache)

    async def calls() -> list[int]:
        await writer.record(result(0), "t0", wait=False)   # returns with the writer still held
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        rows_while_held = len(ledger.rows())
        release.set()
        await writer.drain()
        return [rows_while_held, len(ledger.rows())]

    assert asyncio.run(calls()) == [0, 1]
    writer.close()


def test_write_behind_waits_once_the_backlog_is_full(stores, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_force_nb.engine import persistence
    monkeypatch.setattr(persistence, "MAX_BACKLOG", 3)
    ledger, cache = stores
    started, release = blocked_ledger(ledger)
    writer = PersistenceWriter(lambda: ledger, lambda: cache)

    async def calls() -> tuple[list[bool], int]:
        await writer.record(result(0), "t0", wait=False)   # being written (held)
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        behind = [asyncio.ensure_future(writer.record(result(i), f"t{i}", wait=False)) for i in range(1, 6)]
        await asyncio.sleep(0)
        returned = [task.done() for task in behind]     # three fit the backlog; the rest wait
        release.set()
        await asyncio.gather(*behind)
        await writer.drain()
        return returned, len(ledger.rows())

    assert asyncio.run(calls()) == ([True, True, True, False, False], 6)
    writer.close()


def test_an_interrupted_drain_stops_waiting_but_not_the_writing(stores) -> None:
    ledger, cache = stores
    started, release = blocked_ledger(ledger)
    writer = PersistenceWriter(lambda: ledger, lambda: cache)

    async def calls() -> int:
        await writer.record(result(0), "t0", wait=False)     # being written (held)
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        await writer.record(result(1), "t1", wait=False)     # waits for the next batch
        waiting = asyncio.ensure_future(writer.record(result(2), "t2"))  # a call that waits for its commit
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0)
        drain.cancel()                                       # Ctrl-C while the map waits for its records
        with pytest.raises(asyncio.CancelledError):
            await drain
        release.set()
        await asyncio.wait_for(waiting, 5)                   # its record was still written
        await writer.drain()
        return len(ledger.rows())

    assert asyncio.run(calls()) == 3
    writer.close()
