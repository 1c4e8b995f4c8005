"""What is retried, how long to wait, and when to stop trying (circuit breaker).

The SDK client is built with ``max_retries=0``: this module owns retries.

- Retried: HTTP 408, 409, 429 and every status >= 500 (529 included); connection
  errors and timeouts (including a stream cut mid-body, which the SDK surfaces as a raw
  ``httpx2`` transport error); mid-stream ``overloaded_error`` / ``api_error`` events;
  a stream that ended without a stop_reason.
- Never retried: 400, 401, 402, 403, 404, 413, 422 and anything else.
- ``x-should-retry: true|false`` from the server overrides the status rule.
- Waits: ``retry-after-ms`` then ``retry-after`` (seconds) when present, capped;
  otherwise exponential backoff with jitter. Every wait is capped by
  ``Settings.retry_max_wait_s``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anthropic
import httpx2
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from ..core.errors import CircuitOpenError, IncompleteResponseError

__all__ = ["CircuitBreaker", "is_retryable", "retrying", "server_wait_hint", "with_retries"]

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429})
RETRY_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})


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
        (anthropic.APIConnectionError, httpx2.TransportError, asyncio.TimeoutError, IncompleteResponseError),
    )


def server_wait_hint(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then retry-after), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
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


class _Wait:
    """tenacity wait: the server's hint if given, else jittered exponential backoff."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s, self.max_s = base_s, max_s

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = server_wait_hint(exc)
        if hint is None:
            n = state.attempt_number - 1
            hint = min(self.base_s * 2**n, 16 * self.base_s)
            hint *= 1 - 0.25 * random.random()
        return min(hint, self.max_s)


def retrying(*, attempts: int, base_wait_s: float, max_wait_s: float, before_sleep: Any = None) -> AsyncRetrying:
    """The retry policy as a tenacity AsyncRetrying (the last exception is re-raised)."""
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        retry=retry_if_exception(is_retryable),
        wait=_Wait(base_wait_s, max_wait_s),
        reraise=True,
        before_sleep=before_sleep,
    )


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, attempts: int, base_wait_s: float, max_wait_s: float, before_sleep: Any = None
) -> T:
    """``await attempt()`` under the retry policy of ``retrying``.

    The first attempt runs bare; tenacity's machinery (2-4% of a streamed call's time in
    benchmarks/orchestrator.py) is built only after a retryable failure, which is then replayed into it
    as attempt 1, so the waits, the ``before_sleep`` hook and the attempt count are exactly
    tenacity's.
    """
    try:
        return await attempt()
    except Exception as exc:
        if attempts <= 1 or not is_retryable(exc):
            raise
        first: BaseException | None = exc
    async for state in retrying(attempts=attempts, base_wait_s=base_wait_s, max_wait_s=max_wait_s,
                                before_sleep=before_sleep):
        with state:
            if first is not None:
                replay, first = first, None
                raise replay
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover


class CircuitBreaker:
    """Fail fast after ``threshold`` consecutive failed attempts; probe again after ``reset_s``.

    Closed → (threshold failures) → open: calls raise CircuitOpenError at once →
    (reset_s elapsed) → half-open: one probe is let through; success closes, failure re-opens.
    Only retryable (server-side) failures count; a 400 says nothing about the service.
    """

    def __init__(self, threshold: int, reset_s: float, clock: Any = time.monotonic) -> None:
        self.threshold, self.reset_s, self.clock = threshold, reset_s, clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def before_call(self) -> None:
        with self._lock:
            state = self.state
            if state == "closed":
                return
            if state == "half-open" and not self._probing:
                self._probing = True
                return
            wait = max(0.0, self.reset_s - (self.clock() - (self.opened_at or 0)))
            raise CircuitOpenError(
                f"The API failed {self.failures} times in a row; calls fail fast for another "
                f"{wait:.0f}s. Check the service status or your network, then retry.",
                error_type="circuit_open",
            )

    def abandon(self) -> None:
        """A call was cancelled: it proves nothing either way, but frees the probe slot."""
        with self._lock:
            self._probing = False

    def record(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()
