"""agent_files: one definition file or claude.json read and checked, without a registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claude_force_nb.core.agent_files import (
    MAX_DEFINITION_BYTES,
    DefinitionProblem,
    JsonAgent,
    check_file,
    parse_claude_json,
    parse_definition,
    read_text,
    realpath,
    suggest_name,
)
from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.errors import AgentDefinitionError, UnknownAgentError


def parse(text: str, stem: str = "stem", **kwargs: object) -> dict[str, object]:
    return dict(parse_definition(text, label="LABEL", stem=stem, **kwargs))  # type: ignore[arg-type]


def problem(text: str, stem: str = "stem", **kwargs: object) -> DefinitionProblem:
    with pytest.raises(DefinitionProblem) as info:
        parse(text, stem, **kwargs)
    return info.value


def test_front_matter_gives_every_field_and_aliases_resolve() -> None:
    text = "---\nname: rev\ndescription: ' Reviews '\nmodel: Haiku\ncache: false\nmax_tokens: 2048\n" \
           "temperature: 0\ntools: Read\n---\n\n  Be strict.  \n"
    assert parse(text) == {"name": "rev", "system": "Be strict.", "description": "Reviews",
                           "model": "claude-haiku-4-5", "cache": False, "max_tokens": 2048, "temperature": 0.0,
                           "tools": ("Read",)}


def test_no_front_matter_takes_the_stem_and_absent_keys_stay_absent() -> None:
    assert parse("Just a prompt.\n", stem="plain") == {"name": "plain", "system": "Just a prompt.", "description": ""}
    assert parse("---\nmodel: inherit\n---\nx")["model"] is None
    assert parse("\r\n---\r\nname: crlf\r\n---\r\nbody\r\n")["name"] == "crlf"


def test_claude_json_values_override_the_front_matter() -> None:
    text = "---\nname: ignored\ndescription: own\n---\nbody"
    assert parse(text, name="entry", description="given")["name"] == "entry"
    assert parse(text, name="entry", description="given")["description"] == "given"
    assert parse(text, name="entry")["description"] == "own"
    assert parse("body", name="entry", fallback_description="sql, data")["description"] == "sql, data"


def test_a_problem_claims_the_name_the_file_meant() -> None:
    assert problem("---\nname: meant\ntemperature: 9\n---\nx").agent_name == "meant"
    assert problem("---\nname: meant\n").agent_name == "stem"  # never closed: the stem is all we know
    assert problem("---\nname: '-bad'\n---\nx").agent_name == "stem"
    unnamed = problem("body", stem="bad name!")
    assert unnamed.agent_name is None and "LABEL: 'bad name!' is not a valid agent name" in str(unnamed)
    assert isinstance(unnamed, AgentDefinitionError)


def test_check_file_versions_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "agents"
    root.mkdir()
    path = root / "a.md"
    path.write_text("one")
    real, version = check_file(path, realpath(root), "L")
    assert real == realpath(path) and version[-1] == 3
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert check_file(path, realpath(root), "L")[1] != version  # an edit of the same size is seen

    outside = tmp_path / "outside.md"
    outside.write_text("x")
    (root / "link.md").symlink_to(outside)
    with pytest.raises(DefinitionProblem, match=r"L: resolves to .*outside.md, outside .*agents"):
        check_file(root / "link.md", realpath(root), "L")
    with pytest.raises(DefinitionProblem, match="L: does not exist"):
        check_file(root / "gone.md", realpath(root), "L")
    (root / "dir.md").mkdir()
    with pytest.raises(DefinitionProblem, match="L: is not a regular file"):
        check_file(root / "dir.md", realpath(root), "L")
    (root / "big.md").write_bytes(b"x" * (MAX_DEFINITION_BYTES + 1))
    with pytest.raises(DefinitionProblem, match=r"L: is 1,048,577 bytes, over the 1,048,576-byte \(1 MiB\) limit"):
        check_file(root / "big.md", realpath(root), "L")


def test_read_text_drops_a_bom_and_refuses_other_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.md"
    bom.write_bytes("\ufeffcafé".encode())
    assert read_text(bom, "L") == "café"
    latin = tmp_path / "latin.md"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(DefinitionProblem, match=r"L: is not UTF-8 text \(byte 3\): save it as UTF-8"):
        read_text(latin, "L")


def test_claude_json_entries_and_their_problems(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    path.write_text(json.dumps({"agents": {
        "ok": {"file": "agents/ok.md", "description": " Reviews ", "domains": ["a", "b"], "priority": 1},
        "bad name": {"file": "agents/x.md"},
        "nofile": {},
        "baddesc": {"file": "f.md", "description": 3},
        "baddomains": {"file": "f.md", "domains": "sql"},
    }}))
    assert parse_claude_json(path, "L") == [
        JsonAgent("ok", "agents/ok.md", "Reviews", "a, b"),
        JsonAgent(None, error="L: agent name 'bad name' is not allowed: use 1-64 letters, digits, '.', '_' "
                              "or '-', starting with a letter or digit, e.g. 'bad-name'."),
        JsonAgent("nofile", error='L: agent \'nofile\' has no "file": add "file": "agents/nofile.md" '
                                  "(relative to the .claude directory)."),
        JsonAgent("baddesc", error="L: agent 'baddesc': \"description\" must be a string."),
        JsonAgent("baddomains", error="L: agent 'baddomains': \"domains\" must be a list of strings."),
    ]
    path.write_text("{}")
    assert parse_claude_json(path, "L") == []
    path.write_text('{"agents": [1]}')
    with pytest.raises(DefinitionProblem, match='L: "agents" must be an object .* not a list'):
        parse_claude_json(path, "L")
    path.write_text('{"agents": ')
    with pytest.raises(DefinitionProblem, match="L: is not valid JSON .* at line 1 column 12"):
        parse_claude_json(path, "L")


@pytest.mark.parametrize("text,name", [
    ("ünï", "uni"), ("my agent", "my-agent"), ("-dash-", "dash"), ("Crème brûlée!", "Creme-brulee"),
    ("数据", "my-agent"), ("x" * 80, "x" * 64), ("ok.name_1", "ok.name_1"),
])
def test_the_suggested_name_passes_the_rule(text, name):
    assert suggest_name(text) == name


def test_a_rejected_name_is_never_the_suggested_fix(tmp_path: Path):
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "ünï.md").write_text("You are unicode.\n", encoding="utf-8")
    registry = AgentRegistry(tmp_path, user_dir=tmp_path / "none", include_builtin=False)
    [problem_line] = registry.problems()
    assert problem_line.endswith("'ünï' is not a valid agent name: use 1-64 letters, digits, '.', '_' or '-', starting "
                                 "with a letter or digit (rename the file to uni.md, or set 'name: uni' in its front matter).")
    with pytest.raises(UnknownAgentError) as unknown:
        registry.get("ünï")
    assert "add one as .claude/agents/uni.md ('ünï' cannot name an agent" in str(unknown.value)
    assert "ünï.md" not in str(unknown.value)
    front = problem("---\nname: ünï\n---\nbody")
    assert str(front).endswith("agent name 'ünï' is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting "
                               "with a letter or digit, e.g. 'uni'.")


def test_a_symlink_loop_is_named_as_one(tmp_path: Path):
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "loop.md").symlink_to("loop.md")
    (agents / "a.md").symlink_to("b.md")
    (agents / "b.md").symlink_to("a.md")
    registry = AgentRegistry(tmp_path, user_dir=tmp_path / "none", include_builtin=False)
    for name in ("loop", "a", "b"):
        with pytest.raises(AgentDefinitionError) as info:
            registry.get(name)
        assert str(info.value) == (f"{agents / (name + '.md')}: is a symlink loop (following it never reaches a file): "
                                   f"point the link at a real file or remove it.")
    assert all("check its permissions" not in p for p in registry.problems())
