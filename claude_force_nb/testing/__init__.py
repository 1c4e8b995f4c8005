"""An offline, deterministic fake of the Anthropic Messages API for tests and benchmarks.

``FakeAnthropicServer`` is a real HTTP/1.1 server (stdlib only) bound to ``127.0.0.1`` on an
ephemeral port and served from a daemon thread.  Point the real ``anthropic`` SDK at it::

    from claude_force_nb.testing import FakeAnthropicServer, Fault

    with FakeAnthropicServer(latency_s=0.05) as server:
        client = anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0)
        msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                     messages=[{"role": "user", "content": "Hello"}])
        server.fail_next(529, retry_after_ms=10)      # the next POST /v1/messages gets a 529

Routes
------
* ``POST /v1/messages`` - JSON, or SSE when ``"stream": true`` (chunked transfer encoding, keep-alive).
* ``POST /v1/messages/count_tokens`` - ``{"input_tokens": N}``.
* ``POST /v1/messages/batches``, ``GET /v1/messages/batches[?limit=&after_id=&before_id=]``,
  ``GET /v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``,
  ``DELETE /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL).
  ``results_url`` is the relative path ``/v1/messages/batches/{id}/results``.  A batch ends
  ``batch_delay_s`` after creation (0 = it is created already ended).
* Anything else: 404 ``not_found_error``.

Every request needs ``Authorization: Bearer <anything>`` or ``x-api-key: <anything>`` (else 401
``authentication_error``).  Every response carries a ``request-id: req_<hex>`` header; error bodies are
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.

The answer
----------
The answer text is a pure function of ``model``, ``system`` and ``messages``: a short Markdown
paragraph that starts with ``**Offline answer** from `MODEL`.``, quotes the start of the last user
message and adds 2-4 canned sentences.  Then ``stop_sequences`` are honoured (``stop_reason
"stop_sequence"``) and the text is cut to ``max_tokens`` words (``stop_reason "max_tokens"``).

Token accounting (a deliberately simple, documented approximation):

* ``count(request) = max(1, ceil(chars / 4))`` where ``chars`` is the number of characters of every
  text in ``system`` (string or text blocks) and in ``messages`` (string content, ``text`` blocks,
  text inside ``tool_result`` blocks, and ``json.dumps(input)`` of ``tool_use`` blocks).
* ``output_tokens`` = number of whitespace-separated words of the answer text.
* Prompt cache: if a ``system`` text block carries ``cache_control`` (``{"type": "ephemeral"}``,
  optionally ``"ttl": "1h"``), the last such block is a breakpoint.  With
  ``P = ceil(chars of the system blocks up to and including it / 4) >= 1024`` the first request with
  that exact prefix (model + texts) reports ``cache_creation_input_tokens = P`` (split into
  ``cache_creation.ephemeral_5m/1h_input_tokens`` by ttl), later ones ``cache_read_input_tokens = P``.
  ``input_tokens = max(1, count(request) - P)`` then.  The seen-prefix set lives per server.

Task directives
---------------
Tests that run in another process (a notebook kernel, a subprocess) can steer the fake through the
text of the *last user message*:

* ``[[fake:sleep=S]]`` - wait ``S`` seconds (disconnect-aware) before sending the response headers.
* ``[[fake:refuse]]`` - a short refusal text with ``stop_reason "refusal"`` (and ``stop_details``).
* ``[[fake:empty]]`` - ``content: []`` and ``stop_reason "end_turn"`` (a stream sends no content block).
* ``[[fake:error=STATUS]]`` - answer with that HTTP error status (e.g. ``[[fake:error=529]]``).

Faults
------
``server.script(Fault(...), ...)`` queues faults; each ``POST /v1/messages`` consumes one (FIFO),
whether or not it would otherwise succeed.  A queued fault is applied before authentication and
validation.  See :class:`Fault` for what can be simulated (HTTP errors with retry headers, latency,
mid-stream ``event: error``, truncated bodies/streams, connection resets, usage/text/stop_reason
overrides).

Metrics (``request_count``, ``requests``, ``in_flight``, ``max_in_flight``, ``disconnects``) are
thread-safe.  ``requests`` records every request to every route; ``request_count``, ``in_flight`` and
``max_in_flight`` only count ``POST /v1/messages``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import select
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["KERNEL_NAME", "FakeAnthropicServer", "Fault", "RecordedRequest", "write_kernelspec"]


# --------------------------------------------------------------------------------------------------
# public dataclasses
# --------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One scripted misbehaviour for one ``POST /v1/messages`` request.

    All fields are optional; a ``Fault()`` with nothing set is a normal answer (handy as a "pass"
    slot in a script).
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


@dataclass
class RecordedRequest:
    """A request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    time: float = field(default_factory=time.time)


