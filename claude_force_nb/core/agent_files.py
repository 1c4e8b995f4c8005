"""Agent definition files: what one ``.md`` file or ``claude.json`` says, checked.

An agent ``.md`` file may start with YAML front matter between two ``---`` lines::

    ---
    name: reviewer            # default: the file name without .md
    description: Reviews diffs
    model: sonnet             # sonnet | opus | haiku | inherit | a full model id
    cache: false              # opt out of the response cache (default true)
    max_tokens: 2048          # 1 to 128,000: the same rules as for a call (options.py)
    temperature: 0.2          # 0..1
    tools: Read, Grep         # Read/Grep/Glob are offered; other Claude Code tools are named in a warning
    ---
    You are a meticulous reviewer...

The body, stripped, is the system prompt. In a ``claude.json`` project
(``{"agents": {name: {"file": "agents/x.md", "domains": [...], ...}}}``, ``file``
relative to ``.claude/``) the key is the agent's name; the description comes from the
entry's ``description``, else the file's front matter, else the entry's ``domains``
joined with ", ". ``contract`` and ``priority`` are read by nobody and ignored.

Refused, with a :class:`DefinitionProblem` naming the file and the fix: names outside
``NAME_PATTERN``; a file whose real path (symlinks and ``..`` resolved) is outside its
directory; files over 1 MiB (checked before reading); anything but a regular UTF-8 text
file; malformed front matter or values of the wrong type; an empty prompt; a malformed
``claude.json``. Which files are looked at, and in what order, is agents.py's business.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import yaml

from .errors import AgentDefinitionError
from .options import max_tokens_problem, model_problem, temperature_problem

__all__ = [
    "MAX_DEFINITION_BYTES",
    "MODEL_ALIASES",
    "NAME_PATTERN",
    "DefinitionFields",
    "DefinitionProblem",
    "JsonAgent",
    "check_file",
    "is_valid_name",
    "os_problem",
    "parse_claude_json",
    "parse_claude_workflows",
    "parse_definition",
    "read_text",
    "realpath",
    "suggest_name",
]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_DEFINITION_BYTES = 1024 * 1024  # 1 MiB
MODEL_ALIASES: dict[str, str | None] = {
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-6",
    "haiku": "claude-haiku-4-5",
    "inherit": None,
}


class DefinitionProblem(AgentDefinitionError):
    """A definition problem plus the agent name it claims (if known), so the registry
    can refuse that name instead of falling back to another agent of the same name."""

    def __init__(self, message: str, agent_name: str | None = None) -> None:
        super().__init__(message)
        self.agent_name = agent_name


class DefinitionFields(TypedDict):
    """What a file defines; the registry adds where it came from (source, path)."""

    name: str
    system: str
    description: str
    model: NotRequired[str | None]
    cache: NotRequired[bool]
    max_tokens: NotRequired[int]
    temperature: NotRequired[float]
    tools: NotRequired[tuple[str, ...]]


class _FileOptions(TypedDict, total=False):
    """The call defaults a file's front matter sets; a key is absent when the file leaves it out."""

    model: str | None
    cache: bool
    max_tokens: int
    temperature: float
    tools: tuple[str, ...]


