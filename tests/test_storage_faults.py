"""Storage faults over real SQLite files: nothing a disk does fails a call or loses a row.

How each fault is made for real (the tests run as root, for whom chmod does not stop writes):
- a full disk: SQLite's ``PRAGMA max_page_count`` caps a file at its size, so a write that
  needs one more page fails with SQLITE_FULL, the very error a full disk gives
  (``ConnectionPool.set_max_pages`` sets it on every connection of a store); lifting the cap
  is "space returns". ``fill`` first packs the file with rows like the ones to come;
- a home that cannot be written: a data directory below a regular file (ENOTDIR, for root
  too); and a read-only directory (0500) used by a real process that has no capabilities
  (a root process is bound by file permissions once its capability bounding set is dropped);
- a deleted file: ``os.unlink`` on the database (and its -wal/-shm), or on the whole home,
  while an Orchestrator has it open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_force_nb import reports
from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.errors import CacheError
from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.orchestrator import Orchestrator
from claude_force_nb.store import faults
from claude_force_nb.store.cache import ResponseCache
from claude_force_nb.store.faults import MAX_UNSAVED_ROWS, RETRY_S, StorageWarning
from claude_force_nb.store.ledger import Ledger

from .cache_fixtures import response
from .clocks import FakeClock

AGENT = "python-expert"


@pytest.fixture(autouse=True)
def _fresh_warnings():
    faults._warned.clear()          # "once per process" would hide a warning between tests


def settings_at(home: Path) -> Settings:
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"storage-faults-secret")


def unwritable(tmp_path: Path) -> Path:
    """A data directory nobody can create, root included: its parent is a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the home's parent directory should be")
    return blocker / "home"


@contextlib.contextmanager
def storage_warnings() -> Iterator[list[str]]:
    """The messages of every StorageWarning shown in the block, from any thread (filled on exit)."""
    shown: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield shown
    shown.extend(str(w.message) for w in caught if issubclass(w.category, StorageWarning))


def pool_of(store: Ledger | ResponseCache):
    return store._pool if isinstance(store, Ledger) else store._file.pool


def page_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def file_rows(path: Path, column: str = "task_head") -> list:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute(f"SELECT {column} FROM calls ORDER BY id")]
    finally:
        conn.close()


def fill(settings: Settings) -> int:
    """Cap ledger.sqlite3 at its size and pack it with rows like the ones to come (this
    session, the agent, later timestamps, shorter values), until one no longer fits. Returns
    the rows added."""
    with storage_warnings():
        filler = Ledger(settings)
        pool_of(filler).set_max_pages(page_count(filler.path))
        added = 0
        while filler.record(AgentResult(agent=AGENT, model="m"), ts=time.time()) > 0:
            added += 1
        filler.close()              # the row that did not fit is dropped with it
    faults._warned.clear()          # (it warned: the store under test will warn again)
    return added


def result(n: int) -> AgentResult:
    return AgentResult(agent=AGENT, model="claude-haiku-4-5", text=f"answer {n}", usage=Usage(10, n),
                       cost_usd=0.001)


def test_opening_an_existing_file_writes_nothing(tmp_path):
    """On a full disk any write fails: a thread opening its connection must only read (the
    page-size and auto-vacuum pragmas used to rewrite the header, so every report raised)."""
    with Ledger(settings_at(tmp_path / "home")) as ledger:
        wal = Path(f"{ledger.path}-wal")
        before = wal.stat().st_size
        reader = threading.Thread(target=ledger.rows)
        reader.start()
        reader.join()
        assert wal.stat().st_size == before


# --------------------------------------------------------------------------- a home that cannot be written

