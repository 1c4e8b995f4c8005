"""Tests for claude_force_nb.testing.schemas (a deterministic minimal instance of a JSON schema) and the
structured-output answers built from it, read by the REAL anthropic SDK (``output_config`` and ``messages.parse``)."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Literal

import anthropic
import jsonschema
import pydantic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault
from claude_force_nb.testing.schemas import instance

from .fake_support import MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)


class Item(pydantic.BaseModel):
    name: str
    qty: int = pydantic.Field(ge=1, le=5)


class Review(pydantic.BaseModel):
    title: str = pydantic.Field(min_length=12, max_length=20)
    score: float = pydantic.Field(gt=0, lt=1)
    stars: int = pydantic.Field(ge=1, le=5, multiple_of=2)
    tags: list[str] = pydantic.Field(min_length=2)
    kind: Literal["bug", "feature", "question"]
    ok: bool
    when: datetime.date
    seen_at: datetime.datetime
    contact: str | None = pydantic.Field(default=None, json_schema_extra={"format": "email"})
    items: list[Item]
    note: str | None
    parent: Review | None = None


SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
    {"type": "object", "properties": {"x": {"type": ["null", "number"], "exclusiveMinimum": 10, "maximum": 11}},
     "required": ["x"]},
    {"type": "array", "items": {"enum": ["red", "green"]}, "minItems": 3, "maxItems": 3},
    {"type": "array", "prefixItems": [{"type": "boolean"}, {"const": 7}], "minItems": 2},
    {"type": "string", "format": "uuid"},
    {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "number", "multipleOf": 0.5, "minimum": 1,
                                                        "maximum": 2}}, "required": ["a"]},
               {"properties": {"b": {"type": "null"}}, "required": ["b"]}]},
    {"oneOf": [{"type": "null"}, {"type": "object", "required": ["z"]}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instances_are_valid(schema):
    for seed in ("the quick brown fox", "another prompt entirely", ""):
        jsonschema.validate(instance(schema, seed), schema)


def test_draft_4_exclusive_bounds():
    schema = {"type": "object", "properties": {"v": {"type": "integer", "minimum": 5, "exclusiveMinimum": True,
                                                     "maximum": 7, "exclusiveMaximum": True}}, "required": ["v"]}
    jsonschema.Draft4Validator(schema).validate(instance(schema, "x"))
    assert instance(schema, "x") == {"v": 6}


def test_a_pydantic_model_schema_gets_a_valid_minimal_instance():
    schema = Review.model_json_schema()
    values = [instance(schema, seed) for seed in ("Rate the new release", "Triage this crash report", "")]
    for value in values:
        Review.model_validate(value)
        jsonschema.validate(value, schema)
        assert set(value) == set(schema["$defs"]["Review"]["required"])  # optional fields stay out
        assert len(value["tags"]) == 2 and len(value["items"]) == 1
        assert value["stars"] in (2, 4) and 0 < value["score"] < 1
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 3  # different prompts, different rows
    assert instance(schema, "Rate the new release") == values[0]  # the same prompt, the same row
    assert values[0]["items"][0]["name"] in {"Rate", "the", "new", "release"}


def test_the_seed_words_fill_strings_and_formats_are_honoured():
    schema = {"type": "object", "required": ["w", "d", "t", "e", "u"], "properties": {
        "w": {"type": "string"}, "d": {"type": "string", "format": "date"},
        "t": {"type": "string", "format": "date-time"}, "e": {"type": "string", "format": "email"},
        "u": {"type": "string", "format": "uri"}}}
    value = instance(schema, "alpha beta gamma")
    assert value["w"] in {"alpha", "beta", "gamma"}
    datetime.date.fromisoformat(value["d"])
    assert datetime.datetime.fromisoformat(value["t"].replace("Z", "+00:00")).tzinfo is not None
    assert value["e"].endswith("@example.com") and value["u"].startswith("https://example.com/")
    assert instance({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "") == {
        "city": "city"}  # no words in the prompt: the property's name


def test_unusable_and_recursive_schemas_still_give_a_value():
    assert instance({"foo": "bar"}, "Hello, world") in ("Hello", "world")  # no type: a string
    assert instance(True, "x y zed") == "zed" and instance(False, "x") is None
    assert instance({"$ref": "#/$defs/missing"}, "word") == "word"
    recursive = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}},
                                 "required": ["next"]}}, "$ref": "#/$defs/N"}
    value = instance(recursive, "x")
    depth = 0
    while value:
        value, depth = value["next"], depth + 1
    assert depth == 12  # nesting ends in {} at the depth cap


STRUCTURED = {"type": "json_schema", "schema": Item.model_json_schema()}


def test_output_config_answers_with_json_valid_for_the_schema(server, client):
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=msgs("Pick an item for the basket"),
                                   output_config={"format": STRUCTURED})
    assert reply.stop_reason == "end_turn" and [b.type for b in reply.content] == ["text"]
    item = Item.model_validate_json(reply.content[0].text)
    assert item.name in {"Pick", "item", "for", "the", "basket"}
    again = client.messages.create(model=MODEL, max_tokens=200, messages=msgs("Pick an item for the basket"),
                                   output_config={"format": STRUCTURED})
    assert again.content[0].text == reply.content[0].text
    assert reply.usage.output_tokens == len(reply.content[0].text.split())


def test_a_scripted_text_can_fail_the_schema(server, client):
    server.script(Fault(text='{"name": 3}'))
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=msgs("x"), output_config={"format": STRUCTURED})
    with pytest.raises(pydantic.ValidationError):
        Item.model_validate_json(reply.content[0].text)


class Part(pydantic.BaseModel):
    name: str
    count: int


class Verdict(pydantic.BaseModel):
    """Fields without numeric or length limits: the SDK moves those out of the schema it sends."""

    title: str
    score: float
    tags: list[str]
    kind: Literal["bug", "feature", "question"]
    parts: list[Part]


def test_the_sdks_parse_helper_round_trips(server, client):
    parsed = client.messages.parse(model=MODEL, max_tokens=500, messages=msgs("Review the release notes"),
                                   output_format=Verdict)
    verdict = parsed.parsed_output
    assert isinstance(verdict, Verdict) and verdict.kind in ("bug", "feature", "question")
    assert server.requests[-1].body["output_config"]["format"]["type"] == "json_schema"


def test_a_streamed_structured_answer_async():
    async def main():
        with FakeAnthropicServer(chunk_delay_s=0.001) as srv:
            async with anthropic.AsyncAnthropic(api_key="k", base_url=srv.url, max_retries=0) as c:
                async with c.messages.stream(model=MODEL, max_tokens=300, messages=msgs("An item please"),
                                             output_config={"format": STRUCTURED}) as stream:
                    pieces = [p async for p in stream.text_stream]
                return pieces

    pieces = asyncio.run(main())
    assert len(pieces) > 1 and Item.model_validate_json("".join(pieces)).qty in range(1, 6)


def test_a_structured_answer_after_tool_results_draws_on_them(server, client):
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
    first = client.messages.create(model=MODEL, max_tokens=300, tools=tools, messages=msgs("lookup"),
                                   output_config={"format": STRUCTURED})
    assert first.stop_reason == "tool_use"
    reply = client.messages.create(model=MODEL, max_tokens=300, tools=tools, output_config={"format": STRUCTURED},
                                   messages=msgs("lookup") + [
                                       {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                                         for b in first.content]},
                                       {"role": "user", "content": [{"type": "tool_result", "content": "walnuts",
                                                                     "tool_use_id": first.content[0].id}]}])
    assert Item.model_validate_json(reply.content[0].text).name == "walnuts"
