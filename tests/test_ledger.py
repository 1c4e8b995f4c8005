"""Ledger: one row per call (hits, misses, failures), filters, the column list, migrations, sessions."""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store import ledger as ledger_mod
from claude_force_nb.store.cache import CachedResponse, ResponseCache
from claude_force_nb.store.ledger import COLUMNS, MIGRATIONS, Ledger, current_session_id
from claude_force_nb.store.migrations import migrate

EXPECTED = {
    "id": "INTEGER",
    "ts": "REAL",
    "session_id": "TEXT",
    "agent": "TEXT",
    "model": "TEXT",
    "cached": "INTEGER",
    "input_tokens": "INTEGER",
    "output_tokens": "INTEGER",
    "cost_usd": "REAL",
    "saved_usd": "REAL",
    "latency_s": "REAL",
    "ok": "INTEGER",
    "error_type": "TEXT",
    "request_id": "TEXT",
    "cache_key": "TEXT",
    "cache_write_5m_tokens": "INTEGER",
    "cache_write_1h_tokens": "INTEGER",
    "cache_read_tokens": "INTEGER",
    "offline": "INTEGER",
    "attempts": "INTEGER",
    "task_head": "TEXT",
    "rate_limited": "INTEGER",
    "overloaded": "INTEGER",
    "waited_s": "REAL",
    "run_id": "TEXT",
    "batch": "INTEGER",
}



@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"ledger-test-secret")


@pytest.fixture
def ledger(settings):
    led = Ledger(settings)
    yield led
    led.close()


HIT = AgentResult(
    agent="code-reviewer", model="claude-sonnet-4-6", text="cached answer",
    usage=Usage(100, 50, 10, 20, 30), cost_usd=0.0, saved_usd=0.0042, cached=True, latency_s=0.003,
    stop_reason="end_turn", request_id="req_hit", cache_key="v1:" + "a" * 64, offline=False, attempts=0,
)
MISS = AgentResult(
    agent="python-expert", model="claude-haiku-4-5", text="fresh answer",
    usage=Usage(1200, 340, 0, 0, 0), cost_usd=0.0029, saved_usd=0.0, cached=False, latency_s=1.75,
    stop_reason="end_turn", request_id="req_miss", cache_key="v1:" + "b" * 64, offline=True, attempts=2,
)


@dataclass(frozen=True)
class PacedResult(AgentResult):
    """A result carrying what the call met on the way (the fields the engine sets)."""

    rate_limited: int = 0
    overloaded: int = 0
    waited_s: float = 0.0


FAILURE = PacedResult(
    agent="code-reviewer", model="claude-sonnet-4-6", usage=Usage(), cost_usd=0.0, latency_s=12.5,
    error="Overloaded after 4 attempts", error_type="overloaded_error", request_id="req_fail",
    cache_key=None, attempts=4, rate_limited=1, overloaded=2, waited_s=3.25,
)
NO_PACING = {"rate_limited": 0, "overloaded": 0, "waited_s": 0.0}


