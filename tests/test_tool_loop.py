"""The tool loop through the Orchestrator: the real SDK over real HTTP against FakeAnthropicServer."""

from __future__ import annotations

import threading
import time

import pytest

from claude_force_nb.core.errors import BudgetExceededError, UnknownToolError
from claude_force_nb.core.tools import ToolStep, tool
from claude_force_nb.engine import runner
from claude_force_nb.testing import Fault

HAIKU = "claude-haiku-4-5"
TOKENS = [
    {"input_tokens": 100, "output_tokens": 20},
    {"input_tokens": 150, "output_tokens": 30},
    {"input_tokens": 210, "output_tokens": 40},
]


def message_bodies(server):
    return [r.body for r in server.requests if r.path.endswith("/v1/messages")]


class Lookup:
    """A tool that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

        def lookup(key: str) -> str:
            """Look a key up.

            Args:
                key: The key to look up.
            """
            self.calls.append(key)
            return f"value-{key}"

        self.tool = tool(lookup)


def script_three_steps(server) -> None:
    server.script(Fault(tool_calls=[("lookup", {"key": "a"})], usage=TOKENS[0]),
                  Fault(tool_calls=[("lookup", {"key": "b"})], usage=TOKENS[1]),
                  Fault(usage=TOKENS[2]))


def test_a_three_step_loop_sums_its_steps_and_ledgers_each_under_one_run_id(orch, server):
    lookup = Lookup()
    script_three_steps(server)
    seen: list[ToolStep] = []
    res = orch.run_sync("assistant", "find a then b", model=HAIKU, tools=[lookup.tool], on_step=seen.append)

    assert res.ok and res.stop_reason == "end_turn"
    assert '`lookup` returned: "value-b"' in res.text
    assert lookup.calls == ["a", "b"]
    assert [(s.tool, s.arguments, s.result_preview, s.error) for s in res.steps] == [
        ("lookup", {"key": "a"}, "value-a", None), ("lookup", {"key": "b"}, "value-b", None)]
    assert list(res.steps) == seen
    assert (res.usage.input_tokens, res.usage.output_tokens) == (460, 90)
    # haiku-4-5: $1 in / $5 out per MTok
    assert res.cost_usd == pytest.approx((460 * 1 + 90 * 5) / 1e6, abs=1e-12)
    assert "2 tool calls" in res.footer()

    rows = orch.ledger.rows()
    assert [(r["input_tokens"], r["output_tokens"], r["ok"], r["run_id"]) for r in rows] == [
        (100, 20, 1, res.run_id), (150, 30, 1, res.run_id), (210, 40, 1, res.run_id)]
    assert res.run_id and sum(r["cost_usd"] for r in rows) == pytest.approx(res.cost_usd)

    bodies = message_bodies(server)
    assert len(bodies) == 3 and bodies[0]["tools"][0]["name"] == "lookup"
    assistant, results = bodies[2]["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["content"][0]["name"] == "lookup"
    assert results["content"] == [{"type": "tool_result", "tool_use_id": assistant["content"][0]["id"],
                                   "content": "value-b"}]


def test_a_tool_that_raises_goes_back_as_an_error_and_the_model_answers(orch, server):
    def explode(n: int) -> int:
        """Always fails."""
        raise ValueError(f"cannot use {n}")

    server.script_tools(("explode", {"n": 3}))
    res = orch.run_sync("assistant", "try explode", tools=[explode])
    assert res.ok and '`explode` failed: "ValueError: cannot use 3"' in res.text
    assert [(s.tool, s.error) for s in res.steps] == [("explode", "ValueError: cannot use 3")]
    last = message_bodies(server)[1]["messages"][-1]["content"][0]
    assert last["is_error"] is True and last["content"] == "ValueError: cannot use 3"


def test_arguments_that_fail_validation_go_back_and_the_function_is_not_called(orch, server):
    called: list[int] = []

    def count(n: int) -> int:
        """Count to n."""
        called.append(n)
        return n

    server.script_tools(("count", {"n": "many"}))
    res = orch.run_sync("assistant", "count", tools=[count])
    assert res.ok and called == []
    (step,) = res.steps
    assert step.error.startswith("Invalid arguments for count: n: ")
    assert message_bodies(server)[1]["messages"][-1]["content"][0]["is_error"] is True


def test_max_steps_stops_the_loop_with_a_clear_error(orch, server):
    lookup = Lookup()
    for key in "abc":
        server.script_tools(("lookup", {"key": key}))
    res = orch.run_sync("assistant", "loop forever", tools=[lookup.tool], max_steps=2)
    assert not res.ok and res.error_type == "max_steps"
    assert res.error.startswith("stopped: max_steps (2) reached before the agent finished")
    assert lookup.calls == ["a"] and len(res.steps) == 1  # the second turn's call is not run
    assert len(message_bodies(server)) == 2
    assert [r["ok"] for r in orch.ledger.rows()] == [1, 1]


def test_the_default_max_steps_is_a_setting(make_orch, server):
    orch = make_orch(max_steps=1)
    server.script_tools(("lookup", {"key": "a"}))
    res = orch.run_sync("assistant", "once", tools=[Lookup().tool])
    assert res.error_type == "max_steps" and "max_steps (1)" in res.error and res.steps == ()


def test_a_cached_rerun_replays_free_while_the_tools_still_run(orch, server):
    lookup = Lookup()
    script_three_steps(server)
    first = orch.run_sync("assistant", "find a then b", model=HAIKU, tools=[lookup.tool])
    sent = server.request_count
    again = orch.run_sync("assistant", "find a then b", model=HAIKU, tools=[lookup.tool])

    assert server.request_count == sent  # every step came from the cache
    assert lookup.calls == ["a", "b", "a", "b"]  # the tools ran again
    assert again.ok and again.cached and again.text == first.text and again.cost_usd == 0
    assert again.saved_usd == pytest.approx(first.cost_usd)
    assert [s.result_preview for s in again.steps] == ["value-a", "value-b"]
    rows = orch.ledger.rows()
    assert [r["cached"] for r in rows] == [0, 0, 0, 1, 1, 1]
    assert {r["run_id"] for r in rows[3:]} == {again.run_id} != {first.run_id}


def test_new_tool_results_make_the_next_step_a_new_request(orch, server):
    state = {"value": "old"}

    def read_value() -> str:
        """The current value."""
        return state["value"]

    server.script_tools(("read_value", {}))
    orch.run_sync("assistant", "read it", tools=[read_value])
    state["value"] = "new"
    res = orch.run_sync("assistant", "read it", tools=[read_value])
    assert len(message_bodies(server)) == 3  # step 1 from the cache, step 2 sent again
    assert '"new"' in res.text and not res.cached


def test_the_budget_is_checked_before_every_step(make_orch, server):
    orch = make_orch(budget_usd=0.0125)  # one step may cost up to ~$0.0112; the first costs $0.007
    server.script(Fault(tool_calls=[("lookup", {"key": "a"})], usage={"input_tokens": 2000, "output_tokens": 1000}))
    res = orch.run_sync("assistant", "spend", model=HAIKU, tools=[Lookup().tool], max_tokens=1000)
    assert not res.ok and res.error_type == "budget_exceeded" and len(res.steps) == 1
    assert len(message_bodies(server)) == 1
    with pytest.raises(BudgetExceededError):
        orch.run_sync("assistant", "spend more", model=HAIKU, max_tokens=1000, use_cache=False)


def test_cancel_mid_loop_stops_within_a_second_and_leaves_the_orchestrator_usable(orch, server):
    entered, release = threading.Event(), threading.Event()

    def wait_for_data(table: str) -> str:
        """Blocks until released."""
        entered.set()
        release.wait(30)
        return table

    server.script_tools(("wait_for_data", {"table": "sales"}))
    future = runner.submit(orch.run("assistant", "wait", tools=[wait_for_data]))
    try:
        assert entered.wait(10)
        started = time.perf_counter()
        future.cancel()
        assert server.wait_for(lambda s: future.done(), timeout=5)
        assert time.perf_counter() - started < 1.0
    finally:
        release.set()
    assert len(message_bodies(server)) == 1 and len(orch.ledger.rows()) == 1
    assert orch.run_sync("assistant", "still works").ok


def test_async_tools_and_several_calls_in_one_turn_come_back_in_order(orch, server):
    async def square(x: int) -> int:
        """x squared."""
        return x * x

    server.script_tools(("square", {"x": 3}), ("square", {"x": 4}))
    res = orch.run_sync("assistant", "squares", tools=[square])
    assert [s.result_preview for s in res.steps] == ["9", "16"]
    assert [b["content"] for b in message_bodies(server)[1]["messages"][-1]["content"]] == ["9", "16"]


def test_agent_file_tools_offer_read_only_files_and_name_the_rest_once(make_orch, server, tmp_path):
    agents = tmp_path / "project" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "reader.md").write_text("---\ntools: Read, Bash, Write\n---\nYou read files.\n")
    (tmp_path / "project" / "notes.txt").write_text("hello from notes\n")
    orch = make_orch()
    server.script_tools(("Read", {"file_path": "notes.txt"}))
    with pytest.warns(UserWarning, match=r"^Agent 'reader' lists tools that cannot run here and are left out: "
                                         r"Bash, Write\."):
        res = orch.run_sync("reader", "read notes")
    assert res.ok and "hello from notes" in res.text
    assert [t["name"] for t in message_bodies(server)[0]["tools"]] == ["Read"]
    orch.run_sync("reader", "again", use_cache=False)  # no second warning (warnings are errors in tests)


def test_an_agent_file_naming_an_unknown_tool_is_refused_in_one_line(make_orch, server, tmp_path):
    agents = tmp_path / "project" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "analyst.md").write_text("---\ntools: Read, describe\n---\nYou analyse.\n")
    orch = make_orch()
    with pytest.raises(UnknownToolError, match="describe"):
        orch.run_sync("analyst", "go")

    def describe(name: str) -> str:
        """Describe a frame."""
        return name

    assert orch.run_sync("analyst", "go", tools=[describe]).ok
    assert [t["name"] for t in message_bodies(server)[0]["tools"]] == ["describe", "Read"]
