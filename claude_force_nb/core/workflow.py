"""Workflow: a DAG of agent nodes, read from a cell's text or a dict, checked before anything runs.

The text form, one node per line (a prompt continues on indented lines)::

    task: Why did churn rise in Q3? Data: {summary}
    plan   = data-analyst: Plan an analysis of: {task}
    stats  = python-expert [model=claude-haiku-4-5, max_tokens=2000]: Write the pandas code for: {plan}
    risks  = code-reviewer: What could mislead us in: {plan}
    report = technical-writer: Write the findings from {stats} and {risks}

``{task}`` and ``{node}`` are references: the task and an upstream node's answer. Edges come
from them, and only names that are nodes (or ``task``) are references: every other brace is
left as written (the notebook layer fills notebook variables in before parsing). Options in
``[...]``: model, max_tokens, temperature, tools (names, resolved by the caller), schema
(quoted when it holds commas). ``final: NAME`` names the answer when several nodes are
unused by others; otherwise the final node is the one nothing depends on.

Every problem is one :class:`WorkflowError` line naming the line or node and the fix;
unused and unreachable nodes are warnings (``Workflow.warnings``, also ``warnings.warn``).
"""

from __future__ import annotations

import difflib
import re
import textwrap
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .agent_files import NAME_PATTERN, is_valid_name
from .errors import WorkflowError
from .options import max_tokens_problem, model_problem, temperature_problem

__all__ = ["Node", "Workflow", "node_names"]

NODE_NAME = r"[A-Za-z_][\w-]*"
TASK = "task"
_REF = re.compile(rf"\{{({NODE_NAME})\}}")
_NODE_LINE = re.compile(
    rf"^(?P<name>{NODE_NAME})\s*=\s*(?P<agent>\S+?)\s*(?:\[(?P<opts>[^\]]*)\])?\s*:(?P<prompt>.*)$"
)
_KEY_LINE = re.compile(r"^(?P<key>task|final)\s*:(?P<value>.*)$")
_OPTION = re.compile(r"\s*(?P<key>\w+)\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^,]*))\s*(?:,|$)")
OPTION_NAMES = ("model", "max_tokens", "temperature", "tools", "schema")
_FIX_LINE = "write `name = agent: prompt` or `task: ...`, and indent a prompt's further lines"


def node_names(text: str) -> set[str]:
    """The node names a workflow text defines, plus ``task``: the names the notebook layer
    must not fill in from notebook variables."""
    return {TASK} | {m.group("name") for line in text.splitlines() if (m := _NODE_LINE.match(line))}


@dataclass(frozen=True)
class Node:
    """One agent call of a workflow: ``prompt`` with its references still in braces."""

    name: str
    agent: str
    prompt: str
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[str, ...] = ()
    schema: Any = None
    line: int | None = None  # where the text form defined it (for messages)

    @property
    def where(self) -> str:
        return f"Line {self.line} (node {self.name!r})" if self.line else f"Node {self.name!r}"


