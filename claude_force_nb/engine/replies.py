"""Reading what came back for one attempt: a JSON reply or an event stream, checked.

A reply is the API's Message as JSON (a dict): read from a JSON body, or built from the
stream's events by :class:`MessageBuilder`. The SDK's own MessageStream accumulates the
same message into pydantic models and costs about a millisecond of CPU per answer (a
measured 1.0 ms of 2.7 ms a call at concurrency 50), which caps how many streamed answers
a kernel keeps up with; the builder does the same work on dicts.

The SDK trusts the server. A 200 whose body is not JSON, an HTML page, an event stream that
is not the API's (events out of order, undecodable data) and a stream of keep-alive pings
that never ends are each turned here into an APICallError that the retry policy and
outcomes.py know:

- MalformedResponseError (``malformed_response``): the body is not the API's format. It is
  not retried: a 200 may already have been billed, and whatever answers like this (a proxy,
  a captive portal, a wrong ANTHROPIC_BASE_URL) answers the same way next time.
- StalledStreamError (``stalled``): no stream event for ``Settings.stream_idle_timeout_s``, or
  no bytes at all for the client's read timeout. Pings are not progress: the SDK drops them
  before any event reaches us. It is retried like a timeout: a fresh attempt usually goes through.

Only the reading is guarded. A callback (``on_text``) that raises keeps its own
traceback, because that is a bug to fix, not something the wire did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

import anthropic
import httpx2

from ..core.errors import MalformedResponseError, StalledStreamError

__all__ = ["MIN_STREAM_TOKENS_PER_S", "MessageBuilder", "Reply", "read_reply", "read_stream", "stream_deadline_s"]

log = logging.getLogger(__name__)

Reply = dict[str, Any]  # the API's Message, as JSON
MIN_STREAM_TOKENS_PER_S = 10.0  # far below any model's pace: the default deadline never cuts a healthy answer
EVENT_STREAM = "text/event-stream"
SNIPPET_CHARS = 40
CLOCK_RESOLUTION_S = time.get_clock_info("monotonic").resolution  # what asyncio runs timers early by
TOOL_INPUT_BLOCKS = ("tool_use", "server_tool_use")  # blocks whose input arrives as pieces of JSON


def stream_deadline_s(timeout_s: float, max_tokens: int, configured: float | None) -> float:
    """The most one streamed attempt may take: ``configured``, else the wait for the first
    byte (``timeout_s``) plus ``max_tokens`` written at MIN_STREAM_TOKENS_PER_S."""
    if configured is not None:
        return configured
    return timeout_s + max_tokens / MIN_STREAM_TOKENS_PER_S


def read_reply(response: httpx2.Response) -> Reply:
    """The Message in a JSON reply; MalformedResponseError if there is none."""
    request_id = response.headers.get("request-id")
    content_type = response.headers.get("content-type", "")
    try:
        reply = json.loads(response.content)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _malformed(f"a 200 whose body is not JSON: {_snippet(response.content)}",
                         request_id, content_type) from exc
    if not isinstance(reply, dict) or reply.get("type") != "message" or not isinstance(reply.get("content"), list):
        raise _malformed(f"a 200 whose body is not a message: {_snippet(response.content)}", request_id, content_type)
    return reply


async def read_stream(stream: Any, on_text: Callable[[str], Any] | None, *, idle_s: float) -> Reply:
    """The final Message of an open SDK event stream, passing each text delta to ``on_text``.

    Raises StalledStreamError when ``idle_s`` passes without an event, and
    MalformedResponseError when the body is not the API's event stream.
    """
    request_id = stream.response.headers.get("request-id")
    content_type = stream.response.headers.get("content-type", "")
    if not content_type.startswith(EVENT_STREAM):
        raise _malformed(f"a stream answered with {content_type or 'no content type'}, not {EVENT_STREAM}",
                         request_id, content_type)
    builder = MessageBuilder()
    events = aiter(stream)
    try:
        async with asyncio.timeout(None) as idle:
            watch = _IdleWatch(idle, idle_s)
            try:
                while True:
                    try:
                        event = await anext(events, None)
                        text = None if event is None else builder.add(event)
                    except Exception as exc:  # not a plain `with`: a stream has dozens of events a second
                        _raise_read_failure(exc, request_id, idle_s, "an event stream that could not be read")
                    if event is None:
                        break
                    watch.progress()
                    if text and on_text is not None:
                        on_text(text)
            finally:
                watch.close()
    except TimeoutError:
        if not watch.expired:
            raise  # not our idle timer (e.g. from on_text): keep its traceback
        raise _stalled(f"no progress for {idle_s:g}s (keep-alive pings only)", request_id) from None
    try:
        message = builder.finish()
    except ValueError as exc:
        _raise_read_failure(exc, request_id, idle_s, "an event stream that could not be read")
    if message is None:
        raise _malformed("an event stream with no message in it", request_id, EVENT_STREAM)
    return message


class MessageBuilder:
    """The Message an event stream describes, built event by event as the SDK's own
    accumulator builds it: usage counts on ``message_delta`` are totals (they overwrite),
    and a tool's input arrives as pieces of JSON. Pieces are joined once, when their block
    stops, so a long answer is not copied at every delta."""

    def __init__(self) -> None:
        self.message: Reply | None = None
        self._pieces: dict[tuple[int, str], list[str]] = {}  # (block index, field) -> pieces so far

    def add(self, event: Any) -> str | None:
        """Take one event; returns the text it adds to the answer, if any. Raises ValueError
        for an event that does not fit (before ``message_start``, for a block never started,
        a tool input that is not JSON)."""
        kind = event.type
        if kind == "message_start":
            self.message = event.message.to_dict()
            return None
        if self.message is None:
            raise ValueError(f"{kind} before message_start")
        content = self.message["content"]
        if kind == "content_block_start":
            content.append(event.content_block.to_dict())
        elif kind in ("content_block_delta", "content_block_stop") and not 0 <= event.index < len(content):
            raise ValueError(f"{kind} for content block {event.index}, which never started")
        elif kind == "content_block_delta":
            return self._delta(content[event.index], event.index, event.delta)
        elif kind == "content_block_stop":
            self._join(event.index)
        elif kind == "message_delta":
            delta = event.delta.to_dict()
            if delta.get("container") is None:  # as the SDK: a container, once given, stays
                delta.pop("container", None)
            self.message.update(delta)
            usage = self.message.setdefault("usage", {})
            usage.update({k: v for k, v in event.usage.to_dict().items() if v is not None})
        return None

    def finish(self) -> Reply | None:
        """The message once the stream has ended (None if it never started). A block that
        never stopped keeps its text so far; its tool input stays as it started, as the
        pieces of a cut-off stream are no JSON (the message has no stop_reason either, so
        the caller treats it as incomplete)."""
        for index, field in list(self._pieces):
            if field == "input":
                del self._pieces[(index, field)]
            else:
                self._join(index)
        return self.message

    def _delta(self, block: dict[str, Any], index: int, delta: Any) -> str | None:
        """Apply a delta to its block, as the SDK does: only to a block of the kind it belongs to."""
        kind, block_kind = delta.type, block.get("type")
        if kind == "text_delta" and block_kind == "text":
            self._pieces.setdefault((index, "text"), []).append(delta.text)
            return str(delta.text)
        if kind == "input_json_delta" and block_kind in TOOL_INPUT_BLOCKS:
            self._pieces.setdefault((index, "input"), []).append(delta.partial_json)
        elif kind == "thinking_delta" and block_kind == "thinking":
            self._pieces.setdefault((index, "thinking"), []).append(delta.thinking)
        elif kind == "signature_delta" and block_kind == "thinking":
            block["signature"] = delta.signature
        elif kind == "citations_delta" and block_kind == "text":
            block["citations"] = [*(block.get("citations") or []), delta.citation.to_dict()]
        return None

    def _join(self, index: int) -> None:
        assert self.message is not None
        block = self.message["content"][index]
        for field in ("text", "thinking", "input"):
            pieces = self._pieces.pop((index, field), None)
            if pieces is None:
                continue
            joined = "".join(pieces)
            if field != "input":
                block[field] = block.get(field, "") + joined
            elif joined:  # no pieces of JSON: the input the block started with stands
                block["input"] = json.loads(joined)


class _IdleWatch:
    """Expires ``timeout`` once ``idle_s`` pass without ``progress()``.

    A stream brings dozens of events a second; a fresh timer for each (asyncio.timeout per
    event) costs the loop a heap push and a cancelled handle per event. This timer is armed
    once and, when it fires, re-armed for the last progress plus ``idle_s`` if there was any.
    """

    def __init__(self, timeout: asyncio.Timeout, idle_s: float) -> None:
        self._timeout, self._idle_s = timeout, idle_s
        self._loop = asyncio.get_running_loop()
        self.expired = False
        self.progress()
        self._timer = self._loop.call_at(self._last + idle_s, self._check)

    def progress(self) -> None:
        self._last = self._loop.time()

    def close(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        due = self._last + self._idle_s
        if self._loop.time() + CLOCK_RESOLUTION_S >= due:  # the loop runs timers this early
            self.expired = True
            self._timeout.reschedule(self._loop.time())
        else:
            self._timer = self._loop.call_at(due, self._check)


def _raise_read_failure(exc: Exception, request_id: str | None, idle_s: float, what: str) -> NoReturn:
    """Raise what a failure of the SDK's reading of a stream means (``what`` names the read):
    the wire's failures become our error types; the API's errors and connection failures
    go on as they are (retry.py knows them)."""
    if isinstance(exc, TimeoutError):  # our idle timer: pings may have come, events did not
        raise _stalled(f"no progress for {idle_s:g}s (keep-alive pings only)", request_id) from None
    if isinstance(exc, httpx2.TimeoutException):  # the client's read timeout: not even a ping
        raise _stalled("nothing at all arrived for Settings.timeout_s", request_id) from None
    if isinstance(exc, (anthropic.APIError, httpx2.TransportError)):
        raise exc
    log.debug("unreadable event stream", exc_info=exc)  # an event the SDK or the builder could not read
    detail = f" ({type(exc).__name__}: {exc})" if str(exc) else ""
    raise _malformed(what + detail, request_id, EVENT_STREAM) from exc


def _stalled(what: str, request_id: str | None) -> StalledStreamError:
    return StalledStreamError(
        f"The response stream stalled: {what}. Retry later, or raise Settings.stream_idle_timeout_s "
        f"if answers need long pauses.",
        error_type="stalled", request_id=request_id,
    )


def _malformed(what: str, request_id: str | None, content_type: str) -> MalformedResponseError:
    if content_type.startswith("text/html"):
        message = ("The server answered with an HTML page, not the Anthropic API (a proxy, a captive portal "
                   "or a wrong ANTHROPIC_BASE_URL?); not retried. Check ANTHROPIC_BASE_URL and your network.")
    else:
        message = (f"The API's reply could not be read: {what}. Not retried, as it may have been billed; "
                   f"if it happens again, check ANTHROPIC_BASE_URL and any proxy in between.")
    return MalformedResponseError(message, error_type="malformed_response", request_id=request_id)


def _snippet(body: bytes) -> str:
    text = body[:SNIPPET_CHARS].decode("utf-8", "replace")
    return repr(text) + ("…" if len(body) > SNIPPET_CHARS else "")
