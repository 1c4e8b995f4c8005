"""AgentRegistry: discovery, precedence, parsing, refusals, caching. Real files in tmp_path."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import pytest

from claude_force_nb.core import agent_files
from claude_force_nb.core import agents as agents_mod
from claude_force_nb.core.agents import (
    MAX_DEFINITION_BYTES,
    AgentDefinition,
    AgentRegistry,
)
from claude_force_nb.core.errors import AgentDefinitionError, UnknownAgentError

BUILTINS = ["assistant", "code-reviewer", "data-analyst", "python-expert", "sql-expert", "technical-writer"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def md(body: str = "Do the thing.", **meta: object) -> str:
    if not meta:
        return body
    lines = [f"{k}: {v}" for k, v in meta.items()]
    return "---\n" + "\n".join(lines) + "\n---\n" + body + "\n"


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    (p / ".claude" / "agents").mkdir(parents=True)
    return p


@pytest.fixture
def pagents(proj: Path) -> Path:
    return proj / ".claude" / "agents"


@pytest.fixture
def udir(tmp_path: Path) -> Path:
    return tmp_path / "user-agents"


@pytest.fixture
def reg(proj: Path, udir: Path):
    """A registry on the project, with a tmp user dir and (by default) no built-ins."""

    def make(cwd: Path | None = None, include_builtin: bool = False) -> AgentRegistry:
        return AgentRegistry(cwd or proj, user_dir=udir, include_builtin=include_builtin)

    return make


@pytest.fixture
def parse_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the label of every file the registry actually parses."""
    calls: list[str] = []
    real = agent_files.parse_definition

    def counting(*args, **kwargs):
        calls.append(kwargs["label"])
        return real(*args, **kwargs)

    monkeypatch.setattr(agent_files, "parse_definition", counting)
    return calls


def definition_error(registry: AgentRegistry, name: str) -> str:
    with pytest.raises(AgentDefinitionError) as info:
        registry.get(name)
    return str(info.value)


# ---------------------------------------------------------------------------- built-ins


def test_builtins_present_and_substantial(udir: Path, tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path / "empty", user_dir=udir)
    assert set(BUILTINS) <= set(registry.names())
    assert registry.problems() == []
    for name in BUILTINS:
        agent = registry.get(name)
        assert agent.name == name and agent.source == "builtin"
        assert agent.path is not None and agent.path.name == f"{name}.md" and agent.path.is_file()
        assert len(agent.system) > 1000, name
        assert 250 <= len(agent.system.split()) <= 650, name
        assert re.search(r"^#{1,3} Output format\s*$", agent.system, re.MULTILINE), name
        assert not agent.system.startswith("---")  # front matter removed
        assert agent.description and len(agent.description) < 200
        assert agent.model is None and agent.cache is True
        assert agent.max_tokens is None and agent.temperature is None


def test_builtin_prompts_have_the_promised_sections(udir: Path, tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path / "empty", user_dir=udir)
    reviewer = registry.get("code-reviewer").system
    assert all(level in reviewer for level in ("CRITICAL", "HIGH", "MEDIUM", "LOW"))
    assert "**Summary:**" in reviewer and "**Where:**" in reviewer and "**Fix:**" in reviewer
    assert "pytest" in registry.get("python-expert").system
    assert "pandas" in registry.get("data-analyst").system and "Assumptions" in registry.get("data-analyst").system
    sql = registry.get("sql-expert").system
    assert "**Dialect**" in sql and "```sql" in sql and "CREATE INDEX" in sql
    assert "Audience" in registry.get("technical-writer").system


def test_include_builtin_false(reg) -> None:
    assert reg().names() == []
    assert len(reg()) == 0


# ---------------------------------------------------------------------------- parsing


