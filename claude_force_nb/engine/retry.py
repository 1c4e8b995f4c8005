"""What is retried, how long to wait, and when the API counts as unreachable (circuit breaker).

The SDK client is built with ``max_retries=0``: this module owns retries.

- Retried: HTTP 408, 409, 429 and every status >= 500 (529 included); connection
  errors and timeouts (including a stream cut mid-body, which the SDK surfaces as a raw
  ``httpx2`` transport error); mid-stream ``overloaded_error`` / ``api_error`` events;
  a stream that ended without a stop_reason; a stalled stream (no progress, like a
  timeout); an open circuit (the call waits for the breaker's test call within its own attempts).
- Never retried: 400, 401, 402, 403, 404, 413, 422; a malformed 200 (not the API's format:
  it may have been billed, and what sends it sends it again); anything else.
- ``x-should-retry: true|false`` from the server overrides the status rule.
- Waits: ``retry-after-ms`` then ``retry-after`` (seconds) when present; while the
  circuit is open, the time until its test call; otherwise exponential backoff with
  jitter. Every wait is capped by ``Settings.retry_max_wait_s``.

429 and 529 mean "come back later", not "the service is gone": they pace the run
(pacing.py) and never open the circuit. Only evidence that the API cannot be reached
(connection failures, timeouts and stalled streams, 5xx other than 529) counts, once per call after its
retries, so a burst of concurrent attempts failing together is not mistaken for a pattern.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import anthropic
import httpx2
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from ..core.errors import CircuitOpenError, IncompleteResponseError, StalledStreamError

__all__ = [
    "CircuitBreaker",
    "counts_against_service",
    "is_retryable",
    "retry_after_s",
    "retrying",
    "server_wait_hint",
    "with_retries",
]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

RETRY_STATUSES = frozenset({408, 409, 429})
RETRY_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})
OVERLOADED = 529
# Mid-stream error events that are the 5xx of a stream: the service broke, it is not merely busy.
SERVER_FAULT_STREAM_ERRORS = frozenset({"api_error", "timeout_error"})


def _should_retry_header(exc: anthropic.APIStatusError) -> bool | None:
    value = exc.response.headers.get("x-should-retry") if exc.response is not None else None
    if value is None:
        return None
    return value.strip().lower() == "true"


def is_retryable(exc: BaseException) -> bool:
    """True for failures worth another attempt (see the module docstring)."""
    if isinstance(exc, anthropic.APIStatusError):
        hint = _should_retry_header(exc)
        if hint is not None:
            return hint
        if exc.status_code == 200:  # an `event: error` inside a 200 stream
            return (exc.type or "") in RETRY_STREAM_ERRORS
        return exc.status_code in RETRY_STATUSES or exc.status_code >= 500
    return isinstance(
        exc,
        (anthropic.APIConnectionError, httpx2.TransportError, asyncio.TimeoutError, IncompleteResponseError,
         StalledStreamError, CircuitOpenError),
    )


def counts_against_service(exc: BaseException) -> bool:
    """True when a failure is evidence that the API cannot be reached or is broken.

    Connection failures, timeouts, stalled streams and 5xx answers other than 529 count. 429 and 529 (and
    their mid-stream events) say the service is there but wants less from us now; a 4xx,
    a truncated stream or a bug in a callback says nothing about the service.
    """
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code == 200:
            return (exc.type or "") in SERVER_FAULT_STREAM_ERRORS
        return exc.status_code >= 500 and exc.status_code != OVERLOADED
    return isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError, asyncio.TimeoutError,
                            StalledStreamError))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asked us to wait (``retry-after-ms``, then ``retry-after``), if any."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def server_wait_hint(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then retry-after), if any."""
    response = getattr(exc, "response", None)
    return None if response is None else retry_after_s(response.headers)


class _Wait:
    """tenacity wait: the server's hint (or the breaker's) if given, else jittered exponential backoff."""

    def __init__(self, base_s: float, max_s: float, breaker: CircuitBreaker | None) -> None:
        self.base_s, self.max_s, self.breaker = base_s, max_s, breaker

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, CircuitOpenError) and self.breaker is not None:
            hint = self.breaker.retry_in()
        else:
            hint = server_wait_hint(exc)
        if hint is None:
            n = state.attempt_number - 1
            hint = min(self.base_s * 2**n, 16 * self.base_s)
            hint *= 1 - 0.25 * random.random()
        return min(hint, self.max_s)


