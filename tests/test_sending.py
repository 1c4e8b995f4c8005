"""Sender: one prepared call over real HTTP to FakeAnthropicServer, with the real SDK."""

from __future__ import annotations

import asyncio
import time

import pytest

from claude_force_nb.core.agents import AgentDefinition
from claude_force_nb.core.errors import MalformedResponseError, MissingAPIKeyError
from claude_force_nb.core.options import RunOptions
from claude_force_nb.core.pricing import PriceTable
from claude_force_nb.core.results import AgentResult
from claude_force_nb.engine.pacing import Pacer
from claude_force_nb.engine.requests import build_call
from claude_force_nb.engine.retry import CircuitBreaker
from claude_force_nb.engine.sending import Sender
from claude_force_nb.testing import Fault

AGENT = AgentDefinition("assistant", "Be helpful.")
DEFAULT_OPTIONS = RunOptions()   # frozen, so one shared default is safe


@pytest.fixture
def send(make_settings):
    """send(task, options, **settings) -> (result, breaker), on a fresh Sender closed afterwards."""

    def run(task: str, options: RunOptions = DEFAULT_OPTIONS, on_text=None, **changes: object):
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


# -- every wire failure comes back as a result ------------------------------------------------------------

NOT_JSON = "The API's reply could not be read: a 200 whose body is not JSON: '{oops'."
HTML_PAGE = "The server answered with an HTML page, not the Anthropic API"
NOT_A_STREAM = "The API's reply could not be read: a stream answered with application/json, not text/event-stream."
BAD_EVENT = "The API's reply could not be read: an event stream that could not be read (JSONDecodeError: "
NO_MESSAGE = "The API's reply could not be read: an event stream with no message in it."


@pytest.mark.parametrize("stream,fault,starts", [
    (False, Fault(body="{oops"), NOT_JSON),
    (False, Fault(body="<html><body>Sign in to the Wi-Fi</body></html>", content_type="text/html"), HTML_PAGE),
    (False, Fault(body='{"type": "error", "error": {"type": "api_error"}}'), "The API's reply could not be read: "
                                                                             "a 200 whose body is not a message"),
    (True, Fault(body="{oops", content_type="application/json"), NOT_A_STREAM),
    (True, Fault(body="<html>Bad gateway</html>", content_type="text/html"), HTML_PAGE),
    (True, Fault(body="event: message_start\ndata: {oops\n\n"), BAD_EVENT),
    (True, Fault(body="hello, not server-sent events\n\n"), NO_MESSAGE),
])
def test_a_reply_that_is_not_the_apis_format_is_a_malformed_result_not_retried(send, server, stream, fault, starts):
    server.script(fault, fault)
    deltas: list[str] = []
    result, breaker = send("unreadable", RunOptions(stream=stream), on_text=deltas.append)
    assert (result.ok, result.error_type, result.attempts, result.cost_usd) == (False, "malformed_response", 1, 0.0)
    assert result.error.startswith(starts) and "\n" not in result.error and result.request_id.startswith("req_")
    assert server.request_count == 1 and server.counters["malformed"] == 1 and deltas == []
    assert breaker.state == "closed" and breaker.failures == 0
    with pytest.raises(MalformedResponseError):
        result.raise_for_error()


@pytest.mark.parametrize("fault", [Fault(truncate=True), Fault(truncate=True, tool_calls=[("lookup", {"key": "a" * 60})])])
def test_a_stream_cut_off_mid_answer_is_incomplete_and_retried(send, server, fault) -> None:
    server.script(fault)
    result, _ = send("cut off")
    assert (result.ok, result.attempts, server.request_count) == (True, 2, 2)


def test_a_bug_in_a_callback_keeps_its_traceback_while_the_wire_fails_softly(send, server) -> None:
    def broken(text: str) -> None:
        raise KeyError("a bug in on_text")

    with pytest.raises(KeyError, match="a bug in on_text"):
        send("callback bug", on_text=broken)
    assert server.request_count == 1  # a bug is not retried
    server.script(Fault(body="event: message_start\ndata: {oops\n\n"))
    result, _ = send("wire fault", on_text=broken)
    assert result.error_type == "malformed_response"


# -- stalled streams ----------------------------------------------------------------------------------------

def test_a_ping_only_stream_is_reported_stalled_after_the_idle_timeout(send, server) -> None:
    server.script(Fault(stall_s=60), Fault(stall_s=60))
    t0 = time.perf_counter()
    result, breaker = send("stall", max_attempts=2, stream_idle_timeout_s=0.3, timeout_s=10)
    assert time.perf_counter() - t0 < 5
    assert (result.ok, result.error_type, result.attempts) == (False, "stalled", 2)
    assert result.error == ("The response stream stalled: no progress for 0.3s (keep-alive pings only). Retry later, "
                            "or raise Settings.stream_idle_timeout_s if answers need long pauses.")
    assert server.counters["stalled"] == 2 and breaker.failures == 1  # a stall counts against the service
    assert server.wait_for(lambda s: s.in_flight == 0, timeout=5)  # both stalled requests were closed


def test_a_stalled_attempt_is_retried_and_the_answer_arrives(send, server) -> None:
    server.script(Fault(stall_s=60))
    result, _ = send("stall once", stream_idle_timeout_s=0.3)
    assert result.ok and result.attempts == 2 and server.request_count == 2


def test_a_slow_healthy_stream_is_not_cut_but_the_attempt_deadline_holds(send, server) -> None:
    server.chunk_delay_s = 0.05  # a pause between events, well under the idle timeout
    slow, _ = send("a long answer please", stream_idle_timeout_s=0.5)
    assert slow.ok and slow.attempts == 1
    late, _ = send("a long answer please", max_attempts=1, stream_idle_timeout_s=0.5, stream_deadline_s=0.2)
    assert (late.error_type, late.attempts) == ("stalled", 1)
    assert late.error == ("The response stream was still going after 0.2s, the most one attempt may take: "
                          "lower max_tokens or raise Settings.stream_deadline_s.")


def test_a_stream_that_goes_silent_without_pings_is_stalled_not_unreachable(send, server) -> None:
    server.ping_interval_s = 3600  # one ping when the stall begins, then nothing at all
    server.script(Fault(stall_s=60))
    result, _ = send("silent", max_attempts=1, timeout_s=0.3, stream_idle_timeout_s=30)
    assert (result.error_type, result.attempts) == ("stalled", 1)
    assert result.error.startswith("The response stream stalled: nothing at all arrived for Settings.timeout_s.")