def test_front_matter_fields_and_unknown_keys_ignored(reg, pagents: Path) -> None:
    path = write(
        pagents / "reviewer.md",
        "---\nname: strict-reviewer\ndescription: Reviews diffs\nmodel: opus\ncache: false\n"
        "max_tokens: 2048\ntemperature: 0.2\ntools: Read, Grep, Glob\ncolor: purple\n---\n\n"
        "  You review code.\n\nBe strict.  \n",
    )
    agent = reg().get("strict-reviewer")
    assert agent == AgentDefinition(
        name="strict-reviewer",
        system="You review code.\n\nBe strict.",
        description="Reviews diffs",
        model="claude-opus-4-6",
        source="project",
        path=path.resolve(),
        cache=False,
        max_tokens=2048,
        temperature=0.2,
        tools=("Read", "Grep", "Glob"),
    )
    assert reg().names() == ["strict-reviewer"]  # the stem 'reviewer' is not a name here


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sonnet", "claude-sonnet-4-6"),
        ("opus", "claude-opus-4-6"),
        ("haiku", "claude-haiku-4-5"),
        ("Haiku", "claude-haiku-4-5"),
        ("inherit", None),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
        ("null", None),
    ],
)
def test_model_shorthands(reg, pagents: Path, value: str, expected: str | None) -> None:
    write(pagents / "m.md", md(model=value))
    assert reg().get("m").model == expected


def test_file_without_front_matter_takes_name_from_stem(reg, pagents: Path) -> None:
    path = write(pagents / "plain_agent.v2.md", "\n# Role\nYou are plain.\n\n")
    agent = reg().get("plain_agent.v2")
    assert (agent.name, agent.system, agent.description, agent.model) == ("plain_agent.v2", "# Role\nYou are plain.", "", None)
    assert (agent.source, agent.path, agent.cache) == ("project", path.resolve(), True)


def test_crlf_and_bom_and_empty_front_matter(reg, pagents: Path) -> None:
    (pagents / "win.md").write_bytes(b"\xef\xbb\xbf---\r\nname: win\r\ndescription: d\r\n---\r\nLine one.\r\nLine two.\r\n")
    write(pagents / "empty-fm.md", "---\n---\nJust a body.")
    registry = reg()
    assert (registry.get("win").system, registry.get("win").description) == ("Line one.\nLine two.", "d")
    assert registry.get("empty-fm").system == "Just a body."


def test_fingerprint_is_sha256_of_system(reg, pagents: Path) -> None:
    write(pagents / "fp.md", md("Prompt A", name="fp"))
    agent = reg().get("fp")
    assert agent.fingerprint == hashlib.sha256(b"Prompt A").hexdigest()
    write(pagents / "fp.md", md("Prompt B", name="fp"))
    assert reg().get("fp").fingerprint == hashlib.sha256(b"Prompt B").hexdigest()


def test_hidden_files_and_other_extensions_are_not_agents(reg, pagents: Path) -> None:
    write(pagents / ".draft.md", "hidden")
    write(pagents / "notes.txt", "not markdown")
    write(pagents / "real.md", "real")
    assert reg().names() == ["real"]
    assert reg().problems() == []


# ---------------------------------------------------------------------------- claude.json


def test_claude_json_original_format(reg, proj: Path) -> None:
    claude = proj / ".claude"
    write(claude / "agents" / "code-reviewer.md", "# Role\nReview code like claude-force did.\n")
    write(claude / "prompts" / "planner.md", md("Plan the work.", model="haiku", description="Plans"))
    write(
        claude / "claude.json",
        json.dumps(
            {
                "version": "1.0",
                "name": "demo",
                "agents": {
                    "code-reviewer": {
                        "file": "agents/code-reviewer.md",
                        "contract": "contracts/code-reviewer.contract",
                        "domains": ["code-quality", "security"],
                        "priority": 1,
                    },
                    "planner": {"file": "prompts/planner.md", "domains": ["planning"]},
                    "architect": {"file": "prompts/planner.md", "description": "Designs systems"},
                },
                "workflows": {"bug-fix": ["code-reviewer"]},
            }
        ),
    )
    registry = reg()
    assert registry.names() == ["architect", "code-reviewer", "planner"]
    assert registry.problems() == []  # agents/code-reviewer.md is not loaded a second time
    reviewer = registry.get("code-reviewer")
    assert (reviewer.system, reviewer.description, reviewer.source) == (
        "# Role\nReview code like claude-force did.",
        "code-quality, security",
        "project",
    )
    assert reviewer.path == (claude / "agents" / "code-reviewer.md").resolve()
    planner = registry.get("planner")
    assert (planner.system, planner.model, planner.description) == ("Plan the work.", "claude-haiku-4-5", "Plans")
    assert registry.get("architect").description == "Designs systems"  # entry beats front matter


