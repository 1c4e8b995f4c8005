"""Tests for the claude_force_nb.testing package surface: its public names and its isolation."""

from __future__ import annotations

import ast
from pathlib import Path

import claude_force_nb.testing as testing

PACKAGE = Path(testing.__file__).parent


def test_public_names():
    assert testing.__all__ == sorted(testing.__all__)
    assert testing.__all__ == ["FakeAnthropicServer", "Fault", "ManualClock", "RecordedRequest", "answer_text",
                               "count_input_tokens"]
    for name in testing.__all__:
        assert getattr(testing, name).__module__.startswith("claude_force_nb.testing.")


def test_the_package_imports_only_the_stdlib_and_itself():
    """testing -> nothing else in claude_force_nb, and no third-party packages either."""
    imported: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = {node.module or ""}
            elif isinstance(node, ast.ImportFrom) and node.level > 1:  # from ..core import x
                names = {"claude_force_nb"}
            else:
                continue
            imported.setdefault(path.name, set()).update(n.split(".")[0] for n in names)
    outside = {f: sorted(n - _stdlib()) for f, n in imported.items() if n - _stdlib()}
    assert outside == {}


def _stdlib() -> set[str]:
    import sys

    return set(sys.stdlib_module_names) | {"__future__"}
