"""list_variables and describe (notebook/context_tools.py): what an agent sees of the notebook,
from a plain dict namespace, capped."""

from __future__ import annotations

import os
import re
import typing

import numpy as np
import pandas as pd
import pytest

from claude_force_nb.core.errors import ToolError
from claude_force_nb.core.tools import Tool, tool
from claude_force_nb.notebook.context_tools import NOTEBOOK_TOOLS, notebook_tools


@tool
def my_tool(x: int) -> int:
    """A user's tool."""
    return x


def sales_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "region": ["north", "south", "east", "west"] * 2,
        "units": [3, 5, 2, 8, 1, 4, 6, 7],
        "price": [1.5, 2.0, 2.5, 1.0, 3.0, 2.0, 1.5, 1.0],
    })


@pytest.fixture
def namespace() -> dict[str, object]:
    """What a kernel's user_ns holds after a few cells."""
    sales = sales_frame()
    return {
        "__name__": "__main__", "__builtins__": {}, "_": 3, "_i2": "x = 1", "_oh": {}, "In": ["", "x = 1"],
        "Out": {}, "get_ipython": lambda: None, "exit": object(), "quit": object(),
        "os": os, "pd": pd, "np": np,
        "sales": sales, "units": sales["units"], "grid": np.zeros((2, 3)),
        "title": "Quarterly sales", "ids": list(range(1_000_000)), "rate": 0.25,
        "helper": lambda x: x, "Frame": pd.DataFrame, "my_tool": my_tool,
        "Literal": typing.Literal, "MaybeInt": typing.Optional[int],  # noqa: UP045  # typing names, not data
    }