def test_claude_json_without_agents_key_is_fine(reg, proj: Path, pagents: Path) -> None:
    write(proj / ".claude" / "claude.json", '{"name": "x", "rules": {}}')
    write(pagents / "a.md", "A")
    assert (reg().names(), reg().problems()) == (["a"], [])


def test_claude_json_entry_wins_over_other_file_of_same_name(reg, proj: Path, pagents: Path) -> None:
    write(proj / ".claude" / "p" / "x.md", "from json")
    write(pagents / "x.md", "from agents dir")
    write(proj / ".claude" / "claude.json", json.dumps({"agents": {"x": {"file": "p/x.md"}}}))
    registry = reg()
    assert registry.get("x").system == "from json"
    [problem] = registry.problems()
    assert "x.md" in problem and "defines agent 'x' again" in problem


# ---------------------------------------------------------------------------- precedence


def test_precedence_project_over_user_over_builtin(tmp_path: Path, proj: Path, pagents: Path, udir: Path) -> None:
    write(udir / "assistant.md", md("user assistant", description="mine"))
    write(udir / "code-reviewer.md", "user reviewer")
    write(pagents / "code-reviewer.md", "project reviewer")
    write(udir / "only-user.md", "u")
    registry = AgentRegistry(proj, user_dir=udir)
    assert registry.get("code-reviewer").system == "project reviewer"
    assert registry.get("code-reviewer").source == "project"
    assert (registry.get("assistant").system, registry.get("assistant").source) == ("user assistant", "user")
    assert registry.get("only-user").source == "user"
    assert registry.get("sql-expert").source == "builtin"
    assert registry.names() == sorted({*BUILTINS, "only-user"})