def test_a_home_that_cannot_be_created_runs_every_call_without_persistence(make_orch, server, tmp_path):
    home = unwritable(tmp_path)
    orch = make_orch(data_dir=home, secrets_dir=home / "secrets")
    with storage_warnings() as warned:
        first = orch.run_sync(AGENT, "Say hi")
        again = orch.run_sync(AGENT, "Say hi")
        more = orch.run_many_sync([(AGENT, "one"), (AGENT, "two")])
        cache_stats = orch.cache.stats()
        costs = reports.costs(ledger=orch.ledger)
        runs = reports.runs(ledger=orch.ledger)
    assert [r.ok for r in (first, again, *more)] == [True] * 4
    assert again.cached is False and server.request_count == 4            # nothing can be cached
    assert len(warned) == 1, warned
    assert str(home) in warned[0] and "not cached" in warned[0] and "CLAUDE_FORCE_HOME" in warned[0]
    assert cache_stats["persistent"] is False and cache_stats["reason"].startswith("read-only: ")
    assert (cache_stats["entries"], cache_stats["misses"]) == (0, 4)
    status = orch.ledger.status()
    assert (status["persistent"], status["unsaved_rows"], status["dropped_rows"]) == (False, 4, 0)
    assert costs.loc["TOTAL", "calls"] == 4 and list(runs.index) == [-1, -2, -3, -4]
    assert costs.attrs["note"].startswith(f"Not saved to {home / 'ledger.sqlite3'} (read-only: ")
    assert costs.attrs["note"] in reports.styled(costs).to_html()
    assert not home.parent.is_dir()


def test_a_cache_without_a_home_or_a_key_is_an_empty_cache_that_says_why(tmp_path):
    home = unwritable(tmp_path)
    with storage_warnings() as warned:
        cache = ResponseCache(Settings(data_dir=home, secrets_dir=home / "secrets"))   # no key file either
    key = cache.key_for({"model": "m"})
    assert cache.put(key, response()) is False and cache.get(key) is None
    stats = cache.stats()
    assert (stats["persistent"], stats["entries"], stats["misses"]) == (False, 0, 1)
    assert cache.entries() == [] and cache.verify() == []
    with pytest.raises(CacheError, match=r"cannot be written now \(read-only: "):
        cache.clear()
    cache.close()
    assert len(warned) == 1 and "cannot be written" in warned[0]


def test_rows_kept_in_memory_reach_the_file_once_the_home_can_be_written(tmp_path):
    home = unwritable(tmp_path)
    clock = FakeClock()
    with storage_warnings() as warned:
        ledger = Ledger(settings_at(home), clock=clock)
        assert [ledger.record(result(n), task=f"t{n}") for n in range(3)] == [-1, -2, -3]
    home.parent.unlink()                                    # the user makes the home possible
    assert ledger.record(result(3), task="t3") == -4        # tried again only RETRY_S later
    clock.advance(RETRY_S)
    assert ledger.record(result(4), task="t4") == 5         # the four waiting rows went first
    assert [r["id"] for r in ledger.rows()] == [1, 2, 3, 4, 5]
    assert file_rows(ledger.path) == ["t0", "t1", "t2", "t3", "t4"]
    assert ledger.status()["persistent"] is True and len(warned) == 1
    ledger.close()


CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    from pathlib import Path
    from claude_force_nb import Orchestrator, Settings, reports
    from claude_force_nb.core.agents import AgentRegistry
    from claude_force_nb.testing import FakeAnthropicServer

    warned = []
    warnings.showwarning = lambda message, category, *_: warned.append(str(message))
    home = Path(sys.argv[1])
    with FakeAnthropicServer() as server:
        settings = Settings(api_key="k", base_url=server.url, data_dir=home, secrets_dir=home / "secrets")
        with Orchestrator(settings, registry=AgentRegistry(home, user_dir=home / "agents")) as orch:
            results = [orch.run_sync("python-expert", "Say hi") for _ in range(2)]
            print(json.dumps({
                "ok": [r.ok for r in results], "cached": [r.cached for r in results],
                "cache": orch.cache.stats()["persistent"], "ledger": orch.ledger.status(),
                "calls": int(reports.costs(ledger=orch.ledger).loc["TOTAL", "calls"]), "warned": warned,
            }))
    """
)


# Runs first in a fresh single-threaded process, then becomes the child: once the capability
# bounding set is empty, root (uid 0) has no capabilities after exec and file permissions bind it.
WITHOUT_CAPABILITIES = textwrap.dedent(
    """
    import ctypes, os, sys
    prctl, cap = ctypes.CDLL(None, use_errno=True).prctl, 0
    while prctl(24, cap, 0, 0, 0) == 0:     # PR_CAPBSET_DROP, until past the last capability
        cap += 1
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
    """
)


def test_a_read_only_home_in_a_real_process_of_an_unprivileged_user(tmp_path):
    home = tmp_path / "home"
    with Ledger(settings_at(home)) as ledger:            # a home from an earlier session
        ledger.record(result(1))
    for path in home.iterdir():
        path.chmod(0o400) if path.is_file() else None
    home.chmod(0o500)
    try:
        as_root = ["-c", WITHOUT_CAPABILITIES] if os.geteuid() == 0 else []
        proc = subprocess.run([sys.executable, *as_root, "-c", CHILD, str(home)], capture_output=True, text=True,
                              timeout=60)
    finally:
        home.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["ok"] == [True, True] and got["cached"] == [False, False] and got["cache"] is False
    assert (got["ledger"]["persistent"], got["ledger"]["unsaved_rows"], got["calls"]) == (False, 2, 2)
    assert len(got["warned"]) == 1 and str(home) in got["warned"][0], got["warned"]


# --------------------------------------------------------------------------- a full disk

def test_a_full_disk_keeps_the_newest_rows_in_memory_and_writes_them_when_space_returns(tmp_path, caplog):
    clock = FakeClock()
    settings = settings_at(tmp_path / "home")
    ledger = Ledger(settings, clock=clock)
    ledger.record(result(0), task="before")
    filled = fill(settings)
    pool_of(ledger).set_max_pages(page_count(ledger.path))
    extra = 50
    with caplog.at_level(logging.INFO), storage_warnings() as warned:
        ids = ledger.record_many([(result(n), f"t{n}") for n in range(MAX_UNSAVED_ROWS + extra)])
        assert ids[0] == -1 and ids[-1] == -(MAX_UNSAVED_ROWS + extra)
        status = ledger.status()
        assert status["persistent"] is False and status["reason"].startswith("full: database or disk is full")
        assert (status["unsaved_rows"], status["dropped_rows"]) == (MAX_UNSAVED_ROWS, extra)
        assert len(ledger) == 1 + filled + MAX_UNSAVED_ROWS
        assert [r["task_head"] for r in ledger.rows()][-2:] == [f"t{MAX_UNSAVED_ROWS + extra - 2}",
                                                                 f"t{MAX_UNSAVED_ROWS + extra - 1}"]
        assert ledger.flush() == MAX_UNSAVED_ROWS                # still full: nothing written
        pool_of(ledger).set_max_pages(None)                      # space returns
        assert ledger.flush() == 0
    heads = file_rows(ledger.path)
    assert len(heads) == 1 + filled + MAX_UNSAVED_ROWS and heads[-1] == f"t{MAX_UNSAVED_ROWS + extra - 1}"
    assert heads[1 + filled] == f"t{extra}"                      # the oldest 50 were dropped
    assert ledger.status() == {"persistent": True, "reason": None, "unsaved_rows": 0, "dropped_rows": 0,
                               "path": str(ledger.path)}
    assert len(warned) == 1 and "is full" in warned[0]
    assert any(f"{MAX_UNSAVED_ROWS} rows kept in memory were saved; {extra} older ones were dropped" in r.getMessage()
               for r in caplog.records)
    ledger.close()


def test_calls_on_a_full_disk_succeed_with_one_warning_and_reports_read_every_row(make_settings, tmp_path, caplog):
    clock = FakeClock()
    settings = make_settings()
    ledger, cache = Ledger(settings, clock=clock), ResponseCache(settings)
    orch = Orchestrator(settings, registry=AgentRegistry(tmp_path, user_dir=tmp_path / "agents"),
                        ledger=ledger, cache=cache)
    try:
        assert all(r.ok for r in orch.run_many_sync([(AGENT, f"warm {n}") for n in range(2)]))
        filled = fill(settings)
        for store, path in ((ledger, settings.ledger_path), (cache, settings.cache_path)):
            pool_of(store).set_max_pages(page_count(path))
        caplog.clear()
        with caplog.at_level(logging.WARNING), storage_warnings() as warned:
            results = orch.run_many_sync([(AGENT, f"full {n}") for n in range(30)])
            costs = reports.costs(ledger=ledger)
            stats = reports.stats(ledger=ledger)
            cache_stats = cache.stats()
        assert [r.ok for r in results] == [True] * 30
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert len(warned) == 1 and "is full" in warned[0] and "Free some disk space" in warned[0], warned
        assert costs.loc["TOTAL", "calls"] == stats["calls"].sum() == filled + 2 + 30
        assert "30 calls are kept in memory" in costs.attrs["note"]
        assert cache_stats["entries"] >= 2
        for store in (ledger, cache):
            pool_of(store).set_max_pages(None)                     # space returns
        clock.advance(RETRY_S)
        assert orch.run_sync(AGENT, "after").ok
        orch.close()
        heads = file_rows(settings.ledger_path)
        assert sorted(heads[-31:-1]) == sorted(f"full {n}" for n in range(30)) and heads[-1] == "after"
        assert len(heads) == filled + 2 + 31
    finally:
        orch.close()


# --------------------------------------------------------------------------- a file deleted while in use

@pytest.mark.parametrize("deleted", ["database", "database, -wal and -shm", "the whole home"])
def test_a_database_deleted_while_in_use_is_created_again(make_orch, deleted):
    orch = make_orch()
    settings = orch.settings
    assert all(r.ok for r in orch.run_many_sync([(AGENT, f"before {n}") for n in range(2)]))
    for path in (settings.ledger_path, settings.cache_path):
        if deleted == "the whole home":
            shutil.rmtree(settings.data_dir)
            break
        suffixes = ["", "-wal", "-shm"] if "-wal" in deleted else [""]
        for suffix in suffixes:
            os.unlink(f"{path}{suffix}")
    with storage_warnings() as warned:
        after = orch.run_many_sync([(AGENT, f"after {n}") for n in range(2)])
        last = orch.run_sync(AGENT, "last")
    assert [r.ok for r in (*after, last)] == [True] * 3
    assert len(warned) == 2, warned
    assert any(f"The ledger {settings.ledger_path} was deleted while in use" in w for w in warned)
    assert any(f"The response cache {settings.cache_path} was deleted while in use" in w for w in warned)
    in_order_of_completion = file_rows(settings.ledger_path)
    assert sorted(in_order_of_completion[:2]) == ["after 0", "after 1"] and in_order_of_completion[2] == "last"
    assert [r["task_head"] for r in orch.ledger.rows()] == in_order_of_completion
    fresh = make_orch()                                            # another kernel finds the new answers
    assert fresh.run_sync(AGENT, "after 1").cached and fresh.run_sync(AGENT, "last").cached


# --------------------------------------------------------------------------- in a notebook

@pytest.fixture
def unwritable_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLAUDE_FORCE_HOME where no directory can be made (request it before ``kernel``)."""
    home = unwritable(tmp_path)
    monkeypatch.setenv("CLAUDE_FORCE_HOME", str(home))
    return home


def test_a_notebook_on_an_unwritable_home_answers_and_says_what_is_not_saved(unwritable_home, kernel):
    first = kernel.run("%%agent python-expert\nSay hi")
    again = kernel.run("%%agent python-expert\nSay hi")
    assert first.ok and again.ok and "cached" not in again.markdown()[-1]
    errors = "".join(m["content"]["text"] for r in (first, again) for m in r.of_type("stream")
                     if m["content"]["name"] == "stderr")
    assert errors.count("cannot be written") == 1 and str(unwritable_home) in errors
    stats = kernel.run("s = %agent cache stats\nprint(s['persistent'], s['reason'].split(':')[0])")
    assert stats.stdout == "False read-only\n"
    costs = kernel.run("c = %agent costs\nprint(int(c.loc['TOTAL', 'calls']))")
    assert costs.ok and costs.stdout.startswith(f"Not saved to {unwritable_home / 'ledger.sqlite3'} (read-only: ")
    assert costs.stdout.endswith("2 calls are kept in memory (negative ids) and written when it can be "
                                 "written again.\n2\n")
