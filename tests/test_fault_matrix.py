"""The fault matrix: 60 jobs through one run_many_sync while everything goes wrong at once.

- the first 8 attempts are answered 429 and 45% of all requests 529 (overload mode) until
  the outage is over, so nearly half of the first attempts are refused and the run must pace itself;
- the server goes down (connections reset) for 2 s of its clock after 20 jobs are done:
  a helper thread takes it down, waits for the clients to hit it, then moves the clock on,
  so no test time is spent waiting (that also ends the overload);
- job 17 gets a malformed 200 (an event whose data is not JSON) and job 41 a ping-only
  stream, on every attempt.

Every job has a result, in input order; the good ones are ok, the two bad ones say why.
Real SDK over real HTTP against FakeAnthropicServer on a ManualClock.
"""

from __future__ import annotations

import threading
from pathlib import Path

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.orchestrator import Orchestrator
from claude_force_nb.testing import FakeAnthropicServer, ManualClock

from .conftest import TEST_KEY

JOBS = 60
MALFORMED, STALLED = 17, 41
OUTAGE_AFTER_RESULTS = 20


def task(i: int) -> str:
    directive = {MALFORMED: " [[fake:malformed]]", STALLED: " [[fake:stall]]"}.get(i, "")
    return f"job {i}{directive}"


def test_sixty_jobs_through_overload_an_outage_a_malformed_reply_and_a_stall(tmp_path: Path):
    clock = ManualClock()
    with FakeAnthropicServer(clock=clock) as server:
        orch = Orchestrator(
            Settings(api_key=TEST_KEY, base_url=server.url, data_dir=tmp_path / "home",
                     secrets_dir=tmp_path / "home" / "secrets", cache_secret=b"matrix-secret-0123456789abcdef",
                     max_concurrent=8, max_attempts=20, retry_base_wait_s=0.01, retry_max_wait_s=0.05,
                     stream_idle_timeout_s=0.3, timeout_s=10.0),  # a loaded machine may pause a healthy stream ~0.1 s
            registry=AgentRegistry(tmp_path, user_dir=tmp_path / "user-agents"),
        )
        server.fail_next(429, times=8, retry_after_ms=5)
        server.overload(0.45, status=529, retry_after_ms=5, duration_s=1.0)

        halfway = threading.Event()
        outage_over = threading.Event()

        def outage() -> None:
            halfway.wait()
            server.down(2.0, mode="drop")
            server.wait_for(lambda s: s.counters["dropped"] >= 8, timeout=30)
            clock.advance(2.0)
            outage_over.set()

        helper = threading.Thread(target=outage, daemon=True)
        helper.start()
        finished: list[int] = []

        def on_result(i: int, result) -> None:
            finished.append(i)
            if len(finished) == OUTAGE_AFTER_RESULTS:
                halfway.set()

        try:
            results = orch.run_many_sync([("assistant", task(i)) for i in range(JOBS)], on_result=on_result,
                                         use_cache=False)
            ledger_rows = orch.ledger.rows()
        finally:
            halfway.set()
            helper.join(timeout=30)
            orch.close()

    assert outage_over.is_set() and server.counters["dropped"] >= 8
    expected = {MALFORMED: "malformed_response", STALLED: "stalled"}
    assert [r.error_type for r in results] == [expected.get(i) for i in range(JOBS)]
    assert all(f"job {i}" in r.text for i, r in enumerate(results) if i not in expected)
    assert sorted(finished) == list(range(JOBS))
    assert results[MALFORMED].attempts == 1 and "could not be read" in results[MALFORMED].error
    assert results[STALLED].attempts == 20 and "stalled" in results[STALLED].error
    stats = orch.pacer.stats()
    assert stats.rate_limited == sum(r.rate_limited for r in results) >= 8
    # The outage closes every open connection: a 529 already written to one may never be read
    # (the client sees the reset instead), so the server can count more than the client met.
    assert 0 < stats.overloaded == sum(r.overloaded for r in results) <= server.counters["overloaded"]
    assert orch.breaker.state == "closed"
    assert len(ledger_rows) == JOBS
