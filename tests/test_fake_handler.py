"""Tests for claude_force_nb.testing.handler: validation, auth, routing and scripted faults on
/v1/messages, seen through the REAL anthropic SDK over HTTP."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from claude_force_nb.testing import Fault

from .fake_support import MODEL, _module_server, client, msgs, raw_request, server  # noqa: F401 (fixtures)


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


def test_truncated_json_body_is_connection_error(server, client):
    server.script(Fault(truncate=True))
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=512, messages=msgs("half"))
    # the next request works (new connection)
    assert client.messages.create(model=MODEL, max_tokens=512, messages=msgs("half")).stop_reason == "end_turn"


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
    server.latency_s = 30.0
    server.script(Fault(latency_s=0.0))  # per-fault latency overrides the server's
    start = time.perf_counter()
    client.messages.create(model=MODEL, max_tokens=50, messages=msgs("lat"))
    assert time.perf_counter() - start < 15.0  # far below the server's 30 s, on any machine


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
