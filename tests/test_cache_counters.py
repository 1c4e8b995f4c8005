"""store/cache/counters.py: hits never write on their own; their counts and recency reach the
file with the next write, on close, or after FLUSH_INTERVAL_S (a fake clock moves time)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from claude_force_nb.store.cache import ResponseCache
from claude_force_nb.store.cache.counters import FLUSH_INTERVAL_S, MAX_UNWRITTEN_KEYS, Counters

from .cache_fixtures import BASE_REQUEST, T0, Clock, _fresh_warnings, cache, clock, raw_query, response, settings  # noqa: F401


def test_counters_merge_hits_per_key_and_say_when_a_write_is_due():
    clock = Clock()
    counters = Counters(clock)
    assert counters.hit("a", T0 + 2) is False
    assert counters.hit("a", T0 + 5) is False                 # the latest hit's time is kept
    assert counters.hit("b", T0 + FLUSH_INTERVAL_S) is True    # the last write is an hour old
    counters.miss()
    counters.miss(tampered_key="b")                            # b's row is going: its counts too
    counters.evicted(3)
    assert counters.snapshot() == {"hits": 3, "misses": 2, "hit_rate": 0.6, "integrity_failures": 1, "evictions": 3}
    clock.now = T0 + 10
    assert counters.take_unwritten() == [("a", 2, T0 + 5)]
    assert counters.has_unwritten() is False
    assert counters.hit("a", T0 + 11) is False                 # taken at T0 + 10: the hour starts again
    assert counters.hit("a", T0 + 10 + FLUSH_INTERVAL_S) is True
    counters.give_back([("a", 2, T0 + 5), ("c", 1, T0 + 7)])   # a failed write returns what it took
    assert counters.take_unwritten() == [("a", 4, T0 + 10 + FLUSH_INTERVAL_S), ("c", 1, T0 + 7)]


def test_too_many_unwritten_keys_ask_for_a_write():
    counters = Counters(Clock())
    due = [counters.hit(f"k{i}", T0) for i in range(MAX_UNWRITTEN_KEYS + 1)]
    assert due == [False] * MAX_UNWRITTEN_KEYS + [True]
    counters.forget("k0")
    counters.forget()
    assert counters.take_unwritten() == []


def test_recent_hits_do_not_write(cache, settings, clock):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    before = raw_query(settings.cache_path, "SELECT last_access, hits FROM entries")
    clock.now = T0 + 3599
    for _ in range(10):
        assert cache.get(key) is not None
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == before == [(T0, 0)]
    clock.now = T0 + 3600                               # older than the flush interval: one write
    assert cache.get(key) is not None
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == [(T0 + 3600, 11)]


def test_recency_of_hits_is_written_with_the_next_put(cache, settings, clock):
    a, b = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(a, response())
    clock.now = T0 + 100
    assert cache.get(a) is not None
    clock.now = T0 + 200
    assert cache.get(a) is not None                      # the latest hit's time is kept
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == [(T0, 0)]
    clock.now = T0 + 300
    cache.put(b, response())
    assert raw_query(settings.cache_path, "SELECT key, last_access, hits FROM entries ORDER BY last_access") == [
        (a, T0 + 200, 2), (b, T0 + 300, 0)]


def test_hit_counts_are_flushed_on_write_and_close(settings, clock):
    with ResponseCache(settings, clock=clock) as c:
        k1, k2 = c.key_for({"model": "1"}), c.key_for({"model": "2"})
        c.put(k1, response())
        for _ in range(3):
            c.get(k1)
        c.put(k2, response())                              # flushed in this write
        assert dict(raw_query(settings.cache_path, "SELECT key, hits FROM entries")) == {k1: 3, k2: 0}
        c.get(k2)
        c.get(k2)
    assert dict(raw_query(settings.cache_path, "SELECT key, hits FROM entries")) == {k1: 3, k2: 2}


def test_deferred_hits_wait_for_the_next_write(cache, settings, clock):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    clock.now = T0 + FLUSH_INTERVAL_S
    assert cache.get(key, defer_writes=True) is not None            # due, but a deferred get never writes
    assert raw_query(settings.cache_path, "SELECT hits FROM entries") == [(0,)]
    assert cache.get(key) is not None                               # the next get that may write does
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == [(T0 + FLUSH_INTERVAL_S, 2)]


def test_concurrent_hits_are_all_counted(settings):
    """Hits from several threads update one set of counters under a lock: none is lost, in
    stats() or in the database."""
    threads_n, per_thread = 6, 3000
    with ResponseCache(settings) as c:
        keys = [c.key_for({"model": f"m{i}"}) for i in range(5)]
        for k in keys:
            c.put(k, response())
        barrier = threading.Barrier(threads_n)

        def worker(offset: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                assert c.get(keys[(i + offset) % len(keys)]) is not None

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.stats()["hits"] == threads_n * per_thread
    per_key = raw_query(settings.cache_path, "SELECT hits FROM entries")
    assert sum(hits for (hits,) in per_key) == threads_n * per_thread
    assert len(per_key) == len(keys)


def _child_uses_inherited_cache(c: ResponseCache, key: str, queue) -> None:
    fresh = c.stats()["hits"]                     # counters are per process
    got = c.get(key)
    ok = c.put(c.key_for({"model": "from-child"}), response(text="child"))   # writes only the child's hit
    queue.put((got.text if got else None, ok, fresh))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_connections_reopened_and_counts_kept_apart_after_fork(cache):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    assert cache.get(key) is not None             # one hit unwritten in the parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_uses_inherited_cache, args=(cache, key, queue))
    proc.start()
    try:
        assert queue.get(timeout=20) == ("The answer is 42.\nSecond line.", True, 0)
    finally:
        proc.join(20)
        queue.close()
        queue.join_thread()
    assert proc.exitcode == 0
    assert cache.get(cache.key_for({"model": "from-child"})).text == "child"
    assert cache.get(key) is not None                       # the parent's connection still works
    hits = {row["cache_key"]: row["hits"] for row in cache.entries()}
    assert hits[key] == 3                                   # parent 2 + child 1: none counted twice
