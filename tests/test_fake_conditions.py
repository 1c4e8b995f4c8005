"""Tests for claude_force_nb.testing.conditions: overload periods and outages (drop / refuse),
deterministic on a ManualClock, seen through the REAL anthropic SDK over HTTP."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault, ManualClock

from .fake_support import MODEL, msgs, raw_request


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock):
    with FakeAnthropicServer(clock=clock) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAnthropicServer):
    with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as c:
        yield c


def outcomes(client: anthropic.Anthropic, n: int) -> str:
    """``.`` per answered request and ``X`` per overloaded one."""
    marks = []
    for _ in range(n):
        try:
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs("load"))
            marks.append(".")
        except anthropic.OverloadedError as exc:
            assert (exc.status_code, exc.type, exc.api_message) == (529, "overloaded_error", "Overloaded")
            marks.append("X")
    return "".join(marks)


# ------------------------------------------------------------------------------------------ overload
def test_overload_refuses_exactly_that_share_spread_evenly(server, client):
    server.overload(0.45)
    assert server.is_overloaded
    assert outcomes(client, 20) == "..X.X.X.X..X.X.X.X.X"  # floor(20 x 0.45) = 9
    assert server.counters == {"dropped": 0, "malformed": 0, "overloaded": 9, "rate_limited": 0, "stalled": 0}
    assert server.request_count == 20
    server.overload(0)
    assert not server.is_overloaded
    assert outcomes(client, 3) == "..."


def test_overload_as_429_with_a_retry_hint_ends_on_the_server_clock(server, client, clock):
    server.overload(1.0, status=429, duration_s=10, retry_after_ms=250)
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("busy"))
    assert refused.value.type == "rate_limit_error"
    assert refused.value.response.headers["retry-after-ms"] == "250"
    clock.advance(9.999)
    assert server.is_overloaded
    clock.advance(0.001)
    assert not server.is_overloaded
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("busy")).stop_reason == "end_turn"
    assert server.counters["overloaded"] == 1


def test_overload_comes_after_scripted_faults_and_before_auth(server, client):
    server.overload(1.0)
    server.script(Fault(text="scripted answer"))
    with pytest.raises(anthropic.OverloadedError):  # the scripted fault only overrides the text
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("order"))
    server.script(Fault(status=500))
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("order"))
    status, _, body = raw_request(server, "POST", "/v1/messages", {"model": MODEL})  # no key, no body
    assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error"
    assert server.counters["overloaded"] == 2


def test_concurrent_async_requests_get_the_same_count(server):
    async def fan_out() -> list[object]:
        async with anthropic.AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0) as c:
            return await asyncio.gather(
                *(c.messages.create(model=MODEL, max_tokens=50, messages=msgs(f"q{i}")) for i in range(12)),
                return_exceptions=True)

    server.overload(1 / 3)
    results = asyncio.run(fan_out())
    assert sum(isinstance(r, anthropic.OverloadedError) for r in results) == 4
    assert sum(isinstance(r, anthropic.types.Message) for r in results) == 8


@pytest.mark.parametrize("share, status", [(1.5, 529), (-0.1, 529), (0.5, 200)])
def test_overload_arguments_are_checked(server, share, status):
    with pytest.raises(ValueError):
        server.overload(share, status=status)


# ------------------------------------------------------------------------------------------ outages
def test_down_drops_connections_until_up(server, client):
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("before")).stop_reason == "end_turn"
    server.down()
    assert server.is_down
    with pytest.raises(anthropic.APIConnectionError) as dropped:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("during"))
    assert not isinstance(dropped.value, anthropic.APITimeoutError)
    assert server.counters["dropped"] == 1
    assert server.request_count == 1  # a dropped connection never becomes a request
    server.up()
    assert not server.is_down
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("after")).stop_reason == "end_turn"
    assert server.disconnects == 0


def test_down_for_a_while_drops_until_the_server_clock_says(server, client, clock):
    server.down(5)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("during"))
    clock.advance(5)
    assert not server.is_down
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("after")).stop_reason == "end_turn"
    assert server.counters["dropped"] == 1


def test_refusing_closes_the_port_and_reopens_it_on_time(server, client, clock):
    url = server.url
    server.down(30, mode="refuse")
    with pytest.raises(anthropic.APIConnectionError) as refused:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("during"))
    assert isinstance(refused.value.__cause__, httpx2.ConnectError)
    assert server.is_down
    clock.advance(30)
    assert server.wait_for(lambda s: not s.is_down, timeout=5.0)
    assert server.url == url
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("after")).stop_reason == "end_turn"
    assert server.counters["dropped"] == 0  # refused connections never reach the server


def test_going_down_cuts_requests_in_flight_without_counting_disconnects(server, client):
    server.script(Fault(stall_s=60))
    with client.messages.create(model=MODEL, max_tokens=50, messages=msgs("held"), stream=True) as stream:
        assert server.wait_for(lambda s: s.counters["stalled"] == 1)
        server.down(mode="refuse")
        with pytest.raises(httpx2.RemoteProtocolError):
            list(stream)
    assert server.wait_for(lambda s: s.in_flight == 0)
    assert server.disconnects == 0
    server.up()
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("after")).stop_reason == "end_turn"


def test_outage_mode_is_checked(server):
    with pytest.raises(ValueError, match="outage mode"):
        server.down(mode="explode")
    assert not server.is_down
