"""Agent definitions: a named system prompt plus defaults, found on disk.

Where agents come from, highest precedence first (the first definition of a name wins):

1. **Project** -- for the current directory and each of its parents up to the filesystem
   root, nearest first: ``.claude/claude.json`` (the original claude-force format), then
   ``.claude/agents/*.md`` (Claude Code subagent files). The home directory is never
   treated as a project: its ``.claude/agents`` is the user directory.
2. **User** -- ``~/.claude/agents/*.md`` (or ``user_dir``).
3. **Built-in** -- ``claude_force_nb/data/agents/*.md``.

What a file may contain, and what is refused, is described in agent_files.py. A file
referenced by ``claude.json`` belongs to that entry and is not listed a second time under
its own name. A name defined twice in one ``.claude`` directory is reported by
``problems()``; the first definition (``claude.json`` entries, then ``agents/*.md`` in
file-name order) is used. A ``.md`` file must resolve inside its ``.claude/agents``
directory, a ``claude.json`` entry's file inside its ``.claude`` directory.

A broken file never hides the others: :meth:`AgentRegistry.names` and iteration skip it,
:meth:`AgentRegistry.get` of its name raises the error (it does *not* fall back to a
lower-precedence agent of the same name: the user meant their file),
:meth:`AgentRegistry.problems` lists every current problem, and each is logged once per
file version as a warning. Hidden files (``.name.md``) are not agents.

Files are parsed again only when their (real path, inode, mtime_ns, size) changes;
directories are listed on every lookup, so new files appear without ``reload()``.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import agent_files
from .agent_files import MAX_DEFINITION_BYTES, MODEL_ALIASES, NAME_PATTERN, DefinitionProblem, realpath
from .errors import AgentDefinitionError, UnknownAgentError

__all__ = [
    "MAX_DEFINITION_BYTES",
    "MODEL_ALIASES",
    "NAME_PATTERN",
    "AgentDefinition",
    "AgentRegistry",
]

logger = logging.getLogger(__name__)


# (message, file version) pairs already logged, shared by every registry in the process
# so that a notebook creating registries repeatedly does not repeat the same warning.
_WARNED: set[tuple[Any, ...]] = set()
_WARNED_LOCK = threading.Lock()


@dataclass(frozen=True)
class AgentDefinition:
    """One agent: a system prompt and the defaults that go with it."""

    name: str
    system: str = field(repr=False)
    description: str = ""
    model: str | None = None
    source: str = "builtin"  # "project" | "user" | "builtin"
    path: Path | None = None
    cache: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[str, ...] = ()  # the file's ``tools:`` names (the engine decides what is offered)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the system prompt: editing the prompt changes it."""
        return hashlib.sha256(self.system.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Entry:
    """The outcome of loading one definition: a definition, or an error message."""

    name: str | None  # None: broken so badly that no name can be claimed
    label: str  # the file, as shown to the user
    definition: AgentDefinition | None = None
    error: str | None = None
    version: tuple[Any, ...] | None = None


@dataclass
class _Index:
    entries: dict[str, _Entry]
    problems: list[str]

    def valid_names(self) -> list[str]:
        return sorted(n for n, e in self.entries.items() if e.definition is not None)


def _log_once(entry: _Entry) -> None:
    key = (entry.label, entry.version, entry.error)
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    logger.warning("%s", entry.error)


def _home() -> Path | None:
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return None


# ---------------------------------------------------------------------------- registry


class AgentRegistry:
    """Every agent visible from ``cwd``: project > user > built-in.

    ``cwd=None`` follows the process's current directory at each lookup (so ``%cd``
    in a notebook changes which project agents are visible); pass a path to pin it.
    ``user_dir`` defaults to ``~/.claude/agents``; ``include_builtin=False`` hides the
    agents shipped with the package. Thread-safe.
    """

    def __init__(
        self,
        cwd: Path | str | None = None,
        *,
        user_dir: Path | str | None = None,
        include_builtin: bool = True,
    ) -> None:
        self._cwd = None if cwd is None else Path(cwd).expanduser().absolute()
        home = _home()
        self._home_real = realpath(home) if home is not None else None
        if user_dir is None and home is not None:
            user_dir = home / ".claude" / "agents"
        self._user_dir = None if user_dir is None else Path(user_dir).expanduser()
        self.include_builtin = include_builtin
        self._lock = threading.RLock()
        # cache key -> (file version, result); results are immutable
        self._cache: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}

    # -- public API ----------------------------------------------------------------

    @property
    def cwd(self) -> Path:
        """The directory the project search starts from (now)."""
        return self._cwd if self._cwd is not None else Path.cwd()

    @property
    def user_dir(self) -> Path | None:
        return self._user_dir

    def get(self, name: str) -> AgentDefinition:
        """The agent called ``name``. Raises UnknownAgentError (with close matches), or
        AgentDefinitionError if the winning definition of that name is broken."""
        if not isinstance(name, str):
            raise TypeError(f"agent name must be a str, not {type(name).__name__}")
        index = self._scan()
        entry = index.entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, index.valid_names(), n=3, cutoff=0.5)
            create_as = name if agent_files.is_valid_name(name) else agent_files.suggest_name(name)
            raise UnknownAgentError(name, close, create_as=create_as)
        if entry.definition is None:
            raise AgentDefinitionError(entry.error)
        return entry.definition

    def names(self) -> list[str]:
        """Sorted names of the usable agents (broken definitions are in problems())."""
        return self._scan().valid_names()

    def problems(self) -> list[str]:
        """One message per broken or conflicting definition, highest precedence first."""
        return list(self._scan().problems)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[AgentDefinition]:
        index = self._scan()
        return iter([index.entries[n].definition for n in index.valid_names()])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        where = "cwd" if self._cwd is None else str(self._cwd)
        return f"<AgentRegistry {where}: {len(self)} agents, {len(self.problems())} problems>"

    def workflows(self) -> dict[str, list[str]]:
        """The ``"workflows"`` of the nearest project claude.json that has them: name -> agents."""
        for claude in self._project_dirs():
            path = claude / "claude.json"
            if os.path.lexists(path):
                real, _version = agent_files.check_file(path, realpath(claude), str(path))
                if found := agent_files.parse_claude_workflows(real, str(path)):
                    return found
        return {}

    def reload(self) -> None:
        """Forget every parsed file: the next lookup reads them all again."""
        with self._lock:
            self._cache.clear()

    # -- discovery -------------------------------------------------------------------

    def _project_dirs(self) -> list[Path]:
        """Project ``.claude`` directories, nearest first; the home one is user scope."""
        try:
            start = realpath(self.cwd)
        except OSError:  # the current directory was deleted
            return []
        user_real = realpath(self._user_dir) if self._user_dir is not None else None
        found = []
        for d in (start, *start.parents):
            if d == self._home_real:
                continue
            claude = d / ".claude"
            if not claude.is_dir():
                continue
            if user_real is not None and realpath(claude / "agents") == user_real:
                continue
            found.append(claude)
        return found

    def _scan(self) -> _Index:
        with self._lock:
            entries: dict[str, _Entry] = {}
            problems: list[str] = []

            def offer(group: Iterable[_Entry]) -> None:
                local: dict[str, str] = {}
                for e in group:
                    if e.error is not None:
                        problems.append(e.error)
                        _log_once(e)
                    if e.name is None:
                        continue
                    if e.name in local:
                        dup = _Entry(
                            e.name,
                            e.label,
                            error=f"{e.label}: defines agent {e.name!r} again, already defined by "
                            f"{local[e.name]} (which is used): rename or remove one of them.",
                            version=e.version,
                        )
                        problems.append(dup.error)  # type: ignore[arg-type]
                        _log_once(dup)
                        continue
                    local[e.name] = e.label
                    entries.setdefault(e.name, e)

            for claude in self._project_dirs():
                json_entries, referenced = self._load_claude_json(claude)
                offer([*json_entries, *self._load_dir(claude / "agents", "project", skip=referenced)])
            if self._user_dir is not None:
                offer(self._load_dir(self._user_dir, "user"))
            if self.include_builtin:
                offer(self._load_builtin())
            return _Index(entries, problems)

    def _cached(self, key: tuple[Any, ...], version: tuple[Any, ...]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        return None

    def _load_file(
        self,
        path: Path,
        root_real: Path,
        source: str,
        *,
        label: str | None = None,
        name: str | None = None,
        description: str | None = None,
        fallback_description: str = "",
    ) -> _Entry:
        label = label or str(path)
        stem = path.name[:-3] if path.name.endswith(".md") else path.stem
        claim = name or (stem if agent_files.is_valid_name(stem) else None)
        try:
            real, version = agent_files.check_file(path, root_real, label)
        except DefinitionProblem as p:
            return _Entry(claim, label, error=str(p))
        key = ("md", str(path), source, name, description, fallback_description)
        entry = self._cached(key, version)
        if entry is None:
            try:
                # Parsed again only when the file's version changed.
                fields = agent_files.parse_definition(
                    agent_files.read_text(real, label),
                    label=label,
                    stem=stem,
                    name=name,
                    description=description,
                    fallback_description=fallback_description,
                )
                d = AgentDefinition(**fields, source=source, path=real)
                entry = _Entry(d.name, label, definition=d, version=version)
            except DefinitionProblem as p:
                entry = _Entry(p.agent_name or claim, label, error=str(p), version=version)
            self._cache[key] = (version, entry)
        return entry

    def _load_dir(self, directory: Path, source: str, skip: frozenset[Path] = frozenset()) -> list[_Entry]:
        try:
            with os.scandir(directory) as it:
                files = sorted(e.name for e in it if e.name.endswith(".md") and not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            return [_Entry(None, str(directory), error=agent_files.os_problem(str(directory), exc, "be listed"))]
        root_real = realpath(directory)
        out = []
        for fname in files:
            path = directory / fname
            if skip and realpath(path) in skip:
                continue  # owned by a claude.json entry of the same .claude directory
            out.append(self._load_file(path, root_real, source))
        return out

    def _load_claude_json(self, claude: Path) -> tuple[list[_Entry], frozenset[Path]]:
        path = claude / "claude.json"
        if not os.path.lexists(path):
            return [], frozenset()
        label = str(path)
        root_real = realpath(claude)
        try:
            real, version = agent_files.check_file(path, root_real, label)
        except DefinitionProblem as p:
            return [_Entry(None, label, error=str(p))], frozenset()
        key = ("json", label)
        parsed = self._cached(key, version)
        if parsed is None:
            try:
                parsed = agent_files.parse_claude_json(real, label)
            except DefinitionProblem as p:
                parsed = _Entry(None, label, error=str(p), version=version)
            self._cache[key] = (version, parsed)
        if isinstance(parsed, _Entry):
            return [parsed], frozenset()
        out: list[_Entry] = []
        referenced: set[Path] = set()
        for agent in parsed:
            if agent.error is not None:
                out.append(_Entry(agent.name, label, error=agent.error, version=version))
                continue
            assert agent.file is not None and agent.name is not None
            target = claude / agent.file
            shown = Path(os.path.normpath(target))
            referenced.add(realpath(target))
            out.append(
                self._load_file(
                    target,
                    root_real,
                    "project",
                    label=f"{shown} (agent {agent.name!r} of {label})",
                    name=agent.name,
                    description=agent.description,
                    fallback_description=agent.domains,
                )
            )
        return out, frozenset(referenced)

    def _load_builtin(self) -> list[_Entry]:
        root = resources.files("claude_force_nb") / "data" / "agents"
        if isinstance(root, Path):
            return self._load_dir(root, "builtin")
        # Installed in a zip: read through importlib.resources; the contents cannot change.
        out = []
        for res in sorted(root.iterdir(), key=lambda r: r.name):
            if not res.name.endswith(".md") or res.name.startswith("."):
                continue
            key = ("builtin-resource", res.name)
            entry = self._cached(key, ())
            if entry is None:
                label = f"claude_force_nb/data/agents/{res.name}"
                try:
                    fields = agent_files.parse_definition(
                        res.read_bytes().decode("utf-8-sig"), label=label, stem=res.name[:-3]
                    )
                    d = AgentDefinition(**fields, source="builtin", path=None)
                    entry = _Entry(d.name, label, definition=d, version=())
                except DefinitionProblem as p:
                    entry = _Entry(p.agent_name, label, error=str(p), version=())
                self._cache[key] = ((), entry)
            out.append(entry)
        return out
