"""Outcomes: the AgentResult of a call, whatever happened, and the line that explains a failure.

Anything that happened on the wire (API errors after retries, an empty answer, a
truncated stream, an open circuit) becomes an AgentResult with ``error`` set; only a
problem found before sending is raised (by the orchestrator). A failed call costs $0
as far as we know; a cancelled one has an unknown cost (None).

A reply that asks for tools (``stop_reason "tool_use"``) may have no text: its content
blocks (:func:`content_blocks`) are what the tool loop needs. Its cache entry keeps them
as JSON in place of the text, so a cached step replays the same tool calls.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx2

from ..core.errors import APICallError, ClaudeForceError, EmptyResponseError
from ..core.pricing import PriceTable
from ..core.results import AgentResult, Usage, task_head
from ..store.cache import CachedResponse
from .replies import Reply
from .requests import Call

__all__ = [
    "answer_entry",
    "answer_result",
    "cache_entry",
    "cached_content",
    "content_blocks",
    "describe_failure",
    "from_cache",
    "from_failure",
    "from_message",
    "refused",
]

TOOL_USE = "tool_use"


def content_blocks(reply: Reply) -> list[dict[str, Any]]:
    """A reply's content, exactly as the next request of a tool loop resends it."""
    blocks = []
    for block in reply.get("content") or []:
        kind = block.get("type", "")
        if kind == "text":
            blocks.append({"type": "text", "text": block["text"]})
        elif kind == "tool_use":
            blocks.append({"type": "tool_use", "id": block["id"], "name": block["name"], "input": block["input"]})
        else:  # thinking and the like go back unchanged
            blocks.append({k: v for k, v in block.items() if v is not None})
    return blocks


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")


def cached_content(hit: CachedResponse) -> list[dict[str, Any]]:
    """The content blocks of a cache hit (a tool_use step keeps them; an answer is its text)."""
    if hit.stop_reason == TOOL_USE:
        return list(json.loads(hit.text))
    return [{"type": "text", "text": hit.text}]


def from_message(
    call: Call, message: Reply, request_id: str | None, attempts: int, latency: float, *, prices: PriceTable,
    offline: bool, batch: bool = False,
) -> AgentResult:
    """A complete API response (``batch``: a Message Batches answer, priced at batch rates)."""
    return answer_result(call.agent.name, message, model=call.model, cache_key=call.cache_key, run_id=call.run_id,
                         request_id=request_id, attempts=attempts, latency=latency, prices=prices, offline=offline,
                         batch=batch)


def answer_result(
    agent: str, message: Reply, *, model: str, cache_key: str | None, run_id: str | None, request_id: str | None,
    attempts: int, latency: float, prices: PriceTable, offline: bool, batch: bool = False,
) -> AgentResult:
    """The AgentResult of ``agent``'s reply ``message`` to a request for ``model`` (what
    ``from_message`` needs of a Call, given one by one: a batch answer read back after a
    restart has no Call). No text (and no refusal) is an error: nothing to show."""
    text = "".join(b.get("text", "") for b in (message.get("content") or []) if b.get("type") == "text")
    usage = Usage.from_api(message.get("usage"))
    served = message.get("model") or model
    stop_reason = message.get("stop_reason")
    refused_answer = stop_reason == "refusal"
    error = error_type = None
    if not text.strip() and not refused_answer and stop_reason != TOOL_USE:
        exc = EmptyResponseError(
            f"The model returned no text (stop_reason={stop_reason!r}); "
            f"try again, rephrase the task or raise max_tokens.",
            error_type="empty_response",
        )
        error, error_type = str(exc), exc.error_type
    return AgentResult(
        agent=agent,
        model=served,
        text=text,
        usage=usage,
        cost_usd=prices.cost(served, usage, batch=batch),
        latency_s=latency,
        stop_reason=stop_reason,
        request_id=request_id,
        error=error,
        error_type=error_type,
        cache_key=cache_key,
        offline=offline,
        refused=refused_answer,
        attempts=attempts,
        run_id=run_id,
        batch=batch,
    )


