"""Retry rules, waits and the circuit breaker: the real SDK over HTTP against FakeAnthropicServer,
with an injected clock and sleep, so every wait is asserted exactly and nothing really waits."""

from __future__ import annotations

import asyncio

import anthropic
import httpx2
import pytest

from claude_force_nb.core.errors import (
    CircuitOpenError,
    IncompleteResponseError,
    InvalidInputError,
    MalformedResponseError,
    StalledStreamError,
)
from claude_force_nb.engine.retry import (
    CircuitBreaker,
    counts_against_service,
    is_retryable,
    server_wait_hint,
    with_retries,
)
from claude_force_nb.testing import Fault

from .clocks import FakeClock
from .conftest import TEST_KEY

HAIKU = "claude-haiku-4-5"


def status_error(status: int, headers: dict[str, str] | None = None, etype: str | None = None):
    request = httpx2.Request("POST", "http://x/v1/messages")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"type": "error", "error": {"type": etype or "api_error", "message": "m"}}
    return anthropic.APIStatusError("m", response=response, body=body)


def connection_error() -> anthropic.APIConnectionError:
    return anthropic.APIConnectionError(request=httpx2.Request("POST", "http://x/v1/messages"))


def calls(server, *jobs):
    """Run ``job(client)`` coroutines concurrently with one real SDK client (max_retries=0)."""

    async def main():
        async with anthropic.AsyncAnthropic(api_key=TEST_KEY, base_url=server.url, max_retries=0) as client:
            return await asyncio.gather(*(job(client) for job in jobs), return_exceptions=True)

    return asyncio.run(main())


def ask(clock: FakeClock, breaker: CircuitBreaker | None = None, attempts: int = 4, max_wait_s: float = 20.0):
    """One call under the retry policy: a messages.create, retried with the fake sleep."""

    async def job(client):
        async def attempt():
            return await client.messages.create(model=HAIKU, max_tokens=256, messages=[{"role": "user", "content": "hi"}])

        return await with_retries(attempt, attempts=attempts, base_wait_s=0.5, max_wait_s=max_wait_s,
                                  breaker=breaker, sleep=clock.sleep)

    return job


# -- what is retried, and what says the service is unreachable -------------------------------------------

@pytest.mark.parametrize("status,expected", [(400, False), (401, False), (403, False), (404, False), (413, False),
                                             (422, False), (408, True), (409, True), (429, True), (500, True),
                                             (529, True)])
def test_retry_rule_by_status(status, expected):
    assert is_retryable(status_error(status)) is expected


