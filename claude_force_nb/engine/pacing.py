"""Pacing: how fast one orchestrator sends, so a run slows down instead of hitting 429s.

One Pacer is shared by every in-flight call of an orchestrator; each attempt runs inside
``async with pacer.slot(input_tokens, output_tokens) as slot`` and reports the response
headers with ``slot.observe(headers)`` as soon as they arrive. The slot learns from errors
by itself (the SDK's APIStatusError carries the status and headers). Before an attempt is
let through, the Pacer waits for all of:

- a pause: a 429 or 529 with ``retry-after-ms`` / ``retry-after`` (capped at
  ``max_pause_s``) holds back NEW attempts of the whole run until then, not only the
  retry of the call that got it;
- a free place under the allowed concurrency: a 529 (overload) halves it, at most once
  per wave of attempts (an overload seen by an attempt admitted before the last cut does
  not cut again); every ``allowed`` clean attempts in a row give one place back, up to
  ``max_concurrent`` (additive increase, multiplicative decrease);
- the API's own budget, from ``anthropic-ratelimit-{requests,tokens,input-tokens,
  output-tokens}-{limit,remaining,reset}``: Anthropic refills each limit continuously,
  reaching ``limit`` at ``reset`` (RFC 3339), so ``remaining`` can be spent now and more
  arrives at ``(limit - remaining) / seconds_to_reset`` per second; the attempts admitted
  after the one whose answer brought the reading are on their way and count as spent. An
  attempt waits until its estimate fits, which spreads the budget up to the reset instead
  of running into 429
  (``follow_headers=False`` ignores them: benchmarks/rate_limits.py compares both);
- the user's ``requests_per_minute`` / ``tokens_per_minute`` (limits.RateLimiter).

Attempts are admitted in arrival order; a freed place goes straight to the next waiter, and
an attempt that finds no queue and nothing holding the run back goes through without
waiting. ``stats()`` gives the counters for reports and a one-line ``status`` such as
``"paced: 429, resuming in 1.2s"``; each Slot records how long it was held back and whether
it met a 429 or 529 (CallPacing sums them for one call). Everything runs on the runner loop;
``clock``, ``wall_clock`` and ``sleep`` are injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

import anthropic

from .limits import RateLimiter
from .retry import OVERLOADED, retry_after_s

__all__ = ["CallPacing", "Pacer", "PacingStats", "RateLimit", "Slot", "read_rate_limits"]

RATE_LIMITED = 429
RATELIMIT_PREFIX = "anthropic-ratelimit-"
LIMIT_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
LIMITS_REFILL_WITHIN_S = 60.0  # the API's limits are per minute: a later reset is not believed
STREAM_ERROR_STATUS = {"rate_limit_error": RATE_LIMITED, "overloaded_error": OVERLOADED}


@dataclass(frozen=True)
class RateLimit:
    """One ``anthropic-ratelimit-<kind>-*`` triple, as read from a response."""

    limit: int
    remaining: int
    reset_in_s: float


def read_rate_limits(headers: Mapping[str, str], now_wall: float) -> dict[str, RateLimit]:
    """The complete ``anthropic-ratelimit-*`` triples in ``headers`` (``now_wall`` = epoch seconds)."""
    found: dict[str, RateLimit] = {}
    # one pass over the headers: an HTTP client's header lookup scans them all every time
    ours = {name.lower(): value for name, value in headers.items() if name.lower().startswith(RATELIMIT_PREFIX)}
    for kind in LIMIT_KINDS if ours else ():
        prefix = f"{RATELIMIT_PREFIX}{kind}-"
        limit, remaining, reset = (ours.get(prefix + name) for name in ("limit", "remaining", "reset"))
        if limit is None or remaining is None or reset is None:
            continue
        try:
            reset_at = datetime.fromisoformat(reset.strip()).timestamp()
            found[kind] = RateLimit(int(limit), int(remaining),
                                    min(max(0.0, reset_at - now_wall), LIMITS_REFILL_WITHIN_S))
        except ValueError:
            continue  # a header we cannot read is no reason to stop the run
    return found


class _Bucket:
    """What one API limit allows from now on: the last reading, refilled, minus what we sent since.

    ``spent`` starts with what was admitted after the attempt whose response this is: those
    requests are on their way and the server had not counted them yet when it answered.
    """

    def __init__(self, reading: RateLimit, observed_at: float, spent: int = 0) -> None:
        self.limit, self.remaining, self.observed_at = reading.limit, reading.remaining, observed_at
        missing = reading.limit - reading.remaining
        if missing > 0 and reading.reset_in_s > 0:
            self.refill_per_s = missing / reading.reset_in_s
        else:
            self.refill_per_s = reading.limit / LIMITS_REFILL_WITHIN_S
        self.spent = spent

    def delay(self, need: int, now: float) -> float:
        """Seconds until ``need`` fits (0 = now; also 0 if it never can: the API will say so)."""
        if need <= 0 or need > self.limit or self.refill_per_s <= 0:
            return 0.0
        available = min(self.limit, self.remaining + self.refill_per_s * (now - self.observed_at)) - self.spent
        return max(0.0, (need - available) / self.refill_per_s)


@dataclass(frozen=True)
class PacingStats:
    """What the Pacer has done so far and whether it holds the run back now."""

    rate_limited: int       # 429 answers (and rate_limit_error stream events) seen
    overloaded: int         # 529 answers (and overloaded_error stream events) seen
    waited_s: float         # seconds new attempts were held back by pacing
    concurrency: int        # attempts allowed in flight now
    max_concurrency: int
    in_flight: int
    reason: str | None      # why attempts are held back now ("429", "input-tokens limit", ...)
    resume_in_s: float | None

    @property
    def pacing(self) -> bool:
        return self.reason is not None or self.concurrency < self.max_concurrency

    @property
    def status(self) -> str:
        """One line for a report, e.g. ``"paced: 429, resuming in 1.2s"``."""
        parts = []
        if self.reason is not None:
            parts.append(f"{self.reason}, resuming in {self.resume_in_s or 0.0:.1f}s")
        if self.concurrency < self.max_concurrency:
            parts.append(f"concurrency {self.concurrency} of {self.max_concurrency} after {OVERLOADED}")
        return "paced: " + "; ".join(parts) if parts else "not paced"


@dataclass
class CallPacing:
    """What one call met on its way, over all its attempts: for its AgentResult."""

    rate_limited: int = 0   # attempts answered 429 (or a rate_limit_error event)
    overloaded: int = 0     # attempts answered 529 (or an overloaded_error event)
    waited_s: float = 0.0   # held back by the run's pacing, plus the waits between its retries

    def add(self, slot: Slot) -> None:
        """Count an attempt that is over."""
        self.rate_limited += slot.throttled == RATE_LIMITED
        self.overloaded += slot.throttled == OVERLOADED
        self.waited_s += slot.held_s


class Slot:
    """One attempt's place in the run: ``async with pacer.slot(...) as slot``.

    It needs one request, ``input_tokens`` of the input limit, ``output_tokens`` (max_tokens)
    of the output limit, and both of the combined ``tokens`` limit and of tokens_per_minute.
    """

    def __init__(self, pacer: Pacer, input_tokens: int, output_tokens: int) -> None:
        self._pacer = pacer
        self.needs = {"requests": 1, "tokens": input_tokens + output_tokens,
                      "input-tokens": input_tokens, "output-tokens": output_tokens}
        self.wave = 0  # the Pacer's concurrency cuts so far when this attempt was admitted
        self.held_s = 0.0  # how long pacing (pauses, limits) held this attempt back
        self.throttled: int | None = None  # 429 or 529 if that is how the attempt ended
        self.sent_through: dict[str, int] = {}  # the Pacer's totals admitted up to this attempt

    def observe(self, headers: Mapping[str, str]) -> None:
        """The response headers arrived (stream opened or reply received): read the API's limits."""
        self._pacer._read_limits(headers, self)

    async def __aenter__(self) -> Slot:
        await self._pacer._admit(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._pacer._release(self, exc)


class _Waiter:
    """An attempt in the admission queue; ``turn`` resolves to None (let in) or (seconds, reason) to hold."""

    __slots__ = ("slot", "turn")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.turn: asyncio.Future[tuple[float, str] | None] = asyncio.get_running_loop().create_future()

    def admitted(self) -> bool:
        return self.turn.done() and not self.turn.cancelled() and self.turn.result() is None


class Pacer:
    """Shared by all calls of one orchestrator; see the module docstring."""

    def __init__(
        self,
        max_concurrent: int,
        *,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_pause_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        follow_headers: bool = True,
    ) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self.follow_headers = follow_headers  # False: ignore the anthropic-ratelimit-* headers
        self.max_pause_s = max_pause_s
        self.clock, self.wall_clock, self.sleep = clock, wall_clock, sleep
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute, clock=clock)
        self.rate_limited = self.overloaded = 0
        self.waited_s = 0.0
        self._allowed = self.max_concurrent
        self._wave = 0
        self._clean_in_a_row = 0
        self._in_flight = 0
        self._paused_until = 0.0
        self._pause_reason: str | None = None
        self._holding: tuple[float, str] | None = None  # (until, reason) while the head of the queue waits
        self._buckets: dict[str, _Bucket] = {}
        self._sent = dict.fromkeys(LIMIT_KINDS, 0)  # admitted so far, per API limit
        self._waiting: deque[_Waiter] = deque()  # FIFO admission

    def _after_fork(self) -> None:
        """In a forked child: the parent's attempts are not ours, its asyncio primitives not our loop's."""
        self._in_flight = 0
        self._holding = None
        self._waiting = deque()

    def slot(self, input_tokens: int = 0, output_tokens: int = 0) -> Slot:
        """A place for one attempt that will send about this many tokens in and (at most) out."""
        return Slot(self, input_tokens, output_tokens)

    def set_max_concurrent(self, n: int) -> None:
        """A new ceiling from the user; a cut after overload stays in force below it.

        Safe from any thread (it only sets numbers): attempts already waiting see a raised
        ceiling when the next attempt in flight finishes.
        """
        reduced = self._allowed < self.max_concurrent
        self.max_concurrent = max(1, n)
        self._allowed = min(self._allowed, self.max_concurrent) if reduced else self.max_concurrent

    def stats(self) -> PacingStats:
        now = self.clock()
        reason: str | None = None
        resume_at = 0.0
        if self._holding is not None:
            resume_at, reason = self._holding
        elif self._paused_until > now:
            resume_at, reason = self._paused_until, self._pause_reason
        return PacingStats(
            rate_limited=self.rate_limited,
            overloaded=self.overloaded,
            waited_s=self.waited_s,
            concurrency=self._allowed,
            max_concurrency=self.max_concurrent,
            in_flight=self._in_flight,
            reason=reason,
            resume_in_s=max(0.0, resume_at - now) if reason is not None else None,
        )

    @property
    def status(self) -> str:
        return self.stats().status

    # -- admission --------------------------------------------------------------------------

    async def _admit(self, slot: Slot) -> None:
        self.limiter.check(slot.needs["tokens"])  # a call that can never fit fails before it queues
        arrived, held_before = self.clock(), self.waited_s
        try:
            await self._take_place(slot)
        finally:
            # Holds are served one at a time by the head of the queue; this attempt was held
            # back by those that ran while it waited (capped by how long it waited at all).
            slot.held_s = min(self.clock() - arrived, self.waited_s - held_before)

    async def _take_place(self, slot: Slot) -> None:
        if not self._waiting and self._in_flight < self._allowed and self._longest_wait(slot)[0] <= 0:
            self._enter(slot)  # the fast path: nobody queues and nothing holds the run back
            return
        waiter = _Waiter(slot)
        self._waiting.append(waiter)
        try:
            self._dispatch()
            while (hold := await waiter.turn) is not None:
                await self._hold(*hold)  # as the head of the queue; nobody passes meanwhile
                waiter.turn = asyncio.get_running_loop().create_future()
                self._dispatch()
        except BaseException:
            if waiter.admitted():
                self._in_flight -= 1  # let in, but cancelled before it could use its place
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            self._dispatch()
            raise

    def _dispatch(self) -> None:
        """Hand free places to the waiters in arrival order, or tell the head how long to hold.

        Runs where places free up (a release, a waiter leaving, a hold ending), so a freed
        place goes straight to the next waiter without a hand-off through the loop.
        """
        while self._waiting and self._in_flight < self._allowed:
            head = self._waiting[0]
            if head.turn.cancelled():
                self._waiting.popleft()
                continue
            if head.turn.done():
                return  # the head was told to hold and has not started yet
            wait, reason = self._longest_wait(head.slot)
            if wait > 0:
                head.turn.set_result((wait, reason))
                return
            self._waiting.popleft()
            self._enter(head.slot)
            head.turn.set_result(None)

    def _enter(self, slot: Slot) -> None:
        self._spend(slot)
        slot.wave = self._wave
        self._in_flight += 1

    def _longest_wait(self, slot: Slot) -> tuple[float, str]:
        now = self.clock()
        waits = self.limiter.waits(slot.needs["tokens"])
        if self._paused_until > now:
            waits[self._pause_reason or "pause"] = self._paused_until - now
        for kind, bucket in self._buckets.items():
            waits[f"{kind} limit"] = bucket.delay(slot.needs[kind], now)
        reason = max(waits, key=waits.__getitem__, default="")
        return waits.get(reason, 0.0), reason

    async def _hold(self, wait: float, reason: str) -> None:
        started = self.clock()
        self._holding = (started + wait, reason)
        try:
            await self.sleep(wait)
        finally:
            self._holding = None
            self.waited_s += self.clock() - started

    def _spend(self, slot: Slot) -> None:
        self.limiter.record(slot.needs["tokens"])
        for kind in LIMIT_KINDS:
            self._sent[kind] += slot.needs[kind]
        slot.sent_through = dict(self._sent)
        for kind, bucket in self._buckets.items():
            bucket.spent += slot.needs[kind]

    # -- what attempts report -----------------------------------------------------------------

    def _release(self, slot: Slot, exc: BaseException | None) -> None:
        self._in_flight -= 1
        if exc is None:
            self._clean_in_a_row += 1
            if self._allowed < self.max_concurrent and self._clean_in_a_row >= self._allowed:
                self._allowed += 1
                self._clean_in_a_row = 0
        else:
            self._learn_from(slot, exc)
        self._dispatch()

    def _learn_from(self, slot: Slot, exc: BaseException) -> None:
        if not isinstance(exc, asyncio.CancelledError):
            self._clean_in_a_row = 0
        if isinstance(exc, anthropic.APIStatusError):
            headers = exc.response.headers
            self._read_limits(headers, slot)
            status = STREAM_ERROR_STATUS.get(exc.type or "", 0) if exc.status_code == 200 else exc.status_code
            if status in (RATE_LIMITED, OVERLOADED):
                self._slow_down(slot, status, headers)

    def _slow_down(self, slot: Slot, status: int, headers: Mapping[str, str]) -> None:
        slot.throttled = status
        if status == RATE_LIMITED:
            self.rate_limited += 1
        else:
            self.overloaded += 1
            if slot.wave == self._wave:  # one cut per wave of attempts
                self._allowed = max(1, self._allowed // 2)
                self._wave += 1
        hint = retry_after_s(headers)
        if hint is not None:
            until = self.clock() + min(hint, self.max_pause_s)
            if until > self._paused_until:
                self._paused_until, self._pause_reason = until, str(status)

    def _read_limits(self, headers: Mapping[str, str], slot: Slot) -> None:
        if not self.follow_headers:
            return
        now = self.clock()
        for kind, reading in read_rate_limits(headers, self.wall_clock()).items():
            in_transit = self._sent[kind] - slot.sent_through.get(kind, self._sent[kind])
            self._buckets[kind] = _Bucket(reading, now, spent=in_transit)