def _options(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A node's options checked and converted (text values from ``[...]`` or dict values)."""
    if unknown := sorted(set(raw) - set(OPTION_NAMES)):
        raise WorkflowError(f"{where}: unknown option {unknown[0]!r}: use {', '.join(OPTION_NAMES)}.")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("max_tokens", "temperature") and isinstance(value, str):
            try:
                value = int(value) if key == "max_tokens" else float(value)
            except ValueError:
                pass  # the check below names the value
        if key == "tools":
            names = re.split(r"[\s,|]+", value.strip()) if isinstance(value, str) else list(value or ())
            if not all(isinstance(n, str) and n for n in names):
                raise WorkflowError(f"{where}: tools must be tool names, e.g. tools=describe lookup.")
            value = tuple(n for n in names if n)
        check = {"model": model_problem, "max_tokens": max_tokens_problem, "temperature": temperature_problem}.get(key)
        if check is not None and (problem := check(value)) is not None:
            raise WorkflowError(f"{where}: {problem}")
        out[key] = value
    return out


def _parse_options(text: str, where: str) -> dict[str, Any]:
    raw: dict[str, str] = {}
    position = 0
    text = text.strip()
    while position < len(text):
        m = _OPTION.match(text, position)
        if m is None or m.end() == position:
            raise WorkflowError(f"{where}: cannot read options [{text}]: write [key=value, ...], "
                                f"e.g. [model=claude-haiku-4-5, max_tokens=2000].")
        value = next(v for v in (m.group("dq"), m.group("sq"), m.group("bare")) if v is not None)
        raw[m.group("key")] = value.strip()
        position = m.end()
    return _options(raw, where)


@dataclass(frozen=True)
class Workflow:
    """A checked DAG of :class:`Node` s. Build it with :meth:`parse`, :meth:`from_dict` or :meth:`chain`."""

    nodes: tuple[Node, ...]
    task: str | None = None
    final: str | None = None  # resolved in __post_init__: never None afterwards
    name: str | None = None
    inputs: dict[str, tuple[str, ...]] = field(init=False, repr=False)  # node -> upstream nodes
    warnings: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(self)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, name: str | None = None) -> Workflow:
        """A workflow from the text form (see the module docstring)."""
        entries: list[list[Any]] = []  # [kind, line number, head match, continuation lines]
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or (stripped.startswith("#") and not line[:1].isspace()):
                if entries and not stripped:
                    entries[-1][3].append("")
                continue
            if line[:1].isspace():
                if not entries:
                    raise WorkflowError(f"Line {number}: an indented line before any node: {_FIX_LINE}.")
                entries[-1][3].append(line)
            elif m := _KEY_LINE.match(line):
                entries.append([m.group("key"), number, m, []])
            elif m := _NODE_LINE.match(line):
                entries.append(["node", number, m, []])
            else:
                raise WorkflowError(f"Line {number}: cannot read {stripped[:40]!r}: {_FIX_LINE}.")
        task = final = None
        nodes: list[Node] = []
        for kind, number, m, more in entries:
            head = (m.group("value") if kind != "node" else m.group("prompt")).strip()
            body = "\n".join([head, textwrap.dedent("\n".join(more))] if more else [head]).strip()
            if kind == TASK:
                task = body
            elif kind == "final":
                final = body
            else:
                node_name, agent = m.group("name"), m.group("agent")
                where = f"Line {number} (node {node_name!r})"
                if not is_valid_name(agent):
                    raise WorkflowError(f"{where}: {agent!r} cannot name an agent: use letters, digits, '.', "
                                        f"'_' or '-' ({NAME_PATTERN}).")
                options = _parse_options(m.group("opts") or "", where)
                nodes.append(Node(node_name, agent, body, line=number, **options))
        return cls(tuple(nodes), task=task, final=final, name=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """From ``{"task": ..., "final": ..., "nodes": {name: {"agent", "prompt", options...}}}``
        (``nodes`` may also be a list of such dicts with a ``"name"``)."""
        if not isinstance(data, Mapping) or unknown_keys(data, ("task", "final", "name", "nodes")):
            raise WorkflowError('A workflow dict needs {"nodes": {name: {"agent": ..., "prompt": ...}}} and may '
                                'have "task", "final" and "name"; nothing else.')
        specs = data.get("nodes")
        if isinstance(specs, Mapping):
            specs = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in specs.items()]
        if not isinstance(specs, (list, tuple)):
            raise WorkflowError('"nodes" must map node names to {"agent": ..., "prompt": ...}.')
        nodes = []
        for i, spec in enumerate(specs):
            texts = isinstance(spec, Mapping) and all(isinstance(spec.get(k), str) for k in ("name", "agent", "prompt"))
            if not texts:
                raise WorkflowError(f"Node {i + 1}: needs text values for name, agent and prompt, "
                                    f'e.g. {{"agent": "code-reviewer", "prompt": "Review {{task}}"}}.')
            where = f"Node {spec['name']!r}"
            rest = {k: v for k, v in spec.items() if k not in ("name", "agent", "prompt")}
            nodes.append(Node(spec["name"], spec["agent"], spec["prompt"], **_options(rest, where)))
        return cls(tuple(nodes), task=data.get("task"), final=data.get("final"), name=data.get("name"))

    @classmethod
    def chain(cls, name: str, agents: Iterable[str]) -> Workflow:
        """A claude.json workflow: each agent gets the task and the previous agent's answer."""
        nodes: list[Node] = []
        for agent in agents:
            node_name = agent
            count = 1
            while any(n.name == node_name for n in nodes):
                count += 1
                node_name = f"{agent}-{count}"
            prompt = "{task}" if not nodes else (
                f"{{task}}\n\nThe previous step ({nodes[-1].agent}) answered:\n\n{{{nodes[-1].name}}}")
            nodes.append(Node(node_name, agent, prompt))
        if not nodes:
            raise WorkflowError(f"Workflow {name!r} lists no agents: give it a list such as "
                                f'["data-analyst", "technical-writer"] in claude.json.')
        return cls(tuple(nodes), name=name)

    # -- reading -------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def order(self) -> list[str]:
        """Node names with every node after its inputs (text order among independent nodes)."""
        done: list[str] = []
        while len(done) < len(self.nodes):
            done += [n.name for n in self.nodes if n.name not in done and all(i in done for i in self.inputs[n.name])]
        return done

    def uses_task(self, node: str) -> bool:
        return TASK in references(self[node].prompt, set(self.names))

    def render(self, node: str, task: str | None, outputs: Mapping[str, str]) -> str:
        """``node``'s prompt with ``{task}`` and its inputs' answers filled in (one pass)."""
        values = {**outputs, TASK: task or ""}
        names = set(self.names)
        return _REF.sub(lambda m: values[m.group(1)] if m.group(1) in names | {TASK} else m.group(0),
                        self[node].prompt)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Workflow{label}: {len(self.nodes)} nodes, final {self.final!r}>"


