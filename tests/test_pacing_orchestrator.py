"""429/529 pace a whole run through the Orchestrator; they never fail it or open the breaker.

Real SDK over real HTTP against the offline server's overload and rate-limit modes.
"""

from __future__ import annotations

from claude_force_nb.testing import FakeAnthropicServer, Fault


def test_a_burst_of_overload_paces_a_run_many_and_every_job_succeeds(make_orch, server: FakeAnthropicServer):
    orch = make_orch(max_concurrent=8, max_attempts=10, retry_max_wait_s=0.05)
    server.overload(0.45, status=529, retry_after_ms=5)
    results = orch.run_many_sync([("assistant", f"question {i}") for i in range(60)], use_cache=False)
    assert [r.error for r in results] == [None] * 60
    assert [r.text for r in results] == [orch.run_sync("assistant", f"question {i}").text for i in range(60)]
    assert orch.breaker.state == "closed"
    stats = orch.pacer.stats()
    assert stats.overloaded == server.counters["overloaded"] > 0
    assert stats.rate_limited == 0


def test_rate_limited_compare_waits_out_retry_after_instead_of_failing(make_orch, server: FakeAnthropicServer):
    # 9 attempts: the 8 scripted 429s go to whichever requests arrive first, and on a loaded
    # machine a retry can overtake another row's first attempt, so one row may meet several.
    orch = make_orch(max_concurrent=8, max_attempts=9, retry_max_wait_s=1.0)
    server.fail_next(429, times=8, retry_after_ms=20)
    results = orch.run_many_sync([("assistant", f"row {i}") for i in range(8)], use_cache=False)
    assert [r.error for r in results] == [None] * 8
    assert orch.breaker.state == "closed" and orch.breaker.failures == 0
    assert orch.pacer.stats().rate_limited == 8
    assert orch.run_sync("assistant", "the next cell").ok


def test_the_breaker_still_opens_when_the_api_is_unreachable(make_orch, server: FakeAnthropicServer):
    orch = make_orch(circuit_failures=2, max_attempts=1, circuit_reset_s=60)
    server.down(60, mode="refuse")
    first = [orch.run_sync("assistant", f"q{i}", use_cache=False) for i in range(3)]
    assert [r.error_type for r in first] == ["connection_error", "connection_error", "circuit_open"]
    assert orch.breaker.state == "open"


def test_each_result_says_how_many_429_and_529_it_met_and_how_long_it_waited(make_orch, server: FakeAnthropicServer):
    orch = make_orch(max_attempts=4, retry_max_wait_s=1.0)
    server.script(Fault(status=429, retry_after_ms=60), Fault(status=529, retry_after_ms=40))
    result = orch.run_sync("assistant", "paced", use_cache=False)
    assert result.ok and (result.attempts, result.rate_limited, result.overloaded) == (3, 1, 1)
    assert 0.1 <= result.waited_s < result.latency_s
    clean = orch.run_sync("assistant", "not paced", use_cache=False)
    assert (clean.rate_limited, clean.overloaded, clean.waited_s) == (0, 0, 0.0)
    server.overload(0.45, status=529)
    results = orch.run_many_sync([("assistant", f"q{i}") for i in range(20)], use_cache=False)
    assert sum(r.overloaded for r in results) == server.counters["overloaded"] == orch.pacer.stats().overloaded - 1
