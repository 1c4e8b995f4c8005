"""``FakeAnthropicServer``: the object tests hold: lifecycle, scripting, state and metrics."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .answers import PromptCache, build_message, input_usage
from .batches import BatchStore
from .faults import Fault, RecordedRequest
from .handler import Handler
from .transport import HTTPServer

__all__ = ["FakeAnthropicServer"]


class FakeAnthropicServer:
    """A scriptable fake of the Anthropic API served over real HTTP on 127.0.0.1.

    ``latency_s`` delays every ``/v1/messages`` response (real time, disconnect-aware);
    ``chunk_delay_s`` pauses between stream deltas; a batch stays in progress ``batch_delay_s``
    seconds of ``clock`` after creation.  ``clock`` returns the current wall time in epoch seconds
    (``time.time`` by default): pass a ``ManualClock`` to move batch time by hand.
    """

    def __init__(self, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, batch_delay_s: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.clock = clock
        self.prompt_cache = PromptCache()
        self.batches = BatchStore(clock, lambda params, found: self._answer(params, None, found), batch_delay_s)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._request_count = 0
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._disconnects = 0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def batch_delay_s(self) -> float:
        """How long (``clock`` seconds) a new batch stays ``in_progress``; 0 = created ended."""
        return self.batches.delay_s

    @batch_delay_s.setter
    def batch_delay_s(self, value: float) -> None:
        self.batches.delay_s = value

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAnthropicServer:
        """Bind and serve from a daemon thread; ``url`` is then ``http://127.0.0.1:<port>``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = HTTPServer((self._host, self._port), Handler)
        httpd.fake = self
        host, port = httpd.server_address[:2]
        self._httpd = httpd
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeAnthropicServer:{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        self._close_connections()
        httpd.server_close()
        self._httpd = None
        self._thread = None

    def _close_connections(self) -> None:
        """Unblock handler threads (keep-alive waits, held requests) and wait for them to finish."""
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
                    return
            time.sleep(0.01)

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeAnthropicServer(url={self.url!r}, requests={self.request_count})"

    # ------------------------------------------------------------------------------ scripting
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

    # ------------------------------------------------------------------------------ answers
    def _answer(self, body: dict, fault: Fault | None, found: dict[str, str | None]) -> dict:
        """The Message for a valid body; a cacheable system prefix is remembered for later reads."""
        prefix = self.prompt_cache.lookup(body)
        message = build_message(body, fault, found, input_usage(body, prefix))
        self.prompt_cache.remember(prefix)
        return message

    # ------------------------------------------------------------------------------ metrics
    @property
    def request_count(self) -> int:
        """``POST /v1/messages`` requests received."""
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to every route, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """``POST /v1/messages`` requests being answered now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def disconnects(self) -> int:
        """Clients that went away before their response was complete."""
        with self._lock:
            return self._disconnects

    def reset_metrics(self) -> None:
        with self._lock:
            self._request_count = 0
            self._requests = []
            self._max_in_flight = self._in_flight
            self._disconnects = 0

    def wait_for(self, predicate: Callable[[FakeAnthropicServer], bool], timeout: float = 5.0) -> bool:
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

    @contextmanager
    def _messages_in_flight(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
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
