"""Read, Grep and Glob (engine/file_tools.py): Claude Code's read-only tools, confined to a root,
capped, and sorted out of an agent file's tools list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claude_force_nb.core.errors import ToolArgumentsError, ToolError
from claude_force_nb.core.tools import Tool
from claude_force_nb.engine.file_tools import (
    CLAUDE_CODE_ONLY_TOOLS,
    READ_ONLY_TOOLS,
    FileLimits,
    _glob_matcher,
    agent_file_tools,
    file_tools,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small project, a secret outside it, and links that try to lead out."""
    root = tmp_path / "root"
    files = {
        "top.py": "import pandas as pd\nTOTAL = 1\n",
        "notes.txt": "todo: check totals\nTODO: plots\n",
        "data/sales.csv": "region,units\nnorth,3\n",
        "data/more.json": '{"total": 2}\n',
        "src/pkg/calc.py": "def total(xs):\n    return sum(xs)\n",
        "src/pkg/empty.py": "",
        ".hidden/secret.py": "TOTAL = 'hidden'\n",
        "__pycache__/x.py": "TOTAL = 'cache'\n",
        ".env": "TOTAL=1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00TOTAL")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOTAL = 'secret'\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", root / "leak.txt")
    os.symlink(outside, root / "leakdir")
    os.symlink(root / "src" / "pkg" / "calc.py", root / "alias.py")
    return root


def tools_for(root: Path, **limits: int) -> tuple[Tool, Tool, Tool]:
    read, grep, glob = file_tools(root, FileLimits(**limits))
    return read, grep, glob


def test_the_tools_carry_claude_codes_names_and_a_schema() -> None:
    read, grep, glob = file_tools()
    assert (read.name, grep.name, glob.name) == READ_ONLY_TOOLS == ("Read", "Grep", "Glob")
    assert read.definition() == {
        "name": "Read",
        "description": "Read a text file, with line numbers (like cat -n).",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "The file's path, relative to the working directory (or absolute inside it).",
                },
                "offset": {"type": "integer", "minimum": 1, "default": 1,
                           "description": "The line number to start at (1 is the first line)."},
                "limit": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "default": None,
                          "description": "How many lines to read (default 2000)."},
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    }
    assert list(grep.input_schema["properties"]) == ["pattern", "path", "glob", "ignore_case"]
    assert list(glob.input_schema["properties"]) == ["pattern", "path"]
    with pytest.raises(ToolArgumentsError, match=r"offset: Input should be greater than or equal to 1 \(got 0\)"):
        read.validate({"file_path": "x", "offset": 0})


def test_read_numbers_lines_and_pages_through_a_file(tree: Path) -> None:
    read, _, _ = tools_for(tree)
    assert read("src/pkg/calc.py") == "     1\tdef total(xs):\n     2\t    return sum(xs)"
    assert read("notes.txt", offset=2) == "     2\tTODO: plots"
    assert read("notes.txt", limit=1) == "     1\ttodo: check totals\n[the file goes on: read on with offset=2]"
    assert read(str(tree / "top.py"), offset=2, limit=5) == "     2\tTOTAL = 1"  # absolute, inside the root
    assert read("src/pkg/empty.py") == "(empty file)"
    assert read("alias.py", limit=1).startswith("     1\tdef total")  # a link that stays inside
    with pytest.raises(ToolError, match=r"^'notes.txt' has 2 lines: use an offset from 1 to 2\.$"):
        read("notes.txt", offset=3)


