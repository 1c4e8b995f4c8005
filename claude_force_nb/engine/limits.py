"""Client-side limits: requests/tokens per minute, and a spending budget.

Both live on the runner loop. The rate limiter keeps a sliding 60 s window so a burst
never exceeds the configured minute quota (pacing.Pacer consults it before every
attempt); the budget guard refuses a call whose worst-case cost could cross the budget
before anything is sent. The budget is money, not time: it needs no clock.

The worst case must hold for any text, so the budget counts one input token per UTF-8
byte of the system text and the task (:func:`input_token_bound`): a token covers at
least one byte, and a character outside the tokenizer's vocabulary (a rare ideograph,
an emoji) is split into its bytes, so even one token per character is not a bound.
For English this is about four times the real count, for CJK about three times; the
difference is only held while the call is in flight (its real cost is then counted).
``count_tokens`` would be exact but costs a round trip per call, and is rate limited.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ..core.errors import BudgetExceededError, InvalidInputError
from ..core.settings import budget_problem

__all__ = ["BudgetGuard", "RateLimiter", "format_usd", "input_token_bound"]

WINDOW_S = 60.0
# Tokens the API adds around a request's texts (role markers, the system block): a few;
# this is a generous ceiling for a request with one system text and one user message.
REQUEST_OVERHEAD_TOKENS = 32


def input_token_bound(*texts: str) -> int:
    """The most input tokens a request made of ``texts`` can count: one per UTF-8 byte, plus overhead."""
    return REQUEST_OVERHEAD_TOKENS + sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)


def format_usd(amount: float) -> str:
    """Dollars to the cent, or with the decimals it takes to show three significant
    digits of a smaller amount: "$5.00", "$0.05", "$0.001", "$0.0125"."""
    decimals = 2 if amount == 0 or abs(amount) >= 1 else max(2, 2 - math.floor(math.log10(abs(amount))))
    whole, _, fraction = f"{amount:,.{decimals}f}".partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


class RateLimiter:
    """Sliding-window limiter for requests and tokens per minute (None = unlimited).

    ``clock`` and ``sleep`` are injectable so tests can run minutes of waiting instantly.
    """

    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rpm, self.tpm, self.clock, self.sleep = requests_per_minute, tokens_per_minute, clock, sleep
        self._events: deque[tuple[float, int]] = deque()
        self._tokens_in_window = 0
        self._lock: asyncio.Lock | None = None

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None

    def check(self, tokens: int) -> None:
        """Refuse a call that could never fit the token quota, however long it waited."""
        if self.tpm is not None and tokens > self.tpm:
            raise InvalidInputError(
                f"A call of ~{tokens:,} tokens can never fit tokens_per_minute={self.tpm:,}: "
                f"raise the limit or shorten the task."
            )

    def _purge(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= WINDOW_S:
            _, n = self._events.popleft()
            self._tokens_in_window -= n

    def waits(self, tokens: int) -> dict[str, float]:
        """Seconds until a call of ``tokens`` fits, per limit that holds it back (empty = now)."""
        self.check(tokens)
        now = self.clock()
        self._purge(now)
        waits: dict[str, float] = {}
        if self.rpm is not None and len(self._events) >= self.rpm:
            waits["requests_per_minute"] = self._events[len(self._events) - self.rpm][0] + WINDOW_S - now
        if self.tpm is not None and self._tokens_in_window + tokens > self.tpm:
            excess = self._tokens_in_window + tokens - self.tpm
            for ts, n in self._events:
                excess -= n
                if excess <= 0:
                    waits["tokens_per_minute"] = ts + WINDOW_S - now
                    break
        return {name: wait for name, wait in waits.items() if wait > 0}

    def record(self, tokens: int) -> None:
        """Count a call that is being sent now."""
        self._events.append((self.clock(), tokens))
        self._tokens_in_window += tokens

    async def acquire(self, tokens: int = 0) -> float:
        """Wait until the call fits, record it, and return the seconds waited."""
        if self.unlimited:
            return 0.0
        if self._lock is None:
            self._lock = asyncio.Lock()
        started = self.clock()
        async with self._lock:  # FIFO: callers are served in arrival order
            while waits := self.waits(tokens):
                await self.sleep(max(waits.values()))
            self.record(tokens)
        return self.clock() - started


class BudgetGuard:
    """Tracks spend and refuses calls whose worst case would cross ``budget_usd``
    (None: no budget; anything else must be a finite amount of 0 or more)."""

    def __init__(self, budget_usd: float | None = None) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0

    @property
    def budget_usd(self) -> float | None:
        return self._budget_usd

    @budget_usd.setter
    def budget_usd(self, value: float | None) -> None:
        if (problem := budget_problem(value)) is not None:  # NaN would silently turn the guard off
            raise InvalidInputError(problem)
        self._budget_usd = value

    def reserve(self, worst_case_usd: float | None, model: str) -> float:
        """Hold ``worst_case_usd`` for an in-flight call; raise if it could cross the budget."""
        if self.budget_usd is None:
            return 0.0
        if worst_case_usd is None:
            raise BudgetExceededError(
                f"A budget of {format_usd(self.budget_usd)} is set but {model!r} has no price, so the call "
                f"cannot be checked: add the model to prices.json or unset the budget."
            )
        committed = self.spent_usd + self.reserved_usd
        if committed + worst_case_usd > self.budget_usd + 1e-12:
            left = max(0.0, self.budget_usd - committed)
            raise BudgetExceededError(
                f"Budget {format_usd(self.budget_usd)} would be exceeded: this call may cost up to "
                f"{format_usd(worst_case_usd)} and {format_usd(left)} is left. Raise it with `%agent budget USD` "
                f"(or Settings.budget_usd), lower max_tokens, or use a cheaper model."
            )
        self.reserved_usd += worst_case_usd
        return worst_case_usd

    def settle(self, reserved_usd: float, actual_usd: float | None) -> None:
        """Release a reservation and add what the call really cost."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.spent_usd += actual_usd or 0.0
