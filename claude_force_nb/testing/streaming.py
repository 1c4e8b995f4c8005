"""Server-sent events: a finished Message replayed as the API's exact streaming event sequence.

``message_start`` (usage with ``output_tokens: 1``), ``content_block_start``, ``ping``, text deltas
of three words each, ``content_block_stop``, ``message_delta`` (stop reason and cumulative usage),
``message_stop``.  Events are written as HTTP/1.1 chunks and batched into one socket write until the
next pause (``chunk_delay_s``), so a fast stream costs one write.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

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
        self.raw(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode("utf-8"))

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


def _text_delta(chunk: str) -> dict:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk}}


def stream_message(sse: SseWriter, message: dict, fault: Fault | None, pause: Callable[[], None] | None) -> None:
    """Write ``message`` as a stream; ``pause`` (if any) runs between deltas after a flush.

    A fault with ``stream_error`` or ``truncate`` stops after half of the deltas: the first sends
    ``event: error`` then ends the body, the second just ends it (no ``message_delta``).
    """
    sse.event("message_start", _start_event(message))
    text = message["content"][0]["text"] if message["content"] else None
    chunks = stream_chunks(text) if text else []
    broken = bool(fault and (fault.stream_error or fault.truncate))
    sent = chunks[: max(1, len(chunks) // 2)] if broken else chunks
    if text is not None:
        sse.event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
    sse.event("ping", {"type": "ping"})
    for i, chunk in enumerate(sent):
        if i and pause is not None:
            sse.flush()
            pause()
        sse.event("content_block_delta", _text_delta(chunk))
    if fault and fault.stream_error:
        error = {"type": fault.stream_error, "message": fault.message or error_message(fault.stream_error)}
        sse.event("error", {"type": "error", "error": error})
    elif not broken:
        if pause is not None and chunks:
            sse.flush()
            pause()
        if text is not None:
            sse.event("content_block_stop", {"type": "content_block_stop", "index": 0})
        sse.event("message_delta", _delta_event(message))
        sse.event("message_stop", {"type": "message_stop"})
    sse.end()
