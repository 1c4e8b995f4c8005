"""Tests for claude_force_nb.testing.FakeAnthropicServer, driven by the REAL anthropic SDK over HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import time

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault, RecordedRequest

MODEL = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"


# --------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# plain JSON answers
# --------------------------------------------------------------------------------------------------


def test_create_is_deterministic_and_counts_usage(server, client):
    question = "What is the capital of France?"
    m1 = client.messages.create(model=MODEL, max_tokens=512, messages=msgs(question))
    m2 = client.messages.create(model=MODEL, max_tokens=512, messages=msgs(question))

    text = m1.content[0].text
    assert m1.type == "message" and m1.role == "assistant" and m1.model == MODEL
    assert m1.id.startswith("msg_") and m1.id != m2.id
    assert text == m2.content[0].text
    assert text.startswith(f"**Offline answer** from `{MODEL}`.")
    assert f'"{question}"' in text
    assert m1.stop_reason == "end_turn" and m1.stop_sequence is None
    assert m1.usage.input_tokens == expected_tokens(question) == 8
    assert m1.usage.output_tokens == len(text.split())
    assert m1.usage.cache_creation_input_tokens == 0
    assert m1.usage.cache_read_input_tokens == 0
    assert m1.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert m1.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert m1.usage.service_tier == "standard"
    assert m1._request_id.startswith("req_") and m1._request_id != m2._request_id

    assert server.request_count == 2
    rec = server.requests[0]
    assert isinstance(rec, RecordedRequest)
    assert (rec.method, rec.path) == ("POST", "/v1/messages")
    assert rec.body == {"model": MODEL, "max_tokens": 512, "messages": msgs(question)}
    assert rec.headers["authorization"] == "Bearer test-key"
    assert "anthropic-version" in rec.headers


def test_answer_depends_on_request_and_is_pure_across_servers(server, client):
    a = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("alpha"))
    b = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("beta"))
    h = client.messages.create(model=HAIKU, max_tokens=512, messages=msgs("alpha"))
    assert a.content[0].text != b.content[0].text
    assert h.content[0].text.startswith(f"**Offline answer** from `{HAIKU}`.")
    with FakeAnthropicServer() as other:
        with anthropic.Anthropic(api_key="k2", base_url=other.url, max_retries=0) as c2:
            again = c2.messages.create(model=MODEL, max_tokens=512, messages=msgs("alpha"))
    assert again.content[0].text == a.content[0].text


def test_system_and_block_content_count_towards_input_tokens(server, client):
    system = "You are terse." * 3
    content = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part!"}]
    m = client.messages.create(model=MODEL, max_tokens=512, system=system,
                               messages=[{"role": "user", "content": content}])
    assert m.usage.input_tokens == expected_tokens(system, "first part", "second part!")
    assert '"first part second part!"' in m.content[0].text


def test_stop_sequences(server, client):
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("stop here")).content[0].text
    m = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("stop here"),
                               stop_sequences=["nope-not-there", "You asked"])
    assert m.stop_reason == "stop_sequence"
    assert m.stop_sequence == "You asked"
    assert m.content[0].text == full[: full.index("You asked")] == f"**Offline answer** from `{MODEL}`. "
    assert m.usage.output_tokens == 4


def test_max_tokens_truncation(server, client):
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("long one")).content[0].text
    m = client.messages.create(model=MODEL, max_tokens=5, messages=msgs("long one"))
    assert m.stop_reason == "max_tokens"
    assert m.content[0].text == " ".join(full.split()[:5])
    assert m.usage.output_tokens == 5
    zero = client.messages.create(model=MODEL, max_tokens=0, messages=msgs("long one"))
    assert zero.content == [] and zero.stop_reason == "max_tokens" and zero.usage.output_tokens == 0


def test_validation_errors(server, client):
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert ei.value.type == "invalid_request_error"
    status, headers, body = raw_request(server, "POST", "/v1/messages", {"model": MODEL, "messages": msgs("x")},
                                        {"x-api-key": "k"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    assert headers["request-id"].startswith("req_")
    status, _, body = raw_request(server, "POST", "/v1/messages",
                                  {"model": MODEL, "max_tokens": -1, "messages": msgs("x")}, {"x-api-key": "k"})
    assert status == 400


# --------------------------------------------------------------------------------------------------
# auth, routing, transport
# --------------------------------------------------------------------------------------------------


def test_missing_auth_is_401_and_x_api_key_is_accepted(server):
    body = {"model": MODEL, "max_tokens": 50, "messages": msgs("hi")}
    status, headers, payload = raw_request(server, "POST", "/v1/messages", body)
    err = json.loads(payload)
    assert status == 401
    assert err["type"] == "error" and err["error"]["type"] == "authentication_error"
    assert err["request_id"] == headers["request-id"] and err["request_id"].startswith("req_")
    assert headers["content-length"] == str(len(payload))

    status, _, payload = raw_request(server, "POST", "/v1/messages", body, {"x-api-key": "anything"})
    assert status == 200 and json.loads(payload)["type"] == "message"
    status, _, _ = raw_request(server, "POST", "/v1/messages", body, {"authorization": "Bearer abc"})
    assert status == 200
    status, _, _ = raw_request(server, "GET", "/v1/messages/batches")
    assert status == 401
    assert server.request_count == 3


def test_unknown_path_is_404(server, client):
    status, headers, payload = raw_request(server, "GET", "/v1/nope", headers={"x-api-key": "k"})
    assert status == 404 and json.loads(payload)["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_doesnotexist")


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


# --------------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------------


def test_stream_matches_json_answer(server, client):
    question = "Explain streaming in one line"
    json_msg = client.messages.create(model=MODEL, max_tokens=512, messages=msgs(question))
    with client.messages.stream(model=MODEL, max_tokens=512, messages=msgs(question)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        assert stream.request_id.startswith("req_")
    assert len(pieces) > 3
    assert "".join(pieces) == final.content[0].text == json_msg.content[0].text
    assert final.stop_reason == "end_turn" and final.stop_sequence is None
    assert final.usage.input_tokens == json_msg.usage.input_tokens
    assert final.usage.output_tokens == json_msg.usage.output_tokens
    assert server.requests[-1].body["stream"] is True
    assert server.request_count == 2


def test_stream_wire_format(server):
    status, headers, payload = raw_request(
        server, "POST", "/v1/messages",
        {"model": MODEL, "max_tokens": 512, "messages": msgs("wire"), "stream": True}, {"x-api-key": "k"})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert headers["request-id"].startswith("req_")
    events = parse_sse(payload)
    names = [n for n, _ in events]
    assert all(n is not None for n in names)
    assert all(data["type"] == name for name, data in events)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["stop_reason"] is None and start["content"] == []
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["input_tokens"] == 1
    deltas = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert all(len(d.split()) <= 3 for d in deltas)
    md = events[-2][1]
    text = "".join(deltas)
    assert md["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert md["usage"]["output_tokens"] == len(text.split())


def test_async_stream_and_create():
    async def main():
        with FakeAnthropicServer(chunk_delay_s=0.001) as srv:
            async with anthropic.AsyncAnthropic(api_key="test-key", base_url=srv.url, max_retries=0) as c:
                created = await c.messages.create(model=HAIKU, max_tokens=512, messages=msgs("async?"))
                async with c.messages.stream(model=HAIKU, max_tokens=512, messages=msgs("async?")) as stream:
                    pieces = [t async for t in stream.text_stream]
                    final = await stream.get_final_message()
            return created, pieces, final, srv.requests

    created, pieces, final, recorded = asyncio.run(main())
    assert "".join(pieces) == final.content[0].text == created.content[0].text
    assert final.stop_reason == "end_turn"
    assert recorded[-1].headers["x-stainless-async"].startswith("async")


def test_stream_error_mid_stream(server, client):
    server.script(Fault(stream_error="overloaded_error"))
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        with client.messages.stream(model=MODEL, max_tokens=512, messages=msgs("boom")) as stream:
            for piece in stream.text_stream:
                got.append(piece)
    err = ei.value
    assert err.status_code == 200
    assert err.type == "overloaded_error"
    assert not isinstance(err, anthropic.InternalServerError)
    assert got, "text should have been yielded before the error"
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("boom")).content[0].text
    assert full.startswith("".join(got)) and "".join(got) != full


def test_truncated_stream_has_no_stop_reason(server, client):
    server.script(Fault(truncate=True))
    with client.messages.stream(model=MODEL, max_tokens=512, messages=msgs("cut")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces and final.stop_reason is None
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("cut")).content[0].text
    assert full.startswith(final.content[0].text) and final.content[0].text != full


def test_truncated_json_body_is_connection_error(server, client):
    server.script(Fault(truncate=True))
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=512, messages=msgs("half"))
    # the next request works (new connection)
    assert client.messages.create(model=MODEL, max_tokens=512, messages=msgs("half")).stop_reason == "end_turn"


def test_stream_stop_sequence_and_max_tokens(server, client):
    with client.messages.stream(model=MODEL, max_tokens=512, messages=msgs("s"), stop_sequences=["You"]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "You"
    assert final.content[0].text == f"**Offline answer** from `{MODEL}`. "
    with client.messages.stream(model=MODEL, max_tokens=2, messages=msgs("s")) as s:
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens" and final.content[0].text == "**Offline answer**"
    assert final.usage.output_tokens == 2


# --------------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, exc_class, error_type",
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (402, anthropic.PaymentRequiredError, "billing_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (409, anthropic.ConflictError, "conflict_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (504, anthropic.GatewayTimeoutError, "timeout_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_status_maps_to_sdk_exception(server, client, status, exc_class, error_type):
    server.fail_next(status, retry_after_ms=25, message=f"scripted {status}")
    with pytest.raises(exc_class) as ei:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("err"))
    e = ei.value
    assert e.status_code == status
    assert e.type == error_type
    assert e.api_message == f"scripted {status}"
    assert e.request_id.startswith("req_")
    assert e.body["request_id"] == e.request_id
    assert e.response.headers["retry-after-ms"] == "25"
    assert server.request_count == 1
    # the fault was consumed: the next call succeeds
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("err")).stop_reason == "end_turn"


def test_fault_headers_and_custom_error_type(server, client):
    server.script(Fault(status=429, retry_after=1.5, should_retry=False, error_type="custom_error"))
    with pytest.raises(anthropic.RateLimitError) as ei:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("hdr"))
    assert ei.value.type == "custom_error"
    assert ei.value.response.headers["retry-after"] == "1.5"
    assert ei.value.response.headers["x-should-retry"] == "false"
    assert "retry-after-ms" not in ei.value.response.headers


def test_sdk_retries_scripted_overloads(server):
    server.fail_next(529, times=2, retry_after_ms=10)
    with anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=2) as c:
        m = c.messages.create(model=MODEL, max_tokens=50, messages=msgs("retry"))
    assert m.stop_reason == "end_turn"
    assert server.request_count == 3
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]


def test_stream_http_error_raised_at_enter(server, client):
    server.fail_next(529)
    with pytest.raises(anthropic.OverloadedError):
        with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("x")):
            pass


def test_connection_reset(server, client):
    server.script(Fault(reset=True))
    with pytest.raises(anthropic.APIConnectionError) as ei:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("rst"))
    assert not isinstance(ei.value, anthropic.APITimeoutError)
    assert server.request_count == 1
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("rst")).stop_reason == "end_turn"


def test_latency_timeout_counts_disconnect(server, client):
    server.script(Fault(latency_s=2.0))
    start = time.perf_counter()
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.3).messages.create(model=MODEL, max_tokens=50, messages=msgs("slow"))
    assert time.perf_counter() - start < 1.5
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=2.0)
    assert server.wait_for(lambda s: s.in_flight == 0, timeout=2.0)
    assert server.disconnects == 1


def test_server_latency_applies_to_json_and_stream(server, client):
    server.latency_s = 0.15
    start = time.perf_counter()
    client.messages.create(model=MODEL, max_tokens=50, messages=msgs("lat"))
    assert time.perf_counter() - start >= 0.15
    start = time.perf_counter()
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("lat")) as s:
        s.get_final_message()
    assert time.perf_counter() - start >= 0.15
    server.script(Fault(latency_s=0.0))  # per-fault latency overrides the server's
    start = time.perf_counter()
    client.messages.create(model=MODEL, max_tokens=50, messages=msgs("lat"))
    assert time.perf_counter() - start < 0.15


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


def test_usage_text_and_stop_reason_override(server, client):
    override = {"cache_read_input_tokens": 2000, "cache_creation_input_tokens": 100,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 100},
                "output_tokens": 7}
    server.script(Fault(usage=override, text="Scripted text here.", stop_reason="max_tokens"))
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("usage"))
    assert m.content[0].text == "Scripted text here."
    assert m.stop_reason == "max_tokens"
    assert m.usage.cache_read_input_tokens == 2000
    assert m.usage.cache_creation_input_tokens == 100
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == 100
    assert m.usage.output_tokens == 7
    assert m.usage.input_tokens == expected_tokens("usage")

    server.script(Fault(usage=override))
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("usage")) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == 2000
    assert final.usage.cache_creation_input_tokens == 100
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 100
    assert final.usage.output_tokens == 7


def test_script_is_fifo_and_empty_fault_is_normal(server, client):
    server.script(Fault(), Fault(status=500), Fault(text="third"))
    assert server.pending_faults == 3
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a")).stop_reason == "end_turn"
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a"))
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("a")).content[0].text == "third"
    assert server.pending_faults == 0


# --------------------------------------------------------------------------------------------------
# prompt cache simulation
# --------------------------------------------------------------------------------------------------


def test_prompt_cache_write_then_read(server, client):
    big = "Cacheable system prompt. " * 200  # 5000 chars -> 1250 tokens
    assert len(big) == 5000
    system = [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("hi"))
    second = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("hello again"))
    assert first.usage.cache_creation_input_tokens == 1250
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 1250
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 1  # ceil(5002/4) - 1250 = 1
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == expected_tokens(big, "hello again") - 1250

    # another model has its own cache; a stream reports the read in message_start
    other = client.messages.create(model=HAIKU, max_tokens=50, system=system, messages=msgs("hi"))
    assert other.usage.cache_creation_input_tokens == 1250
    with client.messages.stream(model=HAIKU, max_tokens=50, system=system, messages=msgs("hi")) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == 1250 and final.usage.cache_creation_input_tokens == 0


def test_prompt_cache_1h_ttl_and_minimum_length(server, client):
    big = "One hour cached prompt! " * 250  # 6000 chars -> 1500 tokens
    system = [{"type": "text", "text": "prefix block. "},
              {"type": "text", "text": big, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    m = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("q"))
    prefix_tokens = math.ceil((len("prefix block. ") + len(big)) / 4)
    assert m.usage.cache_creation_input_tokens == prefix_tokens
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == prefix_tokens
    assert m.usage.cache_creation.ephemeral_5m_input_tokens == 0

    small = [{"type": "text", "text": "x" * 4000, "cache_control": {"type": "ephemeral"}}]  # 1000 tokens < 1024
    for _ in range(2):
        s = client.messages.create(model=MODEL, max_tokens=50, system=small, messages=msgs("q"))
        assert s.usage.cache_creation_input_tokens == 0 and s.usage.cache_read_input_tokens == 0
        assert s.usage.input_tokens == expected_tokens("x" * 4000, "q")


# --------------------------------------------------------------------------------------------------
# task directives
# --------------------------------------------------------------------------------------------------


def test_refuse_directive(server, client):
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("do it [[fake:refuse]]"))
    assert m.stop_reason == "refusal"
    assert m.content[0].text and m.usage.output_tokens == len(m.content[0].text.split())
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("[[fake:refuse]]")) as s:
        final = s.get_final_message()
    assert final.stop_reason == "refusal" and final.content[0].text == m.content[0].text


def test_empty_directive(server, client):
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("[[fake:empty]] nothing"))
    assert m.content == [] and m.stop_reason == "end_turn" and m.usage.output_tokens == 0
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("[[fake:empty]]")) as s:
        assert list(s.text_stream) == []
        final = s.get_final_message()
    assert final.content == [] and final.stop_reason == "end_turn"


def test_error_and_sleep_directives(server, client):
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("[[fake:error=529]]"))
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("[[fake:error=429]]")):
            pass
    start = time.perf_counter()
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("wait [[fake:sleep=0.25]] please"))
    assert time.perf_counter() - start >= 0.25
    assert '"wait please"' in m.content[0].text  # directives are not quoted back
    # a sleeping request is disconnect-aware too
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.2).messages.create(model=MODEL, max_tokens=50,
                                                         messages=msgs("[[fake:sleep=3]]"))
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=2.0)


# --------------------------------------------------------------------------------------------------
# count_tokens and batches
# --------------------------------------------------------------------------------------------------


def test_count_tokens_matches_create_usage(server, client):
    system = "Be brief and exact."
    question = "How many tokens is this sentence?"
    counted = client.messages.count_tokens(model=MODEL, system=system, messages=msgs(question))
    assert counted.input_tokens == expected_tokens(system, question)
    m = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs(question))
    assert m.usage.input_tokens == counted.input_tokens
    assert server.request_count == 1  # count_tokens is not a /v1/messages request
    assert [r.path for r in server.requests] == ["/v1/messages/count_tokens", "/v1/messages"]


def test_batch_lifecycle(server, client):
    params = {"model": MODEL, "max_tokens": 100, "messages": msgs("batch question")}
    batch = client.messages.batches.create(requests=[
        {"custom_id": "good", "params": params},
        {"custom_id": "bad", "params": {"model": MODEL, "messages": msgs("no max_tokens")}},
        {"custom_id": "refused", "params": {**params, "messages": msgs("[[fake:refuse]]")}},
    ])
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "ended"
    assert batch.results_url == f"/v1/messages/batches/{batch.id}/results"
    assert batch.request_counts.succeeded == 2 and batch.request_counts.errored == 1
    assert batch.request_counts.processing == 0
    assert batch.expires_at > batch.created_at and batch.ended_at is not None

    got = client.messages.batches.retrieve(batch.id)
    assert got.id == batch.id and got.processing_status == "ended"

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"good", "bad", "refused"}
    assert results["good"].type == "succeeded"
    direct = client.messages.create(**params)
    assert results["good"].message.content[0].text == direct.content[0].text
    assert results["good"].message.usage.service_tier == "batch"
    assert results["refused"].message.stop_reason == "refusal"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"

    second = client.messages.batches.create(requests=[{"custom_id": "x", "params": params}])
    page = client.messages.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more is True
    assert [b.id for b in client.messages.batches.list(limit=1).iter_pages()
            for b in b.data][:2] == [second.id, batch.id]
    assert [b.id for b in client.messages.batches.list(limit=10)][:2] == [second.id, batch.id]

    # cancelling an ended batch leaves it ended
    assert client.messages.batches.cancel(batch.id).processing_status == "ended"
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert batch.id not in [b.id for b in client.messages.batches.list(limit=100)]


def test_batch_in_progress_cancel(server, client):
    server.batch_delay_s = 60.0
    params = {"model": HAIKU, "max_tokens": 100, "messages": msgs("slow batch")}
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params},
                                                     {"custom_id": "b", "params": params}])
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 2
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)

    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 2 and ended.request_counts.succeeded == 0
    assert {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)} == {
        "a": "canceled", "b": "canceled"}
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_batch_ends_after_delay(server, client):
    server.batch_delay_s = 0.2
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
        "model": MODEL, "max_tokens": 10, "messages": msgs("later")}}])
    assert batch.processing_status == "in_progress"
    time.sleep(0.25)
    done = client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.request_counts.succeeded == 1
    assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["succeeded"]


def test_batch_create_validation(server, client):
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[])
    params = {"model": MODEL, "max_tokens": 10, "messages": msgs("dup")}
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[{"custom_id": "a", "params": params},
                                                 {"custom_id": "a", "params": params}])