def test_nearest_project_dir_wins(tmp_path: Path, udir: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    write(outer / ".claude" / "agents" / "shared.md", "outer shared")
    write(outer / ".claude" / "agents" / "outer-only.md", "outer only")
    write(inner / ".claude" / "agents" / "shared.md", "inner shared")
    write(outer / ".claude" / "claude.json", json.dumps({"agents": {"legacy": {"file": "agents/outer-only.md"}}}))
    cwd = inner / "src" / "pkg"
    cwd.mkdir(parents=True)
    registry = AgentRegistry(cwd, user_dir=udir, include_builtin=False)
    # outer-only.md is owned by its claude.json entry, so it is listed once, as "legacy"
    assert registry.names() == ["legacy", "shared"]
    assert registry.get("shared").system == "inner shared"
    assert registry.get("shared").path == (inner / ".claude" / "agents" / "shared.md").resolve()
    assert registry.get("legacy").system == "outer only"
    assert registry.problems() == []


def test_home_dot_claude_is_user_scope_not_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    write(home / ".claude" / "agents" / "mine.md", "my agent")
    write(home / ".claude" / "claude.json", "{not json")  # the home .claude is never a project
    cwd = home / "work" / "proj"
    write(cwd / ".claude" / "agents" / "local.md", "local")
    registry = AgentRegistry(cwd, include_builtin=False)
    assert registry.user_dir == home / ".claude" / "agents"
    assert registry.names() == ["local", "mine"]
    assert registry.get("mine").source == "user"
    assert registry.get("local").source == "project"
    assert registry.problems() == []


def test_parent_holding_the_user_dir_is_not_scanned_as_project(tmp_path: Path) -> None:
    udir = write(tmp_path / "u" / ".claude" / "agents" / "mine.md", "mine").parent
    registry = AgentRegistry(tmp_path / "u" / "proj", user_dir=udir, include_builtin=False)
    assert [(a.name, a.source) for a in registry] == [("mine", "user")]


def test_relative_cwd_is_pinned_at_construction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a" / ".claude" / "agents" / "alpha.md", "A")
    monkeypatch.chdir(tmp_path)
    registry = AgentRegistry("a", user_dir=tmp_path / "none", include_builtin=False)
    monkeypatch.chdir(tmp_path / "a" / ".claude")
    assert registry.cwd == tmp_path / "a" and registry.names() == ["alpha"]


def test_default_cwd_follows_the_process_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a" / ".claude" / "agents" / "alpha.md", "A")
    write(tmp_path / "b" / ".claude" / "agents" / "beta.md", "B")
    registry = AgentRegistry(user_dir=tmp_path / "none", include_builtin=False)
    monkeypatch.chdir(tmp_path / "a")
    assert registry.names() == ["alpha"]
    monkeypatch.chdir(tmp_path / "b")
    assert registry.names() == ["beta"]


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (md(name='"bad name!"'), "agent name 'bad name!' is not allowed"),
        (md(name="a" * 65), "is not allowed: use 1-64 letters"),
        (md(name="-dash"), "agent name '-dash' is not allowed"),
        (md(name="123"), "agent name 123 is not allowed: must be text"),
        (md(name="[oops"), "the front matter is not valid YAML"),
        (md(description="Use when: the user asks"), "put values containing ': '"),
        ("---\n- a\n- b\n---\nbody", "must be a YAML mapping"),
        ("---\nname: broken\ndescription: x\n\nYou are...", "opened with '---' on line 1 is never closed"),
        (md(model="4"), "'model' must be a string"),
        (md(model="[a, b]"), "'model' must be a string"),
        (md(model='"claude sonnet"'), "Malformed model id 'claude sonnet': use an id such as 'claude-sonnet-4-6'."),
        (md(cache='"no"'), "'cache' must be true or false"),
        (md(cache="1"), "'cache' must be true or false"),
        (md(max_tokens="0"), "max_tokens=0 is out of range: use a whole number from 1 to 128,000."),
        (md(max_tokens="-5"), "max_tokens=-5 is out of range"),
        (md(max_tokens="128001"), "max_tokens=128001 is out of range: use a whole number from 1 to 128,000."),
        (md(max_tokens="1.5"), "max_tokens=1.5 is not a whole number: use one from 1 to 128,000."),
        (md(max_tokens="true"), "max_tokens=True is not a whole number"),
        (md(temperature="1.5"), "temperature=1.5 is out of range: use a number from 0 to 1."),
        (md(temperature="-0.1"), "temperature=-0.1 is out of range"),
        (md(temperature="hot"), "temperature='hot' is not a number: use one from 0 to 1."),
        (md(temperature="true"), "temperature=True is not a number"),
        (md(temperature=".nan"), "temperature=nan is out of range"),
        (md(description="[a, b]"), "'description' must be text"),
        (md("   \n\n", description="no body"), "the system prompt is empty"),
        ("", "the system prompt is empty"),
    ],
)
def test_refused_definitions(reg, pagents: Path, content: str, fragment: str) -> None:
    write(pagents / "victim.md", content)
    write(pagents / "fine.md", "I am fine.")
    registry = reg()
    message = definition_error(registry, "victim")  # the stem is claimed even when the name is bad
    assert fragment in message
    assert str(pagents / "victim.md") in message
    assert registry.names() == ["fine"]
    assert "victim" not in registry
    assert registry.problems() == [message]
    assert registry.names() == ["fine"] == [d.name for d in registry]


