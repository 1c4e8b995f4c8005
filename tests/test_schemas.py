"""OutputSchema (core/schemas.py): three ways to say the shape of an answer, one object to send
and to check replies with."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from pydantic import BaseModel, Field

from claude_force_nb.core.errors import APICallError, InvalidInputError, InvalidSchemaError, SchemaMismatchError
from claude_force_nb.core.schemas import SCHEMA_TOOL_NAME, OutputSchema, fields_model
from claude_force_nb.testing import FakeAnthropicServer

from .conftest import TEST_KEY

FIELDS_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "score": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "score", "tags"],
    "additionalProperties": False,
}


class Review(BaseModel):
    verdict: str = Field(description="approve or reject")
    score: int = Field(ge=0, le=10)
    issues: list[str] = []


def test_a_field_list_gives_the_schema_columns_and_dicts() -> None:
    schema = OutputSchema.from_spec("title, score float, tags list[str]")
    assert schema.json_schema == FIELDS_SCHEMA
    assert schema.columns == ("title", "score", "tags")
    assert schema.model is None
    assert schema.validate('{"title": "Dune", "score": "4.5", "tags": ["sf"]}') == {
        "title": "Dune", "score": 4.5, "tags": ["sf"],
    }


def test_a_field_list_by_lines_carries_descriptions_with_commas() -> None:
    schema = OutputSchema.from_spec("name: the person's name, in full\nage int\nadult bool: 18 or over, or not")
    assert schema.json_schema["properties"] == {
        "name": {"type": "string", "description": "the person's name, in full"},
        "age": {"type": "integer"},
        "adult": {"type": "boolean", "description": "18 or over, or not"},
    }
    assert schema.columns == ("name", "age", "adult")


def test_every_field_type_of_the_shorthand() -> None:
    model = fields_model("a, b str, c int, d float, e bool, f list[int], g list[float], h list[bool]")
    props = OutputSchema.from_spec(model).json_schema["properties"]
    assert {name: spec.get("type") for name, spec in props.items()} == {
        "a": "string", "b": "string", "c": "integer", "d": "number", "e": "boolean",
        "f": "array", "g": "array", "h": "array",
    }
    assert [props[n]["items"] for n in "fgh"] == [{"type": "integer"}, {"type": "number"}, {"type": "boolean"}]


def test_a_pydantic_model_gives_instances_and_an_api_ready_schema() -> None:
    schema = OutputSchema.from_spec(Review)
    assert schema.model is Review and schema.columns == ("verdict", "score", "issues")
    # The API cannot enforce ranges: transform_schema moves them into the description,
    # and validation still enforces them.
    assert schema.json_schema == {
        "type": "object",
        "title": "Review",
        "properties": {
            "verdict": {"type": "string", "description": "approve or reject"},
            "score": {"type": "integer", "description": "{maximum: 10, minimum: 0}"},
            "issues": {"type": "array", "items": {"type": "string"}, "description": "{default: []}"},
        },
        "additionalProperties": False,
        "required": ["verdict", "score"],
    }
    assert schema.validate('{"verdict": "approve", "score": 7}') == Review(verdict="approve", score=7, issues=[])
    with pytest.raises(SchemaMismatchError) as caught:
        schema.validate('{"verdict": "approve", "score": 11}')
    assert str(caught.value) == (
        "The reply does not fit the schema: score: Input should be less than or equal to 10 (got 11)"
    )


def test_a_json_schema_dict_gives_dicts_checked_against_the_full_schema() -> None:
    spec = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 1}},
        "required": ["city", "rank"],
    }
    schema = OutputSchema.from_spec(spec)
    assert schema.columns == ("city", "rank")
    assert schema.json_schema == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "description": "{minimum: 1}"}},
        "additionalProperties": False,
        "required": ["city", "rank"],
    }
    assert spec["properties"]["rank"] == {"type": "integer", "minimum": 1}  # the user's dict is not changed
    assert schema.validate('{"city": "Oslo", "rank": 2}') == {"city": "Oslo", "rank": 2}
    with pytest.raises(SchemaMismatchError) as caught:
        schema.validate('{"rank": 0}')
    assert str(caught.value) == (
        "The reply does not fit the schema: (top level): 'city' is a required property; rank: 0 is less than "
        "the minimum of 1"
    )


@pytest.mark.parametrize(
    ("spec", "text", "message"),
    [
        ("title, score float", "Sure! Here it is.",
         "The reply is not JSON (Expecting value: line 1 column 1 (char 0)): 'Sure! Here it is.'"),
        ("title, score float", '{"title": 3, "extra": 1}',
         "The reply does not fit the schema: title: Input should be a valid string (got 3); score: Field required; "
         "extra: Extra inputs are not permitted"),
        ("title", "[1, 2]", "The reply does not fit the schema: (top level): Input should be a JSON object (got [1, 2])"),
        (Review, '{"verdict": "x", "score": "high"}',
         "The reply does not fit the schema: score: Input should be a valid integer, unable to parse string as an "
         "integer (got 'high')"),
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, '{"n": "x"}',
         "The reply does not fit the schema: n: 'x' is not of type 'integer'"),
    ],
)
def test_a_reply_that_does_not_fit_is_a_schema_mismatch(spec: Any, text: str, message: str) -> None:
    with pytest.raises(SchemaMismatchError) as caught:
        OutputSchema.from_spec(spec).validate(text)
    assert str(caught.value) == message
    assert caught.value.error_type == "schema_mismatch"
    assert isinstance(caught.value, APICallError)


def test_many_problems_are_summed_up() -> None:
    schema = OutputSchema.from_spec("a int, b int, c int, d int, e int, f int, g int")
    with pytest.raises(SchemaMismatchError, match=r"; e: Field required; and 2 more$"):
        schema.validate("{}")


def test_forced_tool_input_is_validated_as_data() -> None:
    schema = OutputSchema.from_spec(Review)
    assert schema.validate_data({"verdict": "reject", "score": 2, "issues": ["x"]}) == Review(
        verdict="reject", score=2, issues=["x"]
    )


def test_request_fragments_for_native_and_forced_tool_output() -> None:
    schema = OutputSchema.from_spec("title, score float, tags list[str]")
    assert schema.output_config() == {"format": {"type": "json_schema", "schema": FIELDS_SCHEMA}}
    assert schema.tool_definition() == {
        "name": SCHEMA_TOOL_NAME,
        "description": "Record the answer in exactly this structure.",
        "input_schema": FIELDS_SCHEMA,
    }
    assert schema.tool_choice() == {"type": "tool", "name": "record_answer"}
    assert OutputSchema.from_spec(schema) is schema


def test_the_sdk_sends_the_output_config_and_forced_tool_unchanged() -> None:
    schema = OutputSchema.from_spec(Review)
    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(api_key=TEST_KEY, base_url=server.url, max_retries=0)
        base = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        client.messages.create(**base, output_config=schema.output_config())  # type: ignore[arg-type]
        client.messages.create(**base, tools=[schema.tool_definition()], tool_choice=schema.tool_choice())  # type: ignore[arg-type]
        client.close()
        native, forced = [r.body for r in server.requests if r.path.startswith("/v1/messages")][-2:]
    assert native["output_config"] == schema.output_config()  # type: ignore[index]
    assert forced["tools"] == [schema.tool_definition()]  # type: ignore[index]
    assert forced["tool_choice"] == {"type": "tool", "name": "record_answer"}  # type: ignore[index]


HELP = ("write fields like 'title, score float, tags list[str]' "
        "(types str, int, float, bool and list[...] of those; default str).")
SPEC_HELP = ("pass a pydantic model class, a JSON-schema dict such as {'type': 'object', 'properties': {...}}, "
             "or a field list such as 'title, score float'.")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", f"Empty schema string: {HELP}"),
        ("  ", f"Empty schema string: {HELP}"),
        ("title, , score", f"Invalid schema string 'title, , score': an empty field (two separators in a row?); {HELP}"),
        ("title, score flaot", f"Invalid schema string 'title, score flaot': unknown type 'flaot' for field 'score'; {HELP}"),
        ("tags list[date]", f"Invalid schema string 'tags list[date]': unknown type 'list[date]' for field 'tags'; {HELP}"),
        ("title, title", f"Invalid schema string 'title, title': field 'title' appears twice; {HELP}"),
        ("2nd", f"Invalid schema string '2nd': cannot read field '2nd' (expected 'name' or 'name type'); {HELP}"),
        ("score float int", "Invalid schema string 'score float int': cannot read field 'score float int' "
                            f"(expected 'name' or 'name type'); {HELP}"),
        (42, f"schema=42 is not a schema: {SPEC_HELP}"),
        (int, f"schema=<class 'int'> is not a schema: {SPEC_HELP}"),
        ({"type": "array", "items": {"type": "string"}},
         "A JSON schema for structured output must describe an object: {'type': 'object', 'properties': {...}} "
         "(a list can be one of its properties)."),
        ({"type": "object", "properties": {"a": {"type": "text"}}},
         f"Invalid JSON schema (properties/a/type): 'text' is not valid under any of the given schemas; {SPEC_HELP}"),
    ],
)
def test_a_schema_that_cannot_be_used_is_one_clear_line(spec: Any, message: str) -> None:
    with pytest.raises(InvalidSchemaError) as caught:
        OutputSchema.from_spec(spec)
    assert str(caught.value) == message
    assert isinstance(caught.value, InvalidInputError)
