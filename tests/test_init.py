"""The public surface of claude_force_nb: names, laziness."""

from __future__ import annotations

import subprocess
import sys

import claude_force_nb

from .conftest import ROOT


def test_all_is_sorted_and_every_name_resolves():
    names = claude_force_nb.__all__
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    for name in names:
        assert getattr(claude_force_nb, name) is not None
    for name in ("Orchestrator", "Settings", "AgentResult", "Usage", "AgentRegistry", "ResponseCache", "Ledger", "reports"):
        assert name in names


def test_tool_and_thread_store_come_from_the_package():
    from claude_force_nb import ThreadStore, tool
    from claude_force_nb.core.tools import Tool

    @tool
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert isinstance(double, Tool) and double(4) == 8 and double.input_schema["required"] == ["x"]
    assert ThreadStore.__name__ == "ThreadStore"


def test_importing_the_package_loads_neither_the_sdk_nor_pandas():
    code = "import sys, claude_force_nb; print('anthropic' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
