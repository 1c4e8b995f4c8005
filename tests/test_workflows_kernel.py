"""%%workflow and %%heavy in real ipykernel processes, against FakeAnthropicServer over HTTP:
a failing branch, a resumed re-run, an interrupt mid-branch, a heavy run."""

from __future__ import annotations

import time

import pytest

from claude_force_nb.core.settings import Settings
from claude_force_nb.store.ledger import Ledger

pytestmark = pytest.mark.kernel

# Five nodes; after plan, two branches run at once: stats -> chart, and risks.
DAG = """%%workflow -o wf
task: Why did churn rise in Q3?
plan   = data-analyst: Plan an analysis of: {task}
stats  = python-expert: Write the pandas code for: {plan}
chart  = python-expert: Plot the result of: {stats}
risks  = code-reviewer: What could mislead us in: {plan} RISKS_DIRECTIVE
report = technical-writer: Write the findings from {chart} and {risks}"""


def dag(directive: str = "") -> str:
    return DAG.replace("RISKS_DIRECTIVE", directive)


def tables(reply) -> list[str]:
    """Every version of the status table the cell showed, in order."""
    return [m["content"]["data"]["text/html"] for m in reply.of_type("display_data", "update_display_data")
            if "text/html" in m["content"]["data"]]


def states(kernel) -> dict[str, str]:
    out = kernel.run("print(dict(wf.states))").stdout
    return eval(out)  # a dict literal printed by the kernel


def prompts(server) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.requests]


def test_a_failed_branch_skips_its_dependents_while_the_other_branch_finishes(kernel, server):
    server.latency_s = 0.3  # long enough for the two branches to overlap on the server
    reply = kernel.run(dag("[[fake:error=400]]"))
    assert reply.ok
    assert states(kernel) == {"plan": "done", "stats": "done", "chart": "done", "risks": "failed",
                              "report": "skipped"}
    assert server.request_count == 4 and server.max_in_flight == 2  # stats and risks at once
    shown = tables(reply)
    assert len(shown) >= 5  # the table was redrawn as nodes changed state
    assert ">running<" in "".join(shown[:-1]) and ">skipped (needs risks)<" in shown[-1]
    assert "The final node did not run" in "".join(reply.markdown())


def test_rerun_after_the_fix_sends_only_the_failed_branch(kernel, server):
    assert kernel.run(dag("[[fake:error=400]]")).ok
    assert server.request_count == 4
    reply = kernel.run(dag())  # the failing node edited: it and its dependent run, the rest is cached
    assert reply.ok
    assert states(kernel) == {"plan": "cached", "stats": "cached", "chart": "cached", "risks": "done",
                              "report": "done"}
    assert server.request_count == 6
    assert prompts(server)[4].startswith("What could mislead us in: **Offline answer**")
    assert prompts(server)[5].startswith("Write the findings from **Offline answer**")
    assert "workflow · 3 cached · 2 done · $" in reply.markdown()[-1]


def test_interrupt_cancels_the_running_branch_and_finished_nodes_stay_cached(kernel, server):
    msg_id = kernel.execute(dag("[[fake:sleep=30]]"))
    with Ledger(Settings.from_env()) as ledger:  # plan, stats and chart answered and recorded; risks waits
        assert server.wait_for(lambda s: s.request_count == 4 and s.in_flight == 1 and len(ledger) == 3, timeout=20)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=20)
    assert reply.content["ename"] == "KeyboardInterrupt" and time.monotonic() - t0 < 2.0
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=5)
    final = tables(reply)[-1]
    assert ">cancelled<" in final and "Interrupted: every running node was cancelled" in final
    assert kernel.run(dag()).ok  # the re-run sends only risks and report
    assert server.request_count == 6
    assert states(kernel)["stats"] == "cached" and states(kernel)["report"] == "done"


def test_heavy_run_with_four_perspectives(kernel, server):
    server.latency_s = 0.3
    reply = kernel.run("%%heavy -n 4 -o h\nShould we move our nightly ETL from pandas to DuckDB?")
    assert reply.ok
    assert server.request_count == 6 and server.max_in_flight == 4  # plan, 4 answers at once, synthesis
    assert kernel.run("print(h.ok, len(h.nodes))").stdout == "True 6\n"
    final = tables(reply)[-1]
    assert final.count(">done<") == 6
