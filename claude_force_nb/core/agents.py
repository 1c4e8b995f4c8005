"""Agent definitions: a named system prompt plus defaults, found on disk.

Where agents come from, highest precedence first (the first definition of a name wins):

1. **Project** -- for the current directory and each of its parents up to the filesystem
   root, nearest first: ``.claude/claude.json`` (the original claude-force format,
   ``{"agents": {name: {"file": "agents/x.md", "domains": [...], ...}}}`` with ``file``
   relative to ``.claude/``), then ``.claude/agents/*.md`` (Claude Code subagent files).
   The home directory is never treated as a project: its ``.claude/agents`` is the user
   directory.
2. **User** -- ``~/.claude/agents/*.md`` (or ``user_dir``).
3. **Built-in** -- ``claude_force_nb/data/agents/*.md``.

An agent ``.md`` file may start with YAML front matter between two ``---`` lines::

    ---
    name: reviewer            # default: the file name without .md
    description: Reviews diffs
    model: sonnet             # sonnet | opus | haiku | inherit | a full model id
    cache: false              # opt out of the response cache (default true)
    max_tokens: 2048
    temperature: 0.2          # 0..1
    tools: Read, Grep         # Claude Code keys we do not use are ignored
    ---
    You are a meticulous reviewer...

The body, stripped, is the system prompt. In a ``claude.json`` project the key is the
agent's name; the description comes from the entry's ``description``, else the file's
front matter, else the entry's ``domains`` joined with ", ". ``contract`` and
``priority`` are read by nobody and ignored. A file referenced by ``claude.json`` belongs
to that entry and is not listed a second time under its own name. A name defined twice
in one ``.claude`` directory is reported by ``problems()``; the first definition
(``claude.json`` entries, then ``agents/*.md`` in file-name order) is used.

Refused, with an :class:`AgentDefinitionError` naming the file and the fix: names outside
``NAME_PATTERN``; a file whose real path (symlinks and ``..`` resolved) is outside its
directory (``.claude/agents`` for ``.md`` files, ``.claude`` for ``claude.json`` entries);
files over 1 MiB (checked before reading); anything but a regular UTF-8 text file;
malformed front matter or values of the wrong type; an empty prompt; a malformed
``claude.json``.

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
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import AgentDefinitionError, UnknownAgentError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "FRAME_COLUMNS",
    "MAX_DEFINITION_BYTES",
    "MODEL_ALIASES",
    "NAME_PATTERN",
    "AgentDefinition",
    "AgentRegistry",
]

logger = logging.getLogger(__name__)

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
MAX_DEFINITION_BYTES = 1024 * 1024  # 1 MiB
MODEL_ALIASES: dict[str, str | None] = {
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-6",
    "haiku": "claude-haiku-4-5",
    "inherit": None,
}
FRAME_COLUMNS = ("name", "source", "path", "model", "description", "chars")
_NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

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

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the system prompt: editing the prompt changes it."""
        return hashlib.sha256(self.system.encode("utf-8")).hexdigest()


class _Problem(AgentDefinitionError):
    """Internal: a definition problem plus the agent name it claims (if known)."""

    def __init__(self, message: str, agent_name: str | None = None) -> None:
        super().__init__(message)
        self.agent_name = agent_name


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