def test_yaml_error_reports_the_file_line(reg, pagents: Path) -> None:
    write(pagents / "y.md", "\n---\nname: y\ndescription: a: b\n---\nbody")
    message = definition_error(reg(), "y")
    assert "not valid YAML (mapping values are not allowed here at line 4)" in message


def test_valid_edge_values_accepted(reg, pagents: Path) -> None:
    write(pagents / "edge.md", md(temperature="0", max_tokens="1", cache="true", model='""'))
    agent = reg().get("edge")
    assert (agent.temperature, agent.max_tokens, agent.cache, agent.model) == (0.0, 1, True, None)
    write(pagents / "top.md", md(temperature="1", name="a" * 64, max_tokens="128000"))
    assert (reg().get("a" * 64).temperature, reg().get("a" * 64).max_tokens) == (1.0, 128_000)


def test_file_whose_name_cannot_be_determined_only_appears_in_problems(reg, pagents: Path) -> None:
    write(pagents / "bad name!.md", "body")
    write(pagents / "ok.md", "ok")
    registry = reg()
    assert registry.names() == ["ok"]
    [problem] = registry.problems()
    assert "bad name!.md" in problem and "'bad name!' is not a valid agent name" in problem
    with pytest.raises(UnknownAgentError):
        registry.get("bad name!")


def test_oversized_file_refused_before_reading(reg, pagents: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(pagents / "huge.md", "x" * (MAX_DEFINITION_BYTES + 1))
    write(pagents / "limit.md", "y" * MAX_DEFINITION_BYTES)
    reads: list[Path] = []
    real_read = agent_files.read_text
    monkeypatch.setattr(agent_files, "read_text", lambda p, label: reads.append(p) or real_read(p, label))
    registry = reg()
    message = definition_error(registry, "huge")
    assert "huge.md" in message and "1,048,577 bytes" in message and "1 MiB" in message
    assert [p.name for p in reads] == ["limit.md"]  # huge.md is refused from its stat alone
    assert len(registry.get("limit").system) == MAX_DEFINITION_BYTES


def test_non_utf8_and_directories_refused(reg, pagents: Path) -> None:
    (pagents / "latin.md").write_bytes("café".encode("latin-1"))
    (pagents / "folder.md").mkdir()
    registry = reg()
    assert "latin.md" in definition_error(registry, "latin") and "not UTF-8" in definition_error(registry, "latin")
    assert "folder.md: is not a regular file" in definition_error(registry, "folder")


def test_symlink_escaping_the_agents_dir_refused(reg, tmp_path: Path, pagents: Path) -> None:
    outside = write(tmp_path / "elsewhere" / "secret.md", "---\nname: evil\n---\nstolen prompt")
    (pagents / "evil.md").symlink_to(outside)
    (pagents / "sneaky.md").symlink_to(Path("..") / ".." / ".." / "elsewhere" / "secret.md")
    write(pagents / "real.md", "real")
    (pagents / "alias.md").symlink_to("real.md")  # inside the directory: fine
    registry = reg()
    for name in ("evil", "sneaky"):
        message = definition_error(registry, name)
        assert f"{name}.md" in message and "outside" in message and str(outside.resolve()) in message
    assert registry.names() == ["alias", "real"]
    assert registry.get("alias").system == "real"


def test_symlinked_agents_directory_is_allowed(reg, tmp_path: Path, proj: Path, pagents: Path) -> None:
    shared = write(tmp_path / "dotfiles" / "agents" / "shared.md", "shared").parent
    pagents.rmdir()
    pagents.symlink_to(shared, target_is_directory=True)
    assert reg().get("shared").system == "shared"


def test_dangling_symlink_refused(reg, pagents: Path) -> None:
    (pagents / "gone.md").symlink_to("missing-target.md")
    message = definition_error(reg(), "gone")
    assert "gone.md" in message and "does not exist" in message


@pytest.mark.parametrize("file", ["../secret.md", "agents/../../secret.md", "ABS"])
def test_claude_json_file_outside_dot_claude_refused(reg, proj: Path, file: str) -> None:
    secret = write(proj / "secret.md", "not an agent")
    if file == "ABS":
        file = str(secret)
    write(proj / ".claude" / "claude.json", json.dumps({"agents": {"leak": {"file": file}}}))
    message = definition_error(reg(), "leak")
    assert "claude.json" in message and "secret.md" in message and "outside" in message
    assert reg().names() == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ('{"agents": {', "is not valid JSON (Expecting property name enclosed in double quotes at line 1"),
        ('["agents"]', "must be a JSON object"),
        ('{"agents": ["a", "b"]}', '"agents" must be an object mapping agent names'),
        ('{"agents": "agents/x.md"}', '"agents" must be an object mapping agent names'),
    ],
)
def test_malformed_claude_json_does_not_hide_other_agents(reg, proj: Path, pagents: Path, payload: str, fragment: str) -> None:
    write(proj / ".claude" / "claude.json", payload)
    write(pagents / "still-here.md", "ok")
    registry = reg()
    assert registry.names() == ["still-here"]
    [problem] = registry.problems()
    assert fragment in problem and str(proj / ".claude" / "claude.json") in problem


