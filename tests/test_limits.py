"""requests/tokens per minute and the spending budget, on an injected clock (nothing really waits)."""

from __future__ import annotations

import asyncio

import pytest

from claude_force_nb.core.errors import BudgetExceededError, InvalidInputError
from claude_force_nb.engine.limits import BudgetGuard, RateLimiter

from .clocks import FakeClock

HAIKU = "claude-haiku-4-5"


def test_rate_limiter_names_what_holds_a_call_back():
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=1000, clock=clock)
    assert limiter.waits(100) == {}
    limiter.record(100)
    clock.advance(10)
    limiter.record(100)
    clock.advance(10)
    assert limiter.waits(100) == {"requests_per_minute": 40.0}   # the third request waits for the first to leave
    clock.advance(41)
    assert limiter.waits(900) == {}                             # the 0 s call left the window
    assert limiter.waits(950) == {"tokens_per_minute": 9.0}     # tokens: wait for the 10 s call to leave
    with pytest.raises(InvalidInputError, match="can never fit tokens_per_minute=1,000"):
        limiter.waits(1001)


def test_acquire_sleeps_exactly_until_the_call_fits_in_arrival_order():
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(requests_per_minute=2, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def one(n: int) -> float:
        waited = await limiter.acquire()
        order.append(n)
        return waited

    async def main() -> list[float]:
        return await asyncio.gather(*(one(n) for n in range(5)))

    assert asyncio.run(main()) == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert order == [0, 1, 2, 3, 4] and clock.sleeps == [60.0, 60.0]


def test_unlimited_acquire_never_waits():
    clock = FakeClock()
    assert asyncio.run(RateLimiter(clock=clock, sleep=clock.sleep).acquire(5)) == 0.0 and clock.sleeps == []


def test_budget_guard_counts_in_flight_reservations():
    guard = BudgetGuard(1.0)
    first = guard.reserve(0.6, "m")
    with pytest.raises(BudgetExceededError, match="\\$0.40 is left"):
        guard.reserve(0.5, "m")
    guard.settle(first, 0.1)
    assert guard.spent_usd == 0.1 and guard.reserve(0.5, "m") == 0.5


def test_budget_refuses_an_unpriced_model_rather_than_guess():
    with pytest.raises(BudgetExceededError, match="'claude-imaginary-9' has no price"):
        BudgetGuard(1.0).reserve(None, "claude-imaginary-9")
    assert BudgetGuard(None).reserve(None, "claude-imaginary-9") == 0.0


def test_budget_refuses_before_sending(make_orch, server):
    orch = make_orch(budget_usd=0.01)
    with pytest.raises(BudgetExceededError, match=r"Budget \$0.01 would be exceeded"):
        orch.run_sync("assistant", "expensive", model="claude-opus-4-6", max_tokens=4000)
    assert server.request_count == 0
    assert orch.run_sync("assistant", "cheap", model=HAIKU, max_tokens=50).ok
    assert orch.budget.spent_usd == orch.ledger.rows()[0]["cost_usd"] > 0
