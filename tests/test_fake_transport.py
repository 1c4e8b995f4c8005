"""Tests for claude_force_nb.testing.transport: keep-alive, no Nagle delay."""

from __future__ import annotations

import http.client
import json
import time

from .fake_support import MODEL, _module_server, msgs, server  # noqa: F401 (fixtures)


def test_keep_alive_and_no_nagle_delay(server):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"model": MODEL, "max_tokens": 50, "messages": msgs("hi")}).encode()
    stream_body = json.dumps({"model": MODEL, "max_tokens": 50, "messages": msgs("hi"), "stream": True}).encode()
    try:
        conn.connect()
        sock = conn.sock
        start = time.perf_counter()
        for i in range(10):
            conn.request("POST", "/v1/messages", body=stream_body if i % 2 else body,
                         headers={"x-api-key": "k", "content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            assert conn.sock is sock  # the same TCP connection is reused (JSON and chunked SSE)
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    assert elapsed < 0.3, f"10 keep-alive requests took {elapsed:.3f}s (Nagle?)"