@dataclass(frozen=True)
class JsonAgent:
    """One ``claude.json`` entry: where its file is, or why it is unusable."""

    name: str | None
    file: str | None = None
    description: str | None = None
    domains: str = ""
    error: str | None = None


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def suggest_name(text: str) -> str:
    """A name that passes the rule, as close to ``text`` as it allows: 'ünï' -> 'uni', 'my agent' -> 'my-agent'."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", plain).strip("-_.")[:64]
    return name if is_valid_name(name) else "my-agent"


def _name_fix(name: str) -> str:
    return f"{NAME_RULE}, e.g. {suggest_name(name)!r}"


def os_problem(label: str, exc: OSError, action: str = "be read") -> str:
    """One line for a file or directory the OS refused, naming the likely fix."""
    if exc.errno == errno.ELOOP:
        return (
            f"{label}: is a symlink loop (following it never reaches a file): "
            "point the link at a real file or remove it."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{label}: cannot {action} ({exc.strerror}): check its permissions."
    return f"{label}: cannot {action} ({exc.strerror or exc}): check that it exists and is readable."


def realpath(path: Path) -> Path:
    return Path(os.path.realpath(path))


def check_file(path: Path, root_real: Path, label: str) -> tuple[Path, tuple[Any, ...]]:
    """Resolve ``path``; refuse it unless it is a regular file under ``root_real`` and
    small enough. Returns (real path, version key). Costs a realpath and one stat."""
    real = realpath(path)
    if not real.is_relative_to(root_real):
        raise DefinitionProblem(
            f"{label}: resolves to {real}, outside {root_real}; agent definitions must live "
            f"inside that directory: move or copy the file there instead of linking to it."
        )
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise DefinitionProblem(
            f"{label}: does not exist ({real}): create it, or fix the path or dangling symlink."
        ) from None
    except OSError as exc:
        raise DefinitionProblem(os_problem(label, exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise DefinitionProblem(f"{label}: is not a regular file: an agent definition must be a text file.")
    if st.st_size > MAX_DEFINITION_BYTES:
        raise DefinitionProblem(
            f"{label}: is {st.st_size:,} bytes, over the {MAX_DEFINITION_BYTES:,}-byte (1 MiB) limit "
            f"for an agent definition: shorten the prompt."
        )
    return real, (str(real), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def read_text(real: Path, label: str) -> str:
    """The file's text (UTF-8, BOM dropped), never more than the size limit."""
    try:
        with open(real, "rb") as fh:
            data = fh.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise DefinitionProblem(os_problem(label, exc)) from None
    if len(data) > MAX_DEFINITION_BYTES:  # grew after the stat
        raise DefinitionProblem(f"{label}: is over the 1 MiB limit for an agent definition: shorten the prompt.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionProblem(f"{label}: is not UTF-8 text (byte {exc.start}): save it as UTF-8.") from None


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
        raise DefinitionProblem(
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
        raise DefinitionProblem(
            f"{label}: the front matter is not valid YAML ({problem}{where}): fix it; put values "
            f"containing ': ' or starting with a special character in quotes, e.g. "
            f'description: "Use when: ...".',
            claim,
        ) from None
    if meta is None:  # '---\n---': empty front matter is harmless
        meta = {}
    if not isinstance(meta, dict):
        raise DefinitionProblem(
            f"{label}: the front matter must be a YAML mapping of keys such as 'name: my-agent', "
            f"not a {type(meta).__name__}: write one 'key: value' per line.",
            claim,
        )
    return meta, "\n".join(lines[close + 1 :])


def _validated_options(meta: dict[Any, Any], label: str, claim: str | None) -> _FileOptions:
    """model / cache / max_tokens / temperature, checked. Null = absent.

    model, max_tokens and temperature follow the same rules as a call's options
    (options.py), so a file never sets a default that every call would then refuse.
    """

    def follow(rule: Callable[[object], str | None], value: object) -> None:
        if (message := rule(value)) is not None:
            raise DefinitionProblem(f"{label}: {message}", claim)

    out: _FileOptions = {}
    model = meta.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise DefinitionProblem(
                f"{label}: 'model' must be a string such as claude-sonnet-4-6, sonnet, opus, haiku "
                f"or inherit, not {model!r}.",
                claim,
            )
        model = model.strip()
        out["model"] = MODEL_ALIASES.get(model.lower(), model) if model else None
        follow(model_problem, out["model"])
    cache = meta.get("cache")
    if cache is not None:
        if not isinstance(cache, bool):
            raise DefinitionProblem(f"{label}: 'cache' must be true or false, not {cache!r}.", claim)
        out["cache"] = cache
    max_tokens = meta.get("max_tokens")
    follow(max_tokens_problem, max_tokens)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    temperature = meta.get("temperature")
    follow(temperature_problem, temperature)
    if temperature is not None:
        out["temperature"] = float(temperature)
    tools = meta.get("tools")
    if tools is not None:
        names = tools.split(",") if isinstance(tools, str) else tools
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DefinitionProblem(f"{label}: 'tools' must be a list of tool names such as Read, Grep, not {tools!r}.",
                                    claim)
        out["tools"] = tuple(n.strip() for n in names if n.strip())
    return out


def _own_description(meta: dict[Any, Any], label: str, claim: str | None) -> str:
    """The front matter's ``description``, stripped; empty when it has none."""
    description = meta.get("description")
    if description is None:
        return ""
    if not isinstance(description, str):
        raise DefinitionProblem(f"{label}: 'description' must be text, not {description!r}: put it in quotes.", claim)
    return description.strip()


def parse_definition(
    text: str,
    *,
    label: str,
    stem: str,
    name: str | None = None,
    description: str | None = None,
    fallback_description: str = "",
) -> DefinitionFields:
    """What a definition file's text defines. ``name``/``description`` (from claude.json)
    override the front matter; ``fallback_description`` applies when neither has one."""
    stem_claim = stem if is_valid_name(stem) else None
    claim = name or stem_claim
    meta, body = _split_front_matter(text, label, claim)
    if name is None:
        raw_name = meta.get("name")
        if raw_name is None:
            if stem_claim is None:
                fixed = suggest_name(stem)
                raise DefinitionProblem(
                    f"{label}: {stem!r} is not a valid agent name: {NAME_RULE} (rename the file to "
                    f"{fixed}.md, or set 'name: {fixed}' in its front matter)."
                )
            name = stem
        elif not is_valid_name(raw_name):
            what = "must be text: put it in quotes" if not isinstance(raw_name, str) else _name_fix(raw_name)
            raise DefinitionProblem(f"{label}: agent name {raw_name!r} is not allowed: {what}.", claim)
        else:
            name = raw_name
    options = _validated_options(meta, label, name)
    own_description = _own_description(meta, label, name)
    system = body.strip()
    if not system:
        raise DefinitionProblem(
            f"{label}: the system prompt is empty: write the agent's instructions below the front matter.",
            name,
        )
    fields: DefinitionFields = {
        "name": name,
        "system": system,
        "description": description or own_description or fallback_description,
        **options,
    }
    return fields


def _claude_json_object(real: Path, label: str) -> dict[str, Any]:
    try:
        data = json.loads(read_text(real, label))
    except json.JSONDecodeError as exc:
        raise DefinitionProblem(
            f"{label}: is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): fix the syntax."
        ) from None
    if not isinstance(data, dict):
        raise DefinitionProblem(
            f'{label}: must be a JSON object such as {{"agents": {{...}}}}, not a {type(data).__name__}.'
        )
    return data


def parse_claude_workflows(real: Path, label: str) -> dict[str, list[str]]:
    """The ``"workflows"`` of a claude.json: name -> the agents of a chain, in order."""
    workflows = _claude_json_object(real, label).get("workflows") or {}
    if not isinstance(workflows, dict) or not all(
        isinstance(agents, list) and agents and all(isinstance(a, str) for a in agents) for agents in workflows.values()
    ):
        raise DefinitionProblem(
            f'{label}: "workflows" must map names to lists of agent names, e.g. '
            f'{{"analysis": ["data-analyst", "technical-writer"]}}.'
        )
    return {str(name): list(agents) for name, agents in workflows.items()}


def parse_claude_json(real: Path, label: str) -> list[JsonAgent]:
    """The agents of a claude.json (structure only; files are checked by the caller)."""
    data = _claude_json_object(real, label)
    agents = data.get("agents")
    if agents is None:
        return []
    if not isinstance(agents, dict):
        raise DefinitionProblem(
            f'{label}: "agents" must be an object mapping agent names to {{"file": "agents/<name>.md"}}, '
            f"not a {type(agents).__name__}."
        )
    out: list[JsonAgent] = []
    for name, spec in agents.items():
        if not is_valid_name(name):
            out.append(JsonAgent(None, error=f"{label}: agent name {name!r} is not allowed: {_name_fix(name)}."))
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str) or not spec["file"].strip():
            out.append(
                JsonAgent(
                    name,
                    error=f'{label}: agent {name!r} has no "file": add "file": "agents/{name}.md" '
                    f"(relative to the .claude directory).",
                )
            )
            continue
        desc = spec.get("description")
        domains = spec.get("domains", [])
        if desc is not None and not isinstance(desc, str):
            out.append(JsonAgent(name, error=f'{label}: agent {name!r}: "description" must be a string.'))
            continue
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            out.append(JsonAgent(name, error=f'{label}: agent {name!r}: "domains" must be a list of strings.'))
            continue
        out.append(JsonAgent(name, spec["file"], (desc or "").strip() or None, ", ".join(domains)))
    return out
