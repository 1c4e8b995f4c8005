"""Engine limits and retry rules: RateLimiter, BudgetGuard, is_retryable, CircuitBreaker."""

from __future__ import annotations

import asyncio

import anthropic
import httpx2
import pytest

from claude_force_nb.core.errors import BudgetExceededError, CircuitOpenError, IncompleteResponseError
from claude_force_nb.engine.limits import BudgetGuard, RateLimiter
from claude_force_nb.engine.retry import CircuitBreaker, is_retryable, server_wait_hint


def test_rate_limiter_waits_for_the_window():
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=1000, clock=lambda: now[0])
    assert limiter._delay(100, now[0]) == 0
    limiter._events.extend([(0.0, 100), (10.0, 100)])
    limiter._tokens_in_window = 200
    assert limiter._delay(100, 20.0) == 40.0  # third request waits until the first leaves
    assert limiter._delay(900, 61.0) == 0.0   # the 0 s event left the window
    assert limiter._delay(950, 61.0) == 9.0   # tokens: wait for the 10 s event to leave
    waited = asyncio.run(RateLimiter(requests_per_minute=None).acquire(5))
    assert waited == 0.0


def test_budget_guard_counts_in_flight_reservations():
    guard = BudgetGuard(1.0)
    first = guard.reserve(0.6, "m")
    with pytest.raises(BudgetExceededError, match="\\$0.4000 is left"):
        guard.reserve(0.5, "m")
    guard.settle(first, 0.1)
    assert guard.spent_usd == 0.1 and guard.reserve(0.5, "m") == 0.5


def _status_error(status: int, headers: dict[str, str] | None = None, etype: str | None = None):
    request = httpx2.Request("POST", "http://x/v1/messages")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"type": "error", "error": {"type": etype or "api_error", "message": "m"}}
    return anthropic.APIStatusError("m", response=response, body=body)


@pytest.mark.parametrize("status,expected", [(400, False), (401, False), (403, False), (404, False), (413, False),
                                             (422, False), (408, True), (409, True), (429, True), (500, True),
                                             (529, True)])
def test_retry_rule_by_status(status, expected):
    assert is_retryable(_status_error(status)) is expected


def test_retry_rule_for_streams_transport_and_hints():
    assert is_retryable(_status_error(200, etype="overloaded_error"))
    assert not is_retryable(_status_error(200, etype="invalid_request_error"))
    assert is_retryable(httpx2.RemoteProtocolError("peer closed"))
    assert is_retryable(IncompleteResponseError("cut"))
    assert not is_retryable(ValueError("bug"))
    assert not is_retryable(_status_error(529, {"x-should-retry": "false"}))
    assert server_wait_hint(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert server_wait_hint(_status_error(429, {"retry-after": "3"})) == 3.0


def test_circuit_breaker_states():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, reset_s=10, clock=lambda: now[0])
    breaker.record(ok=False)
    breaker.before_call()
    breaker.record(ok=False)
    with pytest.raises(CircuitOpenError, match="failed 2 times in a row"):
        breaker.before_call()
    now[0] = 10.0
    breaker.before_call()  # half-open: one probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.record(ok=True)
    assert breaker.state == "closed"
