"""store/cache/store.py: ResponseCache on real SQLite files: keys refused, TTL, size caps,
stats, entries, threads. (Keys, signing, payload, key file, schema, counters and the file
itself have their own test_cache_*.py modules.)"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.cache import ENTRY_COLUMNS, CachedResponse, ResponseCache, rowid_of

from .cache_fixtures import (  # noqa: F401 (fixtures; write_schema1_cache for tests/test_concurrency.py)
    BASE_REQUEST,
    T0,
    Clock,
    _fresh_warnings,
    cache,
    clock,
    raw,
    raw_query,
    response,
    settings,
    write_schema1_cache,
)

# --------------------------------------------------------------------------- keys and rows

@pytest.mark.parametrize("bad", ["", "v1:xyz", "nonsense", 42, None, b"v1:" + b"0" * 64, []])
def test_anything_but_a_key_is_refused_with_the_fix(cache, bad):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    cache.get(key)                                    # a hit waiting to be written
    calls = [lambda: cache.get(bad), lambda: cache.put(bad, response())]
    if not (isinstance(bad, str) and bad):            # delete takes any string verify() may report
        calls.append(lambda: cache.delete(bad))
    for call in calls:
        with pytest.raises(TypeError, match="is not a cache key: pass the string key_for"):
            call()
    if isinstance(bad, str) and bad:
        assert cache.delete(bad) is False
    assert cache.stats()["entries"] == 1 and cache.get(key) is not None


def test_a_row_moved_off_its_key_is_never_served_is_reported_and_can_be_deleted(cache, settings):
    a, b = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(a, response(text="answer a"))
    cache.put(b, response(text="answer b"))
    conn = raw(settings.cache_path)
    try:          # a's genuine row moved to another id (its key now a BLOB); b's relabelled with a junk key
        conn.execute("UPDATE entries SET id = id + 1, key = CAST(key AS BLOB) WHERE key = ?", (a,))
        conn.execute("UPDATE entries SET key = 'junk' WHERE key = ?", (b,))
    finally:
        conn.close()
    assert cache.get(a) is None
    assert cache.get(b).text == "answer b"            # still b's own answer: the signature binds b
    assert sorted(cache.verify()) == sorted([a, "junk"])
    assert cache.entries() == []
    assert cache.delete(a) is True                    # found by scanning
    assert cache.delete(b) is True                    # the row get(b) serves, whatever its key column says
    assert cache.delete("junk") is False
    assert cache.verify() == [] and cache.stats()["entries"] == 0


def test_keys_sharing_a_row_id_replace_each_other_and_are_never_confused(cache, settings):
    """Row ids are the keys' first 60 bits. Two keys sharing them (never seen in practice:
    forced here) share one row: each put replaces the other's answer, a lookup of the key
    not stored is a plain miss (not tampering), and no lookup returns the other's answer."""
    a = "v1:" + "0123456789abcde" + "a" * 49
    b = "v1:" + "0123456789abcde" + "b" * 49
    assert rowid_of(a) == rowid_of(b) == 0x0123456789ABCDE
    assert cache.put(a, response(text="answer a"))
    assert cache.get(a).text == "answer a"
    cache.close()                                     # write a's hit count
    with ResponseCache(settings) as c:
        assert raw_query(settings.cache_path, "SELECT key, hits FROM entries") == [(a, 1)]
        assert c.put(b, response(text="answer b"))
        assert raw_query(settings.cache_path, "SELECT key, hits FROM entries") == [(b, 0)]
        assert c.get(a) is None and c.get(b).text == "answer b"
        assert c.verify() == []
        stats = c.stats()
        assert (stats["entries"], stats["hits"], stats["misses"], stats["integrity_failures"]) == (1, 1, 1, 0)
        conn = raw(settings.cache_path)
        try:          # b's row tampered with: a lookup of a now reports it (the row is nobody's)
            conn.execute("UPDATE entries SET payload = CAST(payload AS BLOB) || x'00'")
        finally:
            conn.close()
        assert c.get(a) is None
        assert c.stats()["integrity_failures"] == 1
    assert raw_query(settings.cache_path, "SELECT COUNT(*) FROM entries") == [(0,)]


# --------------------------------------------------------------------------- TTL and sizes

