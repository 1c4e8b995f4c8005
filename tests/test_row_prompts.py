"""Map templates: names checked against the columns, values rendered per row."""

from __future__ import annotations

import pandas as pd
import pytest

from claude_force_nb.core.errors import InvalidInputError
from claude_force_nb.engine.row_prompts import RowPrompts


def test_rows_render_in_order_with_format_specs_and_repeated_names():
    frame = pd.DataFrame({"name": ["a", "b"], "price": [1.5, 2.25], "unused": [0, 0]})
    prompts = RowPrompts("{name}: {price:.2f} ({name})", frame.columns)
    assert prompts.fields == ["name", "price"]
    assert list(prompts.rows(frame)) == ["a: 1.50 (a)", "b: 2.25 (b)"]


def test_columns_with_spaces_work_and_numbers_are_positional_fields():
    frame = pd.DataFrame({"review text": ["good"], 3: ["x"]})
    assert list(RowPrompts("{review text}", frame.columns).rows(frame)) == ["good"]
    with pytest.raises(InvalidInputError, match="positional field"):
        RowPrompts("{3}", frame.columns)


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA, pd.NaT])
def test_a_missing_value_renders_empty(value):
    frame = pd.DataFrame({"v": pd.Series([value], dtype=object)})
    assert list(RowPrompts("[{v}]", frame.columns).rows(frame)) == ["[]"]


def test_attribute_and_index_fields_are_refused_with_the_fix():
    with pytest.raises(InvalidInputError, match=r"\{a\.b\} has '\.' or '\['.*rename the column"):
        RowPrompts("{a.b}", ["a.b"])


def test_the_unknown_name_message_lists_columns_and_a_close_match():
    with pytest.raises(InvalidInputError) as refused:
        RowPrompts("{titel}", ["title", "body"])
    assert str(refused.value) == ("The prompt names {titel}, which is not a column of the DataFrame (title, body): "
                                  "did you mean {title}? name a column, or write {{ and }} for literal braces.")