def test_rows_for_hit_miss_and_failure(ledger):
    sid = ledger.session_id
    ids = [
        ledger.record(HIT, task="Review this\nsecond line", ts=1000.0),
        ledger.record(MISS, task="x" * 500, ts=1001.5),
        ledger.record(FAILURE, task=None, ts=1002.0),
    ]
    assert ids == [1, 2, 3]
    rows = ledger.rows()
    assert rows == [
        {"id": 1, "ts": 1000.0, "session_id": sid, "agent": "code-reviewer", "model": "claude-sonnet-4-6",
         "cached": 1, "input_tokens": 100, "output_tokens": 50, "cache_write_5m_tokens": 10,
         "cache_write_1h_tokens": 20, "cache_read_tokens": 30, "cost_usd": 0.0, "saved_usd": 0.0042,
         "latency_s": 0.003, "ok": 1, "error_type": None, "request_id": "req_hit",
         "cache_key": "v1:" + "a" * 64, "offline": 0, "attempts": 0, "task_head": "Review this", **NO_PACING, "run_id": None, "batch": 0},
        {"id": 2, "ts": 1001.5, "session_id": sid, "agent": "python-expert", "model": "claude-haiku-4-5",
         "cached": 0, "input_tokens": 1200, "output_tokens": 340, "cache_write_5m_tokens": 0,
         "cache_write_1h_tokens": 0, "cache_read_tokens": 0, "cost_usd": 0.0029, "saved_usd": 0.0,
         "latency_s": 1.75, "ok": 1, "error_type": None, "request_id": "req_miss",
         "cache_key": "v1:" + "b" * 64, "offline": 1, "attempts": 2, "task_head": "x" * 200, **NO_PACING, "run_id": None, "batch": 0},
        {"id": 3, "ts": 1002.0, "session_id": sid, "agent": "code-reviewer", "model": "claude-sonnet-4-6",
         "cached": 0, "input_tokens": 0, "output_tokens": 0, "cache_write_5m_tokens": 0,
         "cache_write_1h_tokens": 0, "cache_read_tokens": 0, "cost_usd": 0.0, "saved_usd": 0.0,
         "latency_s": 12.5, "ok": 0, "error_type": "overloaded_error", "request_id": "req_fail",
         "cache_key": None, "offline": 0, "attempts": 4, "task_head": "", "rate_limited": 1, "overloaded": 2,
         "waited_s": 3.25, "run_id": None, "batch": 0},
    ]
    assert len(ledger) == 3


def test_unknown_cost_is_null(ledger):
    ledger.record(AgentResult(agent="a", model="mystery-model", cost_usd=None), ts=1.0)
    ledger.record(AgentResult(agent="a", model="mystery-model", cost_usd=math.nan), ts=2.0)
    assert [r["cost_usd"] for r in ledger.rows()] == [None, None]


def test_default_timestamp_is_now(ledger):
    import time

    before = time.time()
    ledger.record(MISS)
    assert before <= ledger.rows()[0]["ts"] <= time.time()


def test_filters(ledger):
    ledger.record(HIT, ts=1000.0)
    ledger.record(MISS, ts=2000.0)
    ledger.record(FAILURE, ts=3000.0)
    conn = sqlite3.connect(ledger.path)
    try:   # a row written by another kernel
        conn.execute("INSERT INTO calls(ts, session_id, agent, model, cached) VALUES (4000, 'othersession', 'x', 'm', 0)")
        conn.commit()
    finally:
        conn.close()
    ids = lambda **f: [r["id"] for r in ledger.rows(**f)]  # noqa: E731
    assert ids() == [1, 2, 3, 4]
    assert ids(since=2000.0) == [2, 3, 4]
    assert ids(since=datetime.fromtimestamp(2500, tz=UTC)) == [3, 4]
    assert ids(agent="code-reviewer") == [1, 3]
    assert ids(agent=["python-expert", "x"]) == [2, 4]
    assert ids(model="claude-sonnet-4-6", since=1500) == [3]
    assert ids(session=ledger.session_id) == [1, 2, 3]
    assert ids(session="othersession") == [4]
    assert ids(agent="nobody") == []
    with pytest.raises(TypeError):
        ledger.rows(colour="red")


def test_rows_hold_the_types_columns_declares(ledger):
    ledger.record(HIT, task="t", ts=1_700_000_000.25)
    ledger.record(FAILURE, ts=1_700_000_001.0)
    rows = ledger.rows()
    assert all(list(row) == list(COLUMNS) for row in rows)
    for row in rows:
        for name, value in row.items():
            kind = int if COLUMNS[name] is bool else COLUMNS[name]       # flags are stored as 0/1
            assert value is None or type(value) is kind, (name, value)
    assert [(r["ok"], r["error_type"]) for r in rows] == [(1, None), (0, "overloaded_error")]


def test_final_schema_matches_expected(ledger):
    conn = sqlite3.connect(ledger.path)
    try:
        columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(calls)")}
        applied = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert columns == EXPECTED
    assert set(COLUMNS) == set(EXPECTED)
    sql_type = {int: "INTEGER", bool: "INTEGER", float: "REAL", str: "TEXT"}
    assert {name: sql_type[kind] for name, kind in COLUMNS.items()} == EXPECTED
    assert applied == [m.__name__ for m in MIGRATIONS]


