"""The Pacer: pauses after 429/529, concurrency cut on overload and won back step by step, the API's
rate-limit headers spread over time, and the user's per-minute caps; on an injected clock, with the
real SDK over HTTP where the fake server can produce the answer."""

from __future__ import annotations

import asyncio

import anthropic
import httpx2
import pytest

from claude_force_nb.core.errors import InvalidInputError
from claude_force_nb.engine.pacing import CallPacing, Pacer, RateLimit, read_rate_limits
from claude_force_nb.engine.retry import CircuitBreaker, with_retries
from claude_force_nb.testing import Fault

from .clocks import FakeClock
from .conftest import TEST_KEY
from .test_retry import status_error

HAIKU = "claude-haiku-4-5"


def make_pacer(clock: FakeClock, max_concurrent: int = 8, **kw) -> Pacer:
    return Pacer(max_concurrent, clock=clock, wall_clock=clock.wall, sleep=clock.sleep, **kw)


async def attempt(pacer: Pacer, outcome: BaseException | None = None, gate: asyncio.Event | None = None,
                  input_tokens: int = 100, output_tokens: int = 100) -> None:
    """One attempt in a slot: optionally wait for ``gate``, then end cleanly or with ``outcome``."""
    async with pacer.slot(input_tokens, output_tokens):
        if gate is not None:
            await gate.wait()
        if outcome is not None:
            raise outcome


async def until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0)


def limits(clock: FakeClock, kind: str, limit: int, remaining: int, reset_in_s: float) -> dict[str, str]:
    prefix = f"anthropic-ratelimit-{kind}-"
    return {prefix + "limit": str(limit), prefix + "remaining": str(remaining), prefix + "reset": clock.rfc3339(reset_in_s)}


def test_reads_the_rate_limit_headers():
    clock = FakeClock()
    headers = httpx2.Headers({**limits(clock, "requests", 50, 49, 1.5), **limits(clock, "Output-Tokens", 8000, 0, 12),
                              **limits(clock, "tokens", 10, 5, 3600),               # not a per-minute reset
                              "anthropic-ratelimit-input-tokens-limit": "40000"})     # incomplete: ignored
    assert read_rate_limits(headers, clock.wall()) == {
        "requests": RateLimit(50, 49, 1.5), "output-tokens": RateLimit(8000, 0, 12.0), "tokens": RateLimit(10, 5, 60.0)}
    garbled = {**limits(clock, "requests", 50, 49, 1), "anthropic-ratelimit-requests-reset": "in a while"}
    assert read_rate_limits(garbled, clock.wall()) == {}