def test_read_cuts_long_lines_and_long_output(tree: Path) -> None:
    (tree / "wide.txt").write_text("a" * 30 + "\n" + "b\n" * 100, encoding="utf-8")
    read, _, _ = tools_for(tree, max_line_chars=10, max_read_chars=60)
    assert read("wide.txt", limit=1) == (
        "     1\taaaaaaaaaa… [30 characters]\n[the file goes on: read on with offset=2]"
    )
    assert read("wide.txt", offset=2) == "\n".join(
        [f"{n:>6}\tb" for n in range(2, 8)]
        + ["[cut at line 8: output is limited to 60 characters; read on with offset=8]"]
    )
    (tree / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    assert read("crlf.txt") == "     1\tone\n     2\ttwo"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside/secret.txt", "'../outside/secret.txt' is outside the folder these tools may read ({root}): "
                                  "use a path inside it, such as one that Glob lists."),
        ("leak.txt", "'leak.txt' is outside the folder these tools may read ({root}): "
                     "use a path inside it, such as one that Glob lists."),
        ("leakdir/secret.txt", "'leakdir/secret.txt' is outside the folder these tools may read ({root}): "
                               "use a path inside it, such as one that Glob lists."),
        ("/etc/hostname", "'/etc/hostname' is outside the folder these tools may read ({root}): "
                          "use a path inside it, such as one that Glob lists."),
        ("src/../../outside/secret.txt", "'src/../../outside/secret.txt' is outside the folder these tools may read "
                                         "({root}): use a path inside it, such as one that Glob lists."),
        ("image.png", "'image.png' is a binary file: only text files can be read."),
        ("src", "'src' is a folder: list it with Glob (e.g. pattern '*', path 'src')."),
        ("missing.py", "No file 'missing.py': find the right path with Glob."),
    ],
)
def test_read_refuses_what_it_must_not_or_cannot_read(tree: Path, path: str, message: str) -> None:
    read, _, _ = tools_for(tree)
    with pytest.raises(ToolError) as caught:
        read(path)
    assert str(caught.value) == message.format(root=tree.resolve())


def test_grep_lists_matches_as_path_line_text(tree: Path) -> None:
    _, grep, _ = tools_for(tree)
    assert grep("TOTAL") == "top.py:2:TOTAL = 1"  # hidden files, caches, binaries and outside links skipped
    assert grep("total", ignore_case=True) == "\n".join([
        "alias.py:1:def total(xs):",
        "notes.txt:1:todo: check totals",
        "top.py:2:TOTAL = 1",
        'data/more.json:1:{"total": 2}',
        "src/pkg/calc.py:1:def total(xs):",
    ])
    assert grep(r"def \w+\(", glob="*.py") == "alias.py:1:def total(xs):\nsrc/pkg/calc.py:1:def total(xs):"
    assert grep("total", path="src", glob="pkg/*.py") == "src/pkg/calc.py:1:def total(xs):"
    assert grep("total", path="data/more.json") == 'data/more.json:1:{"total": 2}'
    assert grep("nothing like this") == "No matches."


def test_grep_caps_matches_and_file_sizes(tree: Path) -> None:
    (tree / "many.txt").write_text("hit\n" * 10, encoding="utf-8")
    _, grep, _ = tools_for(tree, max_matches=3)
    assert grep("hit") == "many.txt:1:hit\nmany.txt:2:hit\nmany.txt:3:hit\n" \
                          "[stopped at 3 matches: narrow the pattern, path or glob]"
    _, small_grep, _ = tools_for(tree, max_file_bytes=5)
    assert small_grep("hit") == "No matches."


def test_grep_refuses_a_bad_pattern_or_a_path_outside(tree: Path) -> None:
    _, grep, _ = tools_for(tree)
    with pytest.raises(ToolError, match=r"^Invalid regular expression '\(': missing \), unterminated subpattern"):
        grep("(")
    with pytest.raises(ToolError, match=r"^'\.\.' is outside the folder these tools may read"):
        grep("secret", path="..")


