"""Tests for the malformed-reply and stall faults of claude_force_nb.testing.faults.Fault, and what
the REAL anthropic SDK makes of them (pinned here: a client must survive each)."""

from __future__ import annotations

import http.client
import json
import threading

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault, ManualClock

from .fake_support import MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def open_stream(server: FakeAnthropicServer, text: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST a streaming request with http.client and return once the response headers are in."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"model": MODEL, "max_tokens": 50, "messages": msgs(text), "stream": True})
    conn.request("POST", "/v1/messages", body=body, headers={"x-api-key": "k", "content-type": "application/json"})
    return conn, conn.getresponse()


# ------------------------------------------------------------------------------------------ malformed replies
def test_a_200_that_is_not_json(server, client):
    server.script(Fault(body="{oops"))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs("x"))
    assert (raw.status_code, raw.headers["content-type"], raw.text()) == (200, "application/json", "{oops")
    server.script(Fault(body="{oops"))
    with pytest.raises(json.JSONDecodeError):  # the SDK lets the parse error through, unwrapped
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"))
    assert server.counters["malformed"] == 2


def test_a_200_html_page_comes_back_as_a_string(server, client):
    server.script(Fault(body=HTML, content_type="text/html"))
    result = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"))
    assert result == HTML  # no Message, no exception: a client has to check the type itself
    assert server.counters["malformed"] == 1


def test_an_html_error_page_has_no_error_type(server, client):
    server.script(Fault(status=502, body=HTML, content_type="text/html"))
    with pytest.raises(anthropic.InternalServerError) as err:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"))
    assert (err.value.status_code, err.value.type, err.value.body) == (502, None, HTML)
    assert err.value.request_id.startswith("req_")


@pytest.mark.parametrize("body, content_type", [("{oops", None), (HTML, "text/html")])
def test_a_streaming_request_answered_with_no_events(server, client, body, content_type):
    server.script(Fault(body=body, content_type=content_type))
    with client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"), stream=True) as stream:
        assert stream.response.headers["content-type"] == (content_type or "text/event-stream; charset=utf-8")
        assert list(stream) == []  # nothing parses as an event: the stream just ends, no stop_reason


def test_a_stream_whose_event_is_not_json(server, client):
    server.script(Fault(body="event: message_start\ndata: {oops\n\n"))
    conn, resp = open_stream(server, "x")
    try:
        assert resp.getheader("transfer-encoding") == "chunked"
        assert resp.read() == b"event: message_start\ndata: {oops\n\n"
    finally:
        conn.close()
    server.script(Fault(body="event: message_start\ndata: {oops\n\n"))
    with client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x"), stream=True) as stream:
        with pytest.raises(json.JSONDecodeError):
            next(iter(stream))


# ------------------------------------------------------------------------------------------ stalls
def test_a_stalled_stream_sends_only_pings_on_the_server_clock():
    clock = ManualClock()
    with FakeAnthropicServer(clock=clock, ping_interval_s=10) as server:
        server.script(Fault(stall_s=25))
        conn, resp = open_stream(server, "held")
        try:
            assert resp.status == 200
            assert [resp.readline() for _ in range(3)] == [b"event: ping\n", b'data: {"type": "ping"}\n', b"\n"]
            clock.advance(10)
            assert [resp.readline() for _ in range(3)] == [b"event: ping\n", b'data: {"type": "ping"}\n', b"\n"]
            clock.advance(25)  # 35 s: the ping due at 20 s, then the body ends with no message events
            assert resp.read() == b'event: ping\ndata: {"type": "ping"}\n\n'
        finally:
            conn.close()
        assert server.counters["stalled"] == 1
        assert server.wait_for(lambda s: s.in_flight == 0)
        assert server.disconnects == 0


def test_a_stalled_stream_yields_nothing_to_the_sdk(server, client):
    server.script(Fault(stall_s=3600))
    with client.messages.create(model=MODEL, max_tokens=50, messages=msgs("held"), stream=True) as stream:
        assert stream.response.status_code == 200
        server.release_stalls()
        assert list(stream) == []  # pings are skipped, then the body ends


def test_a_stalled_stream_ends_when_the_client_leaves(server, client):
    server.script(Fault(stall_s=3600))
    stream = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("held"), stream=True)
    assert server.wait_for(lambda s: s.in_flight == 1)
    stream.close()
    assert server.wait_for(lambda s: s.disconnects == 1)
    assert server.wait_for(lambda s: s.in_flight == 0)


def test_a_stalled_json_reply_never_sends_its_body(server, client):
    server.script(Fault(stall_s=3600))
    releaser = threading.Thread(target=lambda: server.wait_for(lambda s: s.counters["stalled"] == 1)
                                and server.release_stalls())
    releaser.start()
    with pytest.raises(anthropic.APIConnectionError):  # headers promised a body that never came
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs("held"))
    releaser.join()
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("next")).stop_reason == "end_turn"
