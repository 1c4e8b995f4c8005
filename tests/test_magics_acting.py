"""%%agent's acting flags (--tools, --schema, --thread, -c, --max-steps), %agent threads and
%%compare --schema, in an in-process IPython shell against FakeAnthropicServer."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from claude_force_nb.core.tools import tool

from .test_magics import cell, ip, last_output, magics_of  # noqa: F401  (ip is a fixture)


@pytest.fixture
def sales_ns(ip):  # noqa: F811
    import pandas as pd

    def top_region(metric: str) -> str:
        """The region with the highest total of a metric.

        Args:
            metric: A column of the sales table.
        """
        return "north"

    ip.user_ns.update(sales=pd.DataFrame({"region": ["north", "south"], "amount": [10.0, 4.0]}),
                      top_region=tool(top_region), not_a_function=42)
    yield ip.user_ns
    for name in ("sales", "top_region", "not_a_function", "r", "Review", "cmp"):
        ip.user_ns.pop(name, None)


@pytest.mark.parametrize("line,match", [
    ("agent assistant --tools nope", r"^Unknown tool 'nope'\. .*Available tools: .*top_region.*'notebook'"),
    ("agent assistant --tools not_a_function", r"^Cannot make a tool of 42 \(int\): pass a function defined with def"),
    ("agent assistant --tools ,", r"^--tools ',' names no tool: give comma-separated names"),
    ("agent assistant --schema 'title, score floaty'", r"^Invalid schema string 'title, score floaty': unknown type 'floaty'"),
    ("agent assistant --thread 'bad name!'", r"^'bad name!' cannot name a thread"),
    ("agent assistant --thread t1 -c", r"^Give either --thread NAME or -c/--continue, not both\.$"),
    ("compare -a assistant --schema 'a,,b'", r"^Invalid schema string 'a,,b': an empty field"),
])
def test_acting_flag_mistakes_are_one_line_and_nothing_is_sent(sales_ns, ip, server, line, match):  # noqa: F811
    with pytest.raises(UsageError, match=match):
        cell(ip, line, "task")
    assert server.request_count == 0


def test_continue_without_a_thread_in_this_notebook_is_one_line(sales_ns, ip, server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/never-used.ipynb")
    with pytest.raises(UsageError, match=r"^-c/--continue: this notebook has no thread yet; start one with --thread NAME\.$"):
        cell(ip, "agent assistant -c", "go on")
    assert server.request_count == 0


def test_tool_calls_show_in_the_cell_then_the_answer_and_the_badge(sales_ns, ip, server):  # noqa: F811
    server.script_tools(("describe", {"name": "sales"}), ("top_region", {"metric": "amount"}))
    _, cap = cell(ip, "agent assistant --tools notebook,top_region -o r", "Which region sells most in {sales}?")
    result = ip.user_ns["r"]
    assert result.ok and [(s.tool, s.arguments) for s in result.steps] == [
        ("describe", {"name": "sales"}), ("top_region", {"metric": "amount"})]
    md = last_output(cap).data["text/markdown"]
    assert "→ describe(name='sales') · " in md and "→ top_region(metric='amount') · " in md
    assert md.index("→ describe") < md.index("→ top_region") < md.index(result.text[:20])
    assert "2 tool calls" in md
    sent = server.requests[-1].body
    assert [t["name"] for t in sent["tools"]] == ["list_variables", "describe", "top_region"]
    results = [b for m in sent["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])
               if b.get("type") == "tool_result"]
    assert [r.get("is_error", False) for r in results] == [False, False]
    assert "2 rows × 2 columns" in str(results[0]["content"]) and "north" in str(results[1]["content"])


def test_a_step_line_appears_before_the_answer_arrives(sales_ns, ip, server):  # noqa: F811
    server.script_tools(("top_region", {"metric": "amount"}))
    _, cap = cell(ip, "agent assistant --tools top_region", "Which region?")
    shown = [o.data["text/markdown"] for o in cap.outputs]
    first_with_step = next(i for i, md in enumerate(shown) if "→ top_region(metric='amount')" in md)
    assert first_with_step < len(shown) - 1  # an update before the final one already had the step


def test_schema_from_a_variable_and_from_a_field_list(sales_ns, ip, server):  # noqa: F811
    from pydantic import BaseModel

    class Review(BaseModel):
        verdict: str
        score: float

    ip.user_ns["Review"] = Review
    cell(ip, "agent assistant --schema Review -o r", "Rate this.")
    assert isinstance(ip.user_ns["r"].data, Review)
    cell(ip, "agent assistant --schema 'title, votes int' -o r", "Rate this.")
    data = ip.user_ns["r"].data
    assert set(data) == {"title", "votes"} and isinstance(data["votes"], int)


def test_max_steps_stops_the_loop_with_a_clear_result(sales_ns, ip, server):  # noqa: F811
    for _ in range(3):
        server.script_tools(("top_region", {"metric": "amount"}))
    cell(ip, "agent assistant --tools top_region --max-steps 2 -o r", "Loop.")
    result = ip.user_ns["r"]
    assert result.error_type == "max_steps" and len(result.steps) >= 1


def test_threads_continue_list_show_and_reset(sales_ns, ip, server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/analysis.ipynb")
    cell(ip, "agent assistant --thread t1", "First question.")
    cell(ip, "agent assistant -c", "And a follow-up.")
    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] in ("First question.", [{"type": "text", "text": "First question."}]) or \
        "First question." in str(sent[0]["content"])
    threads = ip.run_line_magic("agent", "threads")
    assert list(threads.index) == ["t1"] and threads.loc["t1", "turns"] == 2
    turns = ip.run_line_magic("agent", "thread show t1")
    assert list(turns["user"]) == ["First question.", "And a follow-up."]
    ip.run_line_magic("agent", "thread reset t1")
    assert ip.run_line_magic("agent", "threads").loc["t1", "turns"] == 0


@pytest.mark.parametrize("line,match", [
    ("thread show nope", r"nope"),
    ("thread reset nope", r"nope"),
    ("thread show", r"^Usage: %agent thread show\|reset NAME \(got 'show'\)"),
    ("thread drop t1", r"^Usage: %agent thread show\|reset NAME"),
    ("threads now", r"^%agent threads takes no arguments"),
])
def test_thread_subcommand_mistakes_are_one_line(ip, server, line, match):  # noqa: F811
    with pytest.raises(UsageError, match=match):
        ip.run_line_magic("agent", line)


def test_compare_with_a_schema_has_one_typed_column_per_field(sales_ns, ip, server):  # noqa: F811
    frame, _ = cell(ip, "compare -a assistant,python-expert --schema 'label, score float, votes int, ok bool' -o cmp",
                    "Rate it.")
    assert list(frame.columns[:7]) == ["agent", "model", "text", "label", "score", "votes", "ok"]
    assert [str(frame[c].dtype) for c in ("label", "score", "votes", "ok")] == ["string", "Float64", "Int64", "boolean"]


def test_a_dataframe_in_a_cell_is_sent_as_a_summary_within_table_chars(sales_ns, ip, server):  # noqa: F811
    import numpy as np
    import pandas as pd

    ip.user_ns["big"] = pd.DataFrame({"x": np.arange(1_000_000), "label": ["some text"] * 1_000_000})
    try:
        cell(ip, "agent assistant", "Look:\n{big}")
        sent = server.requests[-1].body["messages"][0]["content"]
        assert sent.startswith("Look:\nDataFrame big, 1,000,000 rows × 2 columns") and len(sent) <= 6 + 2_000
        ip.run_line_magic("config", "AgentMagics.table_chars = 300")
        cell(ip, "agent assistant", "{big}")
        assert len(server.requests[-1].body["messages"][0]["content"]) <= 300
        cell(ip, "agent assistant", "{sales!full}")
        assert server.requests[-1].body["messages"][0]["content"] == ",region,amount\n0,north,10.0\n1,south,4.0\n"
    finally:
        ip.user_ns.pop("big", None)


def test_an_agent_file_can_ask_for_notebook_tools(sales_ns, ip, server, tmp_path, monkeypatch):  # noqa: F811
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "analyst.md").write_text("---\nname: analyst\ntools: describe, top_region\n---\nYou analyse data.\n")
    monkeypatch.chdir(tmp_path)
    magics_of(ip).orchestrator.registry.__init__(tmp_path, user_dir=tmp_path / "user-agents")
    server.script_tools(("describe", {"name": "sales"}))
    cell(ip, "agent analyst -o r", "What is in sales?")
    result = ip.user_ns["r"]
    assert result.ok and [s.tool for s in result.steps] == ["describe"]
    assert [t["name"] for t in server.requests[0].body["tools"]] == ["list_variables", "describe", "top_region"]
