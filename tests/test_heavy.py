"""Heavy mode: plan -> N concurrent parts -> synthesis, on the workflow engine, against FakeAnthropicServer."""

from __future__ import annotations

import pytest

from claude_force_nb.core.errors import InvalidInputError
from claude_force_nb.core.workflow_results import NodeEvent
from claude_force_nb.engine.heavy import HEAVY_SCHEMA, heavy_workflow
from claude_force_nb.testing import Fault


def test_a_heavy_run_is_one_plan_four_concurrent_parts_and_one_synthesis(orch, server) -> None:
    server.latency_s = 0.2  # the four parts are seen in flight together
    events: list[NodeEvent] = []
    result = orch.run_heavy_sync("Why did churn rise in Q3?", n=4, on_event=events.append)

    assert server.request_count == 1 + 4 + 1
    assert server.max_in_flight == 4
    assert result.ok and result.states == dict.fromkeys(["plan", "part1", "part2", "part3", "part4", "answer"],
                                                        "done")
    bodies = [r.body for r in server.requests if r.body]
    assert bodies[0]["output_config"]["format"]["type"] == "json_schema"  # the plan is structured output
    assert result.questions == result.nodes["plan"].data["questions"] and result.questions
    assert set(result.answers) == {"part1", "part2", "part3", "part4"}
    synthesis = bodies[-1]["messages"][-1]["content"]
    for i in range(1, 5):
        assert f"## Part [{i}]\n{result.answers[f'part{i}']}" in synthesis
    assert "cite the part(s) it comes from as [1]..[4]" in synthesis
    assert result.text == result.nodes["answer"].text
    assert [e.state for e in events if e.node == "answer"] == ["pending", "running", "done"]

    again = orch.run_heavy_sync("Why did churn rise in Q3?", n=4)
    assert server.request_count == 6 and set(again.states.values()) == {"cached"}
    assert again.text == result.text and again.cost_usd == 0


def test_a_failed_part_skips_only_the_synthesis_and_a_rerun_pays_for_the_rest(orch, server) -> None:
    server.script(Fault(), Fault(status=400, message="bad request"))  # the plan passes, one part fails
    first = orch.run_heavy_sync("How do tides work?", n=2)
    states = first.states
    assert states["plan"] == "done" and sorted([states["part1"], states["part2"]]) == ["done", "failed"]
    assert first.events["answer"].label.startswith("skipped (needs part")
    server.reset_metrics()

    second = orch.run_heavy_sync("How do tides work?", n=2)
    assert second.ok and server.request_count == 2  # the failed part and the synthesis only


def test_the_synthesis_agent_and_model_can_differ(orch, server) -> None:
    result = orch.run_heavy_sync("Compare SQL and pandas.", n=2, agent="data-analyst", synth_agent="technical-writer",
                                 model="claude-haiku-4-5")
    assert [result.nodes[n].agent for n in ("plan", "part1", "answer")] == [
        "data-analyst", "data-analyst", "technical-writer"]
    assert {r.body["model"] for r in server.requests if r.body} == {"claude-haiku-4-5"}


@pytest.mark.parametrize("n", [1, 17, 2.5, True])
def test_n_outside_2_to_16_is_refused_in_one_line(orch, server, n: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        orch.run_heavy_sync("q", n=n)
    assert str(info.value) == f"n={n!r} is out of range: heavy mode asks 2 to 16 agents, e.g. n=4."
    assert server.request_count == 0


def test_the_generated_workflow_has_the_heavy_shape() -> None:
    wf = heavy_workflow(3, tools=("describe",))
    assert wf.names == ["plan", "part1", "part2", "part3", "answer"]
    assert wf.inputs["answer"] == ("part1", "part2", "part3") and wf.inputs["part2"] == ("plan",)
    assert wf["plan"].schema == HEAVY_SCHEMA and wf["part1"].tools == ("describe",) and wf["answer"].tools == ()
