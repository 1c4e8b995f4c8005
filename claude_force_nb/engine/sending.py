"""Sending one call: the SDK client, pacing, the circuit breaker and retries.

Everything here runs on the runner's private loop, where the client lives (it is
loop-bound). The client is built with ``max_retries=0``: retry.py owns retries. Each
attempt passes the circuit breaker, then waits for its place in the run from the shared
Pacer (concurrency, pauses after 429/529, the API's rate-limit headers, the user's per-minute
caps), and sends the request as a stream (deltas go to ``on_text``) or as one JSON reply;
the response headers go back to the Pacer as soon as they arrive. replies.py reads what
came back. Each result carries what the call met on its way: its 429s and 529s and the
seconds it was held back (CallPacing).

Time limits of one attempt: ``timeout_s`` for a JSON reply, or for a stream's response
headers; then ``stream_idle_timeout_s`` between two stream events (pings are no progress)
and ``stream_deadline_s`` for the whole attempt (by default ``timeout_s`` plus max_tokens
at 10 tokens/s, so a healthy long answer is never cut off and paid for twice).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message, RawMessageStreamEvent

from ..core.errors import (
    APICallError,
    IncompleteResponseError,
    InvalidAPIKeyError,
    MissingAPIKeyError,
    StalledStreamError,
)
from ..core.pricing import PriceTable
from ..core.results import AgentResult
from ..core.settings import Settings
from . import outcomes, replies
from .offline import offline_base_url
from .pacing import CallPacing, Pacer, Slot
from .replies import Reply
from .requests import Call
from .retry import CircuitBreaker, with_retries

__all__ = ["Sender", "TextCallback", "usable_api_key"]

log = logging.getLogger(__name__)

TextCallback = Callable[[str], Any]
MESSAGES = "/v1/messages"


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
        return (await self.send_reply(call, on_text, started))[0]

    async def send_reply(
        self, call: Call, on_text: TextCallback | None, started: float
    ) -> tuple[AgentResult, list[dict[str, Any]]]:
        """``send``, with the reply's content blocks (none for a failure): what a tool loop continues from."""
        attempts = 0
        met = CallPacing()

        async def attempt() -> tuple[Reply, str | None]:
            nonlocal attempts
            attempts += 1
            slot = self._pacer.slot(call.estimated_input_tokens, call.max_tokens)
            try:
                async with slot:
                    return await self._send_once(call, on_text, slot)
            finally:
                met.add(slot)

        def before_sleep(state: Any) -> None:
            met.waited_s += state.next_action.sleep if state.next_action else 0.0
            _log_retry(state)

        s = self._settings()
        content: list[dict[str, Any]] = []
        try:
            message, request_id = await with_retries(
                attempt, breaker=self._breaker, attempts=s.max_attempts,
                base_wait_s=s.retry_base_wait_s, max_wait_s=s.retry_max_wait_s, before_sleep=before_sleep,
            )
        except asyncio.CancelledError:
            raise
        except (TimeoutError, anthropic.AnthropicError, httpx2.TransportError, APICallError) as exc:
            elapsed = time.perf_counter() - started
            result = outcomes.from_failure(call, exc, attempts, elapsed, offline=s.offline)
        else:
            elapsed = time.perf_counter() - started
            result = outcomes.from_message(
                call, message, request_id, attempts, elapsed, prices=self._prices, offline=s.offline
            )
            content = outcomes.content_blocks(message)
        paced = dataclasses.replace(result, rate_limited=met.rate_limited, overloaded=met.overloaded,
                                    waited_s=met.waited_s)
        return paced, content

    async def _send_once(self, call: Call, on_text: TextCallback | None, slot: Slot) -> tuple[Reply, str | None]:
        """One attempt: the request as a stream (deltas to on_text) or a single JSON reply.

        The body goes out exactly as built (``Call.body``, what the cache key is derived from)
        through the client's ``post``: the SDK adds the key, headers and status errors, and
        we skip its per-call parameter transform and its pydantic Message, a third of the
        client's CPU per call (measured).
        """
        s = self._settings()
        client = self._client_on_loop()
        if not call.options.stream:
            async with asyncio.timeout(s.timeout_s):
                response = await client.post(MESSAGES, body=call.body, cast_to=httpx2.Response)
                slot.observe(response.headers)
                return replies.read_reply(response), response.headers.get("request-id")
        limit = replies.stream_deadline_s(s.timeout_s, call.max_tokens, s.stream_deadline_s)
        stream = None
        try:
            async with asyncio.timeout(s.timeout_s) as deadline:
                ends_at = asyncio.get_running_loop().time() + limit
                stream = await client.post(MESSAGES, body={**call.body, "stream": True}, cast_to=Message, stream=True,
                                           stream_cls=anthropic.AsyncStream[RawMessageStreamEvent])
                try:
                    slot.observe(stream.response.headers)
                    deadline.reschedule(ends_at)
                    message = await replies.read_stream(stream, on_text, idle_s=s.stream_idle_timeout_s)
                finally:
                    await stream.close()
        except TimeoutError:
            if stream is None:
                raise  # no answer within timeout_s
            raise StalledStreamError(
                f"The response stream was still going after {limit:g}s, the most one attempt may take: "
                f"lower max_tokens or raise Settings.stream_deadline_s.",
                error_type="stalled", request_id=_request_id(stream),
            ) from None
        if message.get("stop_reason") is None:
            raise IncompleteResponseError(
                "The response stream ended before the answer was complete; it was not cached.",
                error_type="incomplete_stream",
                request_id=_request_id(stream),
            )
        return message, _request_id(stream)

    def _client_on_loop(self) -> anthropic.AsyncAnthropic:
        """The SDK client, created on (and bound to) the runner loop; max_retries=0."""
        if self._client is None:
            s = self._settings()
            base_url: str | None
            if s.offline:
                api_key, base_url = "offline", offline_base_url()
            else:
                api_key, base_url = usable_api_key(s.api_key), s.base_url
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                timeout=httpx2.Timeout(s.timeout_s, connect=s.connect_timeout_s),
            )
        return self._client


def _request_id(stream: Any) -> str | None:
    return stream.response.headers.get("request-id")


def usable_api_key(raw: str | None) -> str:
    """The key as it is sent: surrounding spaces and line breaks dropped, the rest checked.

    A key is one word of printable ASCII. Anything else inside it (a space, a line break,
    a control or non-ASCII character from a copy and paste) is refused before any request:
    the HTTP client would fail with a misleading connection error, and its error message
    (logged at DEBUG by the SDK) would hold the key.
    """
    key = (raw or "").strip()
    if not key:
        raise MissingAPIKeyError()
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":
            raise InvalidAPIKeyError(
                f"The API key (ANTHROPIC_API_KEY or Settings.api_key) has {_describe_char(char)} at character "
                f"{position} of {len(key)}: an API key is one word of printable ASCII; copy it again from the Console."
            )
    return key


def _describe_char(char: str) -> str:
    named = {"\n": "a line break", "\r": "a line break", "\t": "a tab", " ": "a space"}
    if char in named:
        return named[char]
    return "a control character" if char.isascii() else f"a non-ASCII character (U+{ord(char):04X})"


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
