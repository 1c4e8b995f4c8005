"""Tests for claude_force_nb.testing.validation: what the fake refuses, with the API's status, error type and
wording, seen through the REAL anthropic SDK over HTTP; and the SDK's every-parameter request it accepts."""

from __future__ import annotations

import json

import anthropic
import pytest

from .fake_support import HAIKU, MODEL, _module_server, client, msgs, raw_request, server  # noqa: F401 (fixtures)

DESCRIBE = {"name": "describe", "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}}}


@pytest.mark.parametrize(("change", "message"), [
    (dict(model="claude-imaginary-9"), "model: claude-imaginary-9"),
    (dict(model="claude-3-5-haiku-20241022"), "model: claude-3-5-haiku-20241022"),  # retired
    (dict(model="claude-sonnet-4-5"), "model: claude-sonnet-4-5"),  # retired alias
])
def test_unknown_and_retired_models_are_404(server, client, change, message):
    with pytest.raises(anthropic.NotFoundError) as ei:
        client.messages.create(**{"model": MODEL, "max_tokens": 10, "messages": msgs("x"), **change})
    assert (ei.value.status_code, ei.value.type, ei.value.api_message) == (404, "not_found_error", message)
    assert ei.value.request_id.startswith("req_")


@pytest.mark.parametrize(("change", "message"), [
    (dict(max_tokens=64_001, timeout=5), "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens "
                              "for claude-sonnet-4-6"),
    (dict(model=HAIKU, max_tokens=100_000, timeout=5), "max_tokens: 100000 > 64000, which is the maximum allowed number of "
                                            "output tokens for claude-haiku-4-5-20251001"),
    (dict(max_tokens=-1), "max_tokens: Input should be greater than or equal to 0"),
    (dict(extra_body={"temperature": 1.5}), "temperature: Input should be less than or equal to 1"),
    (dict(extra_body={"temperature": -0.1}), "temperature: Input should be greater than or equal to 0"),
    (dict(extra_body={"temperature": "hot"}), "temperature: Input should be a valid number"),
    (dict(extra_body={"top_p": 2}), "top_p: Input should be less than or equal to 1"),
    (dict(extra_body={"top_k": -1}), "top_k: Input should be an integer greater than or equal to 0"),
    (dict(extra_body={"temprature": 0.5}), "temprature: Extra inputs are not permitted"),
    (dict(extra_body={"context_management": {}}), "context_management: Extra inputs are not permitted"),
    (dict(messages=[{"role": "user", "content": ""}]),
     "messages.0: all messages must have non-empty content except for the optional final assistant message"),
    (dict(messages=[{"role": "user", "content": []}]),
     "messages.0: all messages must have non-empty content except for the optional final assistant message"),
    (dict(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
     "messages.0.content.0.text: text content blocks must be non-empty"),
    (dict(messages=[{"role": "user", "content": [{"type": "txt", "text": "hi"}]}]),
     "messages.0.content.0.type: Input tag 'txt' found using 'type' does not match any of the expected tags: "
     "'bash_code_execution_tool_result', 'code_execution_tool_result', 'container_upload', 'document', 'image', "
     "'redacted_thinking', 'search_result', 'server_tool_use', 'text', 'text_editor_code_execution_tool_result', "
     "'thinking', 'tool_result', 'tool_search_tool_result', 'tool_use', 'web_fetch_tool_result', "
     "'web_search_tool_result'"),
    (dict(messages=[{"role": "robot", "content": "hi"}]),
     "messages.0: each message needs a role (user|assistant|system) and content"),
    (dict(system=[{"type": "image", "source": {}}]), "system.0.type: Input tag 'image' found using 'type' does not "
                                                     "match any of the expected tags: 'text'"),
    (dict(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]),
     "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
    (dict(tools=[{"name": "f", "input_schema": {"type": "array"}}]),
     "tools.0.custom.input_schema.type: Input should be 'object'"),
    (dict(tools=[{"name": "f"}]), "tools.0.custom.input_schema: Field required"),
    (dict(tools=[DESCRIBE, DESCRIBE]), "tools: Tool names must be unique ('describe' is used twice)"),
    (dict(tool_choice={"type": "any"}), "tool_choice: tool_choice may only be specified while providing tools"),
    (dict(tools=[DESCRIBE], tool_choice={"type": "tool", "name": "nope"}),
     "tool_choice.name: no tool named 'nope' in tools"),
    (dict(tools=[DESCRIBE], tool_choice={"type": "sometimes"}),
     "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"),
    (dict(output_config={"format": {"type": "json_object"}}), "output_config.format.type: Input should be "
                                                              "'json_schema'"),
    (dict(output_config={"format": {"type": "json_schema"}}),
     "output_config.format.schema: Input should be a valid dictionary"),
    (dict(model="claude-3-haiku-20240307", max_tokens=100,
          output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}),
     "output_config.format: structured outputs are not supported by claude-3-haiku-20240307"),
])
def test_invalid_requests_are_400_with_the_apis_wording(server, client, change, message):
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(**{"model": MODEL, "max_tokens": 10, "messages": msgs("x"), **change})
    assert (ei.value.status_code, ei.value.type, ei.value.api_message) == (400, "invalid_request_error", message)


def test_the_stream_refuses_the_same_request_before_any_event(server, client):
    with pytest.raises(anthropic.NotFoundError):
        with client.messages.stream(model="claude-nope-1", max_tokens=10, messages=msgs("x")):
            pass
    status, headers, payload = raw_request(server, "POST", "/v1/messages", {
        "model": MODEL, "max_tokens": 10, "messages": msgs("x"), "stream": True, "temperature": 3}, {"x-api-key": "k"})
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(payload)["error"]["message"] == "temperature: Input should be less than or equal to 1"


def test_a_prompt_beyond_the_context_window_is_too_long(server, client):
    server.add_model("claude-tiny-1", max_input_tokens=100)
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: 101 tokens > 100 maximum"):
        client.messages.create(model="claude-tiny-1", max_tokens=10, messages=msgs("x" * 404))
    assert client.messages.create(model="claude-tiny-1", max_tokens=10, messages=msgs("x" * 400)).model == \
        "claude-tiny-1"


def test_what_the_api_accepts_is_accepted(server, client):
    """Boundary values, a final assistant prefill, system messages, beta fields with their header."""
    ok = [
        dict(max_tokens=0),
        dict(max_tokens=64_000, timeout=5),
        dict(extra_body={"temperature": 0, "top_p": 1, "top_k": 0}),
        dict(messages=msgs("x") + [{"role": "assistant", "content": ""}]),
        dict(messages=[{"role": "system", "content": "Be brief."}] + msgs("x")),
        dict(extra_body={"context_management": {"edits": []}}, extra_headers={"anthropic-beta": "context-1"}),
        dict(tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "none"}),
    ]
    for change in ok:
        reply = client.messages.create(**{"model": MODEL, "max_tokens": 10, "messages": msgs("x"), **change})
        assert reply.type == "message", change


