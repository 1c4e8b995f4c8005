"""store/cache/schema.py: new files, and files in the wild (schema 1 and 2 from before named
migrations) all open to the same layout, each upgraded at most once."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from claude_force_nb.core.errors import CacheError
from claude_force_nb.store import migrations
from claude_force_nb.store.cache import ResponseCache, rowid_of
from claude_force_nb.store.cache import schema as schema_mod

from .cache_fixtures import (  # noqa: F401 (fixtures)
    BASE_REQUEST,
    Clock,
    _fresh_warnings,
    cache,
    clock,
    raw,
    raw_query,
    response,
    settings,
    write_legacy_cache,
    write_schema1_cache,
)

LOGGER = "claude_force_nb.store.cache"
MIGRATION_NAMES = ["m001_entries", "m002_rowid_from_key"]
FINAL_NAMES = sorted(["_migrations", "entries", "entries_access", "entries_ai", "entries_ad", "entries_au",
                      "entries_expires", "meta", "sqlite_autoindex__migrations_1", "sqlite_autoindex_meta_1", "totals"])


def schema_names(path: Path) -> list[str]:
    return sorted(name for (name,) in raw_query(path, "SELECT name FROM sqlite_master"))


def test_sqlite_layout_and_pragmas(cache, settings):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        table_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
        assert "WITHOUT ROWID" not in table_sql.upper()
        # the row id is the key's first 60 bits: no index on the key at all
        assert conn.execute("SELECT rowid, key FROM entries").fetchone() == (int(key[3:18], 16), key)
        assert sorted(row[1] for row in conn.execute("PRAGMA index_list(entries)")) == ["entries_access", "entries_expires"]
        assert conn.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()[0] == 2
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2     # incremental
        assert [n for (n,) in conn.execute("SELECT name FROM _migrations ORDER BY rowid")] == MIGRATION_NAMES
    finally:
        conn.close()
    assert schema_names(settings.cache_path) == FINAL_NAMES
    db = cache._file.pool.get()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1           # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -32 * 1024       # KiB
    assert db.execute("PRAGMA page_size").fetchone()[0] == 8192
    assert db.execute("PRAGMA mmap_size").fetchone()[0] == 64 * 1024 * 1024


def test_a_new_file_logs_no_upgrade(settings, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER), ResponseCache(settings) as c:
        assert c.stats()["entries"] == 0
    assert not caplog.records
    assert raw_query(settings.cache_path, "PRAGMA freelist_count") == [(0,)]


def test_a_schema1_cache_is_upgraded_in_place_keeping_every_entry(settings, tmp_path, clock, caplog):
    keys = write_schema1_cache(settings, tmp_path, {f"task {i}": f"answer {i}" for i in range(5)})
    before = raw_query(settings.cache_path, "SELECT entries, bytes FROM totals")
    conn = sqlite3.connect(settings.cache_path)
    conn.execute("INSERT INTO entries(key, kid, payload, sig, created, last_access, size) VALUES ('handmade', x'00', x'00', x'00', 0, 0, 9)")
    conn.execute("INSERT INTO entries(key, kid, payload, sig, created, last_access, size) "
                 "VALUES (CAST(x'76313afffe' AS TEXT), x'00', x'00', x'00', 0, 'soon', 9)")   # not UTF-8
    conn.execute("DROP TRIGGER entries_au")          # an old file missing a piece of its schema
    conn.commit()
    conn.close()
    with caplog.at_level(logging.INFO, logger=LOGGER), ResponseCache(settings, clock=clock) as c:
        assert {key: c.get(key).text for key in keys} == keys           # every answer still served
        stats = c.stats()
        assert (stats["entries"], stats["bytes"]) == before[0]          # the rows holding no key are gone
        assert (stats["hits"], stats["misses"], stats["integrity_failures"]) == (5, 0, 0)
        assert c.verify() == []
    assert raw_query(settings.cache_path, "SELECT v FROM meta WHERE k = 'schema'") == [(2,)]
    assert raw_query(settings.cache_path, "SELECT name FROM _migrations ORDER BY rowid") == [(n,) for n in MIGRATION_NAMES]
    assert sorted(raw_query(settings.cache_path, "SELECT id, key, hits FROM entries")) == sorted(
        (rowid_of(key), key, n + 2) for n, key in enumerate(keys))      # old counts kept, plus this hit
    assert raw_query(settings.cache_path, "PRAGMA freelist_count") == [(0,)]   # the old table's pages given back
    assert schema_names(settings.cache_path) == FINAL_NAMES
    messages = [r.getMessage() for r in caplog.records]
    assert any("to schema 2 (7 entries): once, in place" in m for m in messages)
    assert any("upgraded: 5 entries kept, 2 dropped" in m for m in messages)
    # an opener that read schema 1 just before another upgraded it finds the work done once it holds the lock
    rows = raw_query(settings.cache_path, "SELECT id, key, hits FROM entries ORDER BY id")
    caplog.clear()
    late = sqlite3.connect(settings.cache_path, isolation_level=None)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert migrations.apply(late, schema_mod.MIGRATIONS, adopt=schema_mod.adopt) == []
    finally:
        late.close()
    assert not caplog.records
    assert raw_query(settings.cache_path, "SELECT id, key, hits FROM entries ORDER BY id") == rows


def test_a_schema2_cache_from_before_named_migrations_is_recognised_not_upgraded(settings, tmp_path, clock, caplog):
    keys = write_legacy_cache(settings, tmp_path, {f"task {i}": f"answer {i}" for i in range(5)}, schema=2)
    rows = raw_query(settings.cache_path, "SELECT id, key, kid, payload, sig, hits FROM entries ORDER BY id")
    assert [row[0] for row in rows] == sorted(rowid_of(key) for key in keys)
    with caplog.at_level(logging.INFO, logger=LOGGER), ResponseCache(settings, clock=clock) as c:
        assert {key: c.get(key).text for key in keys} == keys
        assert c.verify() == [] and c.stats()["entries"] == 5
    assert not caplog.records                                           # no upgrade, no warning
    assert raw_query(settings.cache_path, "SELECT name FROM _migrations ORDER BY rowid") == [(n,) for n in MIGRATION_NAMES]
    assert raw_query(settings.cache_path, "SELECT id, key, kid, payload, sig, hits - 1 FROM entries ORDER BY id") == rows
    assert schema_names(settings.cache_path) == FINAL_NAMES


def test_an_upgrade_without_the_disk_space_for_it_is_refused_with_the_fix(settings, tmp_path, monkeypatch):
    keys = write_schema1_cache(settings, tmp_path, {"task": "answer"})
    real = shutil.disk_usage
    monkeypatch.setattr(schema_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=4096))   # a full disk
    with pytest.raises(CacheError, match=r"must be upgraded once .* needs about 0 MiB free on its disk; 0 MiB are "
                                         r"free\. Free some space, or delete .*cache\.sqlite3 to start with an empty cache"):
        ResponseCache(settings)
    assert raw_query(settings.cache_path, "SELECT v FROM meta WHERE k = 'schema'") == [(1,)]
    assert raw_query(settings.cache_path, "SELECT name FROM sqlite_master WHERE name = '_migrations'") == []
    monkeypatch.setattr(schema_mod.shutil, "disk_usage", real)
    with ResponseCache(settings, clock=Clock()) as c:
        assert [c.get(key).text for key in keys] == ["answer"]


@pytest.mark.parametrize("named", [False, True], ids=["meta-only", "with-migrations"])
def test_a_file_from_a_newer_version_is_refused_untouched(settings, tmp_path, named):
    write_legacy_cache(settings, tmp_path, {"task": "answer"}, schema=2)
    conn = raw(settings.cache_path)
    try:
        if named:                          # a newer version, with named migrations and one more of them
            conn.execute("CREATE TABLE _migrations(name TEXT PRIMARY KEY, applied_at REAL)")
            conn.executemany("INSERT INTO _migrations VALUES (?, 0)", [(n,) for n in [*MIGRATION_NAMES, "m003_future"]])
        conn.execute("UPDATE meta SET v = 3")
    finally:
        conn.close()
    before = raw_query(settings.cache_path, "SELECT * FROM entries")
    with pytest.raises(CacheError, match="schema version 3, this version of claude-force-nb expects 2: upgrade"):
        ResponseCache(settings)
    assert raw_query(settings.cache_path, "SELECT * FROM entries") == before
    assert bool(raw_query(settings.cache_path, "SELECT name FROM sqlite_master WHERE name = '_migrations'")) is named


def test_no_pickle_in_the_storage_code():
    store_dir = Path(schema_mod.__file__).parents[1]
    sources = sorted(store_dir.rglob("*.py"))
    assert len(sources) >= 12
    for source in sources:
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|shelve|marshal)\b", source.read_text(), re.M), source
