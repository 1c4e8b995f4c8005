"""Per-minute rate limits modelled as the API documents them: token buckets that refill continuously.

The model (what the fake chose, where the API leaves room):

* Each limit is a bucket holding at most ``limit`` units that refills at ``limit / 60`` units per
  second of the server clock, continuously (no fixed minute windows).  A new bucket is full.
* Buckets: ``requests`` (1 per request), ``input-tokens`` (``input_tokens +
  cache_creation_input_tokens``: cache reads do not count, as for the API's ITPM), ``output-tokens``
  (the answer's ``output_tokens``: the fake knows them up front, so there is no estimate from
  ``max_tokens`` to settle later) and ``tokens`` (input + output).
* A request is admitted only if EVERY configured bucket holds its full cost; then all are charged.
  Otherwise nothing is charged and the answer is 429 ``rate_limit_error`` with ``retry-after``:
  whole seconds (rounded up, at least 1) until every short bucket holds the cost.  A request
  costing more than a whole bucket waits for the bucket to be full and is refused again: like the
  API, the fix is a smaller request.
* Headers, on every ``/v1/messages`` response while a limit is set:
  ``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`` for each
  of those buckets configured, and ``anthropic-ratelimit-tokens-*`` for the most restrictive token
  bucket in effect (of tokens, input-tokens and output-tokens: the one with the fewest whole units
  left, then the smallest limit).  ``remaining``
  is the whole units left after this request (the API rounds token counts to thousands; the fake
  gives them exactly, so small test limits stay readable); ``reset`` is when the bucket will be
  full again, RFC 3339 in UTC to the second, rounded up (``2027-01-15T08:00:01Z``).
* Only requests the fake would answer are charged: scripted faults, overload, auth and validation
  errors cost nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import ErrorReply

__all__ = ["RateLimits", "TokenBucket"]

_HEADER = "anthropic-ratelimit-"


def rfc3339(ts: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``, rounded up to the whole second."""
    return datetime.fromtimestamp(math.ceil(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenBucket:
    """One per-minute limit: ``limit`` units, refilled at ``limit / 60`` per second since ``now``."""

    def __init__(self, name: str, unit: str, limit: int, now: float) -> None:
        if limit <= 0:
            raise ValueError(f"a {unit} per minute limit must be positive, got {limit}")
        self.name = name
        self.unit = unit
        self.limit = limit
        self._level = float(limit)
        self._at = now

    @property
    def per_second(self) -> float:
        return self.limit / 60.0

    def level(self, now: float) -> float:
        """Units available at ``now`` (a clock that went back refills nothing)."""
        self._level = min(float(self.limit), self._level + max(0.0, now - self._at) * self.per_second)
        self._at = max(self._at, now)
        return self._level

    def seconds_until(self, amount: int, now: float) -> float:
        """How long until ``amount`` units are available (a full bucket for more than ``limit``)."""
        return max(0.0, (min(amount, self.limit) - self.level(now)) / self.per_second)

    def take(self, amount: int, now: float) -> None:
        self._level = self.level(now) - amount

    def headers(self, now: float, name: str | None = None) -> dict[str, str]:
        """``limit``/``remaining``/``reset`` headers under ``name`` (default: this bucket's)."""
        prefix = f"{_HEADER}{name or self.name}-"
        level = self.level(now)
        return {
            prefix + "limit": str(self.limit),
            prefix + "remaining": str(max(0, math.floor(level))),
            prefix + "reset": rfc3339(now + (self.limit - level) / self.per_second),
        }


@dataclass(frozen=True)
class _Shortfall:
    bucket: TokenBucket
    cost: int
    wait_s: float


class RateLimits:
    """The configured buckets of one server (None = no such limit) and the admission rule."""

    def __init__(self, clock: Callable[[], float], *, requests_per_minute: int | None = None,
                 tokens_per_minute: int | None = None, input_tokens_per_minute: int | None = None,
                 output_tokens_per_minute: int | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        wanted = (("requests", "requests", requests_per_minute), ("tokens", "tokens", tokens_per_minute),
                  ("input-tokens", "input tokens", input_tokens_per_minute),
                  ("output-tokens", "output tokens", output_tokens_per_minute))
        self._buckets = {name: TokenBucket(name, unit, limit, now) for name, unit, limit in wanted if limit is not None}

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def _costs(self, usage: dict) -> dict[str, int]:
        input_tokens = usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
        output_tokens = usage.get("output_tokens", 0)
        every = {"requests": 1, "tokens": input_tokens + output_tokens, "input-tokens": input_tokens,
                 "output-tokens": output_tokens}
        return {name: every[name] for name in self._buckets}

    def admit(self, usage: dict) -> ErrorReply | None:
        """Charge every bucket for a response with this ``usage``, or say why not (a 429)."""
        with self._lock:
            now = self._clock()
            costs = self._costs(usage)
            short = [_Shortfall(self._buckets[name], cost, self._buckets[name].seconds_until(cost, now))
                     for name, cost in costs.items() if self._buckets[name].level(now) < cost]
            if not short:
                for name, cost in costs.items():
                    self._buckets[name].take(cost, now)
                return None
        worst = max(short, key=lambda s: s.wait_s)
        retry_after = max(1, math.ceil(worst.wait_s))
        return ErrorReply(429, "rate_limit_error", _message(worst), {"retry-after": str(retry_after)})

    def headers(self) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for the buckets' state now (empty without limits)."""
        with self._lock:
            now = self._clock()
            headers: dict[str, str] = {}
            for bucket in self._buckets.values():
                if bucket.name != "tokens":
                    headers.update(bucket.headers(now))
            tightest = self._most_restrictive_tokens(now)
            if tightest is not None:
                headers.update(tightest.headers(now, "tokens"))
            return headers

    def _most_restrictive_tokens(self, now: float) -> TokenBucket | None:
        candidates = [b for name, b in self._buckets.items() if name != "requests"]
        return min(candidates, key=lambda b: (math.floor(b.level(now)), b.limit), default=None)


def _message(short: _Shortfall) -> str:
    bucket = short.bucket
    if short.cost > bucket.limit:
        return (f"This request needs {short.cost:,} {bucket.unit} but your rate limit is {bucket.limit:,} "
                f"{bucket.unit} per minute. Send a smaller request.")
    return (f"This request would exceed your rate limit of {bucket.limit:,} {bucket.unit} per minute. "
            "Wait for the time in the retry-after header; the anthropic-ratelimit-* headers show current usage.")