def test_retry_rule_for_streams_transport_and_hints():
    assert is_retryable(status_error(200, etype="overloaded_error"))
    assert not is_retryable(status_error(200, etype="invalid_request_error"))
    assert is_retryable(httpx2.RemoteProtocolError("peer closed"))
    assert is_retryable(IncompleteResponseError("cut"))
    assert is_retryable(CircuitOpenError("open"))  # the call waits for the test call within its attempts
    assert is_retryable(StalledStreamError("pings only", error_type="stalled"))  # like a timeout
    assert not is_retryable(MalformedResponseError("{oops", error_type="malformed_response"))  # may be billed
    assert not is_retryable(ValueError("bug"))
    assert not is_retryable(status_error(529, {"x-should-retry": "false"}))
    assert server_wait_hint(status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert server_wait_hint(status_error(429, {"retry-after": "3"})) == 3.0
    assert server_wait_hint(status_error(429, {"retry-after": "soon"})) is None


@pytest.mark.parametrize("exc,counts", [
    (status_error(500), True), (status_error(502), True), (status_error(503), True), (status_error(504), True),
    (connection_error(), True), (anthropic.APITimeoutError(request=httpx2.Request("POST", "http://x")), True),
    (httpx2.RemoteProtocolError("peer closed"), True), (TimeoutError(), True), (StalledStreamError("stalled"), True),
    (MalformedResponseError("{oops"), False),
    (status_error(200, etype="api_error"), True),
    (status_error(429), False), (status_error(529), False), (status_error(200, etype="overloaded_error"), False),
    (status_error(200, etype="rate_limit_error"), False), (status_error(408), False), (status_error(400), False),
    (IncompleteResponseError("cut"), False), (CircuitOpenError("open"), False), (ValueError("bug"), False),
])
def test_only_an_unreachable_or_broken_service_counts_against_it(exc, counts):
    assert counts_against_service(exc) is counts


# -- waits ----------------------------------------------------------------------------------------------

def test_waits_are_the_servers_hint_capped(server):
    clock = FakeClock()
    server.script(Fault(status=429, retry_after_ms=400), Fault(status=529, retry_after=60))
    (message,) = calls(server, ask(clock, max_wait_s=5.0))
    assert message.stop_reason == "end_turn" and server.request_count == 3
    assert clock.sleeps == [0.4, 5.0]


def test_backoff_without_a_hint_doubles_with_jitter(server):
    clock = FakeClock()
    server.fail_next(500, times=3)
    (message,) = calls(server, ask(clock))
    assert message.stop_reason == "end_turn"
    first, second, third = clock.sleeps
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0 and 1.5 <= third <= 2.0


# -- the circuit breaker ------------------------------------------------------------------------------

def test_breaker_counts_calls_after_their_retries_not_attempts(server):
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, reset_s=30, clock=clock)
    server.fail_next(500, times=3)
    (failed,) = calls(server, ask(clock, breaker, attempts=3))
    assert isinstance(failed, anthropic.InternalServerError)
    assert (breaker.failures, breaker.state) == (1, "closed")  # three failed attempts, one failed call
    server.fail_next(500, times=3)
    calls(server, ask(clock, breaker, attempts=3))
    assert (breaker.failures, breaker.state) == (2, "open")
    assert breaker.last_failure == "HTTP 500"


def test_concurrent_calls_failing_their_first_attempts_together_do_not_open_it(server):
    # Eight calls in flight when the network blips: eight failed attempts, but every call
    # then succeeds. Counting attempts would have opened a threshold-5 breaker here.
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=5, reset_s=30, clock=clock)
    server.script(*[Fault(reset=True)] * 8)
    results = calls(server, *[ask(clock, breaker, attempts=9) for _ in range(8)])
    assert [r.stop_reason for r in results] == ["end_turn"] * 8
    assert (breaker.state, breaker.failures, server.request_count) == ("closed", 0, 16)


def test_rate_limits_and_overload_never_open_it(server):
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, reset_s=30, clock=clock)
    server.fail_next(429, times=2, retry_after_ms=1)
    server.fail_next(529, times=2, retry_after_ms=1)
    server.script(Fault(stream_error="overloaded_error"), Fault(stream_error="overloaded_error"))
    (rate_limited,) = calls(server, ask(clock, breaker, attempts=2))
    (overloaded,) = calls(server, ask(clock, breaker, attempts=2))
    assert isinstance(rate_limited, anthropic.RateLimitError) and isinstance(overloaded, anthropic.OverloadedError)

    async def streamed(client):
        async def attempt():
            async with client.messages.stream(model=HAIKU, max_tokens=64,
                                              messages=[{"role": "user", "content": "a longer answer"}]) as stream:
                return await stream.get_final_message()
        return await with_retries(attempt, attempts=2, base_wait_s=0.5, max_wait_s=5, breaker=breaker, sleep=clock.sleep)

    (mid_stream,) = calls(server, streamed)
    assert isinstance(mid_stream, anthropic.APIStatusError) and mid_stream.type == "overloaded_error"
    assert (breaker.state, breaker.failures) == ("closed", 0)
    server.fail_next(503)
    calls(server, ask(clock, breaker, attempts=1))
    assert breaker.state == "open"  # while a 503 does, with the same threshold