def test_every_parameter_the_sdk_sends_is_accepted_and_the_replies_parse_strictly(server):
    """The request shape of the SDK's own ``create`` with every parameter set, sent by a client that
    validates each response strictly against the SDK's types."""
    params = dict(
        model="claude-opus-4-6", max_tokens=1024, messages=[{"role": "user", "content": "Hello, world"}],
        cache_control={"type": "ephemeral", "ttl": "5m"}, container={"id": "container_1"},
        diagnostics={"previous_message_id": "msg_1"}, inference_geo="us", metadata={"user_id": "u-1"},
        output_config={"effort": "low", "format": {"type": "json_schema", "schema": {"foo": "bar"}}},
        service_tier="auto", speed="standard", stop_sequences=["string"],
        system=[{"type": "text", "text": "Today's date is 2024-06-01.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "adaptive"}, tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        tools=[{"name": "name", "type": "custom", "strict": True, "description": "Get the weather",
                "input_schema": {"type": "object", "properties": {"location": "bar", "unit": "bar"},
                                 "required": ["location"]}}],
    )
    with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0, _strict_response_validation=True) as c:
        message = c.messages.create(**params)
        with c.messages.stream(**params) as stream:
            streamed = stream.get_final_message()
        counted = c.messages.count_tokens(**{k: v for k, v in params.items() if k in (
            "model", "messages", "system", "tools", "tool_choice", "output_config", "thinking", "cache_control")})
    assert message.stop_reason == "tool_use" and message.content[0].input == {"location": "world"}
    assert streamed.content[0].input == message.content[0].input
    assert counted.input_tokens == message.usage.input_tokens
