"""replies.MessageBuilder: a Message built from stream events, as the SDK's own accumulator builds it.

The events are the real SDK's: read off FakeAnthropicServer's streams by the anthropic
client, or validated from dicts into the SDK's RawMessageStreamEvent types.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from anthropic.types import RawMessageStreamEvent

from claude_force_nb.engine.outcomes import content_blocks
from claude_force_nb.engine.replies import MessageBuilder
from claude_force_nb.testing import Fault

from .fake_support import MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)

EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


def event(**fields: Any) -> Any:
    return EVENT.validate_python(fields)


def start(**usage: int) -> Any:
    return event(type="message_start", message={
        "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1, **usage}})


def block(index: int, **content: Any) -> Any:
    return event(type="content_block_start", index=index, content_block=content)


def delta(index: int, **fields: Any) -> Any:
    return event(type="content_block_delta", index=index, delta=fields)


def stop(index: int) -> Any:
    return event(type="content_block_stop", index=index)


def built(events: list[Any]) -> tuple[dict[str, Any] | None, list[str]]:
    builder, texts = MessageBuilder(), []
    for e in events:
        if (text := builder.add(e)) is not None:
            texts.append(text)
    return builder.finish(), texts


@pytest.mark.parametrize("script,kinds", [
    (Fault(), ["text"]),
    (Fault(tool_calls=[("lookup", {"key": "a", "n": [1, 2]}), ("lookup", {})]), ["tool_use", "tool_use"]),
])
def test_the_message_is_the_one_the_sdks_accumulator_builds(server, client, script, kinds) -> None:
    server.script(script)
    with client.messages.stream(model=MODEL, max_tokens=300, messages=msgs("stream me a reply")) as stream:
        events = list(stream)  # the raw events, and the SDK's own derived ones (ignored by the builder)
        final = stream.get_final_message().to_dict()
    message, texts = built(events)
    assert message is not None and content_blocks(message) == content_blocks(final)
    assert (message["stop_reason"], message["usage"]) == (final["stop_reason"], final["usage"])
    assert [b["type"] for b in message["content"]] == kinds
    assert "".join(texts) == "".join(b.get("text", "") for b in final["content"])


def test_texts_are_joined_per_block_and_usage_totals_overwrite_without_losing_what_is_omitted() -> None:
    message, texts = built([
        start(cache_read_input_tokens=7),
        block(0, type="text", text=""), delta(0, type="text_delta", text="Hello, "),
        delta(0, type="text_delta", text="world"), stop(0),
        block(1, type="text", text="P.S."), delta(1, type="text_delta", text=" bye"),  # never stopped
        event(type="message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None},
              usage={"output_tokens": 42, "input_tokens": None}),
        event(type="message_stop"),
    ])
    assert texts == ["Hello, ", "world", " bye"]
    assert [b["text"] for b in message["content"]] == ["Hello, world", "P.S. bye"]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 10, "output_tokens": 42, "cache_read_input_tokens": 7}


def test_thinking_signatures_citations_and_tool_input_arrive_whole() -> None:
    citation = {"type": "char_location", "cited_text": "x", "document_index": 0, "document_title": None,
                "start_char_index": 0, "end_char_index": 1}
    message, texts = built([
        start(),
        block(0, type="thinking", thinking="", signature=""),
        delta(0, type="thinking_delta", thinking="Let me "), delta(0, type="thinking_delta", thinking="think."),
        delta(0, type="signature_delta", signature="sig=="), stop(0),
        block(1, type="text", text=""), delta(1, type="citations_delta", citation=citation),
        delta(1, type="text_delta", text="cited"), stop(1),
        block(2, type="tool_use", id="toolu_1", name="lookup", input={}),
        delta(2, type="input_json_delta", partial_json='{"key": '), delta(2, type="input_json_delta", partial_json=""),
        delta(2, type="input_json_delta", partial_json='"a"}'), stop(2),
        block(3, type="tool_use", id="toolu_2", name="ping", input={}), stop(3),
    ])
    thinking, text, tool, bare_tool = message["content"]
    assert (thinking["thinking"], thinking["signature"]) == ("Let me think.", "sig==")
    assert text["text"] == "cited" and text["citations"][0]["cited_text"] == "x" and texts == ["cited"]
    assert tool["input"] == {"key": "a"} and bare_tool["input"] == {}


def test_a_delta_for_another_kind_of_block_is_ignored_as_the_sdk_ignores_it() -> None:
    message, texts = built([
        start(),
        block(0, type="tool_use", id="toolu_1", name="lookup", input={}),
        delta(0, type="text_delta", text="stray"), delta(0, type="input_json_delta", partial_json='{"k": 1}'), stop(0),
        block(1, type="text", text="ok"), delta(1, type="input_json_delta", partial_json="{"), stop(1),
        event(type="message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None, "container": None},
              usage={"output_tokens": 5}),
    ])
    assert texts == [] and message["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"k": 1}}, {"type": "text", "text": "ok"}]
    assert message["stop_reason"] == "tool_use" and "container" not in message


@pytest.mark.parametrize("events,problem", [
    ([block(0, type="text", text="")], "content_block_start before message_start"),
    ([start(), delta(0, type="text_delta", text="x")], "content_block_delta for content block 0, which never started"),
    ([start(), block(0, type="text", text=""), stop(3)], "content_block_stop for content block 3, which never started"),
])
def test_events_out_of_order_are_refused(events, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        built(events)


def test_a_tool_input_that_is_not_json_is_refused_when_its_block_stops() -> None:
    builder = MessageBuilder()
    for e in [start(), block(0, type="tool_use", id="t", name="f", input={}),
              delta(0, type="input_json_delta", partial_json='{"key": ')]:
        builder.add(e)
    with pytest.raises(ValueError):
        builder.add(stop(0))


def test_a_stream_that_never_started_has_no_message() -> None:
    assert MessageBuilder().finish() is None
