"""The package's layers (shared design, README "Architecture"): imports only point down.

Every module's imports are read with ``ast``, lazy ones inside functions and ``TYPE_CHECKING``
blocks included, and each arrow between two of the package's folders is checked against the
allowed ones. A planted upward import must make the check fail, so the checker is also run on a
small package written to a temp dir.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import claude_force_nb

PACKAGE = "claude_force_nb"
ROOT = Path(claude_force_nb.__file__).parent

# Which layers each layer may import (besides itself). The top-level package (__init__) is the
# public face and may import any layer.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "engine": {"store", "core", "testing"},  # testing: the CLAUDE_FORCE_OFFLINE in-process server
    "views": {"store", "core"},
    "notebook": {"views", "engine", "store", "core"},
    "testing": set(),
    "": {"core", "store", "engine", "views", "notebook", "testing"},
}
# Third-party modules that belong to one layer only.
# (pandas may be named anywhere under TYPE_CHECKING, for annotations).
ONLY_IN = {"IPython": {"notebook"}, "ipywidgets": {"notebook"}, "pandas": {"views"}}
EAGER, LAZY, TYPING = "eager", "lazy", "typing"


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int, str]]:
    """Yield (imported module, line, kind) for every import; kind is EAGER, LAZY or TYPING."""
    kinds: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kind = LAZY
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            kind = TYPING
        else:
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                kinds.setdefault(inner.lineno, kind)
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, kinds.get(node.lineno, EAGER)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            kind = kinds.get(node.lineno, EAGER)
            yield target, node.lineno, kind
            for alias in node.names:  # `from . import runner` imports a module
                yield f"{target}.{alias.name}", node.lineno, kind


def _layer(module: str, package: str) -> str | None:
    """The layer folder of one of the package's modules ('' for the top level), else None."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    if len(parts) == 1:
        return ""
    return parts[1] if parts[1] in ALLOWED else ""


def violations(root: Path, package: str = PACKAGE) -> list[str]:
    """Every import in the package at ``root`` that breaks the layer rules, as readable lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root, package)
        here = _layer(module, package)
        assert here is not None
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, line, kind in _imports(tree, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root.parent)}:{line}"
            there = _layer(target, package)
            if there is not None:
                if there != here and there not in ALLOWED[here]:
                    found.append(f"{where}: {here or 'top level'} imports {target} ({there or 'top level'})")
                continue
            top = target.split(".")[0]
            if top == "pandas" and kind == TYPING:
                continue
            if top in ONLY_IN and here not in ONLY_IN[top]:
                found.append(f"{where}: {here or 'top level'} imports {top}, allowed only in {sorted(ONLY_IN[top])}")
            elif top == "pandas" and kind == EAGER:
                found.append(f"{where}: pandas imported at module level (import it inside the function)")
    return found


def import_cycles(root: Path, package: str = PACKAGE) -> list[list[str]]:
    """Cycles among the package's modules through imports that run (TYPE_CHECKING ones do not)."""
    modules = {_module_name(p, root, package): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, _line, kind in _imports(tree, module, path.name == "__init__.py"):
            if kind != TYPING and target in modules and target != module and not module.startswith(target + "."):
                if not target.startswith(module + "."):
                    edges[module].add(target)
    cycles, state = [], dict.fromkeys(modules, 0)

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state[nxt] == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(modules):
        if state[module] == 0:
            visit(module, [module])
    return cycles


def test_every_import_points_down_a_layer() -> None:
    assert violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert import_cycles(ROOT) == []


def test_no_module_over_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in ROOT.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in {p.parent for p in root.rglob("*.py")} | {root}:
        (folder / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"core/a.py": "from ..engine import runner\n", "engine/runner.py": ""},
         "core imports claude_force_nb.engine"),
        ({"store/a.py": "def f():\n    from ..engine.runner import x\n", "engine/runner.py": ""},
         "store imports claude_force_nb.engine.runner"),
        ({"views/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..notebook import w\n",
          "notebook/w.py": ""},
         "views imports claude_force_nb.notebook"),
        ({"engine/a.py": "import IPython\n"}, "engine imports IPython"),
        ({"views/a.py": "import pandas as pd\n"}, "pandas imported at module level"),
        ({"testing/a.py": "from claude_force_nb.core import errors\n", "core/errors.py": ""},
         "testing imports claude_force_nb.core"),
    ],
)
def test_a_planted_upward_import_is_reported(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_plant(tmp_path, files))
    assert len(found) >= 1 and expected in found[0], found


def test_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "notebook/m.py": "from ..engine import o\nfrom ..views import r\nimport IPython\n",
        "engine/o.py": "from ..store import c\nfrom ..core import e\n",
        "views/r.py": "def f():\n    import pandas\n",
        "store/c.py": "from ..core import e\n", "core/e.py": "",
    })
    assert violations(root) == []


def test_a_planted_cycle_is_reported(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"notebook/a.py": "from . import b\n", "notebook/b.py": "from .a import x\n"})
    assert import_cycles(root) == [[f"{PACKAGE}.notebook.a", f"{PACKAGE}.notebook.b", f"{PACKAGE}.notebook.a"]]


def test_the_public_names_are_exactly_these() -> None:
    assert claude_force_nb.__all__ == [
        "APICallError",
        "AgentDefinition",
        "AgentRegistry",
        "AgentResult",
        "BudgetExceededError",
        "ClaudeForceError",
        "InvalidInputError",
        "Job",
        "Ledger",
        "Orchestrator",
        "ResponseCache",
        "Settings",
        "ThreadStore",
        "UnknownAgentError",
        "Usage",
        "Workflow",
        "cost_of",
        "load_ipython_extension",
        "reports",
        "tool",
        "unload_ipython_extension",
    ]
    for name in claude_force_nb.__all__:
        assert getattr(claude_force_nb, name) is not None