def from_cache(call: Call, hit: CachedResponse, latency: float, *, offline: bool) -> AgentResult:
    """A cache hit: costs nothing and records what the call cost when it was made."""
    return AgentResult(
        agent=call.agent.name,
        model=hit.model,
        text=_text_of(cached_content(hit)) if hit.stop_reason == TOOL_USE else hit.text,
        usage=hit.usage,
        cost_usd=0.0,
        saved_usd=hit.cost_usd or 0.0,
        cached=True,
        latency_s=latency,
        stop_reason=hit.stop_reason,
        request_id=hit.request_id,
        cache_key=call.cache_key,
        offline=offline,
        attempts=0,
        run_id=call.run_id,
    )


def from_failure(call: Call, exc: BaseException, attempts: int, latency: float, *, offline: bool) -> AgentResult:
    """A call that failed on the wire (or was cancelled): the error explained, no answer."""
    message, error_type = describe_failure(exc, attempts)
    return AgentResult(
        agent=call.agent.name,
        model=call.model,
        cost_usd=None if isinstance(exc, asyncio.CancelledError) else 0.0,
        latency_s=latency,
        request_id=getattr(exc, "request_id", None),
        error=message,
        error_type=error_type,
        cache_key=call.cache_key,
        offline=offline,
        attempts=attempts,
        run_id=call.run_id,
    )


def refused(agent: str, exc: ClaudeForceError, *, model: str, offline: bool) -> AgentResult:
    """A run_many job refused before sending (unknown agent, bad options, budget...)."""
    return AgentResult(
        agent=agent,
        model=model,
        error=str(exc),
        error_type=type(exc).__name__,
        offline=offline,
        attempts=0,
    )


def cache_entry(call: Call, result: AgentResult, content: list[dict[str, Any]] | None = None) -> CachedResponse:
    """What the response cache keeps of a successful result (a tool_use step: its ``content``)."""
    return answer_entry(result, call.task, content)


def answer_entry(result: AgentResult, task: str, content: list[dict[str, Any]] | None = None) -> CachedResponse:
    """``cache_entry`` from the result and the task alone (the agent is the result's)."""
    tool_step = result.stop_reason == TOOL_USE and content is not None
    return CachedResponse(
        text=json.dumps(content, ensure_ascii=False) if tool_step else result.text,
        stop_reason=result.stop_reason or "",
        usage=result.usage,
        model=result.model,
        cost_usd=result.cost_usd,
        agent=result.agent,
        task_head=task_head(task),
        request_id=result.request_id,
    )


def describe_failure(exc: BaseException, attempts: int) -> tuple[str, str]:
    """One user-facing line and an error type for an API failure."""
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts > 1 else ""
    if isinstance(exc, asyncio.CancelledError):
        return "Cancelled before the answer was complete (its partial cost is not known).", "cancelled"
    if isinstance(exc, APICallError):
        return str(exc), exc.error_type or type(exc).__name__
    if isinstance(exc, anthropic.APIStatusError):
        error_type = exc.type or f"http_{exc.status_code}"
        detail = exc.api_message or exc.message
        fix = {
            401: "check ANTHROPIC_API_KEY.",
            403: "your key lacks permission for this model or feature.",
            404: "check the model id.",
            413: "the request is too large: shorten the task.",
            429: "rate limited: wait a minute or lower max_concurrent / requests_per_minute.",
            529: "the API is overloaded: try again shortly.",
        }.get(exc.status_code, "see the message above; retry later if it is a server error.")
        return f"API error {exc.status_code} ({error_type}){tries}: {detail} — {fix}", error_type
    if isinstance(exc, (asyncio.TimeoutError, anthropic.APITimeoutError)):
        return f"The request timed out{tries}: raise Settings.timeout_s or lower max_tokens.", "timeout"
    if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
        return (
            f"Could not reach the API{tries} ({type(exc).__name__}): check the network or ANTHROPIC_BASE_URL.",
            "connection_error",
        )
    return f"{type(exc).__name__}: {exc}", type(exc).__name__
