"""What the fake counts, thread-safe: requests, concurrency, disconnects and injected faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from .faults import RecordedRequest

__all__ = ["COUNTERS", "ServerMetrics"]

COUNTERS = ("dropped", "malformed", "overloaded", "rate_limited", "stalled")
"""The fault counters, by name:

* ``dropped`` - connections reset because the server was down (``down(mode="drop")``);
* ``malformed`` - responses sent with a scripted raw ``body`` (not JSON, HTML, ...);
* ``overloaded`` - requests refused by ``overload(...)``;
* ``rate_limited`` - requests refused with 429 by the per-minute limits;
* ``stalled`` - responses held by ``Fault(stall_s=...)``.
"""


class ServerMetrics:
    """The metrics half of ``FakeAnthropicServer`` (a mixin: its properties are the server's)."""

    _lock: threading.Lock

    def _init_metrics(self) -> None:
        self._request_count = 0
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._disconnects = 0
        self._counters = dict.fromkeys(COUNTERS, 0)

    @property
    def request_count(self) -> int:
        """``POST /v1/messages`` requests received (dropped connections never arrive)."""
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
        """Clients that went away before their response was complete (not counted while down)."""
        with self._lock:
            return self._disconnects

    @property
    def counters(self) -> dict[str, int]:
        """Injected faults by kind (every name in ``COUNTERS``, zeros included)."""
        with self._lock:
            return dict(self._counters)

    def reset_metrics(self) -> None:
        """Zero every metric (``max_in_flight`` restarts from the requests in flight now)."""
        with self._lock:
            self._request_count = 0
            self._requests = []
            self._max_in_flight = self._in_flight
            self._disconnects = 0
            self._counters = dict.fromkeys(COUNTERS, 0)

    def wait_for(self, predicate: Callable[..., bool], timeout: float = 5.0) -> bool:
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

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def _count_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1
