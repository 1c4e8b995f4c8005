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


def test_importing_the_package_loads_neither_the_sdk_nor_pandas():
    code = "import sys, claude_force_nb; print('anthropic' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