def test_the_two_tools_and_their_definitions(namespace: dict[str, object]) -> None:
    tools = notebook_tools(namespace)
    assert [t.name for t in tools] == list(NOTEBOOK_TOOLS) == ["list_variables", "describe"]
    assert all(isinstance(t, Tool) for t in tools)
    assert [t.definition() for t in tools] == [
        {
            "name": "list_variables",
            "description": "List the notebook's variables: name, type and a short summary (a DataFrame's shape "
                           "and\ncolumns, a container's length, a short value). Call describe(name) for more on one.",
            "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
        },
        {
            "name": "describe",
            "description": "Describe one notebook variable: for a DataFrame or Series its shape, dtypes, first rows"
                           "\nand describe() statistics; for anything else its type, size and a short repr.",
            "input_schema": {
                "type": "object",
                "properties": {"name": {"type": "string", "description": "The variable's name, as list_variables shows it."}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
    ]


def test_list_variables_shows_the_users_data_and_nothing_else(namespace: dict[str, object]) -> None:
    list_variables, _ = notebook_tools(namespace)
    assert list_variables() == "\n".join([
        "sales: DataFrame 8 rows × 3 columns (region, units, price)",
        "units: Series 8 values, dtype int64",
        "grid: ndarray shape (2, 3), dtype float64",
        "title: str of 15 characters: 'Quarterly sales'",
        "ids: list of 1,000,000 items: [0, 1, 2, 3, ...]",
        "rate: float: 0.25",
    ])


def test_list_variables_sees_later_cells_and_honours_ipythons_hidden_names(namespace: dict[str, object]) -> None:
    list_variables, _ = notebook_tools(namespace, hidden={"sales", "units", "grid", "ids", "rate"})
    namespace["answer"] = 42
    assert list_variables() == "title: str of 15 characters: 'Quarterly sales'\nanswer: int: 42"


def test_list_variables_is_capped(namespace: dict[str, object]) -> None:
    list_variables, _ = notebook_tools(namespace, list_chars=120)
    assert list_variables() == "\n".join([
        "sales: DataFrame 8 rows × 3 columns (region, units, price)",
        "units: Series 8 values, dtype int64",
        "… and 4 more (the list is capped at 120 characters)",
    ])
    wide = pd.DataFrame(columns=[f"col_{i}" for i in range(40)])
    assert notebook_tools({"wide": wide})[0]() == (
        "wide: DataFrame 0 rows × 40 columns (col_0, col_1, col_2, col_3, col_4, col_5, col_6, col_7, col_8, "
        "col_9, …)"
    )
    assert notebook_tools({})[0]() == "The notebook has no variables yet."


def test_describe_a_dataframe(namespace: dict[str, object]) -> None:
    _, describe = notebook_tools(namespace, head_rows=3)
    sales = sales_frame()
    assert describe("sales") == "\n\n".join([
        "sales: DataFrame, 8 rows × 3 columns",
        f"dtypes:\nregion: {sales['region'].dtype}\nunits: int64\nprice: float64",
        "First 3 rows:\n" + sales.head(3).to_string(),
        "describe():\n" + sales.describe().to_string(),
    ])


def test_describe_a_series(namespace: dict[str, object]) -> None:
    _, describe = notebook_tools(namespace, head_rows=2)
    units = sales_frame()["units"]
    assert describe("units") == "\n\n".join([
        "units: Series, 8 values, dtype int64",
        "First 2 rows:\n" + units.head(2).to_string(),
        "describe():\n" + units.describe().to_string(),
    ])


def test_describe_other_objects_with_a_capped_repr(namespace: dict[str, object]) -> None:
    _, describe = notebook_tools(namespace)
    assert describe("rate") == "rate: float\n0.25"
    assert describe("title") == "title: str, 15 characters\n'Quarterly sales'"
    assert describe("grid") == f"grid: ndarray, shape (2, 3), dtype float64\n{np.zeros((2, 3))!r}"
    ids = describe("ids")
    assert ids.startswith("ids: list, 1,000,000 items\n[0, 1, 2,") and ids.endswith(", 49, ...]")


def test_describe_is_capped(namespace: dict[str, object]) -> None:
    big = pd.DataFrame({f"c{i}": range(50) for i in range(30)})
    _, describe = notebook_tools({"big": big}, describe_chars=200)
    text = describe("big")
    assert text.startswith("big: DataFrame, 50 rows × 30 columns\n\ndtypes:\nc0: int64")
    full = len(text.split("\n[cut: ", 1)[0])
    assert full == 200 and text.endswith(" characters in all, only the first 200 are shown]")


def test_describe_refuses_unknown_and_hidden_names(namespace: dict[str, object]) -> None:
    _, describe = notebook_tools(namespace)
    with pytest.raises(ToolError) as caught:
        describe("sale")
    assert str(caught.value) == (
        "No variable 'sale' in the notebook (did you mean sales?): call list_variables to see the names."
    )
    for hidden in ("In", "_", "os", "helper", "my_tool"):
        with pytest.raises(ToolError, match=rf"^No variable '{hidden}' in the notebook"):
            describe(hidden)


def test_a_value_that_fails_to_summarise_does_not_break_the_listing() -> None:
    class Broken:
        def __len__(self) -> int:
            raise RuntimeError("no length today")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    list_variables, describe = notebook_tools({"broken": Broken(), "n": 1})
    assert list_variables() == "broken: Broken (cannot be summarised: RuntimeError)\nn: int: 1"
    assert re.fullmatch(r"broken: Broken\n<Broken instance at 0x[0-9a-f]+>", describe("broken"))


def test_a_frame_whose_describe_fails_is_still_described() -> None:
    class OddFrame:
        shape = (2, 1)
        columns = ["a"]
        dtypes = ["weird"]

        def head(self, n: int) -> str:
            return "a\n1"

        def describe(self) -> str:
            raise TypeError("cannot describe weird")

    _, describe = notebook_tools({"odd": OddFrame()})
    assert describe("odd") == (
        "odd: OddFrame, 2 rows × 1 columns\n\ndtypes:\na: weird\n\nFirst 5 rows:\na\n1\n\n"
        "describe():\n(failed: TypeError: cannot describe weird)"
    )