def test_expired_entry_is_a_miss_and_pruned(settings, clock):
    with ResponseCache(settings.replace(cache_ttl_s=60.0), clock=clock) as c:
        k_old, k_new = c.key_for({"model": "old"}), c.key_for({"model": "new"})
        c.put(k_old, response())
        clock.now = T0 + 30
        c.put(k_new, response())
        clock.now = T0 + 59.9
        assert c.get(k_old) is not None
        clock.now = T0 + 60
        assert c.get(k_old) is None
        assert c.get(k_new) is not None
        assert c.stats()["entries"] == 2                 # reads never delete expired rows
        assert c.prune() == 1
        assert (c.stats()["entries"], c.stats()["evictions"]) == (1, 1)
        assert c.get(k_new) is not None


def test_lowered_ttl_applies_to_existing_entries(settings, clock):
    with ResponseCache(settings, clock=clock) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response())
    clock.now = T0 + 3600
    with ResponseCache(settings, clock=clock) as c:
        assert c.get(key) is not None
    with ResponseCache(settings.replace(cache_ttl_s=600.0), clock=clock) as c:
        assert c.get(key) is None
        assert c.prune() == 1


def test_put_culls_expired_rows(settings, clock):
    with ResponseCache(settings.replace(cache_ttl_s=10.0), clock=clock) as c:
        for i in range(3):
            c.put(c.key_for({"model": f"m{i}"}), response())
        clock.now = T0 + 11
        c.put(c.key_for({"model": "fresh"}), response())
        assert c.stats()["entries"] == 1
        assert c.stats()["evictions"] == 3


def _entry_size(settings: Settings, tmp_path: Path, text: str) -> int:
    probe = settings.replace(data_dir=tmp_path / "probe", secrets_dir=tmp_path / "probe" / "secrets")
    with ResponseCache(probe, clock=Clock()) as c:
        c.put(c.key_for({"model": "a"}), response(text=text))
        return c.stats()["bytes"]


def test_size_cap_evicts_least_recently_used(settings, tmp_path, clock):
    text = "x" * 2000
    size = _entry_size(settings, tmp_path, text)
    capped = settings.replace(cache_max_bytes=3 * size + size // 2)
    with ResponseCache(capped, clock=clock) as c:
        a, b, cc, d, e = (c.key_for({"model": name}) for name in "abcde")
        for i, k in enumerate((a, b, cc)):
            clock.now = T0 + i * 10_000
            assert c.put(k, response(text=text))
        clock.now = T0 + 30_000
        assert c.get(a) is not None          # last_access of a is > 1 h old: refreshed
        clock.now = T0 + 40_000
        assert c.put(d, response(text=text))
        assert {k for (k,) in raw_query(capped.cache_path, "SELECT key FROM entries")} == {a, cc, d}
        assert c.stats() | {"path": None} == c.stats() | {
            "entries": 3, "bytes": 3 * size, "evictions": 1, "path": None}
        clock.now = T0 + 50_000
        assert c.put(e, response(text=text))          # next victim: cc (never read)
        assert {k for (k,) in raw_query(capped.cache_path, "SELECT key FROM entries")} == {a, d, e}


def test_entry_size_cap(settings):
    with ResponseCache(settings.replace(cache_max_entry_bytes=1500)) as c:
        small, big = c.key_for({"model": "small"}), c.key_for({"model": "big"})
        assert c.put(big, response(text="y" * 2000)) is False
        assert c.put(small, response(text="y" * 100)) is True
        assert c.get(big) is None and c.get(small) is not None
        assert c.stats()["entries"] == 1


@pytest.mark.parametrize("stop_reason", ["", None])
def test_incomplete_response_not_stored(cache, stop_reason):
    key = cache.key_for(BASE_REQUEST)
    assert cache.put(key, response(stop_reason=stop_reason)) is False
    assert cache.get(key) is None
    assert cache.stats()["entries"] == 0


def test_clear_gives_the_space_back(cache, settings):
    cache.put_many([(cache.key_for({"model": f"m{i}"}), response(text="x" * 3000)) for i in range(200)])
    cache.close()                                         # checkpoint: the rows are in the file
    full = settings.cache_path.stat().st_size
    with ResponseCache(settings) as c:
        assert c.clear() == 200
    assert raw_query(settings.cache_path, "PRAGMA freelist_count") == [(0,)]
    assert settings.cache_path.stat().st_size < full / 10


def test_replacing_an_entry_keeps_totals_exact(cache, settings):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response(text="short"))
    cache.put(key, response(text="a much longer answer " * 20))
    assert cache.get(key).text == "a much longer answer " * 20
    (count, total), = raw_query(settings.cache_path, "SELECT COUNT(*), SUM(size) FROM entries")
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (count, total) == (1, total)
    assert cache.delete(key) is True and cache.delete(key) is False
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (0, 0)


# --------------------------------------------------------------------------- reporting

