"""Shared pieces of the FakeAnthropicServer tests (tests/test_fake_*.py).

``server`` is one server per test module, put back to defaults before every test (a server
per test would cost a start and a stop each); ``client`` is the REAL synchronous SDK client
with retries off, so tests see raw statuses.  Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import http.client
import json
import math

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer
from claude_force_nb.testing.models import ModelCatalog

MODEL = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def _module_server():
    with FakeAnthropicServer() as srv:
        yield srv


@pytest.fixture
def server(_module_server: FakeAnthropicServer):
    srv = _module_server
    srv.latency_s = 0.0
    srv.chunk_delay_s = 0.0
    srv.batch_delay_s = 0.0
    srv.clear_script()
    srv.reset_metrics()
    srv.models = ModelCatalog()
    yield srv
    srv.clear_script()


@pytest.fixture
def client(server: FakeAnthropicServer):
    c = anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0)
    yield c
    c.close()


def msgs(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def expected_tokens(*texts: str) -> int:
    return max(1, math.ceil(sum(len(t) for t in texts) / 4))


def raw_request(server: FakeAnthropicServer, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Send one request with http.client (no SDK, no implicit auth)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


def parse_sse(payload: bytes) -> list[tuple[str | None, dict]]:
    events = []
    for block in payload.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: "):])
        events.append((name, data))
    return events