# --------------------------------------------------------------------------------------------------
# pure helpers: error types, token counting, the deterministic answer
# --------------------------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "timeout_error": "Request timed out",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

_CACHE_MIN_TOKENS = 1024
_DIRECTIVE_RE = re.compile(r"\[\[fake:(sleep|refuse|empty|error)(?:=([^\]]*))?\]\]")
_WORD_RE = re.compile(r"\S+")


def _default_error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _error_body(error_type: str, message: str, request_id: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def _new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _content_texts(content: Any) -> list[str]:
    """Texts of a message ``content`` (string or block list), recursively for tool results."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                out.append(block)
            elif isinstance(block, dict):
                btype = block.get("type")
                if btype == "text" and isinstance(block.get("text"), str):
                    out.append(block["text"])
                elif btype == "tool_result":
                    out.extend(_content_texts(block.get("content")))
                elif btype == "tool_use":
                    out.append(json.dumps(block.get("input", {}), sort_keys=True))
    return out


def _system_blocks(system: Any) -> list[dict]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    if isinstance(system, list):
        return [b for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _request_chars(body: dict) -> int:
    chars = sum(len(b["text"]) for b in _system_blocks(body.get("system")))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            chars += sum(len(t) for t in _content_texts(msg.get("content")))
    return chars


def count_input_tokens(body: dict) -> int:
    """``max(1, ceil(chars / 4))`` over system and message text (see the module docstring)."""
    return max(1, math.ceil(_request_chars(body) / 4))


def _last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return "\n".join(_content_texts(msg.get("content")))
    return ""


def _directives(body: dict) -> dict[str, str | None]:
    return {m.group(1): m.group(2) for m in _DIRECTIVE_RE.finditer(_last_user_text(body))}


def _validate(body: Any) -> str | None:
    """Return an error message for an invalid create body, else None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int):
        return "max_tokens: Field required"
    if mt < 0:
        return "max_tokens: Input should be greater than or equal to 0"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or "content" not in m:
            return f"messages.{i}: each message needs a role (user|assistant) and content"
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: Input should be a list of strings"
    return None


_SENTENCES = (
    "This reply comes from the offline fake Anthropic server, not from a real model.",
    "The same request always produces exactly the same words.",
    "Token usage is estimated at four characters per input token and one token per output word.",
    "Markdown such as **bold** text and `inline code` passes through unchanged.",
    "Nothing was sent over the internet while producing this answer.",
    "Latency, errors and streaming behaviour are scripted by the test suite.",
)


def answer_text(body: dict) -> str:
    """The deterministic answer for a create body (before stop sequences and ``max_tokens``)."""
    model = body.get("model", "")
    canonical = json.dumps(
        {"model": model, "system": body.get("system"), "messages": body.get("messages")},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    question = " ".join(_DIRECTIVE_RE.sub(" ", _last_user_text(body)).split())
    question = question.replace('"', "'")
    if len(question) > 60:
        question = question[:60].rstrip() + "…"
    n = 2 + int(digest[0], 16) % 3  # 2..4 sentences
    start = int(digest[1:3], 16) % len(_SENTENCES)
    extra = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(n - 1)]
    parts = [f"**Offline answer** from `{model}`.", f'You asked: "{question}".' if question else "You asked nothing."]
    parts.extend(extra)
    parts.append(f"Fingerprint `{digest[:8]}`.")
    return " ".join(parts)


def _cut_words(text: str, n: int) -> str:
    """Keep the first ``n`` whitespace-separated words, preserving the original spacing."""
    if n <= 0:
        return ""
    for i, m in enumerate(_WORD_RE.finditer(text)):
        if i == n - 1:
            return text[: m.end()]
    return text