def unknown_keys(data: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    return sorted(set(data) - set(known))


def references(prompt: str, names: set[str]) -> list[str]:
    """The references in ``prompt`` (node names of ``names``, and ``task``), in first-use order."""
    found = [m.group(1) for m in _REF.finditer(prompt)]
    return list(dict.fromkeys(r for r in found if r in names or r == TASK))


def _cycle(inputs: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One cycle as a path ``[a, b, a]`` (a uses b uses a), or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for upstream in inputs[node]:
            if state.get(upstream) == 1:
                return path[path.index(upstream):] + [upstream]
            if upstream not in state and (found := visit(upstream, [*path, upstream])):
                return found
        state[node] = 2
        return None

    for node in inputs:
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def _check(wf: Workflow) -> None:
    """Every rule a workflow must meet before it runs; sets ``inputs``, ``final`` and ``warnings``."""
    if not wf.nodes:
        raise WorkflowError(f"The workflow has no nodes: add lines such as `plan = data-analyst: Plan {{{TASK}}}`.")
    seen: dict[str, Node] = {}
    for node in wf.nodes:
        if not re.fullmatch(NODE_NAME, node.name) or node.name == TASK:
            raise WorkflowError(f"{node.where}: {node.name!r} cannot name a node: use letters, digits, '_' or '-' "
                                f"(starting with a letter), and not {TASK!r}.")
        if node.name in seen:
            first = seen[node.name]
            was = f" (line {first.line})" if first.line else ""
            raise WorkflowError(f"{node.where}: node {node.name!r} is defined twice{was}: rename one of them.")
        if not node.prompt.strip():
            raise WorkflowError(f"{node.where}: the prompt is empty: write what the agent should do after ':'.")
        seen[node.name] = node
    names = set(seen)
    inputs = {n.name: tuple(r for r in references(n.prompt, names) if r != TASK) for n in wf.nodes}
    for node in wf.nodes:  # a near miss of a node name is a typo, not a literal brace
        for word in {m.group(1) for m in _REF.finditer(node.prompt)} - names - {TASK}:
            if close := difflib.get_close_matches(word, [*names, TASK], n=1, cutoff=0.75):
                raise WorkflowError(f"{node.where}: {{{word}}} is no node: did you mean {{{close[0]}}}? "
                                    f"Nodes: {', '.join(wf.names)}.")
    if cycle := _cycle(inputs):
        raise WorkflowError(f"The workflow has a cycle: {' -> '.join(cycle)} (each uses the next one's answer): "
                            f"remove one of these references.")
    used = {i for ins in inputs.values() for i in ins}
    sinks = [n for n in wf.names if n not in used]
    final = wf.final
    if final is not None and final not in names:
        raise WorkflowError(f"final: {final!r} is no node: use one of {', '.join(wf.names)}.")
    if final is None and len(sinks) > 1:
        raise WorkflowError(f"The workflow has {len(sinks)} final nodes ({', '.join(sinks)}): nothing uses their "
                            f"answers. Use them in one last node's prompt, or name the answer with "
                            f"`final: {sinks[-1]}`.")
    final = final or sinks[0]
    notes = [f"Node {n!r} is not used by any node and is not the final one: its answer is not in the result's "
             f"text (use it in a prompt, or remove it)." for n in sinks if n != final]
    notes += [f"Node {n.name!r} uses neither {{{TASK}}} nor another node's answer: it does not see the question."
              for n in wf.nodes if not inputs[n.name] and TASK not in references(n.prompt, names)]
    if wf.task and not any(TASK in references(n.prompt, names) for n in wf.nodes):
        notes.append(f"No node uses {{{TASK}}}: the task is not sent (refer to it as {{{TASK}}} in a prompt).")
    object.__setattr__(wf, "inputs", inputs)
    object.__setattr__(wf, "final", final)
    object.__setattr__(wf, "warnings", tuple(notes))
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=4)
