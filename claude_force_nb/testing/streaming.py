"""Server-sent events: a finished Message replayed as the API's exact streaming event sequence.

``message_start`` (usage with ``output_tokens: 1``), then for each content block
``content_block_start``, its deltas and ``content_block_stop`` (a ``ping`` follows the first
``content_block_start``), then ``message_delta`` (stop reason and cumulative usage) and
``message_stop``.  A text block streams ``text_delta`` events of three words each; a ``tool_use``
block starts with ``"input": {}`` and streams its input as ``input_json_delta`` fragments of
``partial_json`` (16 characters each) that join into the input's JSON.  Events are written as
HTTP/1.1 chunks and batched into one socket write until the next pause (``chunk_delay_s``), so a
fast stream costs one write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .errors import error_message
from .faults import Fault

__all__ = ["SSE_CONTENT_TYPE", "PingTicker", "SseWriter", "stream_chunks", "stream_message"]

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_DELTA_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class SseWriter:
    """Buffers SSE events as chunked-encoding frames and writes them at each ``flush``."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: list[bytes] = []

    def event(self, name: str, data: dict) -> None:
        """Queue ``event: NAME`` with ``data`` as JSON (the ``type`` field is the caller's)."""
        self.raw(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def raw(self, payload: bytes) -> None:
        """Queue bytes as one chunk, whatever they contain."""
        if payload:
            self._pending.append(b"%x\r\n%s\r\n" % (len(payload), payload))

    def flush(self) -> None:
        """Write what is queued (one socket write)."""
        if self._pending:
            self._write(b"".join(self._pending))
            self._pending.clear()

    def end(self) -> None:
        """Write the last chunk: the body ends cleanly."""
        self._pending.append(b"0\r\n\r\n")
        self.flush()


class PingTicker:
    """For a stream held open without progress: ``ping`` events every ``interval_s`` of ``clock``.

    Pings are due at the start and every ``interval_s`` after; calling the ticker sends (and
    flushes) one ping when one is due.  ``finish(end)`` sends a ping still due before ``end``, so
    a clock that jumps past the end of a stall gives the same bytes however the polls fell.
    """

    def __init__(self, sse: SseWriter, clock: Callable[[], float], interval_s: float) -> None:
        self._sse = sse
        self._clock = clock
        self._interval_s = interval_s
        self._due = clock()

    def __call__(self) -> None:
        now = self._clock()
        if now >= self._due:
            self._ping(now)

    def finish(self, end: float) -> None:
        """The stall ended at ``end``: send the ping due before then, if it was not sent yet."""
        if self._due < end:
            self._ping(end)

    def _ping(self, now: float) -> None:
        self._sse.event("ping", {"type": "ping"})
        self._sse.flush()
        self._due = now + self._interval_s


def stream_chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """``text`` cut into deltas of ``words_per_chunk`` words, keeping every space."""
    pieces = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    chunks = ["".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)]
    if chunks:
        chunks[0] = lead + chunks[0]
    elif text:
        chunks = [text]
    return chunks


def _start_event(message: dict) -> dict:
    usage = dict(message["usage"], output_tokens=1)
    start = dict(message, content=[], stop_reason=None, stop_sequence=None, stop_details=None, usage=usage)
    return {"type": "message_start", "message": start}


def _delta_event(message: dict) -> dict:
    delta: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    if message.get("stop_details") is not None:
        delta["stop_details"] = message["stop_details"]
    usage = {k: message["usage"][k] for k in _DELTA_USAGE_KEYS if k in message["usage"]}
    return {"type": "message_delta", "delta": delta, "usage": usage}


_JSON_CHUNK = 16


def _block_events(index: int, block: dict) -> list[tuple[bool, str, dict]]:
    """``(is_delta, event name, data)`` for one content block, from its start to its stop."""
    if block["type"] == "tool_use":
        start = dict(block, input={})
        arguments = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": arguments[i:i + _JSON_CHUNK]}
                  for i in range(0, len(arguments), _JSON_CHUNK)]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": chunk} for chunk in stream_chunks(block["text"])]
    events = [(False, "content_block_start", {"type": "content_block_start", "index": index, "content_block": start})]
    events += [(True, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
               for delta in deltas]
    events.append((False, "content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def stream_message(sse: SseWriter, message: dict, fault: Fault | None, pause: Callable[[], None] | None) -> None:
    """Write ``message`` as a stream; ``pause`` (if any) runs between deltas after a flush.

    A fault with ``stream_error`` or ``truncate`` stops after half of the deltas (at least one):
    the first sends ``event: error`` then ends the body, the second just ends it (no
    ``message_delta``).
    """
    sse.event("message_start", _start_event(message))
    events = [event for index, block in enumerate(message["content"]) for event in _block_events(index, block)]
    events.insert(1 if events else 0, (False, "ping", {"type": "ping"}))
    deltas = sum(1 for is_delta, _, _ in events if is_delta)
    broken = bool(fault and (fault.stream_error or fault.truncate))
    keep = max(1, deltas // 2) if broken else deltas
    sent = 0
    for is_delta, name, data in events:
        if is_delta:
            if sent == keep:
                break
            if sent and pause is not None:
                sse.flush()
                pause()
            sent += 1
        elif broken and sent == keep and name == "content_block_stop":
            break
        elif name == "content_block_stop" and pause is not None and sent == deltas and deltas:
            sse.flush()
            pause()
        sse.event(name, data)
    if fault and fault.stream_error:
        error = {"type": fault.stream_error, "message": fault.message or error_message(fault.stream_error)}
        sse.event("error", {"type": "error", "error": error})
    elif not broken:
        sse.event("message_delta", _delta_event(message))
        sse.event("message_stop", {"type": "message_stop"})
    sse.end()
