"""Tests for claude_force_nb.testing.streaming: the SSE event sequence, read by the REAL anthropic SDK."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault

from .fake_support import HAIKU, MODEL, _module_server, client, msgs, parse_sse, raw_request, server  # noqa: F401 (fixtures)


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


def test_stream_stop_sequence_and_max_tokens(server, client):
    with client.messages.stream(model=MODEL, max_tokens=512, messages=msgs("s"), stop_sequences=["You"]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "You"
    assert final.content[0].text == f"**Offline answer** from `{MODEL}`. "
    with client.messages.stream(model=MODEL, max_tokens=2, messages=msgs("s")) as s:
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens" and final.content[0].text == "**Offline answer**"
    assert final.usage.output_tokens == 2
