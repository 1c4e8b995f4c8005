"""Tests for claude_force_nb.testing.metrics: concurrency, counters and reset_metrics."""

from __future__ import annotations

import asyncio
import time

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault

from .fake_support import MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)


def test_concurrency_metric():
    async def main(srv):
        async with anthropic.AsyncAnthropic(api_key="test-key", base_url=srv.url, max_retries=0) as c:
            return await asyncio.gather(
                *(c.messages.create(model=MODEL, max_tokens=50, messages=msgs(f"q{i}")) for i in range(10)))

    with FakeAnthropicServer(latency_s=0.2) as srv:
        start = time.perf_counter()
        results = asyncio.run(main(srv))
        elapsed = time.perf_counter() - start
        assert len(results) == 10
        assert srv.max_in_flight == 10
        assert srv.request_count == 10
        assert srv.wait_for(lambda s: s.in_flight == 0, timeout=1.0)
        srv.reset_metrics()
        assert (srv.request_count, srv.max_in_flight, srv.disconnects, srv.requests) == (0, 0, 0, [])
    assert elapsed < 1.5  # concurrent, not 10 x 0.2 s


def test_counters_name_every_fault_kind_and_reset_with_the_metrics(server, client):
    assert server.counters == {"dropped": 0, "malformed": 0, "overloaded": 0, "rate_limited": 0, "stalled": 0}
    server.script(Fault(body="{oops", content_type="text/plain"))
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x")) == "{oops"
    server.overload(1.0)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"))
    server.overload(0)
    counters = server.counters
    counters["malformed"] = 99  # a copy: the server's count is not touched
    assert server.counters == {"dropped": 0, "malformed": 1, "overloaded": 1, "rate_limited": 0, "stalled": 0}
    assert server.request_count == 2
    server.reset_metrics()
    assert server.counters == {"dropped": 0, "malformed": 0, "overloaded": 0, "rate_limited": 0, "stalled": 0}
    assert (server.request_count, server.requests, server.disconnects) == (0, [], 0)
