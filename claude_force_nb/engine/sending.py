"""Sending one call: the SDK client, pacing, the circuit breaker and retries.

Everything here runs on the runner's private loop, where the client lives (it is
loop-bound). The client is built with ``max_retries=0``: retry.py owns retries. Each
attempt passes the circuit breaker, then waits for its place in the run from the shared
Pacer (concurrency, pauses after 429/529, the API's rate-limit headers, the user's per-minute
caps), and sends the request as a stream (deltas go to ``on_text``) or as one JSON reply;
the response headers go back to the Pacer as soon as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2

from ..core.errors import APICallError, IncompleteResponseError, MissingAPIKeyError
from ..core.pricing import PriceTable
from ..core.results import AgentResult
from ..core.settings import Settings
from . import outcomes
from .offline import offline_base_url
from .pacing import Pacer, Slot
from .requests import Call
from .retry import CircuitBreaker, with_retries

__all__ = ["Sender", "TextCallback"]

log = logging.getLogger(__name__)

TextCallback = Callable[[str], Any]


class Sender:
    """Sends prepared calls for one Orchestrator and turns what came back into results.

    ``settings`` is called for the current Settings, so ``Orchestrator.configure``
    reaches calls sent afterwards.
    """

    def __init__(
        self, settings: Callable[[], Settings], *, breaker: CircuitBreaker, pacer: Pacer, prices: PriceTable
    ) -> None:
        self._settings = settings
        self._breaker = breaker
        self._pacer = pacer
        self._prices = prices
        self._client: anthropic.AsyncAnthropic | None = None

    async def aclose(self) -> None:
        """Close the client (an open client left on the loop can stall later requests)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _after_fork(self) -> None:
        """In a forked child: the client's connections and loop are the parent's; drop it unclosed."""
        self._client = None

    async def send(self, call: Call, on_text: TextCallback | None, started: float) -> AgentResult:
        """Send ``call`` with retries; API failures come back as results with ``error`` set."""
        attempts = 0

        async def attempt() -> tuple[Any, str | None]:
            nonlocal attempts
            attempts += 1
            async with self._pacer.slot(call.estimated_input_tokens, call.max_tokens) as slot:
                async with asyncio.timeout(self._settings().timeout_s) as deadline:
                    return await self._send_once(call, on_text, deadline, slot)

        s = self._settings()
        try:
            message, request_id = await with_retries(
                attempt, breaker=self._breaker, attempts=s.max_attempts, base_wait_s=s.retry_base_wait_s, max_wait_s=s.retry_max_wait_s,
                before_sleep=_log_retry,
            )
        except asyncio.CancelledError:
            raise
        except (anthropic.AnthropicError, httpx2.TransportError, asyncio.TimeoutError, APICallError) as exc:
            return outcomes.from_failure(call, exc, attempts, time.perf_counter() - started, offline=s.offline)
        return outcomes.from_message(
            call, message, request_id, attempts, time.perf_counter() - started, prices=self._prices, offline=s.offline
        )

    async def _send_once(
        self, call: Call, on_text: TextCallback | None, deadline: asyncio.Timeout, slot: Slot
    ) -> tuple[Any, str | None]:
        """One attempt: the request as a stream (deltas to on_text) or a single JSON reply.

        ``timeout_s`` bounds a JSON reply, and a stream until its first event; after that a
        healthy stream may run as long as it needs (the SDK's read timeout still catches a
        stalled one), so long answers are never cut off and paid for twice.
        """
        client = self._client_on_loop()
        params = call.sdk_params()
        if not call.options.stream:
            raw = await client.messages.with_raw_response.create(**params)
            slot.observe(raw.headers)
            message = await raw.parse()
            return message, raw.request_id
        async with client.messages.stream(**params) as stream:
            slot.observe(stream.response.headers)
            deadline.reschedule(None)
            async for text in stream.text_stream:
                if on_text is not None:
                    on_text(text)
            message = await stream.get_final_message()
        if message.stop_reason is None:
            raise IncompleteResponseError(
                "The response stream ended before the answer was complete; it was not cached.",
                error_type="incomplete_stream",
                request_id=stream.request_id,
            )
        return message, stream.request_id

    def _client_on_loop(self) -> anthropic.AsyncAnthropic:
        """The SDK client, created on (and bound to) the runner loop; max_retries=0."""
        if self._client is None:
            s = self._settings()
            if s.offline:
                api_key, base_url = "offline", offline_base_url()
            else:
                if not s.api_key:
                    raise MissingAPIKeyError()
                api_key, base_url = s.api_key, s.base_url
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                timeout=httpx2.Timeout(s.timeout_s, connect=s.connect_timeout_s),
            )
        return self._client



def _log_retry(state: Any) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "retrying after %s (attempt %d, waiting %.2fs)",
        type(exc).__name__,
        state.attempt_number,
        wait,
        extra={"error_type": type(exc).__name__, "attempt": state.attempt_number},
    )