def test_old_ledger_is_migrated_without_losing_rows(settings):
    home = Path(settings.data_dir)
    home.mkdir(mode=0o700)
    conn = sqlite3.connect(settings.ledger_path, isolation_level=None)
    try:
        assert migrate(conn, MIGRATIONS[:1]) == ["m001_calls"]
        conn.execute(
            "INSERT INTO calls(ts, session_id, agent, model, cached, input_tokens, output_tokens, cost_usd, "
            "saved_usd, latency_s, ok, error_type, request_id, cache_key) "
            "VALUES (123.0, 'oldsession01', 'old-agent', 'claude-3-opus', 0, 7, 8, 0.5, 0, 2.0, 1, NULL, 'req_old', NULL)"
        )
    finally:
        conn.close()
    with Ledger(settings) as led:
        assert led.rows() == [{
            "id": 1, "ts": 123.0, "session_id": "oldsession01", "agent": "old-agent", "model": "claude-3-opus",
            "cached": 0, "input_tokens": 7, "output_tokens": 8, "cache_write_5m_tokens": 0,
            "cache_write_1h_tokens": 0, "cache_read_tokens": 0, "cost_usd": 0.5, "saved_usd": 0.0,
            "latency_s": 2.0, "ok": 1, "error_type": None, "request_id": "req_old", "cache_key": None,
            "offline": 0, "attempts": 1, "task_head": "", **NO_PACING, "run_id": None, "batch": 0,
        }]
        assert led.record(MISS, ts=200.0) == 2
    conn = sqlite3.connect(settings.ledger_path)
    try:
        assert [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")] == [m.__name__ for m in MIGRATIONS]
        assert {row[1]: row[2] for row in conn.execute("PRAGMA table_info(calls)")} == EXPECTED
    finally:
        conn.close()


def test_a_ledger_of_the_previous_release_gains_the_pacing_columns_in_place(settings):
    home = Path(settings.data_dir)
    home.mkdir(mode=0o700)
    with Ledger(settings) as led:               # as the previous release left it: m001..m004, two rows
        led.record(MISS, task="before", ts=10.0)
        led.record(HIT, task="before", ts=11.0)
    conn = sqlite3.connect(settings.ledger_path, isolation_level=None)
    try:
        for column in ("rate_limited", "overloaded", "waited_s"):
            conn.execute(f"ALTER TABLE calls DROP COLUMN {column}")
        conn.execute("DELETE FROM _migrations WHERE name = 'm005_pacing'")
        inode = Path(settings.ledger_path).stat().st_ino
    finally:
        conn.close()
    with Ledger(settings) as led:
        rows = led.rows()
        assert [(r["id"], r["ts"], r["output_tokens"]) for r in rows] == [(1, 10.0, 340), (2, 11.0, 50)]
        assert [{k: r[k] for k in NO_PACING} for r in rows] == [NO_PACING, NO_PACING]
        assert led.record(FAILURE, ts=12.0) == 3
        assert {k: led.rows()[-1][k] for k in NO_PACING} == {"rate_limited": 1, "overloaded": 2, "waited_s": 3.25}
    assert Path(settings.ledger_path).stat().st_ino == inode            # upgraded in place, not rewritten
    conn = sqlite3.connect(settings.ledger_path)
    try:
        assert {row[1]: row[2] for row in conn.execute("PRAGMA table_info(calls)")} == EXPECTED
    finally:
        conn.close()


def test_pacing_figures_that_are_not_numbers_are_stored_as_zero(ledger):
    ledger.record(PacedResult(agent="a", model="m", rate_limited=None, overloaded=None, waited_s=math.nan), ts=1.0)
    assert {k: ledger.rows()[0][k] for k in NO_PACING} == NO_PACING


def test_migrate_is_idempotent(settings, ledger):
    conn = sqlite3.connect(settings.ledger_path, isolation_level=None)
    try:
        assert migrate(conn, MIGRATIONS) == []
    finally:
        conn.close()


def test_session_id_same_in_process_and_per_ledger(settings, ledger):
    sid = ledger.session_id
    assert len(sid) == 12 and int(sid, 16) >= 0
    with Ledger(settings) as other:
        assert other.session_id == sid == current_session_id()


def test_session_id_differs_in_a_child_process(settings, ledger):
    code = (
        "import sys; from pathlib import Path; from claude_force_nb.core.settings import Settings; "
        "from claude_force_nb.store.ledger import Ledger; from claude_force_nb.core.results import AgentResult; "
        "home = Path(sys.argv[1]); "
        "led = Ledger(Settings(data_dir=home, secrets_dir=home / 'secrets')); "
        "led.record(AgentResult(agent='child', model='m'), ts=5.0); print(led.session_id); led.close()"
    )
    out = subprocess.run([sys.executable, "-c", code, str(settings.data_dir)], capture_output=True, text=True,
                         timeout=60, check=True)
    child = out.stdout.strip()
    ledger.record(HIT, ts=6.0)
    assert len(child) == 12 and child != ledger.session_id
    assert [(r["agent"], r["session_id"]) for r in ledger.rows()] == [("child", child), ("code-reviewer", ledger.session_id)]


def _report_session(queue) -> None:
    queue.put(ledger_mod.current_session_id())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_session_id_resets_after_fork():
    parent = current_session_id()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report_session, args=(queue,))
    proc.start()
    try:
        child = queue.get(timeout=20)
    finally:
        proc.join(20)
        queue.close()
        queue.join_thread()
    assert child != parent and len(child) == 12
    assert current_session_id() == parent