def test_glob_matches_paths_relative_to_the_search_folder(tree: Path) -> None:
    _, _, glob = tools_for(tree)
    assert glob("**/*.py") == "alias.py\ntop.py\nsrc/pkg/calc.py\nsrc/pkg/empty.py"
    assert glob("*.py") == "alias.py\ntop.py"
    assert glob("data/*.{csv,json}") == "data/more.json\ndata/sales.csv"
    assert glob("*.[pt][yx]*") == "alias.py\nnotes.txt\ntop.py"
    assert glob("*.py", path="src/pkg") == "src/pkg/calc.py\nsrc/pkg/empty.py"
    assert glob("src/**") == "src/pkg/calc.py\nsrc/pkg/empty.py"
    assert glob("*.rs") == "No files match."


def test_glob_caps_what_it_lists_and_what_it_walks(tree: Path) -> None:
    _, _, glob = tools_for(tree, max_paths=2)
    assert glob("**") == "alias.py\nimage.png\n[stopped at 2 paths: narrow the pattern or path]"
    _, _, short_walk = tools_for(tree, max_files_scanned=3)
    assert short_walk("**/*.csv") == "[stopped after 3 files: search a smaller folder]"


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "src/../../*", ""])
def test_glob_refuses_patterns_that_climb_out(tree: Path, pattern: str) -> None:
    _, _, glob = tools_for(tree)
    with pytest.raises(ToolError) as caught:
        glob(pattern)
    assert str(caught.value) == f"Glob pattern {pattern!r} must be relative to the search folder, without '..'."


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "a.py", True),
        ("*.py", "src/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "src/deep/a.py", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("src/**/test_*.py", "lib/test_a.py", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[!a]*.md", "b.md", True),
        ("[!a]*.md", "a.md", False),
        ("*.{yml,yaml}", "ci.yaml", True),
        ("*.{yml,yaml}", "ci.json", False),
        ("a+b(1).txt", "a+b(1).txt", True),
    ],
)
def test_the_glob_language(pattern: str, path: str, matches: bool) -> None:
    assert _glob_matcher(pattern)(path) is matches


def test_the_root_defaults_to_the_working_directory(tmp_path: Path) -> None:
    Path("here.txt").write_text("hello\n", encoding="utf-8")  # conftest runs each test in tmp_path/project
    read, _, glob = file_tools()
    assert glob("*.txt") == "here.txt" and read("here.txt") == "     1\thello"
    with pytest.raises(ToolError, match="is outside the folder"):
        read(str(tmp_path / "cf-home"))


def test_an_agent_files_list_is_sorted_into_offered_unavailable_and_other(tree: Path) -> None:
    chosen = agent_file_tools("Read, Grep, Bash(git diff:*), Write, mcp__github__search, describe, Read", root=tree)
    assert [t.name for t in chosen.offered] == ["Read", "Grep"]
    assert chosen.unavailable == ["Bash(git diff:*)", "Write", "mcp__github__search"]
    assert chosen.other == ["describe"]
    assert chosen.warning("reviewer") == (
        "Agent 'reviewer' lists tools that cannot run here and are left out: Bash(git diff:*), Write, "
        "mcp__github__search. Only Read, Grep and Glob (read-only) are offered."
    )
    assert chosen.offered[0]("notes.txt", limit=1).startswith("     1\ttodo")  # confined to the given root


def test_a_list_with_only_offered_tools_needs_no_warning() -> None:
    chosen = agent_file_tools(["Glob", " Read(./src/**) ", "Grep"])
    assert [t.name for t in chosen.offered] == ["Read", "Grep", "Glob"]
    assert (chosen.unavailable, chosen.other, chosen.warning("x")) == ([], [], None)
    assert agent_file_tools("").offered == [] and agent_file_tools([]).other == []


def test_every_claude_code_tool_that_writes_or_runs_is_left_out() -> None:
    assert {"Bash", "Edit", "MultiEdit", "Write", "NotebookEdit", "WebFetch", "WebSearch", "Task"} <= CLAUDE_CODE_ONLY_TOOLS
    chosen = agent_file_tools(sorted(CLAUDE_CODE_ONLY_TOOLS))
    assert chosen.offered == [] and chosen.other == [] and chosen.unavailable == sorted(CLAUDE_CODE_ONLY_TOOLS)
