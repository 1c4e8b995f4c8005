"""DataFrames and Series as prompt text: a summary within a budget, or the whole table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from claude_force_nb.views.table_text import is_table, markdown_table, table_full, table_summary


@pytest.fixture
def sales() -> pd.DataFrame:
    return pd.DataFrame({"region": ["north", "south"] * 3, "amount": np.arange(6, dtype=float), "n": np.arange(6)})


def test_tables_are_told_apart_without_importing_pandas_types(sales):
    assert is_table(sales) and is_table(sales["n"])
    assert not is_table(np.arange(3)) and not is_table([1, 2]) and not is_table("text")


def test_markdown_table_has_the_index_header_and_escaped_cells():
    frame = pd.DataFrame({"a|b": ["x|y", "line\nbreak"]}, index=pd.Index([7, 8], name="id"))
    assert markdown_table(frame) == "| id | a\\|b |\n| --- | --- |\n| 7 | x\\|y |\n| 8 | line break |"


def test_summary_has_shape_dtypes_and_the_first_rows(sales):
    text = table_summary(sales, 2_000, "sales")
    text_dtype = sales["region"].dtype  # str on pandas 3, object before
    assert text.splitlines()[0] == (
        f"DataFrame sales, 6 rows × 3 columns; columns: region ({text_dtype}), amount (float64), n (int64)")
    assert text.splitlines()[1] == "first 5 rows:"
    assert "| 4 | north | 4.0 | 4 |" in text and "| 5 |" not in text


def test_a_million_rows_stay_within_the_budget():
    frame = pd.DataFrame({"x": np.arange(1_000_000), "label": ["a long label value " * 3] * 1_000_000})
    for budget in (200, 400, 2_000):
        text = table_summary(frame, budget)
        assert len(text) <= budget and "1,000,000 rows × 2 columns" in text
    assert "first 2 rows:" in table_summary(frame, 250) and "| 2 |" not in table_summary(frame, 250)


def test_a_budget_smaller_than_the_header_cuts_it_and_says_so(sales):
    text = table_summary(sales, 60)
    assert len(text) == 60 and text.endswith("[cut at 60 characters]")


def test_a_short_table_shows_all_rows_and_a_series_its_dtype(sales):
    assert "all rows:" in table_summary(sales.head(2), 2_000)
    text = table_summary(sales["amount"], 2_000, "amount")
    assert text.startswith("Series amount, 6 values; dtype float64") and "| 0 | 0.0 |" in text


def test_full_is_every_row_as_csv(sales):
    assert table_full(sales).splitlines() == [",region,amount,n", *[f"{i},{r},{float(i)},{i}" for i, r in
                                                                     zip(range(6), ["north", "south"] * 3)]]