def test_a_429_pauses_new_attempts_of_the_whole_run(server):
    clock = FakeClock()
    pacer = make_pacer(clock)
    server.fail_next(429, retry_after_ms=1500)

    async def main() -> None:
        async with anthropic.AsyncAnthropic(api_key=TEST_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(anthropic.RateLimitError):
                async with pacer.slot(10, 64):
                    await client.messages.create(model=HAIKU, max_tokens=64, messages=[{"role": "user", "content": "a"}])
        assert pacer.status == "paced: 429, resuming in 1.5s"
        clock.advance(0.3)
        assert pacer.status == "paced: 429, resuming in 1.2s"
        await attempt(pacer)  # another call's first attempt waits for the rest of the pause

    asyncio.run(main())
    stats = pacer.stats()
    assert clock.sleeps == [pytest.approx(1.2)] and stats.waited_s == pytest.approx(1.2)
    assert (stats.rate_limited, stats.overloaded, stats.concurrency, stats.status) == (1, 0, 8, "not paced")


def test_a_long_retry_after_is_capped():
    clock = FakeClock()
    pacer = make_pacer(clock, max_pause_s=20.0)

    async def main() -> None:
        with pytest.raises(anthropic.APIStatusError):
            await attempt(pacer, status_error(529, {"retry-after": "600"}))
        await attempt(pacer)

    asyncio.run(main())
    assert clock.sleeps == [20.0] and pacer.stats().overloaded == 1


def test_overload_halves_concurrency_once_per_wave_and_it_recovers_step_by_step():
    clock = FakeClock()
    pacer = make_pacer(clock)

    async def main() -> None:
        gate = asyncio.Event()
        wave = [asyncio.create_task(attempt(pacer, status_error(529), gate)) for _ in range(3)]
        await until(lambda: pacer.stats().in_flight == 3)
        gate.set()
        await asyncio.gather(*wave, return_exceptions=True)
        assert (pacer.stats().concurrency, pacer.stats().overloaded) == (4, 3)  # one cut for the wave, not 8 → 1
        with pytest.raises(anthropic.APIStatusError):                           # admitted after the cut: cuts again
            await attempt(pacer, status_error(200, etype="overloaded_error"))   # (a mid-stream overload)
        assert pacer.status == "paced: concurrency 2 of 8 after 529"
        for allowed in range(3, 9):
            for _ in range(allowed - 1):
                await attempt(pacer)
            assert pacer.stats().concurrency == allowed  # one place back per `allowed` clean attempts

    asyncio.run(main())
    assert pacer.status == "not paced" and clock.sleeps == []  # a 529 without retry-after pauses no one


def test_only_clean_attempts_in_a_row_win_a_place_back():
    pacer = make_pacer(FakeClock(), max_concurrent=4)

    async def main() -> None:
        with pytest.raises(anthropic.APIStatusError):
            await attempt(pacer, status_error(529))
        await attempt(pacer)
        with pytest.raises(anthropic.APIConnectionError):
            await attempt(pacer, anthropic.APIConnectionError(request=httpx2.Request("POST", "http://x")))
        with pytest.raises(asyncio.CancelledError):
            await attempt(pacer, asyncio.CancelledError())   # a cancel proves nothing: the streak goes on
        await attempt(pacer)
        assert pacer.stats().concurrency == 2
        await attempt(pacer)
        assert pacer.stats().concurrency == 3

    asyncio.run(main())


def test_attempts_wait_for_a_place_in_arrival_order_and_a_cancelled_one_takes_none():
    pacer = make_pacer(FakeClock(), max_concurrent=2)
    order: list[int] = []

    async def numbered(n: int, gate: asyncio.Event) -> None:
        async with pacer.slot(1, 1):
            order.append(n)
            await gate.wait()

    async def main() -> None:
        gates = [asyncio.Event() for _ in range(5)]
        tasks = [asyncio.create_task(numbered(n, gates[n])) for n in range(5)]
        await until(lambda: order == [0, 1])
        tasks[2].cancel()
        gates[0].set()
        await until(lambda: order == [0, 1, 3])
        assert pacer.stats().in_flight == 2
        for gate in gates:
            gate.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert order == [0, 1, 3, 4] and pacer.stats().in_flight == 0


def test_freed_places_go_straight_to_the_next_waiters():
    pacer = make_pacer(FakeClock(), max_concurrent=2)

    async def main() -> tuple[int, int]:
        held = [pacer.slot(1, 1), pacer.slot(1, 1)]
        for slot in held:
            await slot.__aenter__()
        waiters = [asyncio.create_task(attempt(pacer)) for _ in range(3)]
        await asyncio.sleep(0)  # all three queue
        for slot in held:  # two places freed in one step: two waiters are let in before they run again
            await slot.__aexit__(None, None, None)
        let_in_at_once = pacer.stats().in_flight
        await asyncio.gather(*waiters)
        return let_in_at_once, pacer.stats().in_flight

    assert asyncio.run(main()) == (2, 0)


def test_a_waiter_cancelled_after_it_was_let_in_gives_its_place_back():
    pacer = make_pacer(FakeClock(), max_concurrent=1)

    async def main() -> int:
        gate = asyncio.Event()
        first = asyncio.create_task(attempt(pacer, gate=gate))
        await until(lambda: pacer.stats().in_flight == 1)
        waiting = asyncio.create_task(attempt(pacer))
        await asyncio.sleep(0)
        gate.set()
        await until(lambda: first.done())  # its release let the waiter in ...
        waiting.cancel()  # ... which is cancelled before it runs again
        await asyncio.gather(waiting, return_exceptions=True)
        return pacer.stats().in_flight

    assert asyncio.run(main()) == 0


def test_spreads_the_api_token_budget_until_the_reset():
    clock = FakeClock()
    pacer = make_pacer(clock)

    async def main() -> None:
        async with pacer.slot(input_tokens=500, output_tokens=100) as slot:
            # 1,000 input tokens left of 10,000, full again in 9 s: 1,000 more every second
            slot.observe(limits(clock, "input-tokens", 10_000, 1_000, 9))
        await attempt(pacer, input_tokens=3_000)   # needs 2,000 more than is left: 2 s
        await attempt(pacer, input_tokens=1_000)   # the bucket is empty again: 1 s
        await attempt(pacer, input_tokens=0)       # needs no input tokens: goes at once

    asyncio.run(main())
    assert clock.sleeps == [2.0, 1.0] and pacer.stats().waited_s == 3.0


def test_spreads_requests_when_none_are_left_and_trusts_fresh_headers():
    clock = FakeClock()
    pacer = make_pacer(clock)

    async def main() -> None:
        async with pacer.slot(1, 1) as slot:
            slot.observe(limits(clock, "requests", 50, 0, 6))   # 50 requests refill over 6 s
        await attempt(pacer)
        assert clock.sleeps == [pytest.approx(0.12)]
        async with pacer.slot(1, 1) as slot:
            slot.observe(limits(clock, "requests", 50, 50, 0))  # full again
        for _ in range(10):
            await attempt(pacer)

    asyncio.run(main())
    assert clock.sleeps == [pytest.approx(0.12), pytest.approx(0.12)]  # only the one after the empty reading


def test_a_429_names_the_limit_it_hit_and_waits_for_it():
    clock = FakeClock()
    pacer = make_pacer(clock)
    exhausted = limits(clock, "output-tokens", 8_000, 0, 30)   # 8,000 refill over 30 s

    async def main() -> None:
        with pytest.raises(anthropic.RateLimitError):
            await attempt(pacer, anthropic.RateLimitError(
                "m", response=httpx2.Response(429, headers=exhausted, request=httpx2.Request("POST", "http://x")),
                body=None))
        waiting = asyncio.create_task(attempt(pacer, output_tokens=400))
        await until(lambda: pacer.stats().reason is not None)
        assert pacer.status == "paced: output-tokens limit, resuming in 1.5s"
        await waiting

    asyncio.run(main())
    assert clock.sleeps == [1.5] and pacer.stats().rate_limited == 1


def test_requests_per_minute_still_caps_the_run():
    clock = FakeClock()
    pacer = make_pacer(clock, requests_per_minute=2, tokens_per_minute=1_000)

    async def main() -> None:
        for _ in range(3):
            await attempt(pacer, input_tokens=10, output_tokens=10)
        with pytest.raises(InvalidInputError, match="tokens_per_minute"):
            await attempt(pacer, input_tokens=900, output_tokens=200)   # can never fit: refused before queueing

    asyncio.run(main())
    assert clock.sleeps == [60.0] and pacer.stats().in_flight == 0


def test_a_new_ceiling_applies_at_once_unless_overload_holds_it_lower():
    pacer = make_pacer(FakeClock(), max_concurrent=8)
    pacer.set_max_concurrent(3)
    assert (pacer.stats().concurrency, pacer.stats().max_concurrency) == (3, 3)
    pacer.set_max_concurrent(10)
    assert pacer.stats().concurrency == 10
    with pytest.raises(anthropic.APIStatusError):
        asyncio.run(attempt(pacer, status_error(529)))
    pacer.set_max_concurrent(12)
    assert pacer.status == "paced: concurrency 5 of 12 after 529"


def test_with_retries_breaker_and_pacer_together(server):
    """The orchestrator's recipe: the pacer around each attempt, the breaker and retries around the call."""
    clock = FakeClock()
    pacer, breaker = make_pacer(clock), CircuitBreaker(threshold=1, reset_s=30, clock=clock)
    server.script(Fault(status=429, retry_after_ms=2000), Fault(stream_error="overloaded_error"))

    async def main():
        async with anthropic.AsyncAnthropic(api_key=TEST_KEY, base_url=server.url, max_retries=0) as client:
            async def one_attempt():
                async with pacer.slot(input_tokens=20, output_tokens=256) as slot:
                    async with client.messages.stream(model=HAIKU, max_tokens=256,
                                                      messages=[{"role": "user", "content": "tell me more"}]) as stream:
                        slot.observe(stream.response.headers)
                        return await stream.get_final_message()

            return await with_retries(one_attempt, attempts=4, base_wait_s=0.5, max_wait_s=20,
                                      breaker=breaker, sleep=clock.sleep)

    message = asyncio.run(main())
    stats = pacer.stats()
    assert message.stop_reason == "end_turn" and server.request_count == 3
    assert clock.sleeps[0] == 2.0 and 0.75 <= clock.sleeps[1] <= 1.0 and len(clock.sleeps) == 2
    assert (stats.rate_limited, stats.overloaded, stats.concurrency, stats.waited_s) == (1, 1, 4, 0.0)
    assert (breaker.state, breaker.failures) == ("closed", 0)


def test_each_slot_knows_how_long_pacing_held_it_and_what_it_met():
    clock = FakeClock()
    pacer = make_pacer(clock)
    met = CallPacing()

    async def main() -> None:
        first = pacer.slot(10, 10)
        with pytest.raises(anthropic.APIStatusError):
            async with first:
                raise status_error(429, {"retry-after-ms": "1500"})
        met.add(first)
        clock.advance(0.5)
        second = pacer.slot(10, 10)
        async with second:  # waits out the rest of the pause
            pass
        met.add(second)
        third = pacer.slot(10, 10)
        with pytest.raises(anthropic.APIStatusError):
            async with third:
                raise status_error(529)
        met.add(third)
        assert (first.held_s, second.held_s, third.held_s) == (0.0, pytest.approx(1.0), 0.0)
        assert (first.throttled, second.throttled, third.throttled) == (429, None, 529)

    asyncio.run(main())
    assert (met.rate_limited, met.overloaded, met.waited_s) == (1, 1, pytest.approx(1.0))


def test_with_follow_headers_off_the_api_budget_is_not_spread():
    clock = FakeClock()
    pacer = make_pacer(clock, follow_headers=False)

    async def main() -> None:
        async with pacer.slot(10, 10) as slot:
            slot.observe(httpx2.Headers(limits(clock, "requests", 60, 0, 60)))
        await attempt(pacer)

    asyncio.run(main())
    assert clock.sleeps == [] and pacer.stats().status == "not paced"


def test_a_reading_counts_the_attempts_admitted_after_it_as_already_spent():
    clock = FakeClock()
    pacer = make_pacer(clock)

    async def main() -> None:
        async with pacer.slot(10, 10) as first, pacer.slot(10, 10), pacer.slot(10, 10):
            # The answer to the first attempt: 2 requests left, one more a second. The two
            # attempts admitted after it are on their way and the server has not counted them.
            first.observe(httpx2.Headers(limits(clock, "requests", 60, 2, 58)))
        await attempt(pacer)

    asyncio.run(main())
    assert clock.sleeps == [pytest.approx(1.0)]
