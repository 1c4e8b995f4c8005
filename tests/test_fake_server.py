"""Tests for claude_force_nb.testing.server: lifecycle and scripting."""

from __future__ import annotations

import time

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault

from .fake_support import MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)


def test_stop_is_idempotent_and_fast_with_idle_keepalive_connection():
    srv = FakeAnthropicServer().start()
    c = anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0)
    try:
        c.messages.create(model=MODEL, max_tokens=20, messages=msgs("hi"))  # leaves a pooled connection
        start = time.perf_counter()
        srv.stop()
        srv.stop()
        assert time.perf_counter() - start < 1.0
    finally:
        c.close()
    with pytest.raises(anthropic.APIConnectionError):
        c2 = anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0, timeout=1)
        try:
            c2.messages.create(model=MODEL, max_tokens=20, messages=msgs("hi"))
        finally:
            c2.close()


def test_script_is_fifo_and_empty_fault_is_normal(server, client):
    server.script(Fault(), Fault(status=500), Fault(text="third"))
    assert server.pending_faults == 3
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a")).stop_reason == "end_turn"
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a"))
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a")).content[0].text == "third"
    assert server.pending_faults == 0


def test_a_stopped_server_starts_again():
    srv = FakeAnthropicServer()
    assert srv.start() is srv.start()  # start is idempotent too
    srv.stop()
    with srv, anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0) as c:
        assert c.messages.create(model=MODEL, max_tokens=50, messages=msgs("again")).stop_reason == "end_turn"
    assert repr(srv) == f"FakeAnthropicServer(url={srv.url!r}, requests=1)"
