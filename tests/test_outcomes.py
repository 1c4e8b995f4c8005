"""Outcomes: AgentResults built from API replies and real SDK exceptions, and failure lines."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import anthropic
import httpx2
import pytest

from claude_force_nb.core.agents import AgentDefinition
from claude_force_nb.core.errors import CircuitOpenError, InvalidInputError
from claude_force_nb.core.options import RunOptions
from claude_force_nb.core.pricing import PriceTable
from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine import outcomes
from claude_force_nb.engine.requests import build_call
from claude_force_nb.store.cache import CachedResponse

CALL = build_call(
    AgentDefinition("reviewer", "Review."), "\n  first line of the task\nsecond", RunOptions(model="claude-haiku-4-5"),
    Settings(data_dir=Path("unused"), secrets_dir=Path("unused")),
)
PRICES = PriceTable.load()


def message(content: list[dict[str, object]], stop_reason: str | None = "end_turn") -> dict[str, object]:
    """A reply as the API sends it (checked against the SDK's Message model)."""
    return anthropic.types.Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 1000, "output_tokens": 200},
    }).to_dict()


def status_error(status: int, etype: str, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    response = httpx2.Response(status, headers=headers or {}, request=httpx2.Request("POST", "http://x/v1/messages"))
    body = {"type": "error", "error": {"type": etype, "message": "the detail"}}
    return anthropic.APIStatusError("fallback", response=response, body=body)


def test_a_message_becomes_a_priced_result_with_its_text_blocks_joined() -> None:
    reply = message([{"type": "text", "text": "Looks "}, {"type": "thinking", "thinking": "hm", "signature": "s"},
                     {"type": "text", "text": "good."}])
    result = outcomes.from_message(CALL, reply, "req_1", 2, 0.5, prices=PRICES, offline=False)
    assert (result.ok, result.text, result.model, result.request_id, result.attempts) == (
        True, "Looks good.", "claude-haiku-4-5-20251001", "req_1", 2)
    assert result.usage == Usage(1000, 200) and result.cost_usd == 0.002  # $1 in, $5 out per MTok
    assert result.agent == "reviewer" and not result.cached and not result.refused


def test_no_text_is_an_error_but_a_refusal_is_an_answer() -> None:
    empty = outcomes.from_message(CALL, message([], "max_tokens"), None, 1, 0.1, prices=PRICES, offline=True)
    assert not empty.ok and empty.error_type == "empty_response" and empty.offline
    assert empty.error == ("The model returned no text (stop_reason='max_tokens'); try again, rephrase the task "
                           "or raise max_tokens.")
    refusal = outcomes.from_message(CALL, message([], "refusal"), None, 1, 0.1, prices=PRICES, offline=False)
    assert refusal.ok and refusal.refused and refusal.error is None


def test_a_cache_hit_costs_nothing_and_records_the_saving() -> None:
    hit = CachedResponse(text="cached", stop_reason="end_turn", usage=Usage(5, 6), model="claude-haiku-4-5",
                         cost_usd=0.25, agent="reviewer", task_head="t", request_id="req_old")
    call = dataclasses.replace(CALL, cache_key="k1")
    result = outcomes.from_cache(call, hit, 0.01, offline=False)
    assert (result.cached, result.cost_usd, result.saved_usd, result.text, result.cache_key, result.attempts) == (
        True, 0.0, 0.25, "cached", "k1", 0)


def test_failures_cost_nothing_known_and_a_cancel_costs_unknown() -> None:
    failed = outcomes.from_failure(CALL, status_error(400, "invalid_request_error"), 1, 0.2, offline=False)
    assert (failed.ok, failed.cost_usd, failed.error_type, failed.model) == (
        False, 0.0, "invalid_request_error", "claude-haiku-4-5")
    cancelled = outcomes.from_failure(CALL, asyncio.CancelledError(), 0, 0.2, offline=False)
    assert cancelled.cost_usd is None and cancelled.error_type == "cancelled"


def test_a_job_refused_before_sending_keeps_its_agent_and_the_reason() -> None:
    result = outcomes.refused("sql-expert", InvalidInputError("max_tokens=0 is out of range"), model="m", offline=False)
    assert (result.agent, result.model, result.error, result.error_type, result.attempts) == (
        "sql-expert", "m", "max_tokens=0 is out of range", "InvalidInputError", 0)


def test_the_cache_entry_keeps_the_first_line_of_the_task() -> None:
    result = outcomes.from_message(CALL, message([{"type": "text", "text": "ok"}]), "req_2", 1, 0.1, prices=PRICES,
                                   offline=False)
    entry = outcomes.cache_entry(CALL, result)
    assert entry == CachedResponse(text="ok", stop_reason="end_turn", usage=Usage(1000, 200),
                                   model="claude-haiku-4-5-20251001", cost_usd=0.002, agent="reviewer",
                                   task_head="first line of the task", request_id="req_2")


@pytest.mark.parametrize(
    "status,etype,fix",
    [
        (401, "authentication_error", "check ANTHROPIC_API_KEY."),
        (403, "permission_error", "your key lacks permission for this model or feature."),
        (404, "not_found_error", "check the model id."),
        (413, "request_too_large", "the request is too large: shorten the task."),
        (429, "rate_limit_error", "rate limited: wait a minute or lower max_concurrent / requests_per_minute."),
        (529, "overloaded_error", "the API is overloaded: try again shortly."),
        (500, "api_error", "see the message above; retry later if it is a server error."),
    ],
)
def test_api_errors_name_status_type_detail_and_fix(status: int, etype: str, fix: str) -> None:
    assert outcomes.describe_failure(status_error(status, etype), 3) == (
        f"API error {status} ({etype}) after 3 attempts: the detail — {fix}", etype)
    assert outcomes.describe_failure(status_error(status, etype), 1)[0].startswith(f"API error {status} ({etype}): ")


def test_other_failures_are_described_by_kind() -> None:
    request = httpx2.Request("POST", "http://x/v1/messages")
    assert outcomes.describe_failure(TimeoutError(), 2) == (
        "The request timed out after 2 attempts: raise Settings.timeout_s or lower max_tokens.", "timeout")
    assert outcomes.describe_failure(anthropic.APITimeoutError(request), 1)[1] == "timeout"
    assert outcomes.describe_failure(httpx2.RemoteProtocolError("peer closed"), 4) == (
        "Could not reach the API after 4 attempts (RemoteProtocolError): check the network or ANTHROPIC_BASE_URL.",
        "connection_error")
    assert outcomes.describe_failure(anthropic.APIConnectionError(request=request), 1)[1] == "connection_error"
    assert outcomes.describe_failure(CircuitOpenError("open", error_type="circuit_open"), 1) == ("open", "circuit_open")
    assert outcomes.describe_failure(ValueError("odd"), 1) == ("ValueError: odd", "ValueError")