def test_claude_json_bad_entries(reg, proj: Path) -> None:
    claude = proj / ".claude"
    write(claude / "agents" / "good.md", "good")
    write(
        claude / "claude.json",
        json.dumps(
            {
                "agents": {
                    "good": {"file": "agents/good.md"},
                    "nofile": {"domains": ["x"]},
                    "notdict": "agents/good.md",
                    "missing": {"file": "agents/missing.md"},
                    "bad name": {"file": "agents/good.md"},
                    "baddomains": {"file": "agents/good.md", "domains": "x"},
                }
            }
        ),
    )
    registry = reg()
    assert registry.names() == ["good"]
    assert 'agent \'nofile\' has no "file": add "file": "agents/nofile.md"' in definition_error(registry, "nofile")
    assert "has no \"file\"" in definition_error(registry, "notdict")
    missing = definition_error(registry, "missing")
    assert "missing.md" in missing and "claude.json" in missing and "does not exist" in missing
    assert '"domains" must be a list of strings' in definition_error(registry, "baddomains")
    problems = registry.problems()
    assert len(problems) == 5
    assert any("agent name 'bad name' is not allowed" in p for p in problems)
    assert all(str(claude / "claude.json") in p for p in problems)


def test_broken_project_file_shadows_builtin_instead_of_silently_falling_back(proj: Path, pagents: Path, udir: Path) -> None:
    write(pagents / "code-reviewer.md", md(temperature="3"))
    registry = AgentRegistry(proj, user_dir=udir)
    message = definition_error(registry, "code-reviewer")
    assert "code-reviewer.md" in message and "temperature=3 is out of range" in message
    assert "code-reviewer" not in registry.names() and "code-reviewer" not in registry
    assert "python-expert" in registry


def test_duplicate_names_in_one_directory(reg, pagents: Path) -> None:
    write(pagents / "a.md", md("from a", name="x"))
    write(pagents / "x.md", "from x")
    registry = reg()
    assert registry.names() == ["x"] and registry.get("x").system == "from a"
    [problem] = registry.problems()
    assert problem.startswith(str(pagents / "x.md")) and "already defined by" in problem and "a.md" in problem


# ---------------------------------------------------------------------------- lookups


def test_unknown_agent_suggestions(udir: Path, tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path, user_dir=udir)
    with pytest.raises(UnknownAgentError) as info:
        registry.get("code-reviwer")
    assert info.value.suggestions == ["code-reviewer"]
    assert "Did you mean 'code-reviewer'?" in str(info.value)
    with pytest.raises(UnknownAgentError) as info:
        registry.get("zzzzzz")
    assert info.value.suggestions == []
    with pytest.raises(TypeError):
        registry.get(None)  # type: ignore[arg-type]


