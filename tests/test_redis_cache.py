"""The team cache tier against a real redis-server: shared answers, teams apart, tampering, faults."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.errors import CacheError, ConfigurationError
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.orchestrator import Orchestrator
from claude_force_nb.store.cache import ResponseCache
from claude_force_nb.store.faults import StorageWarning
from claude_force_nb.store.redis_tier import ENVELOPE, RedisLink, team_prefix

from .conftest import TEST_KEY
from .redis_support import RedisServer, need_redis_server, redis_server, silent_server  # noqa: F401

TEAM_SECRET = b"team-secret-0123456789abcdef-xyz"


def _home_settings(tmp_path: Path, name: str, url: str, server_url: str, secret: bytes = TEAM_SECRET,
                   **more: object) -> Settings:
    home = tmp_path / name
    return Settings(api_key=TEST_KEY, base_url=server_url, data_dir=home, secrets_dir=home / "secrets",
                    cache_secret=secret, redis_url=url, retry_base_wait_s=0.01, timeout_s=10.0, **more)


@pytest.fixture
def homes(tmp_path: Path, server, redis_server):
    """Orchestrators in separate homes ("machines") on one Redis; closed after the test."""
    made: list[Orchestrator] = []

    def make(name: str, secret: bytes = TEAM_SECRET, **more: object) -> Orchestrator:
        settings = _home_settings(tmp_path, name, redis_server.url, server.url, secret, **more)
        orch = Orchestrator(settings, registry=AgentRegistry(tmp_path / "project", user_dir=tmp_path / "agents"))
        made.append(orch)
        return orch

    yield make
    for orch in made:
        orch.close()


def test_two_homes_with_one_secret_share_an_answer_and_a_third_secret_cannot(homes, server, redis_server):
    alice, bob, other = homes("alice"), homes("bob"), homes("other", secret=b"another-team-secret-0123456789ab")
    first = alice.run_sync("assistant", "What is a monad?")
    assert first.ok and not first.cached and server.request_count == 1

    second = bob.run_sync("assistant", "What is a monad?")
    assert second.cached and second.text == first.text and server.request_count == 1
    assert second.saved_usd == pytest.approx(first.cost_usd)
    assert bob.cache.stats()["redis"]["hits"] == 1

    third = other.run_sync("assistant", "What is a monad?")
    assert not third.cached and server.request_count == 2
    # the other team's keys live under another prefix: neither the entry nor its name is reachable
    names = {name.decode() for name in redis_server.client().scan_iter(match="cfnb:v1:*:v1:*")}
    ours = {n for n in names if n.startswith(team_prefix(alice.cache.kid))}
    theirs = {n for n in names if n.startswith(team_prefix(other.cache.kid))}
    assert len(ours) == 1 and len(theirs) == 1 and ours != theirs


def test_a_team_hit_is_copied_to_the_local_file_with_its_expiry(tmp_path, server, redis_server):
    a = ResponseCache(_home_settings(tmp_path, "a", redis_server.url, server.url))
    b = ResponseCache(_home_settings(tmp_path, "b", redis_server.url, server.url))
    key = a.key_for({"model": "m", "messages": []})
    from claude_force_nb.core.results import Usage
    from claude_force_nb.store.cache import CachedResponse
    assert a.put(key, CachedResponse("hi", "end_turn", Usage(1, 2), "m", 0.5))
    ttl = redis_server.client().ttl(team_prefix(a.kid) + key)
    assert 7 * 24 * 3600 - 5 <= ttl <= 7 * 24 * 3600

    got = b.get(key, defer_writes=True)
    assert got is not None and got.text == "hi"
    b.close()                                  # the deferred local copy is written by then
    b = ResponseCache(_home_settings(tmp_path, "b", "redis://127.0.0.1:1/0", server.url))   # Redis unreachable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        local = b.get(key)
    assert local is not None and local.created == got.created and local.expires == got.expires
    assert b.stats()["hits"] == 1
    a.close(), b.close()


def test_tampered_garbage_and_moved_values_are_counted_misses(tmp_path, server, redis_server):
    cache = ResponseCache(_home_settings(tmp_path, "a", redis_server.url, server.url))
    from claude_force_nb.core.results import Usage
    from claude_force_nb.store.cache import CachedResponse
    k1, k2, k3 = (cache.key_for({"model": "m", "messages": [{"role": "user", "content": str(i)}]}) for i in range(3))
    cache.put(k1, CachedResponse("one", "end_turn", Usage(1, 1), "m", 0.1))
    cache.put(k2, CachedResponse("two", "end_turn", Usage(1, 1), "m", 0.1))
    cache.clear()                              # local copies gone: every lookup below asks Redis
    r = redis_server.client()
    prefix = team_prefix(cache.kid)
    value = r.get(prefix + k1)
    assert value.startswith(ENVELOPE)
    r.set(prefix + k1, value[:-1] + bytes([value[-1] ^ 1]))     # one bit of the answer flipped
    r.set(prefix + k3, r.get(prefix + k2))                     # a genuine value under another key
    r.set(prefix + k2, b"\x80\x04\x95pickle?")                 # garbage
    with pytest.warns(StorageWarning, match="integrity check"):
        assert cache.get(k1) is None
    assert cache.get(k2) is None and cache.get(k3) is None
    stats = cache.stats()["redis"]
    assert stats["integrity_failures"] == 3 and stats["misses"] == 3 and stats["hits"] == 0
    cache.close()


def test_clear_team_unlinks_only_this_teams_cache_keys(tmp_path, server, redis_server):
    from claude_force_nb.core.results import Usage
    from claude_force_nb.store.cache import CachedResponse
    ours = ResponseCache(_home_settings(tmp_path, "a", redis_server.url, server.url))
    theirs = ResponseCache(_home_settings(tmp_path, "b", redis_server.url, server.url, b"x" * 32))
    for cache in (ours, theirs):
        for i in range(25):
            cache.put(cache.key_for({"n": i}), CachedResponse("x", "end_turn", Usage(1, 1), "m", 0.1))
    r = redis_server.client()
    r.set(team_prefix(ours.kid) + "ledger", b"not a cache key")
    assert ours.clear_team() == 25
    assert len(list(r.scan_iter(match=team_prefix(ours.kid) + "*"))) == 1
    assert len(list(r.scan_iter(match=team_prefix(theirs.kid) + "*"))) == 25
    assert ours.stats()["entries"] == 25              # the local file is untouched
    ours.close(), theirs.close()


def test_no_team_tier_is_refused_by_clear_team():
    cache = ResponseCache(Settings())
    with pytest.raises(CacheError, match="CLAUDE_FORCE_REDIS_URL"):
        cache.clear_team()
    assert "redis" not in cache.stats()
    cache.close()


def test_a_server_that_never_answers_costs_one_timeout_then_the_circuit_skips_it(silent_server):
    clock = [0.0]
    link = RedisLink(silent_server.url, timeout_s=0.05, retry_s=5.0, clock=lambda: clock[0])
    started = time.perf_counter()
    with pytest.warns(StorageWarning, match="did not answer"):
        assert link.call(lambda r: r.get("k"), "off") == "off"
    first = time.perf_counter() - started
    assert 0.04 <= first < 0.5 and not link.up
    started = time.perf_counter()
    for _ in range(100):
        assert link.call(lambda r: r.get("k"), "off") == "off"
    assert time.perf_counter() - started < 0.05          # open circuit: Redis is not asked
    clock[0] = 5.0                                        # due a probe: one more timeout, no new warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert link.call(lambda r: r.get("k"), "off") == "off"
    assert link.failures == 2 and link.outages == 1
    link.close()


def test_the_tier_comes_back_by_itself_when_redis_does(tmp_path, redis_server):
    clock = [0.0]
    link = RedisLink(redis_server.url, timeout_s=0.05, retry_s=1.0, clock=lambda: clock[0])
    assert link.call(lambda r: r.set("k", b"v"), None) is True
    redis_server.kill()
    with pytest.warns(StorageWarning):
        assert link.call(lambda r: r.get("k"), "off") == "off"
    redis_server.start()
    assert link.call(lambda r: r.ping(), "off") == "off"     # not yet due
    clock[0] = 1.0
    assert link.call(lambda r: r.ping(), "off") is True and link.up
    link.close()


def test_maxmemory_reached_refuses_writes_but_reads_go_on(tmp_path, server):
    need_redis_server()
    from claude_force_nb.core.results import Usage
    from claude_force_nb.store.cache import CachedResponse
    small = RedisServer(tmp_path / "small", "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    small.start()
    try:
        cache = ResponseCache(_home_settings(tmp_path, "a", small.url, server.url))
        first = cache.key_for({"n": -1})
        assert cache.put(first, CachedResponse("kept", "end_turn", Usage(1, 1), "m", 0.1))
        big = "x" * 200_000
        with pytest.warns(StorageWarning, match="maxmemory-policy volatile-lru"):
            for i in range(40):
                assert cache.put(cache.key_for({"n": i}), CachedResponse(big, "end_turn", Usage(1, 1), "m", 0.1))
        stats = cache.stats()["redis"]
        assert stats["write_errors"] > 0 and stats["up"]
        cache.clear()
        assert cache.get(first).text == "kept" and cache.stats()["redis"]["hits"] == 1
        cache.close()
    finally:
        small.kill()


def test_a_bad_url_or_a_missing_client_is_one_clear_line():
    with pytest.raises(ConfigurationError, match=r"not a Redis URL: use redis://") as info:
        Settings(redis_url="http://user:hunter2@host:6379")
    assert "hunter2" not in str(info.value)


def test_the_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CLAUDE_FORCE_REDIS_URL", "unix:///run/redis.sock")
    assert Settings.from_env().redis_url == "unix:///run/redis.sock"
    assert "redis.sock" not in repr(Settings.from_env())


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_redis_server_skips_locally_and_fails_on_ci(monkeypatch, ci, outcome):
    from tests import redis_support

    monkeypatch.setattr(redis_support, "REDIS_SERVER", "/nonexistent/redis-server")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="redis-server is not installed"):
        redis_support.need_redis_server()