def test_an_open_circuit_makes_a_call_wait_for_the_test_call_within_its_attempts(server):
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, reset_s=30, clock=clock)
    server.fail_next(500)
    calls(server, ask(clock, breaker, attempts=1))
    assert breaker.state == "open" and breaker.retry_in() == 30.0
    (short,) = calls(server, ask(clock, breaker, attempts=2))      # its budget ends before the test call
    assert isinstance(short, CircuitOpenError) and short.error_type == "circuit_open"
    assert "could not be reached by 1 call in a row (last: HTTP 500)" in str(short)
    assert clock.sleeps == [20.0] and server.request_count == 1 and breaker.failures == 1
    (patient,) = calls(server, ask(clock, breaker, attempts=2))    # 10 s left: it becomes the test call
    assert patient.stop_reason == "end_turn" and clock.sleeps == [20.0, 10.0]
    assert (breaker.state, breaker.failures, server.request_count) == ("closed", 0, 2)


def test_a_failed_test_call_reopens_it_and_others_back_off_meanwhile():
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, reset_s=30, clock=clock)
    breaker.call_failed(connection_error())
    clock.advance(30)
    assert breaker.state == "half-open" and breaker.retry_in() == 0.0
    with pytest.raises(anthropic.APIConnectionError), breaker.attempt():   # the test call
        with pytest.raises(CircuitOpenError, match="a test call is checking whether it is back"), breaker.attempt():
            pass
        assert breaker.retry_in() is None     # no time to wait for: others back off meanwhile
        raise connection_error()
    assert breaker.state == "open" and breaker.retry_in() == 30.0 and breaker.last_failure == "APIConnectionError"


@pytest.mark.parametrize("outcome,state", [(None, "closed"), (status_error(529), "closed"), (status_error(400), "closed"),
                                           (asyncio.CancelledError(), "half-open"), (InvalidInputError("x"), "half-open")])
def test_what_a_test_call_proves(outcome, state):
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, reset_s=30, clock=clock)
    breaker.call_failed(status_error(502))
    clock.advance(30)
    try:
        with breaker.attempt():
            if outcome is not None:
                raise outcome
    except BaseException as exc:
        assert exc is outcome
    assert breaker.state == state  # any answer from the API closes it; a cancel or a refusal proves nothing
    with breaker.attempt():       # ...and never keeps the test-call place taken
        pass
    assert breaker.state == "closed"


# -- through the orchestrator --------------------------------------------------------------------------

def test_circuit_breaker_fails_fast_then_recovers(make_orch, server):
    orch = make_orch(circuit_failures=2, circuit_reset_s=30, max_attempts=1)
    clock = FakeClock()
    orch.breaker.clock = clock
    server.fail_next(500, times=2)
    assert [orch.run_sync("assistant", f"c{i}").error_type for i in range(3)] == ["api_error", "api_error", "circuit_open"]
    assert server.request_count == 2
    clock.advance(29.9)
    assert orch.run_sync("assistant", "still open").error_type == "circuit_open" and server.request_count == 2
    clock.advance(0.1)
    assert orch.run_sync("assistant", "recovered").ok and orch.breaker.state == "closed"


def test_half_open_probe_is_not_leaked_by_a_call_refused_before_sending(make_orch, server):
    orch = make_orch(circuit_failures=1, circuit_reset_s=30, max_attempts=1, tokens_per_minute=5000)
    clock = FakeClock()
    orch.breaker.clock = clock
    server.fail_next(500)
    assert orch.run_sync("assistant", "x", max_tokens=10).error_type == "api_error"
    clock.advance(30)  # half-open: the next call may probe
    with pytest.raises(InvalidInputError, match="tokens_per_minute"):
        orch.run_sync("assistant", "y", max_tokens=100_000)
    assert orch.run_sync("assistant", "z", max_tokens=10).ok and orch.breaker.state == "closed"