def test_contains_iter_len(reg, pagents: Path) -> None:
    write(pagents / "b.md", "B")
    write(pagents / "a.md", "A")
    registry = reg()
    assert [a.name for a in registry] == ["a", "b"] and len(registry) == 2
    assert "a" in registry and "c" not in registry and 3 not in registry
    assert repr(registry).endswith(": 2 agents, 0 problems>")


# ---------------------------------------------------------------------------- caching


def test_second_lookup_does_not_reparse_and_edits_are_picked_up(reg, pagents: Path, parse_counter: list[str]) -> None:
    path = write(pagents / "c.md", md("version one", name="c"))
    registry = reg()
    assert registry.get("c").system == "version one"
    assert registry.get("c").system == "version one"
    assert registry.names() == ["c"] and len(list(registry)) == 1
    assert parse_counter == [str(path)]

    write(path, md("version two, longer", name="c"))  # size changes
    assert registry.get("c").system == "version two, longer"
    assert len(parse_counter) == 2

    st = path.stat()
    write(path, md("version 3, longer!!", name="c"))  # same size: only mtime changes
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert registry.get("c").system == "version 3, longer!!"
    assert len(parse_counter) == 3

    write(pagents / "new.md", "new")  # new files appear without reload()
    assert registry.names() == ["c", "new"]
    assert len(parse_counter) == 4
    (pagents / "new.md").unlink()
    assert registry.names() == ["c"]

    registry.reload()
    registry.get("c")
    assert len(parse_counter) == 5


def test_broken_files_are_cached_too_and_fixes_are_picked_up(reg, pagents: Path, parse_counter: list[str]) -> None:
    path = write(pagents / "b.md", md(temperature="7"))
    registry = reg()
    for _ in range(3):
        definition_error(registry, "b")
    assert registry.problems() and len(parse_counter) == 1
    write(path, md(temperature="0.7"))
    assert registry.get("b").temperature == 0.7
    assert registry.problems() == [] and len(parse_counter) == 2


def test_claude_json_cached_and_reloaded_on_edit(reg, proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claude = proj / ".claude"
    write(claude / "agents" / "one.md", "one")
    write(claude / "agents" / "two.md", "two")
    calls: list[Path] = []
    real = agent_files.parse_claude_json
    monkeypatch.setattr(agent_files, "parse_claude_json", lambda p, label: calls.append(p) or real(p, label))
    cfg = write(claude / "claude.json", json.dumps({"agents": {"first": {"file": "agents/one.md"}}}))
    registry = reg()
    assert registry.names() == ["first", "two"]
    assert registry.names() == ["first", "two"] and len(calls) == 1
    write(cfg, json.dumps({"agents": {"first": {"file": "agents/one.md"}, "second": {"file": "agents/two.md"}}}))
    assert registry.names() == ["first", "second"] and len(calls) == 2


def test_problems_logged_once_per_file_version(reg, pagents: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(pagents / "noisy.md", "---\nname: noisy\n")
    caplog.set_level(logging.WARNING, logger="claude_force_nb.core.agents")
    registry = reg()
    registry.names()
    registry.names()
    reg().names()  # another registry: same file version, no new warning
    warnings = [r for r in caplog.records if r.name == "claude_force_nb.core.agents"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "noisy.md" in warnings[0].getMessage() and "never closed" in warnings[0].getMessage()
    write(path, "---\nname: noisy\ndescription: still broken\n")
    registry.names()
    assert len([r for r in caplog.records if r.name == "claude_force_nb.core.agents"]) == 2


@pytest.mark.parametrize("module", [agents_mod, agent_files])
def test_modules_have_no_heavy_top_level_imports(module) -> None:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top.add(node.module.split(".")[0])
    assert not top & {"pandas", "IPython", "ipywidgets"}
