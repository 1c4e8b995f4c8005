"""Workflow: the text form, dicts, claude.json chains, and every check's exact one-line message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.errors import AgentDefinitionError, InvalidInputError, WorkflowError
from claude_force_nb.core.workflow import Node, Workflow, node_names

CHURN = """\
task: Why did churn rise in Q3? Data: {summary}
plan     = data-analyst: Plan an analysis of: {task}
stats    = python-expert [model=claude-haiku-4-5, max_tokens=2000]: Write the pandas code for: {plan}
risks    = code-reviewer: What could mislead us in: {plan}
report   = technical-writer: Write the findings from {stats} and {risks}
"""


def test_the_text_form_gives_nodes_edges_options_and_the_final_node() -> None:
    wf = Workflow.parse(CHURN)
    assert wf.names == ["plan", "stats", "risks", "report"]
    assert wf.task == "Why did churn rise in Q3? Data: {summary}"
    assert wf.inputs == {"plan": (), "stats": ("plan",), "risks": ("plan",), "report": ("stats", "risks")}
    assert wf.final == "report"
    assert wf["stats"] == Node("stats", "python-expert", "Write the pandas code for: {plan}",
                               model="claude-haiku-4-5", max_tokens=2000, line=3)
    assert wf.warnings == ()
    assert wf.order() == ["plan", "stats", "risks", "report"]


def test_only_node_names_and_task_are_references() -> None:
    wf = Workflow.parse("a = x: {task} uses {df} and {'k': 1}\nb = y: from {a}, keep {other}")
    assert wf.inputs == {"a": (), "b": ("a",)}
    assert wf.render("b", "T", {"a": "A!"}) == "from A!, keep {other}"
    assert wf.render("a", "T", {}) == "T uses {df} and {'k': 1}"


def test_a_prompt_continues_on_indented_lines_and_options_may_be_quoted() -> None:
    wf = Workflow.parse(
        "# the plan\n"
        "a = x [tools=describe lookup, temperature=0.5, schema=\"title, score float\"]: First {task}\n"
        "    second line\n"
        "\n"
        "      indented more\n"
        "b = y: {a}\n"
    )
    node = wf["a"]
    assert node.prompt == "First {task}\nsecond line\n\n  indented more"
    assert (node.tools, node.temperature, node.schema) == (("describe", "lookup"), 0.5, "title, score float")


def test_node_names_lists_what_the_notebook_must_not_fill_in() -> None:
    assert node_names(CHURN) == {"task", "plan", "stats", "risks", "report"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = x: {b}\nb = y: {a} {task}",
         "The workflow has a cycle: a -> b -> a (each uses the next one's answer): remove one of these references."),
        ("a = x: {a} {task}",
         "The workflow has a cycle: a -> a (each uses the next one's answer): remove one of these references."),
        ("a = x: {task}\nb = y: {a}\na = z: {b}",
         "Line 3 (node 'a'): node 'a' is defined twice (line 1): rename one of them."),
        ("a = x: {task}\nb = y: {task}",
         "The workflow has 2 final nodes (a, b): nothing uses their answers. Use them in one last node's prompt, "
         "or name the answer with `final: b`."),
        ("plan = x: {task}\nreport = y: {plna}",
         "Line 2 (node 'report'): {plna} is no node: did you mean {plan}? Nodes: plan, report."),
        ("a = x [mdl=1]: {task}",
         "Line 1 (node 'a'): unknown option 'mdl': use model, max_tokens, temperature, tools, schema."),
        ("a = x [max_tokens=lots]: {task}",
         "Line 1 (node 'a'): max_tokens='lots' is not a whole number: use one from 1 to 128,000."),
        ("a = x [model]: {task}",
         "Line 1 (node 'a'): cannot read options [model]: write [key=value, ...], "
         "e.g. [model=claude-haiku-4-5, max_tokens=2000]."),
        ("what is this",
         "Line 1: cannot read 'what is this': write `name = agent: prompt` or `task: ...`, "
         "and indent a prompt's further lines."),
        ("  a = x: {task}",
         "Line 1: an indented line before any node: write `name = agent: prompt` or `task: ...`, "
         "and indent a prompt's further lines."),
        ("a = x:   ", "Line 1 (node 'a'): the prompt is empty: write what the agent should do after ':'."),
        ("task = x: hello", "Line 1 (node 'task'): 'task' cannot name a node: use letters, digits, '_' or '-' "
                            "(starting with a letter), and not 'task'."),
        ("a = x: {task}\nfinal: b", "final: 'b' is no node: use one of a."),
        ("task: only a task", "The workflow has no nodes: add lines such as `plan = data-analyst: Plan {task}`."),
    ],
)
def test_a_bad_workflow_is_refused_in_one_line_naming_the_fix(text: str, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        Workflow.parse(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def test_unused_and_unreachable_nodes_are_warnings() -> None:
    with pytest.warns(UserWarning) as caught:
        wf = Workflow.parse("a = x: {task}\nside = y: {a}\nlonely = z: hello\nend = w: {a} {lonely}\nfinal: end")
    assert wf.final == "end"
    assert wf.warnings == (
        "Node 'side' is not used by any node and is not the final one: its answer is not in the result's text "
        "(use it in a prompt, or remove it).",
        "Node 'lonely' uses neither {task} nor another node's answer: it does not see the question.",
    )
    assert [str(w.message) for w in caught] == list(wf.warnings)


def test_from_dict_builds_the_same_workflow_as_the_text() -> None:
    wf = Workflow.from_dict({
        "task": "Why did churn rise in Q3? Data: {summary}",
        "nodes": {
            "plan": {"agent": "data-analyst", "prompt": "Plan an analysis of: {task}"},
            "stats": {"agent": "python-expert", "prompt": "Write the pandas code for: {plan}",
                      "model": "claude-haiku-4-5", "max_tokens": 2000},
            "risks": {"agent": "code-reviewer", "prompt": "What could mislead us in: {plan}"},
            "report": {"agent": "technical-writer", "prompt": "Write the findings from {stats} and {risks}"},
        },
    })
    text = Workflow.parse(CHURN)
    assert [(n.name, n.agent, n.prompt, n.model, n.max_tokens) for n in wf.nodes] == [
        (n.name, n.agent, n.prompt, n.model, n.max_tokens) for n in text.nodes]
    assert (wf.inputs, wf.final) == (text.inputs, text.final)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nodes": {"a": {"agent": "x"}}},
         'Node 1: needs text values for name, agent and prompt, e.g. {"agent": "code-reviewer", '
         '"prompt": "Review {task}"}.'),
        ({"nodes": {"a": {"agent": "x", "prompt": "{task}", "colour": "red"}}},
         "Node 'a': unknown option 'colour': use model, max_tokens, temperature, tools, schema."),
        ({"steps": []}, 'A workflow dict needs {"nodes": {name: {"agent": ..., "prompt": ...}}} and may have '
                        '"task", "final" and "name"; nothing else.'),
    ],
)
def test_a_bad_dict_is_refused_in_one_line(data: dict, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        Workflow.from_dict(data)
    assert str(info.value) == message


def test_a_chain_passes_each_answer_to_the_next_agent() -> None:
    wf = Workflow.chain("review", ["python-expert", "code-reviewer", "python-expert"])
    assert wf.names == ["python-expert", "code-reviewer", "python-expert-2"]
    assert wf.final == "python-expert-2"
    assert wf.inputs["python-expert-2"] == ("code-reviewer",)
    assert wf.render("code-reviewer", "Fix it", {"python-expert": "ANSWER"}) == (
        "Fix it\n\nThe previous step (python-expert) answered:\n\nANSWER")
    with pytest.raises(WorkflowError, match="lists no agents"):
        Workflow.chain("empty", [])


def test_claude_json_workflows_are_read_from_the_nearest_project(tmp_path: Path) -> None:
    claude = tmp_path / "project" / ".claude"
    claude.mkdir(parents=True)
    (claude / "claude.json").write_text(json.dumps({
        "agents": {}, "workflows": {"analysis": ["data-analyst", "technical-writer"]}}))
    registry = AgentRegistry(tmp_path / "project" / "sub", user_dir=tmp_path / "none")
    (tmp_path / "project" / "sub").mkdir()
    assert registry.workflows() == {"analysis": ["data-analyst", "technical-writer"]}
    wf = Workflow.chain("analysis", registry.workflows()["analysis"])
    assert [n.agent for n in wf.nodes] == ["data-analyst", "technical-writer"]
    (claude / "claude.json").write_text(json.dumps({"workflows": {"bad": "data-analyst"}}))
    with pytest.raises(AgentDefinitionError) as info:
        registry.workflows()
    assert str(info.value).endswith('"workflows" must map names to lists of agent names, e.g. '
                                    '{"analysis": ["data-analyst", "technical-writer"]}.')


def test_no_claude_json_means_no_workflows(tmp_path: Path) -> None:
    assert AgentRegistry(tmp_path, user_dir=tmp_path / "none").workflows() == {}
