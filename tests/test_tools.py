"""@tool, Tool, ToolSet and ToolStep (core/tools.py): schemas from signatures, checked arguments,
one-line refusals, and definitions the real SDK sends as they are."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import anthropic
import pytest
from pydantic import BaseModel, Field

from claude_force_nb.core.errors import (
    InvalidInputError,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    UnknownToolError,
)
from claude_force_nb.core.tools import Tool, ToolSet, ToolStep, tool, tool_set
from claude_force_nb.testing import FakeAnthropicServer

from .conftest import TEST_KEY


@tool
def top_products(region: str, limit: int = 5, order: Literal["units", "revenue"] = "units") -> str:
    """Best-selling products of one region.

    Ranks by units sold unless asked otherwise.

    Args:
        region: The region's name, as in the
            sales table.
        limit: How many products to list.
    """
    return f"{region}:{limit}:{order}"


def numpy_style(column: str, bins: int = 10) -> str:
    """Histogram of one column.

    Parameters
    ----------
    column : str
        The column to count.
    bins : int, optional
        How many bins
        to use.
    """
    return f"{column}/{bins}"


class Point(BaseModel):
    x: float
    y: float


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    assert isinstance(top_products, Tool)
    assert top_products.definition() == {
        "name": "top_products",
        "description": "Best-selling products of one region.\n\nRanks by units sold unless asked otherwise.",
        "input_schema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "description": "The region's name, as in the sales table."},
                "limit": {"type": "integer", "default": 5, "description": "How many products to list."},
                "order": {"type": "string", "enum": ["units", "revenue"], "default": "units"},
            },
            "required": ["region"],
            "additionalProperties": False,
        },
    }
    assert top_products.is_async is False


def test_numpy_style_parameter_sections_are_read() -> None:
    made = tool(numpy_style)
    assert made.description == "Histogram of one column."
    assert made.input_schema["properties"] == {
        "column": {"type": "string", "description": "The column to count."},
        "bins": {"type": "integer", "default": 10, "description": "How many bins to use."},
    }


def test_the_decorated_name_still_calls_the_function() -> None:
    assert top_products("north", limit=2) == "north:2:units"


def test_validate_converts_the_models_arguments_and_fills_defaults() -> None:
    assert top_products.validate({"region": "north", "limit": "3"}) == {
        "region": "north", "limit": 3, "order": "units",
    }


def test_pydantic_models_and_constraints_in_parameters() -> None:
    @tool(name="plot-point")
    async def plot(point: Point, tags: Annotated[list[str], Field(max_length=2)] = []) -> str:  # noqa: B006
        """Plot one point."""
        return "ok"

    assert plot.is_async is True
    assert plot.input_schema == {
        "$defs": {
            "Point": {
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                "required": ["x", "y"],
                "title": "Point",
                "type": "object",
            }
        },
        "type": "object",
        "properties": {
            "point": {"$ref": "#/$defs/Point"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "default": []},
        },
        "required": ["point"],
        "additionalProperties": False,
    }
    assert plot.validate({"point": {"x": 1, "y": "2.5"}}) == {"point": Point(x=1.0, y=2.5), "tags": []}
    with pytest.raises(ToolArgumentsError) as caught:
        plot.validate({"point": {"x": 1, "y": 2}, "tags": ["a", "b", "c"]})
    assert str(caught.value) == (
        "Invalid arguments for plot-point: tags: List should have at most 2 items after validation, not 3 "
        "(got ['a', 'b', 'c']). Call it again with arguments that fit its input_schema."
    )


def test_parameter_names_that_pydantic_reserves_are_fine() -> None:
    @tool
    def lookup(schema: str, model_config: int = 0, _private: bool = False) -> str:
        """Look up."""
        return schema

    assert list(lookup.input_schema["properties"]) == ["schema", "model_config", "_private"]
    assert lookup.validate({"schema": "s", "_private": True}) == {"schema": "s", "model_config": 0, "_private": True}


def test_arguments_that_do_not_fit_give_one_line_the_model_can_act_on() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        top_products.validate({"limit": "ten", "colour": "red", "order": "price"})
    assert str(caught.value) == (
        "Invalid arguments for top_products: region: Field required; limit: Input should be a valid integer, "
        "unable to parse string as an integer (got 'ten'); order: Input should be 'units' or 'revenue' "
        "(got 'price'); colour: Extra inputs are not permitted. "
        "Call it again with arguments that fit its input_schema."
    )
    assert isinstance(caught.value, ToolError)
    with pytest.raises(ToolArgumentsError, match=r"^Arguments for top_products must be a JSON object, not \['north'\]\.$"):
        top_products.validate(["north"])


def untyped(region, limit: int = 3):  # type: ignore[no-untyped-def]
    """No type on region."""


def star_args(*regions: str) -> None:
    """Star args."""


def star_kwargs(**options: str) -> None:
    """Star kwargs."""


def positional_only(region: str, /) -> None:
    """Positional only."""


class Unsendable:
    pass


def unsendable(data: Unsendable) -> None:
    """A type JSON cannot carry."""


def undefined_hint(region: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
    """A hint naming nothing."""


def generator(region: str):  # type: ignore[no-untyped-def]
    """A generator."""
    yield region


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (42, "Cannot make a tool of 42 (int): pass a function defined with def or async def."),
        ("top_products", "Cannot make a tool of 'top_products' (str): pass a function defined with def or async def."),
        (Point, "Cannot make a tool of <class 'tests.test_tools.Point'> (ModelMetaclass): "
                "pass a function defined with def or async def."),
        (untyped, "Parameter 'region' of tool 'untyped' has no type: annotate it, e.g. region: str "
                  "(use str, int, float, bool, list, dict, Literal[...] or a pydantic model)."),
        (star_args, "Tool 'star_args' cannot take *regions: list each parameter with a type, "
                    "e.g. def f(column: str, limit: int = 10)."),
        (star_kwargs, "Tool 'star_kwargs' cannot take *options: list each parameter with a type, "
                      "e.g. def f(column: str, limit: int = 10)."),
        (positional_only, "Parameter 'region' of tool 'positional_only' is positional-only: remove the '/' "
                          "from its signature (the model passes arguments by name)."),
        (unsendable, "Parameter 'data' of tool 'unsendable' has a type the model cannot send as JSON "
                     "(Unsendable): use str, int, float, bool, list, dict, Literal[...] or a pydantic model "
                     "(e.g. take a variable's name and look it up)."),
        (undefined_hint, "Cannot read the parameters of tool 'undefined_hint' (NameError: name 'NoSuchType' "
                         "is not defined): make sure every type in its hints is defined."),
        (generator, "Tool 'generator' is a generator: return its result instead of yielding it."),
        (lambda region: region, "Tool name '<lambda>' is not allowed: use 1-64 letters, digits, '_' or '-', "
                                "and set it with @tool(name=...)."),
    ],
)
def test_what_cannot_be_a_tool_is_refused_in_one_line(target: object, message: str) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        tool(target)  # type: ignore[call-overload]
    assert str(caught.value) == message
    assert isinstance(caught.value, InvalidInputError)


@pytest.mark.parametrize("name", ["has space", "dotted.name", "", "x" * 65, "naïve", "trailing\n"])
def test_names_the_api_refuses_are_refused(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match=r"is not allowed: use 1-64 letters, digits, '_' or '-'"):
        tool(numpy_style, name=name)


def test_names_the_api_accepts() -> None:
    assert tool(numpy_style, name="x" * 64).name == "x" * 64
    assert tool(numpy_style, name="Read-2_b").name == "Read-2_b"


def test_partials_methods_and_overrides() -> None:
    class Shop:
        def stock(self, item: str) -> int:
            """Units in stock."""
            return len(item)

    method = tool(Shop().stock)
    assert list(method.input_schema["properties"]) == ["item"] and method("abc") == 3
    partial = tool(functools.partial(numpy_style, bins=4), name="hist4", description="Four bins.", timeout_s=2.0)
    assert partial.definition()["description"] == "Four bins."
    assert partial.input_schema["properties"]["bins"]["default"] == 4
    assert partial.timeout_s == 2.0 and partial("x") == "x/4"
    renamed = tool(top_products, name="best")
    assert renamed.name == "best" and renamed.function is top_products.function
    assert tool(top_products) is top_products


def test_a_function_without_docstring_has_no_description_key() -> None:
    def bare(x: int) -> int:
        return x

    assert tool(bare).definition() == {
        "name": "bare",
        "input_schema": {
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
            "additionalProperties": False,
        },
    }


def test_a_tool_set_refuses_two_tools_of_one_name_and_keeps_order() -> None:
    other = tool(numpy_style, name="top_products")
    with pytest.raises(ToolDefinitionError) as caught:
        tool_set([top_products, other])
    assert str(caught.value) == (
        "Two tools are named 'top_products' (tests.test_tools.top_products and tests.test_tools.numpy_style): "
        "rename one with @tool(name=...)."
    )
    tools = tool_set([numpy_style, top_products, top_products])
    assert isinstance(tools, ToolSet) and list(tools) == ["numpy_style", "top_products"]
    assert [d["name"] for d in tools.definitions()] == ["numpy_style", "top_products"]
    assert tools["top_products"] is top_products and repr(tools) == "ToolSet(numpy_style, top_products)"


def test_definitions_are_sent_unchanged_by_the_sdk() -> None:
    tools = tool_set([top_products, numpy_style])
    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(api_key=TEST_KEY, base_url=server.url, max_retries=0)
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
            tools=tools.definitions(),  # type: ignore[arg-type]
        )
        client.close()
        sent = [r.body for r in server.requests if r.path.startswith("/v1/messages")]
    assert sent[-1]["tools"] == tools.definitions()  # type: ignore[index]


def test_a_definition_is_a_copy() -> None:
    top_products.definition()["input_schema"]["properties"].clear()
    assert "region" in top_products.definition()["input_schema"]["properties"]


def test_a_step_shows_as_the_call_the_model_made() -> None:
    step = ToolStep(tool="describe", arguments={"name": "sales"}, result_preview="DataFrame", duration_s=0.0123)
    assert step.ok and step.call_text() == "describe(name='sales')"
    assert step.label() == "→ describe(name='sales') · 12 ms"
    failed = ToolStep(tool="top", arguments={"n": 3, "tags": ["a"] * 10}, result_preview="", duration_s=1.5,
                      error="KeyError: 'north'", tool_use_id="toolu_1")
    assert not failed.ok
    assert failed.label() == "→ top(n=3, tags=['a', 'a', 'a', 'a', ...]) · 1.5 s · error: KeyError: 'north'"
    assert failed.to_dict() == {
        "tool": "top", "arguments": {"n": 3, "tags": ["a"] * 10}, "result_preview": "", "duration_s": 1.5,
        "error": "KeyError: 'north'", "tool_use_id": "toolu_1",
    }


def test_an_unknown_tool_name_in_a_flag_or_agent_file_is_one_line_with_suggestions() -> None:
    error = UnknownToolError("descibe", ["list_variables", "describe", "Read"])
    assert str(error) == (
        "Unknown tool 'descibe'. Did you mean 'describe'? Available tools: Read, describe, list_variables. "
        "Decorate a notebook function with @tool, or use 'notebook' for list_variables and describe."
    )
    assert isinstance(error, InvalidInputError) and isinstance(error, LookupError)
    assert str(UnknownToolError("x")).startswith("Unknown tool 'x'. Available tools: none. ")
