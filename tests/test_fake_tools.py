"""Tests for claude_force_nb.testing.tools: tool_use answers, scripted calls, tool_choice and the answer
after tool results, seen through the REAL anthropic SDK over HTTP (JSON and streaming, sync and async)."""

from __future__ import annotations

import asyncio
import json

import anthropic
import jsonschema
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault

from .fake_support import MODEL, _module_server, client, expected_tokens, msgs, parse_sse, raw_request, server  # noqa: F401 (fixtures)

DESCRIBE = {"name": "describe", "description": "Shape, dtypes and head of a DataFrame.",
            "input_schema": {"type": "object", "properties": {"name": {"type": "string"},
                                                               "rows": {"type": "integer", "minimum": 1, "maximum": 20}},
                             "required": ["name", "rows"]}}
LIST_VARIABLES = {"name": "list_variables", "description": "The notebook's variables.",
                  "input_schema": {"type": "object", "properties": {}}}
TOOLS = [DESCRIBE, LIST_VARIABLES]


def results_for(message, text: str = "ok", **extra) -> dict:
    """The user turn answering every tool_use of ``message``."""
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": f"{b.name}: {text}",
                                         **extra} for b in message.content if b.type == "tool_use"]}


def assistant(message) -> dict:
    return {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}


def test_offered_tools_get_a_tool_use_with_arguments_valid_for_the_schema(server, client):
    m = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("Look at the sales data"))
    assert m.stop_reason == "tool_use"
    [call] = m.content
    assert call.type == "tool_use" and call.name == "describe"  # no tool named in the prompt: the first one
    assert call.id.startswith("toolu_01") and len(call.id) == len("toolu_01") + 22
    jsonschema.validate(call.input, DESCRIBE["input_schema"])
    assert call.input["name"] in {"Look", "the", "sales", "data"} and 1 <= call.input["rows"] <= 20
    assert m.usage.output_tokens == max(1, -(-len(json.dumps(call.input)) // 4))
    again = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("Look at the sales data"))
    assert [(b.id, b.input) for b in again.content] == [(call.id, call.input)]  # deterministic


def test_tools_named_in_the_prompt_are_called_in_order_of_mention(server, client):
    m = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                               messages=msgs("First list_variables, then describe the biggest frame"))
    assert [b.name for b in m.content] == ["list_variables", "describe"]
    assert m.content[0].input == {} and len({b.id for b in m.content}) == 2
    one = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                                 tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                                 messages=msgs("First list_variables, then describe the biggest frame"))
    assert [b.name for b in one.content] == ["list_variables"]


def test_after_tool_results_the_answer_quotes_them(server, client):
    first = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                                   messages=msgs("list_variables and describe please"))
    history = msgs("list_variables and describe please") + [assistant(first)]
    answer = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                                    messages=history + [results_for(first, "shape (3, 2)")])
    assert answer.stop_reason == "end_turn" and [b.type for b in answer.content] == ["text"]
    text = answer.content[0].text
    assert text.startswith(f"**Offline answer** from `{MODEL}`. Tool results: ")
    assert '`list_variables` returned: "list_variables: shape (3, 2)"' in text
    assert '`describe` returned: "describe: shape (3, 2)"' in text
    failed = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                                    messages=history + [results_for(first, "NameError: no 'x'", is_error=True)])
    assert "`describe` failed: \"describe: NameError: no 'x'\"" in failed.content[0].text


