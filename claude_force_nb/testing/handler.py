"""The routes: ``POST /v1/messages`` as a short pipeline, everything else through a route table.

A ``/v1/messages`` request goes through, in order: the scripted fault's delay (or reset, or raw
body), a list of checks that may answer with an error (scripted status, overload, missing auth,
bad JSON, an invalid body or unknown model (``testing.validation``), ``[[fake:error=N]]``), the
answer and the rate limits, then delivery: stalled, streamed, truncated or plain JSON.  Every
response to it carries the rate-limit headers.  While the server is down (``drop``), connections
are reset before any of this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .errors import ErrorReply, new_request_id, retry_headers
from .faults import Fault, RecordedRequest
from .prompt import count_input_tokens, directives
from .streaming import SSE_CONTENT_TYPE, PingTicker, SseWriter, stream_message
from .transport import BaseHandler, Disconnected, Stopping

if TYPE_CHECKING:
    from .server import FakeAnthropicServer

__all__ = ["Handler"]


@dataclass
class MessagesCall:
    """One ``POST /v1/messages`` request on its way through the pipeline."""

    body: Any
    bad_json: bool
    headers: dict[str, str]
    request_id: str
    fault: Fault | None
    found: dict[str, str | None]
    """The task directives in the last user message."""
    beta: bool = False
    """Sent to the beta endpoint (``?beta=true``, as ``client.beta.messages`` does) or with ``anthropic-beta``."""

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


def authorized(headers: dict[str, str]) -> bool:
    """``Authorization: Bearer <anything>`` or ``x-api-key: <anything>``."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return True
    return bool(headers.get("x-api-key", "").strip())


def _directive_status(value: str | None) -> int:
    try:
        return int(value or 500)
    except ValueError:
        return 500