def test_stats_exact(cache, settings, clock):
    assert cache.stats() == {
        "entries": 0, "bytes": 0, "hits": 0, "misses": 0, "hit_rate": 0.0, "integrity_failures": 0,
        "evictions": 0, "path": str(settings.cache_path), "max_bytes": settings.cache_max_bytes,
        "writes_enabled": True, "persistent": True, "reason": None,
    }
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(3)]
    for k in keys:
        cache.put(k, response())
    for k in keys + keys[:1]:
        assert cache.get(k) is not None
    assert cache.get(cache.key_for({"model": "absent"})) is None
    conn = raw(settings.cache_path)
    try:
        conn.execute("UPDATE entries SET sig = zeroblob(32) WHERE key = ?", (keys[2],))
        (total,), = conn.execute("SELECT SUM(size) FROM entries WHERE key != ?", (keys[2],)).fetchall()
    finally:
        conn.close()
    assert cache.get(keys[2]) is None
    s = cache.stats()
    assert (s["entries"], s["bytes"], s["hits"], s["misses"], s["integrity_failures"], s["evictions"]) == (
        2, total, 4, 2, 1, 0)
    assert s["hit_rate"] == pytest.approx(4 / 6)
    assert cache.clear() == 2
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (0, 0)


def test_entries_are_plain_rows_of_what_get_serves(cache, clock):
    assert cache.entries() == []
    k1, k2 = cache.key_for({"model": "1"}), cache.key_for({"model": "2"})
    cache.put(k1, response(text="First line of answer\nmore", cost_usd=None, agent=None))
    clock.now = T0 + 5
    cache.put(k2, response(task_head="Explain X"))
    cache.get(k1)
    cache.get(k1)                                                  # this process's hits are written first
    rows = cache.entries()
    assert [list(row) for row in rows] == [list(ENTRY_COLUMNS)] * 2
    size = rows[0]["size"]
    assert rows == [                                               # newest first, full keys
        {"cache_key": k2, "agent": "code-reviewer", "model": "claude-sonnet-4-6-20260101", "created": T0 + 5,
         "expires": T0 + 5 + 7 * 24 * 3600, "size": size, "hits": 0, "cost_usd": 0.0123, "task": "Explain X",
         "answer": "The answer is 42."},
        {"cache_key": k1, "agent": None, "model": "claude-sonnet-4-6-20260101", "created": T0,
         "expires": T0 + 7 * 24 * 3600, "size": rows[1]["size"], "hits": 2, "cost_usd": None,
         "task": "Review this function", "answer": "First line of answer"},
    ]
    assert size + rows[1]["size"] == cache.stats()["bytes"]
    assert all(isinstance(value, (str, int, float, type(None))) for row in rows for value in row.values())


# --------------------------------------------------------------------------- threads, deferred writes

def test_threads_share_one_instance(cache):
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(40)]
    errors: list[BaseException] = []

    def worker(offset: int):
        try:
            for i in range(200):
                k = keys[(i + offset) % len(keys)]
                if cache.get(k) is None:
                    cache.put(k, response(text=f"answer for {k}"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(cache.get(k).text == f"answer for {k}" for k in keys)
    assert cache.verify() == []


def test_a_deferred_get_never_writes_and_a_tampered_row_goes_when_replaced_or_met_again(settings):
    """The orchestrator reads with defer_writes on its event loop: a tampered row is a counted
    miss then and stays; the put of its key that follows the miss replaces it, and a get
    without the flag deletes it."""
    def answer(text: str) -> CachedResponse:
        return CachedResponse(text=text, stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.0)

    with ResponseCache(settings) as cache:
        good, bad, other = (cache.key_for({"model": name}) for name in "abc")
        for key in (good, bad, other):
            cache.put(key, answer("t"))
        conn = raw(settings.cache_path)
        count = lambda key: conn.execute("SELECT COUNT(*) FROM entries WHERE key = ?", (key,)).fetchone()[0]  # noqa: E731
        conn.execute("UPDATE entries SET payload = CAST(payload || x'00' AS BLOB) WHERE key IN (?, ?)", (bad, other))
        assert cache.get(bad, defer_writes=True) is None and cache.stats()["integrity_failures"] == 1
        assert count(bad) == 1
        assert cache.put(bad, answer("fresh")) and cache.get(bad, defer_writes=True).text == "fresh"
        assert cache.get(other) is None and cache.stats()["integrity_failures"] == 2
        assert count(other) == 0
        assert cache.get(good, defer_writes=True).text == "t"
        assert cache.verify() == []
        conn.close()
