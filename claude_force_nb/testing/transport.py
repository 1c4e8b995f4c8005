"""HTTP/1.1 plumbing under the fake's routes: sockets, bodies, disconnect-aware waits, resets.

Nothing here knows the Anthropic API.  ``BaseHandler`` reads request bodies (plain or chunked),
writes responses through one path that notices a client going away, holds a request open while
watching the socket, and can drop a connection with a TCP reset.  Every accepted socket gets
``TCP_NODELAY``: without it each small response waits ~40 ms for Nagle's algorithm.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .errors import default_error_type, error_body, error_message

__all__ = ["BaseHandler", "Disconnected", "HTTPServer", "Stopping"]

POLL_S = 0.05
"""How often a held request looks at its socket (and at whatever it waits for)."""


class Disconnected(Exception):
    """The client went away."""


class Stopping(Exception):
    """The server is shutting down."""


class ConnectionOwner(Protocol):
    """What the plumbing needs from the server object: its stop flag and connection bookkeeping."""

    _stopping: threading.Event

    def _note_disconnect(self) -> None: ...
    def _conn_opened(self, conn: socket.socket) -> None: ...
    def _conn_closed(self, conn: socket.socket) -> None: ...


class HTTPServer(ThreadingHTTPServer):
    """A threading server that stays quiet about clients hanging up."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (OSError, Disconnected, Stopping)):
            return
        super().handle_error(request, client_address)


class BaseHandler(BaseHTTPRequestHandler):
    """Request plumbing shared by every route (see the module docstring)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeAnthropic/1.0"
    sys_version = ""
    server: HTTPServer
    _headers_buffer: list[bytes]   # set by BaseHTTPRequestHandler.send_header; typeshed leaves it out

    @property
    def owner(self) -> ConnectionOwner:
        return self.server.fake

    # ------------------------------------------------------------------------------ connection life
    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.owner._conn_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.owner._conn_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        pass

    def reset(self) -> None:
        """Close the connection abruptly: ``SO_LINGER 0`` makes the close a TCP RST."""
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

    # ------------------------------------------------------------------------------ reading
    def read_body(self) -> bytes:
        """The request body, with or without chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            data += self.rfile.read(size)
            self.rfile.readline(65537)

    # ------------------------------------------------------------------------------ writing
    def write(self, data: bytes) -> None:
        """Send bytes; a client that went away becomes ``Disconnected`` (and is counted)."""
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.close_connection = True
            if not self.owner._stopping.is_set():
                self.owner._note_disconnect()
            raise Disconnected() from exc

    def extra_headers(self) -> dict[str, str]:
        """Headers every response of the current request carries (none here; routes add theirs)."""
        return {}

    def start(self, status: int, content_type: str, request_id: str, *, length: int | None,
              extra: dict[str, str] | None = None) -> None:
        """Send the status line and headers; ``length=None`` means a chunked body follows."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("request-id", request_id)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        for name, value in {**self.extra_headers(), **(extra or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # end_headers() would flush through wfile; route it through write() for disconnect accounting
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.write(data)

    def send_bytes(self, status: int, data: bytes, request_id: str, content_type: str,
                   extra: dict[str, str] | None = None) -> None:
        self.start(status, content_type, request_id, length=len(data), extra=extra)
        self.write(data)

    def send_json(self, status: int, obj: Any, request_id: str, extra: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode("utf-8"), request_id, "application/json", extra)

    def send_error_envelope(self, status: int, request_id: str, error_type: str | None = None,
                            message: str | None = None, extra: dict[str, str] | None = None,
                            details: dict | None = None) -> None:
        """An API error: the envelope with the status's usual type and message unless given."""
        etype = error_type or default_error_type(status)
        body = error_body(etype, message or error_message(etype), request_id, details)
        self.send_json(status, body, request_id, extra)

    # ------------------------------------------------------------------------------ waiting
    def hold(self, remaining: Callable[[], float], on_poll: Callable[[], None] | None = None) -> None:
        """Keep the request open while ``remaining()`` is positive, watching the socket.

        Raises ``Disconnected`` when the client closes its side and ``Stopping`` when the server
        stops.  ``on_poll`` runs after every look at the socket (at most ``POLL_S`` apart).
        """
        while (left := remaining()) > 0:
            if self.owner._stopping.is_set():
                self.close_connection = True
                raise Stopping()
            self._watch_client(min(left, POLL_S))
            if on_poll is not None:
                on_poll()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (real time) while watching the socket for the client going away."""
        deadline = time.monotonic() + seconds
        self.hold(lambda: deadline - time.monotonic())

    def _watch_client(self, timeout: float) -> None:
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            readable = [sock]
        if not readable:
            return
        try:
            peek = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            peek = b"x"
        except OSError:
            peek = b""
        if peek == b"":
            self.close_connection = True
            if not self.owner._stopping.is_set():
                self.owner._note_disconnect()
            raise Disconnected()
        time.sleep(min(timeout, 0.01))  # the client sent more bytes (pipelining): do not spin