# ------------------------------------------------------------------------------------------ checks
# Each check looks at one call and returns the error to answer with, or None to go on.
def _scripted_status(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    fault = call.fault
    if fault is None or not fault.status:
        return None
    headers = retry_headers(fault.retry_after_ms, fault.retry_after, fault.should_retry)
    return ErrorReply(fault.status, fault.error_type, fault.message, headers)


def _overloaded(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    return fake._overloaded_reply()


def _unauthorized(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    return None if authorized(call.headers) else ErrorReply(401, message="invalid x-api-key")


def _unreadable(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    return ErrorReply(400, message="request body is not valid JSON") if call.bad_json else None


def _invalid(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    return fake.check(call.body, beta=call.beta)


def _directive_error(fake: FakeAnthropicServer, call: MessagesCall) -> ErrorReply | None:
    return ErrorReply(_directive_status(call.found["error"])) if "error" in call.found else None


def _directive_fault(found: dict[str, str | None], stream: bool) -> Fault | None:
    """``[[fake:malformed]]``: a 200 that is not JSON (or an event that is not); ``[[fake:stall=S]]``: pings only."""
    if "malformed" in found:
        return Fault(body="event: message_start\ndata: {oops\n\n" if stream else "{oops")
    if "stall" in found:
        try:
            return Fault(stall_s=float(found["stall"] or 60))
        except ValueError:
            return Fault(stall_s=60)
    return None


_CHECKS: tuple[Callable[[FakeAnthropicServer, MessagesCall], ErrorReply | None], ...] = (
    _scripted_status, _overloaded, _unauthorized, _unreadable, _invalid, _directive_error)


# ------------------------------------------------------------------------------------------ other routes
Route = Callable[["FakeAnthropicServer", dict[str, str], dict[str, list[str]], Any], tuple[int, Any]]


def _count_tokens(fake: FakeAnthropicServer, ids: dict[str, str], query: dict[str, list[str]],
                  body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(
            body.get("messages"), list) or not body["messages"]:
        return 400, "count_tokens needs model and messages"
    if fake.models.serving(body["model"]) is None:
        return 404, f"model: {body['model']}"
    return 200, {"input_tokens": count_input_tokens(body)}


_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(r"/v1/messages/count_tokens"), _count_tokens),
    ("GET", re.compile(r"/v1/models"), lambda f, ids, q, body: f.models.list(q)),
    ("GET", re.compile(r"/v1/models/(?P<id>[^/]+)"), lambda f, ids, q, body: f.models.retrieve(ids["id"])),
    ("POST", re.compile(r"/v1/messages/batches"), lambda f, ids, q, body: f.batches.create(body)),
    ("GET", re.compile(r"/v1/messages/batches"), lambda f, ids, q, body: f.batches.list(q)),
    ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), lambda f, ids, q, b: f.batches.get(ids["id"])),
    ("DELETE", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), lambda f, ids, q, b: f.batches.delete(ids["id"])),
    ("POST", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/cancel"),
     lambda f, ids, q, b: f.batches.cancel(ids["id"])),
]
_RESULTS = re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/results")


class Handler(BaseHandler):
    """The fake Anthropic API's request handler (one instance per connection)."""

    on_messages = False
    """Whether the current request is ``POST /v1/messages`` (its responses get rate-limit headers)."""

    @property
    def fake(self) -> FakeAnthropicServer:
        return self.server.fake

    def handle(self) -> None:
        if self.fake._drops_connection():
            self.reset()
            return
        super().handle()

    def extra_headers(self) -> dict[str, str]:
        return self.fake.rate_limits.headers() if self.on_messages else {}

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
        if self.fake._drops_connection():  # a kept-alive connection after the server went down
            self.reset()
            return
        request_id = new_request_id()
        raw = self.read_body()
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
        self.fake._record(RecordedRequest(method, self.path, headers, body if isinstance(body, dict) else None,
                                          time=self.fake.clock()))
        self.on_messages = method == "POST" and path == "/v1/messages"
        try:
            if self.on_messages:
                with self.fake._messages_in_flight():
                    beta = "anthropic-beta" in headers or "true" in parse_qs(url.query).get("beta", [])
                    self._messages(self._call(body, bad_json, headers, request_id, beta))
            elif not authorized(headers):
                self.send_error_envelope(401, request_id, message="invalid x-api-key")
            elif bad_json:
                self.send_error_envelope(400, request_id, message="request body is not valid JSON")
            else:
                self._route(method, path, parse_qs(url.query), body, request_id)
        except (Disconnected, Stopping):
            self.close_connection = True

    def _call(self, body: Any, bad_json: bool, headers: dict[str, str], request_id: str, beta: bool) -> MessagesCall:
        found = directives(body) if isinstance(body, dict) and not bad_json else {}
        call = MessagesCall(body, bad_json, headers, request_id, self.fake._next_fault(), found, beta)
        call.fault = call.fault or _directive_fault(found, call.stream)
        return call

    # ------------------------------------------------------------------------------ /v1/messages
    def _messages(self, call: MessagesCall) -> None:
        self.wait(self._latency(call))
        fault = call.fault
        if fault and fault.reset:
            self.reset()
            return
        if fault and fault.body is not None:
            self._send_raw(call, fault)
            return
        error = next((e for check in _CHECKS if (e := check(self.fake, call)) is not None), None)
        if error is None:
            message, prefix = self.fake._compose(call.body, fault, call.found)
            error = self.fake._admit(message, prefix)
        if error is not None:
            self.send_error_envelope(error.status, call.request_id, error.error_type, error.message, error.headers,
                                     error.details)
        elif fault and fault.stall_s is not None:
            self._stall(call, message, fault.stall_s)
        elif call.stream:
            self._stream(call, message)
        elif fault and fault.truncate:
            self._send_truncated(call, message)
        else:
            self.send_json(200, message, call.request_id)

    def _latency(self, call: MessagesCall) -> float:
        """The fault's latency (else the server's) plus any ``[[fake:sleep=S]]``."""
        fault = call.fault
        latency = fault.latency_s if fault and fault.latency_s is not None else self.fake.latency_s
        try:
            return latency + float(call.found.get("sleep") or 0)
        except ValueError:
            return latency

    def _stream(self, call: MessagesCall, message: dict) -> None:
        self.start(200, SSE_CONTENT_TYPE, call.request_id, length=None)
        delay = self.fake.chunk_delay_s
        stream_message(SseWriter(self.write), message, call.fault, (lambda: self.wait(delay)) if delay > 0 else None)

    def _send_raw(self, call: MessagesCall, fault: Fault) -> None:
        """The scripted body, byte for byte: chunked like a stream when it is an event stream."""
        self.fake._count("malformed")
        data = fault.body.encode("utf-8") if isinstance(fault.body, str) else bytes(fault.body or b"")
        content_type = fault.content_type or (SSE_CONTENT_TYPE if call.stream else "application/json")
        status = fault.status or 200
        if call.stream and content_type.startswith("text/event-stream"):
            self.start(status, content_type, call.request_id, length=None)
            sse = SseWriter(self.write)
            sse.raw(data)
            sse.end()
        else:
            self.send_bytes(status, data, call.request_id, content_type)

    def _stall(self, call: MessagesCall, message: dict, stall_s: float) -> None:
        """200, then no progress until ``stall_s`` of server clock, a release, or the client leaving."""
        fake = self.fake
        fake._count("stalled")
        ticket = fake._stall_ticket()
        remaining = partial(fake._stall_left, ticket, stall_s)
        if call.stream:
            self.start(200, SSE_CONTENT_TYPE, call.request_id, length=None)
            sse = SseWriter(self.write)
            pings = PingTicker(sse, fake.clock, fake.ping_interval_s)
            pings()
            self.hold(remaining, on_poll=pings)
            pings.finish(min(fake.clock(), ticket[0] + stall_s))
            sse.end()
        else:
            self.close_connection = True
            self.start(200, "application/json", call.request_id, length=len(json.dumps(message).encode("utf-8")))
            self.hold(remaining)

    def _send_truncated(self, call: MessagesCall, message: dict) -> None:
        """Announce the whole JSON body, send half of it, then close the connection."""
        data = json.dumps(message).encode("utf-8")
        self.close_connection = True
        self.start(200, "application/json", call.request_id, length=len(data))
        self.write(data[: len(data) // 2])

    # ------------------------------------------------------------------------------ other routes
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any, request_id: str) -> None:
        results = _RESULTS.fullmatch(path)
        if method == "GET" and results:
            self._send_results(results["id"], request_id)
            return
        for route_method, pattern, route in _ROUTES:
            match = pattern.fullmatch(path)
            if match and method == route_method:
                status, payload = route(self.fake, match.groupdict(), query, body)
                if status == 200:
                    self.send_json(200, payload, request_id)
                else:
                    self.send_error_envelope(status, request_id, message=payload)
                return
        self.send_error_envelope(404, request_id, message=f"Not found: {method} {path}")

    def _send_results(self, batch_id: str, request_id: str) -> None:
        """A batch's results as JSONL (``application/binary``, as the API sends them)."""
        status, payload = self.fake.batches.results(batch_id)
        if status != 200:
            self.send_error_envelope(status, request_id, message=payload)
            return
        data = "".join(line + "\n" for line in payload).encode("utf-8")
        self.send_bytes(200, data, request_id, "application/binary")