def retrying(
    *,
    attempts: int,
    base_wait_s: float,
    max_wait_s: float,
    before_sleep: Any = None,
    breaker: CircuitBreaker | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncRetrying:
    """The retry policy as a tenacity AsyncRetrying (the last exception is re-raised)."""
    return AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(max(1, attempts)),
        retry=retry_if_exception(is_retryable),
        wait=_Wait(base_wait_s, max_wait_s, breaker),
        reraise=True,
        before_sleep=before_sleep,
    )


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, breaker: CircuitBreaker | None = None, **policy: Any
) -> T:
    """``await attempt()`` under the retry policy of ``retrying`` (``policy``: its keyword arguments).

    With a ``breaker``, every attempt goes through ``breaker.attempt()`` (an open circuit
    raises CircuitOpenError, retried after ``breaker.retry_in()``), and a call that fails
    after all its attempts is reported once with ``breaker.call_failed``.

    The first attempt runs bare; tenacity's machinery (2-4% of a streamed call's time in
    benchmarks/orchestrator.py) is built only after a retryable failure, which is then replayed into it
    as attempt 1, so the waits, the ``before_sleep`` hook and the attempt count are exactly
    tenacity's.
    """

    async def guarded() -> T:
        if breaker is None:
            return await attempt()
        with breaker.attempt():
            return await attempt()

    try:
        return await _retry(guarded, policy["attempts"], lambda: retrying(breaker=breaker, **policy))
    except Exception as exc:
        if breaker is not None:
            breaker.call_failed(exc)
        raise


async def _retry(attempt: Callable[[], Awaitable[T]], attempts: int, policy: Callable[[], AsyncRetrying]) -> T:
    try:
        return await attempt()
    except Exception as exc:
        if attempts <= 1 or not is_retryable(exc):
            raise
        first: BaseException | None = exc
    async for state in policy():
        with state:
            if first is not None:
                replay, first = first, None
                raise replay
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover


class CircuitBreaker:
    """Stop sending while the API is unreachable; let one test call (probe) through after ``reset_s``.

    Closed → (``threshold`` calls in a row failed, after their retries, with connection
    errors, timeouts or 5xx other than 529) → open: attempts raise CircuitOpenError, which
    ``with_retries`` retries after ``retry_in()`` seconds → (``reset_s`` elapsed) → half-open:
    one attempt probes the API; any answer from the API closes the circuit, another
    connection failure re-opens it for ``reset_s``. Any answer (even a 429 or a 400) proves
    the API reachable and resets the count.
    """

    def __init__(self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.reset_s, self.clock = threshold, reset_s, clock
        self.failures = 0  # calls in a row that found the API unreachable
        self.opened_at: float | None = None
        self.last_failure: str | None = None
        self._probing = False
        self._lock = threading.Lock()

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock, and its probe is not ours."""
        self._lock = threading.Lock()
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def retry_in(self) -> float | None:
        """Seconds until an attempt may go out: 0 when it may now, None while a probe is out."""
        with self._lock:
            if self.opened_at is None:
                return 0.0
            if self._probing:
                return None
            return max(0.0, self.reset_s - (self.clock() - self.opened_at))

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Around one attempt: raise CircuitOpenError while open, learn from how it ended."""
        probe = self._admit()
        try:
            yield
        except BaseException as exc:
            self._attempt_ended(probe, exc)
            raise
        self._attempt_ended(probe, None)

    def call_failed(self, exc: BaseException) -> None:
        """A call gave up after its retries; count it if it found the API unreachable."""
        if not counts_against_service(exc):
            return
        with self._lock:
            self.failures += 1
            self.last_failure = _describe(exc)
            if self.opened_at is None and self.failures >= self.threshold:
                self.opened_at = self.clock()

    def _admit(self) -> bool:
        """Let an attempt through (True if it is the half-open probe) or raise CircuitOpenError."""
        with self._lock:
            state = self.state
            if state == "closed":
                return False
            if state == "half-open" and not self._probing:
                self._probing = True
                return True
            raise CircuitOpenError(self._open_message(), error_type="circuit_open")

    def _attempt_ended(self, probe: bool, exc: BaseException | None) -> None:
        with self._lock:
            if probe:
                self._probing = False
            if exc is None or (isinstance(exc, anthropic.APIStatusError) and not counts_against_service(exc)):
                self.failures, self.opened_at = 0, None  # the API answered
            elif probe and counts_against_service(exc):
                self.opened_at = self.clock()  # still unreachable: wait another reset_s
                self.last_failure = _describe(exc)

    def _open_message(self) -> str:
        cause = f" (last: {self.last_failure})" if self.last_failure else ""
        if self._probing:
            when = "a test call is checking whether it is back"
        else:
            wait = max(0.0, self.reset_s - (self.clock() - (self.opened_at or 0.0)))
            when = f"the next test call goes out in {wait:.0f}s"
        return (
            f"The API could not be reached by {self.failures} call{'s' if self.failures != 1 else ''} "
            f"in a row{cause}; {when}. "
            f"Check the service status or your network, then retry."
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        return f"HTTP {exc.status_code}" if exc.status_code != 200 else f"stream {exc.type}"
    return type(exc).__name__
