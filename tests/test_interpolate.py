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