def test_long_tool_results_are_quoted_up_to_200_characters(server, client):
    first = client.messages.create(model=MODEL, max_tokens=300, tools=[LIST_VARIABLES], messages=msgs("vars?"))
    blocks = [{"type": "text", "text": "x" * 150}, {"type": "text", "text": "y" * 150}]
    answer = client.messages.create(model=MODEL, max_tokens=300, tools=[LIST_VARIABLES], messages=msgs("vars?") + [
        assistant(first), {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": first.content[0].id, "content": blocks}]}])
    assert f'returned: "{"x" * 150} {"y" * 49}…"' in answer.content[0].text


def test_scripted_calls_several_in_one_turn_then_text(server, client):
    server.script_tools(("describe", {"name": "sales"}), {"name": "describe", "input": {"name": "costs"}})
    server.script(Fault(text="Let me check.", tool_calls=[("list_variables", {})]))
    m = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("go"))
    assert [(b.name, b.input) for b in m.content] == [("describe", {"name": "sales"}), ("describe", {"name": "costs"})]
    assert m.stop_reason == "tool_use"
    second = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS,
                                    messages=msgs("go") + [assistant(m), results_for(m)])
    assert [b.type for b in second.content] == ["text", "tool_use"]
    assert second.content[0].text == "Let me check." and second.content[1].name == "list_variables"
    assert server.pending_faults == 0


@pytest.mark.parametrize(("tool_choice", "expected"), [
    ({"type": "tool", "name": "list_variables"}, ["list_variables"]),
    ({"type": "any"}, ["describe"]),
    ({"type": "none"}, []),
])
def test_tool_choice_is_honoured(server, client, tool_choice, expected):
    m = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, tool_choice=tool_choice, messages=msgs("hm"))
    assert [b.name for b in m.content if b.type == "tool_use"] == expected
    assert m.stop_reason == ("tool_use" if expected else "end_turn")


def test_a_forced_tool_is_called_even_after_results_unless_scripted_otherwise(server, client):
    forced = {"type": "tool", "name": "describe"}
    first = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, tool_choice=forced, messages=msgs("x"))
    history = msgs("x") + [assistant(first), results_for(first)]
    again = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, tool_choice=forced, messages=history)
    assert [b.name for b in again.content] == ["describe"]
    server.script(Fault(tool_calls=[]))
    text = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, tool_choice=forced, messages=history)
    assert text.stop_reason == "end_turn" and "Tool results:" in text.content[0].text


def test_max_tokens_too_small_for_the_call_drops_it(server, client):
    server.script_tools(("describe", {"name": "a-rather-long-frame-name-for-sure"}))
    m = client.messages.create(model=MODEL, max_tokens=2, tools=TOOLS, messages=msgs("x"))
    assert m.stop_reason == "max_tokens" and m.content == []


def test_streamed_tool_use_is_input_json_deltas(server, client):
    server.script(Fault(text="Checking the data now.", tool_calls=[("describe", {"name": "sales", "rows": 5}),
                                                                  ("list_variables", {})]))
    with client.messages.stream(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("go")) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[1].input == {"name": "sales", "rows": 5} and final.content[2].input == {}
    assert final.stop_reason == "tool_use"
    partial = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.index == 1]
    assert len(partial) > 1 and json.loads("".join(partial)) == {"name": "sales", "rows": 5}
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert starts[1].type == "tool_use" and starts[1].input == {} and starts[1].id == final.content[1].id