def _word_count(text: str) -> int:
    return len(text.split())


def _stream_chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    pieces = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    chunks = ["".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)]
    if chunks:
        chunks[0] = lead + chunks[0]
    elif text:
        chunks = [text]
    return chunks


# --------------------------------------------------------------------------------------------------
# the HTTP server
# --------------------------------------------------------------------------------------------------


class _Disconnected(Exception):
    """The client went away."""


class _Stopping(Exception):
    """The server is shutting down."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: "FakeAnthropicServer"

    def handle_error(self, request, client_address):  # noqa: D401 - quiet on connection errors
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, _Disconnected, _Stopping)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAnthropic/1.0"
    sys_version = ""
    server: _HTTPServer

    # ---------------------------------------------------------------- plumbing
    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.fake._conn_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._conn_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        pass

    @property
    def fake(self) -> "FakeAnthropicServer":
        return self.server.fake

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.close_connection = True
            if not self.fake._stopping.is_set():
                self.fake._note_disconnect()
            raise _Disconnected() from exc

    def _start(self, status: int, content_type: str, request_id: str, *, length: int | None,
               extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("request-id", request_id)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        # end_headers() flushes through wfile; route it through _write for disconnect accounting
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self._write(data)

    def _send_json(self, status: int, obj: Any, request_id: str, extra: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
        data = json.dumps(obj).encode("utf-8")
        self._start(status, content_type, request_id, length=len(data), extra=extra)
        self._write(data)

    def _send_error(self, status: int, request_id: str, error_type: str | None = None,
                    message: str | None = None, extra: dict[str, str] | None = None) -> None:
        etype = error_type or _default_error_type(status)
        msg = message or _ERROR_MESSAGES.get(etype, "Error")
        self._send_json(status, _error_body(etype, msg, request_id), request_id, extra)

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` while watching the socket for the client going away."""
        deadline = time.monotonic() + seconds
        sock = self.connection
        while True:
            if self.fake._stopping.is_set():
                self.close_connection = True
                raise _Stopping()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                readable, _, _ = select.select([sock], [], [], min(remaining, 0.05))
            except (OSError, ValueError):
                readable = [sock]
            if readable:
                try:
                    peek = sock.recv(1, socket.MSG_PEEK)
                except BlockingIOError:
                    peek = b"x"
                except OSError:
                    peek = b""
                if peek == b"":
                    self.close_connection = True
                    if not self.fake._stopping.is_set():
                        self.fake._note_disconnect()
                    raise _Disconnected()
                # the client sent more bytes (pipelining); keep sleeping without spinning
                time.sleep(min(max(deadline - time.monotonic(), 0), 0.01))

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()  # drop the makefile() reference so close() really closes the fd
        except OSError:
            pass
        self.connection.close()

    # ---------------------------------------------------------------- dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        request_id = _new_request_id()
        raw = self._read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad_json = True
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(method, self.path, headers, body if isinstance(body, dict) else None))
        try:
            if method == "POST" and path == "/v1/messages":
                self.fake._enter_messages()
                try:
                    self._messages(body, bad_json, headers, request_id)
                finally:
                    self.fake._exit_messages()
                return
            if not self._authorized(headers):
                self._send_error(401, request_id, message="invalid x-api-key")
                return
            if bad_json:
                self._send_error(400, request_id, message="request body is not valid JSON")
                return
            self._route_other(method, path, url.query, body, request_id)
        except (_Disconnected, _Stopping):
            self.close_connection = True

    @staticmethod
    def _authorized(headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return True
        return bool(headers.get("x-api-key", "").strip())

    # ---------------------------------------------------------------- /v1/messages
    def _messages(self, body: Any, bad_json: bool, headers: dict[str, str], request_id: str) -> None:
        fake = self.fake
        fault = fake._next_fault()
        latency = fault.latency_s if fault and fault.latency_s is not None else fake.latency_s
        directives = _directives(body) if isinstance(body, dict) and not bad_json else {}
        if "sleep" in directives:
            try:
                latency += float(directives["sleep"] or 0)
            except ValueError:
                pass

        if fault and fault.reset:
            if latency > 0:
                self._wait(latency)
            self._reset()
            return
        if latency > 0:
            self._wait(latency)

        if fault and fault.status:
            extra: dict[str, str] = {}
            if fault.retry_after_ms is not None:
                extra["retry-after-ms"] = _num(fault.retry_after_ms)
            if fault.retry_after is not None:
                extra["retry-after"] = _num(fault.retry_after)
            if fault.should_retry is not None:
                extra["x-should-retry"] = "true" if fault.should_retry else "false"
            self._send_error(fault.status, request_id, fault.error_type, fault.message, extra)
            return
        if not self._authorized(headers):
            self._send_error(401, request_id, message="invalid x-api-key")
            return
        if bad_json:
            self._send_error(400, request_id, message="request body is not valid JSON")
            return
        problem = _validate(body)
        if problem:
            self._send_error(400, request_id, message=problem)
            return
        if "error" in directives:
            try:
                status = int(directives["error"] or 500)
            except ValueError:
                status = 500
            self._send_error(status, request_id)
            return

        message = fake._build_message(body, fault, directives)
        if body.get("stream") is True:
            self._stream(message, fault, request_id)
        elif fault and fault.truncate:
            data = json.dumps(message).encode("utf-8")
            self.close_connection = True
            self._start(200, "application/json", request_id, length=len(data))
            self._write(data[: len(data) // 2])
        else:
            self._send_json(200, message, request_id)

    def _stream(self, message: dict, fault: Fault | None, request_id: str) -> None:
        fake = self.fake
        self._start(200, "text/event-stream; charset=utf-8", request_id, length=None)

        pending: list[bytes] = []  # events are batched into one write until a pause

        def event(name: str, data: dict) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode("utf-8")
            pending.append(b"%x\r\n%s\r\n" % (len(payload), payload))

        def flush() -> None:
            if pending:
                self._write(b"".join(pending))
                pending.clear()

        def pause() -> None:
            flush()
            self._wait(fake.chunk_delay_s)

        def end() -> None:
            pending.append(b"0\r\n\r\n")
            flush()

        usage = dict(message["usage"])
        start_usage = dict(usage)
        start_usage["output_tokens"] = 1
        start_msg = dict(message, content=[], stop_reason=None, stop_sequence=None, stop_details=None,
                         usage=start_usage)
        event("message_start", {"type": "message_start", "message": start_msg})
        text = message["content"][0]["text"] if message["content"] else None
        chunks = _stream_chunks(text) if text else []
        broken = bool(fault and (fault.stream_error or fault.truncate))
        limit = max(1, len(chunks) // 2) if broken else len(chunks)
        if text is not None:
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
        event("ping", {"type": "ping"})
        for i, chunk in enumerate(chunks[:limit]):
            if i and fake.chunk_delay_s > 0:
                pause()
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": chunk}})
        if fault and fault.stream_error:
            etype = fault.stream_error
            event("error", {"type": "error", "error": {"type": etype,
                                                      "message": fault.message or _ERROR_MESSAGES.get(etype, "Error")}})
            end()
            return
        if fault and fault.truncate:
            end()
            return
        if fake.chunk_delay_s > 0 and chunks:
            pause()
        if text is not None:
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
        delta: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        if message.get("stop_details") is not None:
            delta["stop_details"] = message["stop_details"]
        delta_usage = {k: usage[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                             "cache_read_input_tokens") if k in usage}
        event("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage})
        event("message_stop", {"type": "message_stop"})
        end()

    # ---------------------------------------------------------------- other routes
    def _route_other(self, method: str, path: str, query: str, body: Any, request_id: str) -> None:
        fake = self.fake
        if method == "POST" and path == "/v1/messages/count_tokens":
            if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(
                    body.get("messages"), list) or not body["messages"]:
                self._send_error(400, request_id, message="count_tokens needs model and messages")
                return
            self._send_json(200, {"input_tokens": count_input_tokens(body)}, request_id)
            return

        parts = path.split("/")  # ['', 'v1', 'messages', 'batches', id?, action?]
        if parts[:4] != ["", "v1", "messages", "batches"]:
            self._send_error(404, request_id, message=f"Not found: {method} {path}")
            return
        rest = parts[4:]
        if not rest:
            if method == "POST":
                status, obj = fake._batch_create(body)
            elif method == "GET":
                status, obj = fake._batch_list(parse_qs(query))
            else:
                status, obj = 404, None
        elif len(rest) == 1 and method == "GET":
            status, obj = fake._batch_get(rest[0])
        elif len(rest) == 1 and method == "DELETE":
            status, obj = fake._batch_delete(rest[0])
        elif len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            status, obj = fake._batch_cancel(rest[0])
        elif len(rest) == 2 and rest[1] == "results" and method == "GET":
            status, obj = fake._batch_results(rest[0])
            if status == 200:
                data = "".join(json.dumps(line) + "\n" for line in obj).encode("utf-8")
                self._start(200, "application/binary", request_id, length=len(data))
                self._write(data)
                return
        else:
            status, obj = 404, None
        if status == 200:
            self._send_json(200, obj, request_id)
        else:
            self._send_error(status, request_id, message=obj or f"Not found: {method} {path}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------------------------------
# the public server object
# --------------------------------------------------------------------------------------------------


class FakeAnthropicServer:
    """A scriptable fake of the Anthropic API served over real HTTP (see the module docstring)."""

    def __init__(self, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, batch_delay_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.batch_delay_s = batch_delay_s
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._request_count = 0
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._disconnects = 0
        self._cache_seen: set[tuple] = set()
        self._batches: dict[str, dict] = {}
        self._batch_seq = 0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FakeAnthropicServer":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.fake = self
        host, port = httpd.server_address[:2]
        self._httpd = httpd
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeAnthropicServer:{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        # unblock handler threads waiting on keep-alive connections
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                if not self._conns:
                    break
            time.sleep(0.01)
        httpd.server_close()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "FakeAnthropicServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeAnthropicServer(url={self.url!r}, requests={self.request_count})"

    # ---------------------------------------------------------------- scripting
    def script(self, *faults: Fault) -> None:
        """Queue faults; each ``POST /v1/messages`` consumes one (FIFO)."""
        with self._lock:
            self._faults.extend(faults)

    def fail_next(self, status: int, times: int = 1, **kw: Any) -> None:
        """Shorthand for ``script(*[Fault(status=status, **kw)] * times)``."""
        self.script(*[Fault(status=status, **kw) for _ in range(times)])

    def clear_script(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    # ---------------------------------------------------------------- metrics
    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    def reset_metrics(self) -> None:
        with self._lock:
            self._request_count = 0
            self._requests = []
            self._max_in_flight = self._in_flight
            self._disconnects = 0

    def wait_for(self, predicate: Callable[["FakeAnthropicServer"], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate(self)`` until it is true (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)
            if req.method == "POST" and urlsplit(req.path).path.rstrip("/") == "/v1/messages":
                self._request_count += 1

    def _enter_messages(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _exit_messages(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _note_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1

    def _conn_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _conn_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    # ---------------------------------------------------------------- answers
    def _usage(self, body: dict) -> dict:
        total = count_input_tokens(body)
        created = read = eph_5m = eph_1h = 0
        blocks = _system_blocks(body.get("system"))
        last_bp = max((i for i, b in enumerate(blocks) if isinstance(b.get("cache_control"), dict)), default=-1)
        if last_bp >= 0:
            prefix = tuple(b["text"] for b in blocks[: last_bp + 1])
            prefix_tokens = math.ceil(sum(len(t) for t in prefix) / 4)
            if prefix_tokens >= _CACHE_MIN_TOKENS:
                key = (body.get("model"), prefix)
                with self._lock:
                    hit = key in self._cache_seen
                    self._cache_seen.add(key)
                if hit:
                    read = prefix_tokens
                else:
                    created = prefix_tokens
                    if blocks[last_bp]["cache_control"].get("ttl") == "1h":
                        eph_1h = created
                    else:
                        eph_5m = created
                total = max(1, total - prefix_tokens)
        return {
            "input_tokens": total,
            "output_tokens": 0,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": eph_5m, "ephemeral_1h_input_tokens": eph_1h},
            "server_tool_use": None,
            "service_tier": "standard",
        }

    def _build_message(self, body: dict, fault: Fault | None, directives: dict[str, str | None]) -> dict:
        stop_sequence = None
        stop_details = None
        if fault and fault.text is not None:
            text = fault.text
            stop_reason = "end_turn"
        elif "refuse" in directives:
            text = "I can't help with that request."
            stop_reason = "refusal"
            stop_details = {"type": "refusal", "category": None, "explanation": None}
        elif "empty" in directives:
            text = ""
            stop_reason = "end_turn"
        else:
            text = answer_text(body)
            stop_reason = "end_turn"
        if text and stop_reason != "refusal":
            best: tuple[int, str] | None = None
            for seq in body.get("stop_sequences") or []:
                idx = text.find(seq) if seq else -1
                if idx >= 0 and (best is None or idx < best[0]):
                    best = (idx, seq)
            if best is not None:
                text = text[: best[0]]
                stop_reason, stop_sequence = "stop_sequence", best[1]
        max_tokens = body["max_tokens"]
        if _word_count(text) > max_tokens:
            text = _cut_words(text, max_tokens)
            stop_reason, stop_sequence = "max_tokens", None
        if fault and fault.stop_reason is not None:
            stop_reason = fault.stop_reason
        usage = self._usage(body)
        usage["output_tokens"] = _word_count(text)
        if fault and fault.usage:
            usage.update(fault.usage)
        content = [{"type": "text", "text": text}] if text else []
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": stop_details,
            "container": None,
            "usage": usage,
        }

    # ---------------------------------------------------------------- batches
    def _batch_result(self, params: Any) -> dict:
        problem = _validate(params)
        if problem is None and params.get("stream") is True:
            problem = "stream: batch requests cannot stream"
        if problem is not None:
            return {"type": "errored", "error": _error_body("invalid_request_error", problem, _new_request_id())}
        directives = _directives(params)
        if "error" in directives:
            try:
                status = int(directives["error"] or 500)
            except ValueError:
                status = 500
            etype = _default_error_type(status)
            return {"type": "errored",
                    "error": _error_body(etype, _ERROR_MESSAGES.get(etype, "Error"), _new_request_id())}
        message = self._build_message(params, None, directives)
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}

    def _refresh_batch(self, b: dict, now: float) -> None:
        """Advance a batch's state machine (call with the lock held)."""
        if b["ended_at"] is not None:
            return
        if b["cancel_initiated_at"] is not None:
            # canceling lasts until the next read: unfinished requests become "canceled"
            b["ended_at"] = now
            b["results"] = {cid: {"type": "canceled"} for cid in b["results"]}
        elif now >= b["created_at"] + self.batch_delay_s:
            b["ended_at"] = b["created_at"] + self.batch_delay_s

    def _batch_json(self, b: dict) -> dict:
        ended = b["ended_at"] is not None
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for r in b["results"].values():
                counts[r["type"]] += 1
        else:
            counts["processing"] = len(b["results"])
        if ended:
            status = "ended"
        elif b["cancel_initiated_at"] is not None:
            status = "canceling"
        else:
            status = "in_progress"
        return {
            "id": b["id"],
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(b["created_at"]),
            "expires_at": _iso(b["created_at"] + 86400),
            "ended_at": _iso(b["ended_at"]) if ended else None,
            "cancel_initiated_at": _iso(b["cancel_initiated_at"]),
            "archived_at": None,
            "results_url": f"/v1/messages/batches/{b['id']}/results" if ended else None,
        }

    def _batch_create(self, body: Any) -> tuple[int, Any]:
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return 400, "requests: at least one request is required"
        seen: set[str] = set()
        for i, r in enumerate(reqs):
            if not isinstance(r, dict) or not isinstance(r.get("custom_id"), str) or not isinstance(
                    r.get("params"), dict):
                return 400, f"requests.{i}: needs custom_id (str) and params (object)"
            if r["custom_id"] in seen:
                return 400, f"requests.{i}.custom_id: duplicate custom_id {r['custom_id']!r}"
            seen.add(r["custom_id"])
        results = {r["custom_id"]: self._batch_result(r["params"]) for r in reqs}
        now = time.time()
        with self._lock:
            self._batch_seq += 1
            b = {"id": "msgbatch_" + uuid.uuid4().hex[:24], "seq": self._batch_seq, "created_at": now,
                 "ended_at": None, "cancel_initiated_at": None, "results": results}
            self._refresh_batch(b, now)
            self._batches[b["id"]] = b
            return 200, self._batch_json(b)

    def _batch_get(self, batch_id: str) -> tuple[int, Any]:
        with self._lock:
            b = self._batches.get(batch_id)
            if b is None:
                return 404, f"Batch not found: {batch_id}"
            self._refresh_batch(b, time.time())
            return 200, self._batch_json(b)

    def _batch_list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            limit = int((query.get("limit") or ["20"])[0])
        except ValueError:
            return 400, "limit: must be an integer"
        limit = max(1, min(limit, 1000))
        after = (query.get("after_id") or [None])[0]
        before = (query.get("before_id") or [None])[0]
        now = time.time()
        with self._lock:
            items = sorted(self._batches.values(), key=lambda b: b["seq"], reverse=True)  # newest first
            ids = [b["id"] for b in items]
            if after is not None:
                if after not in ids:
                    return 404, f"Batch not found: {after}"
                items = items[ids.index(after) + 1:]
                page, has_more = items[:limit], len(items) > limit
            elif before is not None:
                if before not in ids:
                    return 404, f"Batch not found: {before}"
                items = items[: ids.index(before)]
                page, has_more = items[-limit:], len(items) > limit
            else:
                page, has_more = items[:limit], len(items) > limit
            for b in page:
                self._refresh_batch(b, now)
            data = [self._batch_json(b) for b in page]
        return 200, {"data": data, "has_more": has_more,
                     "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    def _batch_cancel(self, batch_id: str) -> tuple[int, Any]:
        now = time.time()
        with self._lock:
            b = self._batches.get(batch_id)
            if b is None:
                return 404, f"Batch not found: {batch_id}"
            self._refresh_batch(b, now)
            if b["ended_at"] is not None:
                return 200, self._batch_json(b)
            b["cancel_initiated_at"] = now
            return 200, self._batch_json(b)

    def _batch_delete(self, batch_id: str) -> tuple[int, Any]:
        with self._lock:
            b = self._batches.get(batch_id)
            if b is None:
                return 404, f"Batch not found: {batch_id}"
            self._refresh_batch(b, time.time())
            if b["ended_at"] is None:
                return 400, f"Batch {batch_id} is still processing; cancel it before deleting it."
            del self._batches[batch_id]
            return 200, {"id": batch_id, "type": "message_batch_deleted"}

    def _batch_results(self, batch_id: str) -> tuple[int, Any]:
        with self._lock:
            b = self._batches.get(batch_id)
            if b is None:
                return 404, f"Batch not found: {batch_id}"
            self._refresh_batch(b, time.time())
            if b["ended_at"] is None:
                return 404, f"Results for batch {batch_id} are not available until it has ended."
            return 200, [{"custom_id": cid, "result": r} for cid, r in b["results"].items()]


KERNEL_NAME = "claude-force-nb"


def write_kernelspec(jupyter_path: Any) -> str:
    """Write a kernelspec for *this* interpreter under ``jupyter_path/kernels``.

    Tests and the demo put ``jupyter_path`` first on JUPYTER_PATH so kernels they start
    run the same Python (and the same installed claude_force_nb) as they do, whatever
    other "python3" kernels the machine has. Returns the kernel name to ask for.
    """
    import sys
    from pathlib import Path

    spec_dir = Path(jupyter_path) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (claude-force-nb)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return KERNEL_NAME


def _main(argv: list[str] | None = None) -> int:
    """``python -m claude_force_nb.testing``: serve until interrupted (or stdin closes)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="FakeAnthropicServer on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream chunks")
    args = ap.parse_args(argv)
    with FakeAnthropicServer(latency_s=args.latency, chunk_delay_s=args.chunk_delay, port=args.port) as server:
        print(server.url, flush=True)
        try:
            sys.stdin.read()  # returns when the parent closes our stdin
        except KeyboardInterrupt:
            pass
    return 0