# ---------------------------------------------------------------------------- parsing


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def _realpath(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _check_file(path: Path, root_real: Path, label: str) -> tuple[Path, tuple[Any, ...]]:
    """Resolve ``path``; refuse it unless it is a regular file under ``root_real`` and
    small enough. Returns (real path, version key). Costs a realpath and one stat."""
    real = _realpath(path)
    if not real.is_relative_to(root_real):
        raise _Problem(
            f"{label}: resolves to {real}, outside {root_real}; agent definitions must live "
            f"inside that directory: move or copy the file there instead of linking to it."
        )
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise _Problem(f"{label}: does not exist ({real}): create it, or fix the path or dangling symlink.") from None
    except OSError as exc:
        raise _Problem(f"{label}: cannot be read ({exc.strerror}): check its permissions.") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Problem(f"{label}: is not a regular file: an agent definition must be a text file.")
    if st.st_size > MAX_DEFINITION_BYTES:
        raise _Problem(
            f"{label}: is {st.st_size:,} bytes, over the {MAX_DEFINITION_BYTES:,}-byte (1 MiB) limit "
            f"for an agent definition: shorten the prompt."
        )
    return real, (str(real), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _read_text(real: Path, label: str) -> str:
    try:
        with open(real, "rb") as fh:
            data = fh.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise _Problem(f"{label}: cannot be read ({exc.strerror}): check its permissions.") from None
    if len(data) > MAX_DEFINITION_BYTES:  # grew after the stat
        raise _Problem(f"{label}: is over the 1 MiB limit for an agent definition: shorten the prompt.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Problem(f"{label}: is not UTF-8 text (byte {exc.start}): save it as UTF-8.") from None


def _split_front_matter(text: str, label: str, claim: str | None) -> tuple[dict[Any, Any], str]:
    """(front matter mapping, body). A file that does not open with ``---`` has none."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    stripped = text.lstrip()
    lines = stripped.split("\n")
    if lines[0].rstrip() != "---":
        return {}, text
    first = text[: len(text) - len(stripped)].count("\n") + 1  # file line of the opening ---
    for close in range(1, len(lines)):
        if lines[close].rstrip() == "---":
            break
    else:
        raise _Problem(
            f"{label}: the front matter opened with '---' on line {first} is never closed: "
            f"add a line containing only '---' after the last key.",
            claim,
        )
    raw = "\n".join(lines[1:close])
    try:
        meta = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {first + 1 + mark.line}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise _Problem(
            f"{label}: the front matter is not valid YAML ({problem}{where}): fix it; put values "
            f"containing ': ' or starting with a special character in quotes, e.g. "
            f'description: "Use when: ...".',
            claim,
        ) from None
    if meta is None:  # '---\n---': empty front matter is harmless
        meta = {}
    if not isinstance(meta, dict):
        raise _Problem(
            f"{label}: the front matter must be a YAML mapping of keys such as 'name: my-agent', "
            f"not a {type(meta).__name__}: write one 'key: value' per line.",
            claim,
        )
    return meta, "\n".join(lines[close + 1 :])


def _validated_options(meta: dict[Any, Any], label: str, claim: str | None) -> dict[str, Any]:
    """model / cache / max_tokens / temperature / description, checked. Null = absent."""
    out: dict[str, Any] = {}
    model = meta.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise _Problem(
                f"{label}: 'model' must be a string such as claude-sonnet-4-6, sonnet, opus, haiku "
                f"or inherit, not {model!r}.",
                claim,
            )
        model = model.strip()
        out["model"] = MODEL_ALIASES.get(model.lower(), model) if model else None
    cache = meta.get("cache")
    if cache is not None:
        if not isinstance(cache, bool):
            raise _Problem(f"{label}: 'cache' must be true or false, not {cache!r}.", claim)
        out["cache"] = cache
    max_tokens = meta.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise _Problem(f"{label}: 'max_tokens' must be a positive integer such as 2048, not {max_tokens!r}.", claim)
        out["max_tokens"] = max_tokens
    temperature = meta.get("temperature")
    if temperature is not None:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0.0 <= temperature <= 1.0
        ):
            raise _Problem(f"{label}: 'temperature' must be a number from 0 to 1, not {temperature!r}.", claim)
        out["temperature"] = float(temperature)
    description = meta.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise _Problem(f"{label}: 'description' must be text, not {description!r}: put it in quotes.", claim)
        out["description"] = description.strip()
    return out


def _build_definition(
    text: str,
    *,
    label: str,
    stem: str,
    source: str,
    path: Path | None,
    name: str | None = None,
    description: str | None = None,
    fallback_description: str = "",
) -> AgentDefinition:
    """An AgentDefinition from a file's text. ``name``/``description`` (from claude.json)
    override the front matter; ``fallback_description`` applies when neither has one."""
    stem_claim = stem if _valid_name(stem) else None
    claim = name or stem_claim
    meta, body = _split_front_matter(text, label, claim)
    if name is None:
        raw_name = meta.get("name")
        if raw_name is None:
            if stem_claim is None:
                raise _Problem(
                    f"{label}: {stem!r} is not a valid agent name: {_NAME_RULE} (rename the file or "
                    f"set 'name:' in its front matter)."
                )
            name = stem
        elif not _valid_name(raw_name):
            what = "must be text: put it in quotes" if not isinstance(raw_name, str) else _NAME_RULE
            raise _Problem(f"{label}: agent name {raw_name!r} is not allowed: {what}.", claim)
        else:
            name = raw_name
    assert name is not None
    options = _validated_options(meta, label, name)
    system = body.strip()
    if not system:
        raise _Problem(
            f"{label}: the system prompt is empty: write the agent's instructions below the front matter.",
            name,
        )
    own_description = options.pop("description", "")
    return AgentDefinition(
        name=name,
        system=system,
        description=description or own_description or fallback_description,
        source=source,
        path=path,
        **options,
    )


def _parse_definition(
    real: Path,
    *,
    label: str,
    stem: str,
    source: str,
    name: str | None = None,
    description: str | None = None,
    fallback_description: str = "",
) -> AgentDefinition:
    """Read and parse one agent file (already checked by _check_file). The registry calls
    this only when the file's version changed."""
    return _build_definition(
        _read_text(real, label),
        label=label,
        stem=stem,
        source=source,
        path=real,
        name=name,
        description=description,
        fallback_description=fallback_description,
    )


@dataclass(frozen=True)
class _JsonAgent:
    name: str | None
    file: str | None = None
    description: str | None = None
    domains: str = ""
    error: str | None = None


def _parse_claude_json(real: Path, label: str) -> list[_JsonAgent]:
    """The agents of a claude.json (structure only; files are checked by the caller)."""
    try:
        data = json.loads(_read_text(real, label))
    except json.JSONDecodeError as exc:
        raise _Problem(
            f"{label}: is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): fix the syntax."
        ) from None
    if not isinstance(data, dict):
        raise _Problem(f'{label}: must be a JSON object such as {{"agents": {{...}}}}, not a {type(data).__name__}.')
    agents = data.get("agents")
    if agents is None:
        return []
    if not isinstance(agents, dict):
        raise _Problem(
            f'{label}: "agents" must be an object mapping agent names to {{"file": "agents/<name>.md"}}, '
            f"not a {type(agents).__name__}."
        )
    out: list[_JsonAgent] = []
    for name, spec in agents.items():
        if not _valid_name(name):
            out.append(_JsonAgent(None, error=f"{label}: agent name {name!r} is not allowed: {_NAME_RULE}."))
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str) or not spec["file"].strip():
            out.append(
                _JsonAgent(
                    name,
                    error=f'{label}: agent {name!r} has no "file": add "file": "agents/{name}.md" '
                    f"(relative to the .claude directory).",
                )
            )
            continue
        desc = spec.get("description")
        domains = spec.get("domains", [])
        if desc is not None and not isinstance(desc, str):
            out.append(_JsonAgent(name, error=f'{label}: agent {name!r}: "description" must be a string.'))
            continue
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            out.append(_JsonAgent(name, error=f'{label}: agent {name!r}: "domains" must be a list of strings.'))
            continue
        out.append(_JsonAgent(name, spec["file"], (desc or "").strip() or None, ", ".join(domains)))
    return out


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
        self._home_real = _realpath(home) if home is not None else None
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
            raise UnknownAgentError(name, difflib.get_close_matches(name, index.valid_names(), n=3, cutoff=0.5))
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

    def frame(self) -> pd.DataFrame:
        """One row per usable agent, sorted by name: name, source, path, model, description, chars."""
        import pandas as pd

        defs = list(self)
        text = {  # object columns keep None as None (pandas 3 would turn it into NaN)
            "name": [d.name for d in defs],
            "source": [d.source for d in defs],
            "path": [None if d.path is None else str(d.path) for d in defs],
            "model": [d.model for d in defs],
            "description": [d.description for d in defs],
        }
        columns: dict[str, Any] = {k: pd.Series(v, dtype=object) for k, v in text.items()}
        columns["chars"] = pd.Series([len(d.system) for d in defs], dtype="int64")
        return pd.DataFrame(columns, columns=list(FRAME_COLUMNS))

    def reload(self) -> None:
        """Forget every parsed file: the next lookup reads them all again."""
        with self._lock:
            self._cache.clear()

    # -- discovery -------------------------------------------------------------------

    def _project_dirs(self) -> list[Path]:
        """Project ``.claude`` directories, nearest first; the home one is user scope."""
        try:
            start = _realpath(self.cwd)
        except OSError:  # the current directory was deleted
            return []
        user_real = _realpath(self._user_dir) if self._user_dir is not None else None
        found = []
        for d in (start, *start.parents):
            if d == self._home_real:
                continue
            claude = d / ".claude"
            if not claude.is_dir():
                continue
            if user_real is not None and _realpath(claude / "agents") == user_real:
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
        claim = name or (stem if _valid_name(stem) else None)
        try:
            real, version = _check_file(path, root_real, label)
        except _Problem as p:
            return _Entry(claim, label, error=str(p))
        key = ("md", str(path), source, name, description, fallback_description)
        entry = self._cached(key, version)
        if entry is None:
            try:
                d = _parse_definition(
                    real,
                    label=label,
                    stem=stem,
                    source=source,
                    name=name,
                    description=description,
                    fallback_description=fallback_description,
                )
                entry = _Entry(d.name, label, definition=d, version=version)
            except _Problem as p:
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
            return [_Entry(None, str(directory), error=f"{directory}: cannot be listed ({exc.strerror}): check its permissions.")]
        root_real = _realpath(directory)
        out = []
        for fname in files:
            path = directory / fname
            if skip and _realpath(path) in skip:
                continue  # owned by a claude.json entry of the same .claude directory
            out.append(self._load_file(path, root_real, source))
        return out

    def _load_claude_json(self, claude: Path) -> tuple[list[_Entry], frozenset[Path]]:
        path = claude / "claude.json"
        if not os.path.lexists(path):
            return [], frozenset()
        label = str(path)
        root_real = _realpath(claude)
        try:
            real, version = _check_file(path, root_real, label)
        except _Problem as p:
            return [_Entry(None, label, error=str(p))], frozenset()
        key = ("json", label)
        parsed = self._cached(key, version)
        if parsed is None:
            try:
                parsed = _parse_claude_json(real, label)
            except _Problem as p:
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
            referenced.add(_realpath(target))
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
                    d = _build_definition(
                        res.read_bytes().decode("utf-8-sig"), label=label, stem=res.name[:-3], source="builtin", path=None
                    )
                    entry = _Entry(d.name, label, definition=d, version=())
                except _Problem as p:
                    entry = _Entry(p.agent_name, label, error=str(p), version=())
                self._cache[key] = ((), entry)
            out.append(entry)
        return out
