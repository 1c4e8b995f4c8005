"""The team ledger stream against a real redis-server: rows with user and host, none lost
while Redis is down, none twice, tampered entries dropped; and a 200-call run with Redis
killed and restarted in the middle."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.orchestrator import Orchestrator
from claude_force_nb.store.ledger import Ledger
from claude_force_nb.testing import FakeAnthropicServer

from .conftest import TEST_KEY
from .redis_support import RedisServer, need_redis_server, redis_server, silent_server  # noqa: F401

SECRET = b"team-secret-0123456789abcdef-xyz"
QUIET = pytest.mark.filterwarnings("ignore::claude_force_nb.store.faults.StorageWarning")


def _settings(tmp_path: Path, name: str, url: str, **more: object) -> Settings:
    home = tmp_path / name
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=SECRET, redis_url=url,
                    team_user=name, **more)


def _result(agent: str, cost: float) -> AgentResult:
    return AgentResult(agent=agent, model="claude-haiku-4-5", text="x", usage=Usage(10, 5), cost_usd=cost,
                       latency_s=0.1, stop_reason="end_turn")


def test_rows_reach_the_team_stream_with_user_and_host(tmp_path, redis_server):
    alice = Ledger(_settings(tmp_path, "alice", redis_server.url))
    bob = Ledger(_settings(tmp_path, "bob", redis_server.url))
    alice.record(_result("writer", 0.25), task="draft")
    bob.record_many([(_result("critic", 0.5), "judge"), (_result("writer", 0.75), "again")])
    rows = alice.team.rows()
    assert [(r["user"], r["agent"], r["cost_usd"], r["task_head"]) for r in rows] == [
        ("alice", "writer", 0.25, "draft"), ("bob", "critic", 0.5, "judge"), ("bob", "writer", 0.75, "again")]
    assert rows[0]["host"] and len({r["uid"] for r in rows}) == 3
    alice.close(), bob.close()


def test_rows_written_before_joining_stay_local(tmp_path, redis_server):
    solo = Ledger(_settings(tmp_path, "carol", redis_server.url).replace(redis_url=None))
    solo.record(_result("writer", 1.0))
    solo.close()
    joined = Ledger(_settings(tmp_path, "carol", redis_server.url))
    joined.record(_result("writer", 2.0))
    assert [r["cost_usd"] for r in joined.team.rows()] == [2.0] and len(joined) == 2
    joined.close()


@QUIET
def test_rows_written_while_redis_is_down_are_sent_once_when_it_is_back(tmp_path):
    need_redis_server()
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        ledger = Ledger(_settings(tmp_path, "dave", server.url, redis_retry_s=0.0))
        ledger.record(_result("a", 1.0))
        server.kill()
        for i in range(5):
            ledger.record(_result("b", float(i)))     # Redis refuses: rows wait in the file
        assert ledger.team.link.outages == 1
        server.start()
        ledger.record(_result("c", 9.0))
        again = Ledger(_settings(tmp_path, "dave", server.url, redis_retry_s=0.0))   # another kernel, same home
        assert again.flush() == 0
        rows = ledger.team.rows()
        assert [r["agent"] for r in rows] == ["a"] + ["b"] * 5 + ["c"]
        assert server.client().xlen(ledger.team.stream) == 7          # none sent twice
        ledger.close(), again.close()
    finally:
        server.kill()


def test_tampered_and_planted_entries_are_dropped_and_duplicates_counted_once(tmp_path, redis_server):
    ledger = Ledger(_settings(tmp_path, "erin", redis_server.url))
    ledger.record(_result("a", 1.0))
    r = redis_server.client()
    (_, fields), = r.xrange(ledger.team.stream)
    r.xadd(ledger.team.stream, fields)                                   # the same row again
    r.xadd(ledger.team.stream, {**fields, b"row": fields[b"row"].replace(b"1.0", b"0.0")})   # rewritten
    r.xadd(ledger.team.stream, {b"row": b'{"agent": "planted", "cost_usd": 99}'})          # unsigned
    rows = ledger.team.rows()
    assert [(x["agent"], x["cost_usd"]) for x in rows] == [("a", 1.0)] and ledger.team.rejected == 2
    ledger.close()


@QUIET
def test_redis_killed_during_a_200_call_run_every_call_completes_and_rows_reach_the_stream(tmp_path):
    need_redis_server()
    redis = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    redis.start()
    with FakeAnthropicServer(latency_s=0.005) as api:
        home = tmp_path / "home"
        settings = Settings(api_key=TEST_KEY, base_url=api.url, data_dir=home, secrets_dir=home / "secrets",
                            cache_secret=SECRET, redis_url=redis.url, redis_retry_s=0.0, team_user="fay",
                            max_concurrent=8, timeout_s=10.0)
        orch = Orchestrator(settings, registry=AgentRegistry(tmp_path / "project", user_dir=tmp_path / "agents"))
        try:
            def chaos() -> None:
                while api.request_count < 50:
                    time.sleep(0.001)
                redis.kill()
                while api.request_count < 120:
                    time.sleep(0.001)
                redis.start()

            thread = threading.Thread(target=chaos)
            thread.start()
            results = orch.run_many_sync([("assistant", f"question {i}") for i in range(200)])
            thread.join()
            assert all(r.ok for r in results) and len(results) == 200
            assert max(r.latency_s for r in results) < 2.0
            link = orch.cache.stats()["redis"]
            assert link["outages"] >= 1
            orch.ledger.flush()
            rows = orch.ledger.team.rows()
            assert len(rows) == 200 and sorted(r["task_head"] for r in rows) == sorted(f"question {i}" for i in range(200))
            assert redis.client().xlen(orch.ledger.team.stream) == 200
        finally:
            orch.close()
            redis.kill()


@QUIET
def test_a_redis_that_never_answers_costs_a_run_one_timeout(tmp_path, server, silent_server):
    home = tmp_path / "home"
    settings = Settings(api_key=TEST_KEY, base_url=server.url, data_dir=home, secrets_dir=home / "secrets",
                        cache_secret=SECRET, redis_url=silent_server.url, redis_timeout_s=0.05, redis_retry_s=60.0)
    orch = Orchestrator(settings, registry=AgentRegistry(tmp_path / "project", user_dir=tmp_path / "agents"))
    try:
        started = time.perf_counter()
        results = orch.run_many_sync([("assistant", f"q {i}") for i in range(40)])
        elapsed = time.perf_counter() - started
        assert all(r.ok for r in results) and server.request_count == 40
        team = orch.cache.stats()["redis"]
        assert team["failures"] == 1 and team["skipped"] == 40 and not team["up"]
        assert elapsed < 0.05 + 2.0 and len(orch.ledger) == 40      # rows kept locally, sent later
        assert orch.ledger.team.sent == 0
    finally:
        orch.close()