def test_threads_share_one_ledger(ledger):
    import threading

    def worker(n: int) -> None:
        for i in range(50):
            ledger.record(AgentResult(agent=f"t{n}", model="m", latency_s=i), ts=float(i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = ledger.rows()
    assert len(rows) == 200 and sorted(r["id"] for r in rows) == list(range(1, 201))
    assert all(len(ledger.rows(agent=f"t{n}")) == 50 for n in range(4))


def test_clearing_the_cache_keeps_the_ledger(settings, ledger):
    ledger.record(MISS, ts=1.0)
    with ResponseCache(settings) as cache:
        key = cache.key_for({"model": "m"})
        cache.put(key, CachedResponse(text="t", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.1))
        assert cache.clear() == 1
    assert settings.ledger_path != settings.cache_path
    assert len(ledger.rows()) == 1


def test_closed_ledger(settings):
    from claude_force_nb.core.errors import ClaudeForceError

    led = Ledger(settings)
    led.close()
    led.close()
    with pytest.raises(ClaudeForceError, match="closed"):
        led.record(MISS)


def test_garbage_ledger_is_reported_not_deleted(settings):
    from claude_force_nb.core.errors import ConfigurationError

    Path(settings.data_dir).mkdir(mode=0o700)
    settings.ledger_path.write_bytes(b"not a database " * 100)
    with pytest.raises(ConfigurationError, match="ledger"):
        Ledger(settings)
    assert settings.ledger_path.read_bytes() == b"not a database " * 100


def test_the_steps_of_one_run_share_its_run_id_and_an_older_ledger_gains_the_column(settings):
    home = Path(settings.data_dir)
    home.mkdir(mode=0o700)
    with Ledger(settings) as led:               # as the previous release left it: m001..m005
        led.record(MISS, task="before", ts=10.0)
    conn = sqlite3.connect(settings.ledger_path, isolation_level=None)
    try:
        conn.execute("DROP INDEX calls_run")
        conn.execute("ALTER TABLE calls DROP COLUMN run_id")
        conn.execute("DELETE FROM _migrations WHERE name = 'm006_run_id'")
    finally:
        conn.close()
    with Ledger(settings) as led:
        led.record_many([(replace(MISS, run_id="run-1"), "step 1"), (replace(HIT, run_id="run-1"), "step 2")],
                        ts=11.0)
        assert [(r["id"], r["run_id"]) for r in led.rows()] == [(1, None), (2, "run-1"), (3, "run-1")]
