"""notebook/interpolate.py: which braces are filled from the namespace, and which stay as written."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from claude_force_nb.notebook.interpolate import interpolate


class Obj:
    name = "obj-name"


NS = {"x": 42, "items": ["a", "b"], "d": {"k": "v"}, "o": Obj(), "braces": "{x}", "Out": {3: "out3"}, "In": ["", "", "", "cell3"]}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("value {x}", "value 42"),
        ("{o.name} {items[1]} {items[-1]} {d['k']}", "obj-name b b v"),
        ("{In[3]} / {Out[3]}", "cell3 / out3"),
        ("unknown {nope} stays", "unknown {nope} stays"),
        ('dict {"a": 1} literal', 'dict {"a": 1} literal'),
        ("f-string {x:>10} spec", "f-string {x:>10} spec"),
        ("{{x}} escaped", "{x} escaped"),
        ("{{o.name}} escaped", "{o.name} escaped"),
        ("json {{\"a\": {x}}}", 'json {{"a": 42}}'),
        ('d = {"a": {"b": 1}}', 'd = {"a": {"b": 1}}'),
        ("def f(): return {{1}}", "def f(): return {{1}}"),
        ("no double {braces}", "no double {x}"),
        ("set {x, y}", "set {x, y}"),
    ],
)
def test_interpolation_rules(text, expected):
    assert interpolate(text, NS) == expected


def test_interpolation_failure_is_a_usage_error():
    with pytest.raises(UsageError, match=r"Cannot fill in \{o.missing\}.*--no-interpolate"):
        interpolate("{o.missing}", NS)


def test_the_magics_module_still_exports_it():
    from claude_force_nb.notebook import magics

    assert magics.interpolate is interpolate and "interpolate" in magics.__all__


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot show myself\nat all")


class BadMessage(Exception):
    def __str__(self) -> str:
        raise ValueError("even my message fails")


class WorseThanUnprintable:
    def __str__(self) -> str:
        raise BadMessage()


def test_a_value_whose_str_raises_is_refused_in_one_line():
    with pytest.raises(UsageError) as info:
        interpolate("Explain {b}", {"b": Unprintable()})
    assert str(info.value) == ("Cannot fill in {b}: RuntimeError: cannot show myself. "
                               "Write {{b}} to send it literally, or use --no-interpolate.")
    with pytest.raises(UsageError, match=r"^Cannot fill in \{b\}: BadMessage: \(its message cannot be shown\)\. "):
        interpolate("{b}", {"b": WorseThanUnprintable()})


def test_a_value_holding_a_lone_surrogate_is_refused_with_where_it_is():
    with pytest.raises(UsageError) as info:
        interpolate("Files: {names[1]}", {"names": ["ok.txt", "ok\ncaf\udce9.txt"]})
    assert str(info.value) == (
        "The value of {names[1]} holds a lone surrogate '\\udce9' at line 2, column 4: it cannot be sent as UTF-8 "
        "text. Remove it, or decode the data it came from with its real encoding. "
        "Write {{names[1]}} to send it literally, or use --no-interpolate.")


def test_a_dataframe_field_is_a_summary_within_the_budget_and_full_sends_it_whole():
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(1_000_000), "y": np.arange(1_000_000) * 0.5})
    ns = {"df": frame}
    text = interpolate("Rows: {df}", ns)
    assert text.startswith("Rows: DataFrame df, 1,000,000 rows × 2 columns") and len(text) <= 2_000 + 6
    assert "| 4 | 4 | 2.0 |" in text and "999999" not in text
    assert len(interpolate("{df}", ns, table_chars=300)) <= 300
    assert interpolate("{df['y']}", ns).startswith("Series df['y'], 1,000,000 values; dtype float64")
    small = {"df": frame.head(3)}
    assert interpolate("{df!full}", small) == ",x,y\n0,0,0.0\n1,1,0.5\n2,2,1.0\n"
    assert interpolate("{{df!full}} {other!full}", small) == "{df!full} {other!full}"


def test_full_of_a_plain_value_is_its_text():
    assert interpolate("{n!full}", {"n": 42}) == "42"