def test_stream_wire_format_for_tool_use(server):
    status, _, payload = raw_request(server, "POST", "/v1/messages", {
        "model": MODEL, "max_tokens": 300, "tools": TOOLS, "stream": True,
        "tool_choice": {"type": "tool", "name": "describe"}, "messages": msgs("wire")}, {"x-api-key": "k"})
    assert status == 200
    names = [name for name, _ in parse_sse(payload)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    events = dict(parse_sse(payload)[1:2])
    block = events["content_block_start"]["content_block"]
    assert block["type"] == "tool_use" and block["input"] == {} and block["name"] == "describe"
    deltas = [d["delta"] for n, d in parse_sse(payload) if n == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"input_json_delta"} and all(len(d["partial_json"]) <= 16 for d in deltas)
    assert parse_sse(payload)[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_broken_stream_of_tool_use_stops_half_way(server, client):
    server.script(Fault(truncate=True, tool_calls=[("describe", {"name": "x" * 60, "rows": 1})]))
    with client.messages.stream(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("cut")) as stream:
        events = list(stream)
    assert "message_stop" not in [e.type for e in events] and "content_block_stop" not in [e.type for e in events]
    assert stream.current_message_snapshot.stop_reason is None


def test_async_tool_loop_json_and_stream():
    async def main():
        with FakeAnthropicServer() as srv:
            async with anthropic.AsyncAnthropic(api_key="k", base_url=srv.url, max_retries=0) as c:
                first = await c.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("describe"))
                history = msgs("describe") + [assistant(first), results_for(first, "3 rows")]
                async with c.messages.stream(model=MODEL, max_tokens=300, tools=TOOLS, messages=history) as stream:
                    text = "".join([piece async for piece in stream.text_stream])
                return first, text

    first, text = asyncio.run(main())
    assert first.content[0].name == "describe" and '`describe` returned: "describe: 3 rows"' in text


def test_tool_results_must_answer_the_previous_tool_use(server, client):
    first = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("describe"))
    stray = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01nope", "content": "x"}]}
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("describe") + [
            assistant(first), stray])
    assert ei.value.type == "invalid_request_error"
    assert ei.value.api_message.startswith(
        "messages.2.content: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01nope.")
    with pytest.raises(anthropic.BadRequestError, match=rf"`tool_use` ids were found without `tool_result` blocks "
                                                        rf"immediately after: {first.content[0].id}"):
        client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs("describe") + [
            assistant(first), {"role": "user", "content": "and?"}])


def test_the_sdks_own_tool_runner_loops_until_the_answer(server, client):
    """``client.beta.messages.tool_runner``: the fake refuses its server-side thread the way the SDK recovers
    from (``thread_unsupported_request``), so the runner resends the whole conversation each turn."""
    seen: list[str] = []

    @anthropic.beta_tool
    def describe(name: str) -> str:
        """Shape of a DataFrame."""
        seen.append(name)
        return f"{name}: 3 rows x 2 columns"

    runner = client.beta.messages.tool_runner(model=MODEL, max_tokens=300, tools=[describe],
                                              messages=msgs("describe the sales frame"))
    replies = list(runner)
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    assert seen == [replies[0].content[0].input["name"]]
    assert f'`describe` returned: "{seen[0]}: 3 rows x 2 columns"' in replies[-1].content[0].text
    refused = [r for r in server.requests if r.body and "thread" in r.body]
    assert len(refused) == 1 and refused[0].headers["anthropic-beta"].startswith("message-threads")
    streamed = client.beta.messages.tool_runner(model=MODEL, max_tokens=300, tools=[describe], stream=True,
                                                messages=msgs("describe the sales frame"))
    assert [s.get_final_message().stop_reason for s in streamed] == ["tool_use", "end_turn"]


def test_a_server_side_thread_is_refused_with_the_code_the_sdk_knows(server):
    status, _, payload = raw_request(server, "POST", "/v1/messages?beta=true", {
        "model": MODEL, "max_tokens": 10, "messages": msgs("x"), "thread": {"type": "create"}}, {"x-api-key": "k"})
    error = json.loads(payload)["error"]
    assert status == 400 and error["type"] == "invalid_request_error"
    assert error["details"] == {"error_code": "thread_unsupported_request", "unsupported": ["thread"]}
    status, _, payload = raw_request(server, "POST", "/v1/messages", {
        "model": MODEL, "max_tokens": 10, "messages": msgs("x"), "thread": {"type": "create"}}, {"x-api-key": "k"})
    assert status == 400 and json.loads(payload)["error"]["message"] == "thread: Extra inputs are not permitted"


def test_tool_definitions_count_as_input_tokens(server, client):
    m = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, tool_choice={"type": "none"},
                               messages=msgs("how big?"))
    assert m.usage.input_tokens == expected_tokens("how big?", json.dumps(TOOLS, sort_keys=True))
    assert client.messages.count_tokens(model=MODEL, tools=TOOLS, messages=msgs("how big?")).input_tokens == \
        m.usage.input_tokens
