"""store/cache/database.py: a damaged file is moved aside and recreated, a full disk turns
writes off (tried again later) and keeps reads, a closed cache says so. Damage is done to real
files; a full disk is a file capped at its size with SQLite's max_page_count (SQLITE_FULL)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from claude_force_nb.core.errors import CacheError
from claude_force_nb.store.cache import ResponseCache
from claude_force_nb.store.faults import RETRY_S, StorageWarning

from .cache_fixtures import BASE_REQUEST, _fresh_warnings, cache, clock, response, settings  # noqa: F401 (fixtures)

LOGGER = "claude_force_nb.store.cache"


def test_corrupt_database_is_moved_aside_and_recreated(settings, caplog):
    home = Path(settings.data_dir)
    home.mkdir(mode=0o700)
    garbage = b"this is not a database, but someone's notes " * 200
    settings.cache_path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        c = ResponseCache(settings)
    try:
        aside = list(home.glob("cache.sqlite3.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == garbage
        assert any("corrupt" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records)
        key = c.key_for(BASE_REQUEST)
        assert c.get(key) is None
        assert c.put(key, response()) and c.get(key) is not None
        assert c.stats()["entries"] == 1
    finally:
        c.close()


def test_corruption_found_by_a_query_is_recovered(settings, caplog):
    with ResponseCache(settings) as c:
        keys = [c.key_for({"model": f"m{i}"}) for i in range(120)]
        for k in keys:
            c.put(k, response(text="z" * 3000))
    data = bytearray(settings.cache_path.read_bytes())
    page = 8192
    assert len(data) > 40 * page
    data[20 * page:] = b"\xa5" * (len(data) - 20 * page)   # schema and meta pages intact, late rows wrecked
    settings.cache_path.write_bytes(bytes(data))
    aside = lambda: list(Path(settings.data_dir).glob("cache.sqlite3.corrupt-*"))  # noqa: E731
    with caplog.at_level(logging.WARNING, logger=LOGGER), ResponseCache(settings) as c:
        assert aside() == []                                   # opening did not notice
        # rows on intact pages are still hits; the first lookup of a wrecked row is a miss
        # and moves the file aside (rows live in row-id order, not in the order of the puts)
        probe = next(k for k in keys if c.get(k) is None)
        assert len(aside()) == 1
        assert c.put(probe, response()) and c.get(probe) is not None
        assert c.stats()["entries"] == 1
    assert len(aside()) == 1 and any("corrupt" in r.getMessage() for r in caplog.records)


def test_full_disk_disables_writes_keeps_reads_and_tries_again_later(cache, clock):
    k1, k2 = cache.key_for({"model": "1"}), cache.key_for({"model": "2"})
    assert cache.put(k1, response())
    pool = cache._file.pool
    pages = pool.get().execute("PRAGMA page_count").fetchone()[0]
    pool.set_max_pages(pages)                             # the file cannot grow: SQLITE_FULL, as on a full disk
    with pytest.warns(StorageWarning, match="is full .* Free some disk space") as warned:
        assert cache.put(k2, response(text="w" * 50_000)) is False
        stats = cache.stats()
        assert (stats["writes_enabled"], stats["persistent"]) == (False, False)
        assert stats["reason"].startswith("full: ")
        assert cache.put(k2, response(text="tiny")) is False          # not tried again yet
        assert cache.get(k1) is not None and cache.get(k2) is None
        with pytest.raises(CacheError, match=r"cannot be written now \(full: "):
            cache.clear()
    assert len(warned) == 1
    pool.set_max_pages(None)                              # space returns
    clock.now += RETRY_S
    assert cache.put(k2, response(text="w" * 50_000)) is True
    assert cache.stats()["persistent"] is True and cache.get(k2) is not None


def test_closed_cache(settings):
    c = ResponseCache(settings)
    c.close()
    c.close()
    with pytest.raises(CacheError, match="was closed: create a new instance"):
        c.get("v1:" + "0" * 64)
    with pytest.raises(CacheError, match="was closed"):
        c.entries()
