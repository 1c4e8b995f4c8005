"""Sender: one prepared call over real HTTP to FakeAnthropicServer, with the real SDK."""

from __future__ import annotations

import asyncio
import time

import pytest

from claude_force_nb.core.agents import AgentDefinition
from claude_force_nb.core.errors import MissingAPIKeyError
from claude_force_nb.core.options import RunOptions
from claude_force_nb.core.pricing import PriceTable
from claude_force_nb.core.results import AgentResult
from claude_force_nb.engine.pacing import Pacer
from claude_force_nb.engine.requests import build_call
from claude_force_nb.engine.retry import CircuitBreaker
from claude_force_nb.engine.sending import Sender

AGENT = AgentDefinition("assistant", "Be helpful.")


@pytest.fixture
def send(make_settings):
    """send(task, options, **settings) -> (result, breaker), on a fresh Sender closed afterwards."""

    def run(task: str, options: RunOptions = RunOptions(), on_text=None, **changes: object):
        settings = make_settings(**changes)
        breaker = CircuitBreaker(settings.circuit_failures, settings.circuit_reset_s)
        sender = Sender(lambda: settings, breaker=breaker, pacer=Pacer(settings.max_concurrent), prices=PriceTable.load())
        call = build_call(AGENT, task, options, settings)

        async def go() -> AgentResult:
            try:
                return await sender.send(call, on_text, time.perf_counter())
            finally:
                await sender.aclose()

        return asyncio.run(go()), breaker

    return run


def test_a_streamed_call_passes_deltas_and_returns_the_whole_answer(send, server) -> None:
    deltas: list[str] = []
    result, breaker = send("stream this", on_text=deltas.append)
    assert result.ok and result.attempts == 1 and len(deltas) > 1 and "".join(deltas) == result.text
    (request,) = server.requests
    assert request.body["stream"] is True and request.body["messages"] == [{"role": "user", "content": "stream this"}]
    assert breaker.state == "closed" and result.request_id and result.cost_usd is not None


def test_a_json_call_sends_no_stream_flag_and_temperature_in_the_body(send, server) -> None:
    result, _ = send("plain", RunOptions(stream=False, temperature=0.3))
    assert result.ok and "stream" not in server.requests[0].body and server.requests[0].body["temperature"] == 0.3


def test_a_retryable_failure_is_retried_and_a_client_error_is_not(send, server) -> None:
    server.fail_next(529, retry_after_ms=1)
    retried, _ = send("again")
    assert retried.ok and retried.attempts == 2 and server.request_count == 2
    server.fail_next(400, error_type="invalid_request_error")
    refused, breaker = send("bad")
    assert (refused.ok, refused.attempts, refused.error_type) == (False, 1, "invalid_request_error")
    assert breaker.state == "closed"  # a client error says nothing about the service


def test_without_a_key_nothing_is_sent_unless_offline(send, server) -> None:
    with pytest.raises(MissingAPIKeyError):
        send("x", api_key=None)
    result, _ = send("How do I reverse a list?", api_key=None, base_url=None, offline=True)
    assert result.ok and result.offline and "Offline answer" in result.text and server.request_count == 0
