"""Shared by the tests/test_cache_*.py modules: settings, a fake clock, responses, raw SQLite
access, and cache files as earlier versions wrote them. Import the fixtures by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store import faults
from claude_force_nb.store.cache import CachedResponse, ResponseCache

SECRET = b"test-secret-4d0c9e1f-please-do-not-reuse"
T0 = 1_000_000.0           # clock values with equal digit counts keep payload sizes equal

BASE_REQUEST = {
    "model": "claude-sonnet-4-6",
    "system": "You are a careful code reviewer.",
    "messages": [{"role": "user", "content": "Review: def f(): return 1"}],
    "max_tokens": 1024,
    "temperature": 0.5,
    "stop_sequences": ["\n\nHuman:"],
    "tools": [{"name": "lint", "description": "run a linter", "input_schema": {"type": "object"}}],
    "top_k": 40,
}


class Clock:
    """A clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_warnings():
    faults._warned.clear()              # "logged once per process" would hide warnings between tests


@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=SECRET)


@pytest.fixture
def keyfile_settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(settings, clock):
    c = ResponseCache(settings, clock=clock)
    yield c
    c.close()


def response(text: str = "The answer is 42.\nSecond line.", **kw) -> CachedResponse:
    fields = dict(
        text=text,
        stop_reason="end_turn",
        usage=Usage(input_tokens=11, output_tokens=22, cache_write_5m_tokens=3, cache_write_1h_tokens=4, cache_read_tokens=5),
        model="claude-sonnet-4-6-20260101",
        cost_usd=0.0123,
        agent="code-reviewer",
        task_head="Review this function",
        request_id="req_011CABC",
    )
    fields.update(kw)
    return CachedResponse(**fields)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def raw_query(path: Path, sql: str, params=()):
    conn = raw(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# A cache file as schema 1 wrote it: sequential row ids and a UNIQUE index on the key.
SCHEMA1_DDL = """
CREATE TABLE entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kid BLOB NOT NULL, payload BLOB NOT NULL,
    sig BLOB NOT NULL, created REAL NOT NULL, expires REAL, last_access REAL NOT NULL, size INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE INDEX entries_access ON entries(last_access);
CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT INTO totals(id, entries, bytes) VALUES (1, 0, 0);
CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END;
CREATE TRIGGER entries_au AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
CREATE TABLE meta(k TEXT PRIMARY KEY, v);
INSERT INTO meta(k, v) VALUES ('schema', 1);
"""

# A cache file as schema 2 was written before named migrations (no _migrations table): the
# row id derived from the key, no key index, the version in meta.
SCHEMA2_DDL = """
CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL, kid BLOB NOT NULL,
    payload BLOB NOT NULL, sig BLOB NOT NULL, created REAL NOT NULL, expires REAL, last_access REAL NOT NULL,
    size INTEGER NOT NULL, hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_access ON entries(last_access);
CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals(id, entries, bytes) VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_ai AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS entries_ad AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS entries_au AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', 2);
"""


def write_legacy_cache(settings: Settings, scratch: Path, answers: dict[str, str], *, schema: int,
                       now: float = T0) -> dict[str, str]:
    """Write ``answers`` (request name -> text) as a cache file of schema 1 or 2 from before
    named migrations, signed with ``settings``' secret and dated ``now``; return key -> text.
    Row n has ``hits`` = n + 1 (schema 1: row ids 1, 2, …; schema 2: ids from the keys)."""
    with ResponseCache(settings, path=scratch / "signer.sqlite3") as signer:
        keys = {signer.key_for({"model": "m", "messages": [{"role": "user", "content": name}]}): text
                for name, text in answers.items()}
        rows = [signer._row(key, response(text=text), now, now + 86_400) + (n + 1,)
                for n, (key, text) in enumerate(keys.items())]
    Path(settings.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(settings.cache_path)
    try:
        conn.execute("PRAGMA page_size = 8192")             # as those files were made
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.executescript(SCHEMA1_DDL if schema == 1 else SCHEMA2_DDL)
        columns = "id, key, kid, payload, sig, created, expires, last_access, size, hits"
        conn.executemany(
            f"INSERT INTO entries({columns}) VALUES ({', '.join('?' * 10)})",
            [(None, *row[1:]) if schema == 1 else row for row in rows],
        )
        conn.commit()
    finally:
        conn.close()
    return keys


def write_schema1_cache(settings: Settings, scratch: Path, answers: dict[str, str], now: float = T0) -> dict[str, str]:
    """``write_legacy_cache`` at schema 1 (also used by tests/test_concurrency.py)."""
    return write_legacy_cache(settings, scratch, answers, schema=1, now=now)
