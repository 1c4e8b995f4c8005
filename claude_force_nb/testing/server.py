"""``FakeAnthropicServer``: the object tests hold: lifecycle, scripting, conditions and state."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .answers import CachePrefix, PromptCache, build_message, input_usage
from .batches import BatchStore
from .conditions import Outage, Overload
from .errors import ErrorReply
from .faults import Fault
from .handler import Handler
from .limits import RateLimits
from .metrics import ServerMetrics
from .models import ModelCatalog, ModelInfo, created_now
from .prompt import count_input_tokens
from .transport import HTTPServer
from .validation import check_body

__all__ = ["FakeAnthropicServer"]


class FakeAnthropicServer(ServerMetrics):
    """A scriptable fake of the Anthropic API served over real HTTP on 127.0.0.1.

    * ``latency_s`` delays every ``/v1/messages`` response (real time, disconnect-aware);
      ``chunk_delay_s`` pauses between stream deltas (real time).
    * ``clock`` returns the wall time in epoch seconds (``time.time`` by default).  Everything
      that lasts is timed on it: batches (``batch_delay_s``), the per-minute limits, ``overload``
      and ``down`` periods, and stalls (``Fault(stall_s=...)``, pinging every
      ``ping_interval_s``).  Pass a ``ManualClock`` and those move only when the test advances it.
    * ``requests_per_minute``, ``tokens_per_minute`` (input + output), ``input_tokens_per_minute``,
      ``output_tokens_per_minute``: per-minute limits (None = unlimited); over one, a request gets
      429 ``rate_limit_error`` with ``retry-after``, and every ``/v1/messages`` response carries
      the ``anthropic-ratelimit-*`` headers.  See ``claude_force_nb.testing.limits`` for the model.
    * ``models``: the ids (and aliases) it serves, ``claude_force_nb.testing.models``; any other
      model is a 404 ``not_found_error``.  ``add_model`` serves one more.
    """

    def __init__(self, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, batch_delay_s: float = 0.0, clock: Callable[[], float] = time.time,
                 requests_per_minute: int | None = None, tokens_per_minute: int | None = None,
                 input_tokens_per_minute: int | None = None, output_tokens_per_minute: int | None = None,
                 ping_interval_s: float = 1.0) -> None:
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.ping_interval_s = ping_interval_s
        self.clock = clock
        self.prompt_cache = PromptCache()
        # models and batches are annotated because testing.handler reads them through an import cycle
        self.models: ModelCatalog = ModelCatalog()
        self.batches: BatchStore = BatchStore(
            clock, lambda params, found: self._answer(params, None, found), batch_delay_s, check=self.check)
        self.rate_limits = RateLimits(
            clock, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
            input_tokens_per_minute=input_tokens_per_minute, output_tokens_per_minute=output_tokens_per_minute)
        self._host = host
        self._port = port
        self._bound_port = port
        self._lock = threading.Lock()
        self._init_metrics()
        self._faults: list[Fault] = []
        self._overload: Overload | None = None
        self._outage: Outage | None = None
        self._stall_generation = 0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._lifecycle = threading.RLock()  # start/stop/down/up, from tests and the reopen watcher
        self._started = False
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
        with self._lifecycle:
            if not self._started:
                self._stopping.clear()
                self._listen(self._port)
                self._started = True
            return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        self._stopping.set()
        with self._lifecycle:
            if not self._started:
                return
            self._started = False
            with self._lock:
                self._outage = None  # a restarted server is up
            self._unlisten()
            self._close_connections()

    def _listen(self, port: int) -> None:
        """Serve on ``port`` (0: any free port) from a daemon thread."""
        httpd = HTTPServer((self._host, port), Handler)
        httpd.fake = self
        host, port = httpd.server_address[:2]
        assert isinstance(host, str), "an AF_INET/AF_INET6 server's address is (str, int, ...)"
        self._bound_port = port
        self._httpd = httpd
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeAnthropicServer:{port}", daemon=True)
        self._thread.start()

    def _unlisten(self) -> None:
        """Stop accepting and close the listening socket: connecting is refused from now on."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        httpd.server_close()
        self._httpd = self._thread = None

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

    def script_tools(self, *calls: tuple[str, dict] | dict) -> None:
        """Queue one turn that calls these tools, in order: ``script_tools(("describe", {"name": "sales"}))``.

        Shorthand for ``script(Fault(tool_calls=list(calls)))``; call it again for the next turn.
        """
        self.script(Fault(tool_calls=list(calls)))

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

    # ------------------------------------------------------------------------------ models
    def add_model(self, model_id: str, *, aliases: tuple[str, ...] = (), display_name: str | None = None,
                  max_tokens: int = 64_000, max_input_tokens: int = 200_000, structured_outputs: bool = True,
                  lifecycle: str = "active") -> ModelInfo:
        """Serve ``model_id`` (and its ``aliases``, answered with ``model_id``) from now on.

        For a model the product has no price for, or one released after this fake was written.
        """
        model = ModelInfo(model_id, display_name or model_id, created_now(), aliases=tuple(aliases),
                          max_tokens=max_tokens, max_input_tokens=max_input_tokens, lifecycle=lifecycle,
                          structured_outputs=structured_outputs)
        self.models.add(model)
        return model

    def check(self, body: Any, *, beta: bool = False) -> ErrorReply | None:
        """The error the API would answer a create ``body`` with (see ``testing.validation``), or None."""
        return check_body(body, self.models, count_input_tokens, beta=beta)

    # ------------------------------------------------------------------------------ conditions
    def set_rate_limits(self, *, requests_per_minute: int | None = None, tokens_per_minute: int | None = None,
                        input_tokens_per_minute: int | None = None,
                        output_tokens_per_minute: int | None = None) -> None:
        """Replace the per-minute limits (None = unlimited) with new, full buckets."""
        self.rate_limits = RateLimits(
            self.clock, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
            input_tokens_per_minute=input_tokens_per_minute, output_tokens_per_minute=output_tokens_per_minute)

    def overload(self, share: float, *, status: int = 529, duration_s: float | None = None,
                 retry_after_ms: float | None = None) -> None:
        """Refuse ``share`` (0-1) of ``/v1/messages`` requests with ``status`` for ``duration_s``.

        ``status`` 529 answers ``overloaded_error``, 429 ``rate_limit_error``.  Which requests fail
        is fixed (see ``conditions.Overload``): exactly ``floor(n * share)`` of the next ``n``.
        ``duration_s`` is on the server clock (None: until ``overload(0)``); ``retry_after_ms``
        adds that header.  Scripted faults come first; overload comes before auth and validation.
        """
        until = None if duration_s is None else self.clock() + duration_s
        with self._lock:
            self._overload = Overload(share, status, until, retry_after_ms) if share else None

    @property
    def is_overloaded(self) -> bool:
        with self._lock:
            return self._overload is not None and not self._overload.over(self.clock())

    def down(self, duration_s: float | None = None, *, mode: str = "drop") -> None:
        """Take the server down for ``duration_s`` of the server clock (None: until ``up()``).

        ``mode="drop"``: connections are accepted and reset at once (TCP RST), new and kept-alive
        ones alike.  ``mode="refuse"``: the listening socket is closed, so connecting is refused;
        after ``duration_s`` (or on ``up()``) it listens again on the same port.  Either way the
        connections open now are closed, and requests cut by the outage are not ``disconnects``.
        """
        outage = Outage(mode, None if duration_s is None else self.clock() + duration_s)
        with self._lifecycle:
            self.up()
            with self._lock:
                self._outage = outage
            if mode == "refuse":
                self._unlisten()
                if outage.until is not None:
                    threading.Thread(target=self._reopen_when_due, args=(outage,), daemon=True,
                                     name="FakeAnthropicServer:outage").start()
            self._close_connections()

    def up(self) -> None:
        """End an outage now (a refusing server listens again on its port)."""
        with self._lifecycle:
            with self._lock:
                outage = self._outage
            if outage is not None and outage.mode == "refuse" and self._started and self._httpd is None:
                self._listen(self._bound_port)  # listening before ``is_down`` turns False
            with self._lock:
                self._outage = None

    @property
    def is_down(self) -> bool:
        """Whether connections are being dropped or refused now."""
        with self._lock:
            outage = self._outage
        return outage is not None and (outage.mode == "refuse" or not outage.over(self.clock()))

    def _reopen_when_due(self, outage: Outage) -> None:
        """Watch the server clock while refusing, and listen again when the outage is over."""
        while not self._stopping.wait(0.01):
            with self._lock:
                if self._outage is not outage:
                    return
            if outage.over(self.clock()):
                with self._lifecycle:
                    if self._outage is outage:
                        self.up()
                return

    def release_stalls(self) -> None:
        """End every response held by ``Fault(stall_s=...)`` now."""
        with self._lock:
            self._stall_generation += 1

    # ------------------------------------------------------------------------------ used by the handler
    def _drops_connection(self) -> bool:
        """Whether a connection must be reset now (a ``drop`` outage); counts it."""
        with self._lock:
            outage = self._outage
            if outage is None or outage.mode != "drop":
                return False
            if outage.over(self.clock()):
                self._outage = None
                return False
            self._counters["dropped"] += 1
            return True

    def _overloaded_reply(self) -> ErrorReply | None:
        """The overload error for this request, or None (an overload that is over is lifted)."""
        with self._lock:
            overload = self._overload
            if overload is None:
                return None
            if overload.over(self.clock()):
                self._overload = None
                return None
            reply = overload.strikes()
            if reply is not None:
                self._counters["overloaded"] += 1
            return reply

    def _stall_ticket(self) -> tuple[float, int]:
        """When a stall starts, and which ``release_stalls`` call it waits for."""
        with self._lock:
            return self.clock(), self._stall_generation

    def _stall_left(self, ticket: tuple[float, int], stall_s: float) -> float:
        """Server-clock seconds left of a stall that began at ``ticket`` (0 once released)."""
        started, generation = ticket
        with self._lock:
            if self._stall_generation != generation:
                return 0.0
        return max(0.0, stall_s - (self.clock() - started))

    def _compose(
        self, body: dict, fault: Fault | None, found: dict[str, str | None]
    ) -> tuple[dict, CachePrefix | None]:
        """The Message for a valid body, and its cacheable prefix (not remembered yet)."""
        prefix = self.prompt_cache.lookup(body)
        model = self.models.find(body["model"])
        message = build_message(body, fault, found, input_usage(body, prefix), model.id if model else None)
        return message, prefix

    def _admit(self, message: dict, prefix: CachePrefix | None) -> ErrorReply | None:
        """Charge the rate limits for ``message`` (or refuse it); an admitted prefix is now cached."""
        refused = self.rate_limits.admit(message["usage"])
        if refused is not None:
            self._count("rate_limited")
            return refused
        self.prompt_cache.remember(prefix)
        return None

    def _answer(self, body: dict, fault: Fault | None, found: dict[str, str | None]) -> dict:
        """A batch request's Message (batches are not rate limited)."""
        message, prefix = self._compose(body, fault, found)
        self.prompt_cache.remember(prefix)
        return message

    def _note_disconnect(self) -> None:
        if self._outage is None:
            self._count_disconnect()

    def _conn_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _conn_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
