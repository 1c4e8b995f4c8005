"""What a test can script (``Fault``) and what the fake saw (``RecordedRequest``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Fault", "RecordedRequest"]


@dataclass
class Fault:
    """One scripted misbehaviour for one ``POST /v1/messages`` request.

    All fields are optional; a ``Fault()`` with nothing set is a normal answer (handy as a "pass"
    slot in a script).  In order of precedence: ``reset``, ``body``, ``status``, then the answer
    with ``stall_s`` / ``stream_error`` / ``truncate`` / overrides.  A fault is applied before
    authentication, validation, overload and rate limits::

        server.script(Fault(status=529, retry_after_ms=10),          # an overloaded_error
                      Fault(body="{oops"),                            # a 200 that is not JSON
                      Fault(status=502, body="<html>Bad gateway</html>", content_type="text/html"),
                      Fault(stall_s=30),                              # pings only, then nothing
                      Fault(tool_calls=[("describe", {"name": "sales"})]))  # the model calls a tool
    """

    status: int | None = None
    """HTTP error status to answer with (e.g. 429, 500, 529, 400, 401)."""
    error_type: str | None = None
    """``error.type`` in the body; derived from ``status`` when omitted."""
    message: str | None = None
    """``error.message`` (or the mid-stream error message)."""
    retry_after_ms: float | None = None
    """Value of the ``retry-after-ms`` response header."""
    retry_after: float | None = None
    """Value of the ``retry-after`` response header (seconds)."""
    should_retry: bool | None = None
    """Value of the ``x-should-retry`` response header (``true`` / ``false``)."""
    latency_s: float | None = None
    """Delay before the response headers; overrides the server-wide ``latency_s`` for this request."""
    stream_error: str | None = None
    """Streaming only: after some text deltas send ``event: error`` with this error type and end."""
    truncate: bool = False
    """Streaming: stop after some deltas (no ``message_delta``/``message_stop``) and end the chunked
    body cleanly.  Non-streaming: send half of the JSON body, then close the connection."""
    reset: bool = False
    """Close the connection abruptly (``SO_LINGER 0`` -> TCP RST) without any response."""
    usage: dict | None = None
    """Merged (``dict.update``) over the computed usage."""
    text: str | None = None
    """Override the answer text (stop sequences and ``max_tokens`` still apply)."""
    stop_reason: str | None = None
    """Override the final ``stop_reason``."""
    tool_calls: list | None = None
    """Answer with these ``tool_use`` blocks, in order, whatever tools the request offers:
    ``(name, input)`` pairs or ``{"name": ..., "input": ...}`` dicts, e.g.
    ``[("describe", {"name": "sales"}), ("list_variables", {})]`` (several calls in one turn).
    With ``text`` set too, the text block comes first.  ``[]`` answers with text even when the
    request forces a tool."""
    body: str | bytes | None = None
    """Send exactly this body instead of the answer, with status ``status`` (default 200): e.g.
    ``"{oops"`` (a 200 that is not JSON) or an HTML page (with ``content_type="text/html"``).  For a
    streaming request whose content type is an event stream, it is the chunked stream body, so
    ``"event: message_start\\ndata: {oops\\n\\n"`` is a stream whose event is not JSON."""
    content_type: str | None = None
    """``Content-Type`` for ``body``; default: what the request expects (``application/json``, or
    ``text/event-stream; charset=utf-8`` for a stream)."""
    stall_s: float | None = None
    """Answer 200 and then make no progress for ``stall_s`` seconds of the server clock: a stream
    sends only ``ping`` events (one at once, then one every ``server.ping_interval_s``) and then ends
    with no message events; a JSON response sends its headers (with the full ``Content-Length``)
    and closes the connection without the body.  Ends early when the client goes away or on
    ``server.release_stalls()``."""


@dataclass
class RecordedRequest:
    """A request as the fake received it (``time``: the server's clock, epoch seconds)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    time: float = field(default_factory=time.time)
