"""Read-only ``Read``, ``Grep`` and ``Glob`` tools, confined to one directory.

Claude Code agent files list Claude Code's tools (``tools: Read, Grep, Glob, Bash``).
These three are offered under the same names, so such files work unchanged; the others
(Bash, Edit, Write, WebFetch...) are never run: :func:`agent_file_tools` sorts an agent
file's list into what is offered and what the caller should name in one warning.

Confinement: every path is resolved (symlinks and ``..`` included) and must stay inside
the root (default: the working directory when the tools are made); Grep and Glob never
follow a symlinked directory and skip a symlinked file that points outside. Hidden files
and folders, ``__pycache__`` and ``node_modules`` are skipped by Grep and Glob (as
ripgrep does); Read reads any text file inside the root. Binary files are never read.
Every output has a cap (:class:`FileLimits`) and says when it was cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..core.errors import ToolError
from ..core.tools import Tool, tool

__all__ = [
    "CLAUDE_CODE_ONLY_TOOLS",
    "READ_ONLY_TOOLS",
    "AgentFileTools",
    "FileLimits",
    "agent_file_tools",
    "file_tools",
]

READ_ONLY_TOOLS = ("Read", "Grep", "Glob")
# Claude Code tools that write, run commands or reach the network: never offered here.
CLAUDE_CODE_ONLY_TOOLS = frozenset({
    "Agent", "Bash", "BashOutput", "Edit", "ExitPlanMode", "KillBash", "KillShell", "LS",
    "MultiEdit", "NotebookEdit", "NotebookRead", "Skill", "SlashCommand", "Task", "TodoWrite",
    "WebFetch", "WebSearch", "Write",
})
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class FileLimits:
    """Caps on what one call may read or return."""

    max_read_chars: int = 50_000  # Read's whole output
    max_line_chars: int = 2_000  # any one line shown (Read, Grep)
    default_read_lines: int = 2_000  # Read without ``limit``
    max_matches: int = 200  # Grep
    max_paths: int = 500  # Glob
    max_file_bytes: int = 20 * 1024 * 1024  # Grep skips larger files
    max_files_scanned: int = 20_000  # Grep and Glob stop walking after this many files


def file_tools(root: str | os.PathLike[str] | None = None, limits: FileLimits = FileLimits()) -> list[Tool]:
    """The ``Read``, ``Grep`` and ``Glob`` tools, reading only inside ``root`` (default: cwd)."""
    files = _Files(Path(root) if root is not None else Path.cwd(), limits)

    @tool(name="Read")
    def read(
        file_path: str,
        offset: Annotated[int, Field(ge=1)] = 1,
        limit: Annotated[int, Field(ge=1)] | None = None,
    ) -> str:
        """Read a text file, with line numbers (like cat -n).

        Args:
            file_path: The file's path, relative to the working directory (or absolute inside it).
            offset: The line number to start at (1 is the first line).
            limit: How many lines to read (default 2000).
        """
        return files.read(file_path, offset, limit or limits.default_read_lines)

    @tool(name="Grep")
    def grep(pattern: str, path: str | None = None, glob: str | None = None, ignore_case: bool = False) -> str:
        """Search file contents with a regular expression; each match is shown as path:line:text.

        Args:
            pattern: A Python regular expression, e.g. 'def \\w+_total' or 'TODO|FIXME'.
            path: A file or folder to search (default: the working directory).
            glob: Only files matching this glob, e.g. '*.py' (any folder) or 'src/**/*.ts'.
            ignore_case: Match letters regardless of case.
        """
        return files.grep(pattern, path, glob, ignore_case)

    @tool(name="Glob")
    def glob_(pattern: str, path: str | None = None) -> str:
        """List the files whose paths match a glob pattern, e.g. '**/*.py' or 'data/*.{csv,json}'.

        Args:
            pattern: The glob, relative to path: '*' and '?' stay within a folder, '**' spans folders.
            path: The folder to search in (default: the working directory).
        """
        return files.glob(pattern, path)

    return [read, grep, glob_]


@dataclass(frozen=True)
class AgentFileTools:
    """An agent file's ``tools:`` list, sorted: ``offered`` (Read/Grep/Glob as Tools),
    ``unavailable`` (Claude Code tools that are never run here: warn once), and ``other``
    (names this module does not know: notebook tools for the caller to look up, or typos)."""

    offered: list[Tool]
    unavailable: list[str]
    other: list[str]

    def warning(self, agent: str) -> str | None:
        """One line naming what is left out, or None when nothing is."""
        if not self.unavailable:
            return None
        return (
            f"Agent {agent!r} lists tools that cannot run here and are left out: "
            f"{', '.join(self.unavailable)}. Only Read, Grep and Glob (read-only) are offered."
        )


def agent_file_tools(
    names: str | Iterable[str], root: str | os.PathLike[str] | None = None, limits: FileLimits = FileLimits()
) -> AgentFileTools:
    """Sort an agent file's ``tools`` (``"Read, Grep, Bash"`` or a list) into what is offered.

    A Claude Code permission rule such as ``Bash(git diff:*)`` counts as its tool's name;
    a rule on Read/Grep/Glob (``Read(./src/**)``) offers the tool for the whole root.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted: list[str] = []
    for item in (str(i).strip() for i in items):
        if item and item not in wanted:
            wanted.append(item)
    base = {item: item.split("(", 1)[0].strip() for item in wanted}
    by_name = {t.name: t for t in file_tools(root, limits)} if any(b in READ_ONLY_TOOLS for b in base.values()) else {}
    offered = [by_name[name] for name in READ_ONLY_TOOLS if name in base.values()]
    unavailable = [i for i in wanted if base[i] in CLAUDE_CODE_ONLY_TOOLS or base[i].startswith("mcp__")]
    other = [i for i in wanted if base[i] not in READ_ONLY_TOOLS and i not in unavailable]
    return AgentFileTools(offered, unavailable, other)


class _Files:
    """The three tools' work, on paths checked against one root."""

    def __init__(self, root: Path, limits: FileLimits) -> None:
        self.root = root.resolve()
        self.limits = limits

    def inside(self, path: str) -> Path:
        """``path`` resolved; a ToolError if it leads outside the root."""
        candidate = Path(path)
        try:
            resolved = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ToolError(f"Cannot resolve {path!r}: {exc}.") from None
        if not resolved.is_relative_to(self.root):
            raise ToolError(
                f"{path!r} is outside the folder these tools may read ({self.root}): "
                "use a path inside it, such as one that Glob lists."
            )
        return resolved

    def shown(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def read(self, file_path: str, offset: int, limit: int) -> str:
        path = self.inside(file_path)
        if path.is_dir():
            raise ToolError(f"{file_path!r} is a folder: list it with Glob (e.g. pattern '*', path {file_path!r}).")
        if not path.is_file():
            raise ToolError(f"No file {file_path!r}: find the right path with Glob.")
        if _is_binary(path):
            raise ToolError(f"{file_path!r} is a binary file: only text files can be read.")
        lines, size, cap, count = [], 0, self.limits.max_read_chars, 0
        with path.open(encoding="utf-8", errors="replace") as handle:
            for count, line in enumerate(handle, start=1):
                if count < offset:
                    continue
                if count >= offset + limit:
                    lines.append(f"[the file goes on: read on with offset={count}]")
                    break
                shown = f"{count:>6}\t{self._cut(line.rstrip(chr(10)).rstrip(chr(13)))}"
                if size + len(shown) > cap:
                    lines.append(f"[cut at line {count}: output is limited to {cap:,} characters; "
                                 f"read on with offset={count}]")
                    break
                lines.append(shown)
                size += len(shown) + 1
        if not lines:
            if count == 0:
                return "(empty file)"
            lines_word = "line" if count == 1 else "lines"
            raise ToolError(f"{file_path!r} has {count:,} {lines_word}: use an offset from 1 to {count:,}.")
        return "\n".join(lines)

    def grep(self, pattern: str, path: str | None, glob: str | None, ignore_case: bool) -> str:
        try:
            regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ToolError(f"Invalid regular expression {pattern!r}: {exc}.") from None
        start = self.inside(path or ".")
        wanted = _glob_matcher(glob) if glob else None
        found: list[str] = []
        for file, relative in self._files(start, found):
            if wanted and not wanted(relative if "/" in (glob or "") else relative.rsplit("/", 1)[-1]):
                continue
            if file.stat().st_size > self.limits.max_file_bytes or _is_binary(file):
                continue
            with file.open(encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, start=1):
                    if regex.search(line):
                        found.append(f"{self.shown(file)}:{number}:{self._cut(line.rstrip())}")
                        if len(found) == self.limits.max_matches:
                            found.append(f"[stopped at {len(found):,} matches: narrow the pattern, path or glob]")
                            return "\n".join(found)
        return "\n".join(found) or "No matches."

    def glob(self, pattern: str, path: str | None) -> str:
        if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
            raise ToolError(f"Glob pattern {pattern!r} must be relative to the search folder, without '..'.")
        start = self.inside(path or ".")
        matches = _glob_matcher(pattern)
        found: list[str] = []
        for file, relative in self._files(start, found):
            if matches(relative):
                found.append(self.shown(file))
                if len(found) == self.limits.max_paths:
                    found.append(f"[stopped at {len(found):,} paths: narrow the pattern or path]")
                    break
        return "\n".join(found) or "No files match."

    def _files(self, start: Path, notes: list[str]) -> Iterator[tuple[Path, str]]:
        """Files under ``start`` (or ``start`` itself), sorted, with their path relative to it.

        Symlinked folders are not entered; symlinked files pointing outside the root are skipped.
        """
        if start.is_file():
            yield start, start.name
            return
        scanned = 0
        for folder, dirs, names in os.walk(start):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
            for name in sorted(n for n in names if not n.startswith(".")):
                file = Path(folder, name)
                if file.is_symlink() and not (file.is_file() and file.resolve().is_relative_to(self.root)):
                    continue
                scanned += 1
                if scanned > self.limits.max_files_scanned:
                    notes.append(f"[stopped after {self.limits.max_files_scanned:,} files: search a smaller folder]")
                    return
                yield file, file.relative_to(start).as_posix()

    def _cut(self, line: str) -> str:
        cap = self.limits.max_line_chars
        return line if len(line) <= cap else f"{line[:cap]}… [{len(line):,} characters]"


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(_SNIFF_BYTES)


def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test for POSIX relative paths: ``*``/``?``/``[...]`` within one folder, ``**`` across
    folders, ``{a,b}`` alternatives."""
    segments = pattern.strip("/").split("/")
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(segment) + ("" if last else "/")
    compiled = re.compile(regex)
    return lambda relative: compiled.fullmatch(relative) is not None


def _segment_regex(segment: str) -> str:
    out, i = "", 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and "]" in segment[i + 2:]:
            end = segment.index("]", i + 2)
            body = segment[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]"
            i = end
        elif char == "{" and "}" in segment[i:]:
            end = segment.index("}", i)
            out += "(?:" + "|".join(_segment_regex(part) for part in segment[i + 1:end].split(",")) + ")"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out
