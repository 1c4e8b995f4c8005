"""Agents that act, in real ipykernel processes: tool calls shown as they happen, an
interrupt mid-loop, threads across a restart, a re-run cell replacing its turn, and a
schema's fields as typed columns. The model's tool calls are scripted on the offline server."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.kernel

SETUP = """
import pandas as pd
from claude_force_nb import tool

sales = pd.DataFrame({"region": ["north", "south", "east"], "amount": [120.0, 80.5, 42.0]})

@tool
def top_region(metric: str) -> str:
    '''The region with the highest total of a metric.

    Args:
        metric: A column of the sales table.
    '''
    return str(sales.groupby("region")[metric].sum().idxmax())
"""


def execute_in_cell(kernel, code: str, cell_id: str) -> str:
    """Send ``code`` as a front end does for a notebook cell: with its ``cellId`` in the metadata."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    msg = kernel.kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kernel.kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def final_update(reply):
    return [m for m in reply.of_type("update_display_data") if "claude_force_nb" in m["content"]["metadata"]][-1]


def test_a_tool_using_agent_over_a_dataframe_shows_each_call_in_the_cell(kernel, server):
    assert kernel.run(SETUP).ok
    server.script_tools(("describe", {"name": "sales"}), ("top_region", {"metric": "amount"}))
    reply = kernel.run("%%agent assistant --tools notebook,top_region -o r\nWhich region sells most? {sales}")
    assert reply.ok
    shown = reply.markdown()
    final = final_update(reply)["content"]["data"]["text/markdown"]
    assert "→ describe(name='sales') · " in final and "→ top_region(metric='amount') · " in final
    assert any("→ describe(name='sales')" in md for md in shown[:-1])  # shown before the answer was done
    assert "2 tool calls" in final
    out = kernel.run("print([(s.tool, s.ok) for s in r.steps], r.ok)").stdout
    assert out == "[('describe', True), ('top_region', True)] True\n"
    results = [b for m in server.requests[-1].body["messages"] if isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"]
    assert "3 rows × 2 columns" in str(results[0]["content"]) and "north" in str(results[1]["content"])
    sent_task = server.requests[0].body["messages"][0]["content"]
    assert "DataFrame sales, 3 rows × 2 columns" in str(sent_task) and "| 0 | north | 120.0 |" in str(sent_task)


def test_an_interrupt_mid_loop_stops_it_and_keeps_the_kernel(kernel, server, tmp_path):
    marker = tmp_path / "slow-started"
    assert kernel.run(SETUP + f"""
import threading, pathlib
release = threading.Event()

@tool
def slow_lookup(key: str) -> str:
    '''A lookup that takes its time.'''
    pathlib.Path({str(marker)!r}).touch()
    release.wait(30)
    return "late"
""").ok
    server.script_tools(("slow_lookup", {"key": "x"}))
    msg_id = kernel.execute("%%agent assistant --tools slow_lookup\nLook it up.")
    deadline = time.monotonic() + 20
    while not marker.exists():  # the tool is running inside the loop
        assert time.monotonic() < deadline, "the tool never started"
        kernel.drain(0.05)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=20)
    assert reply.content["ename"] == "KeyboardInterrupt" and time.monotonic() - t0 < 2.0
    assert any("Interrupted" in md for md in reply.markdown())
    assert server.request_count == 1  # the loop never sent the tool's result
    assert kernel.run("release.set()").ok
    after = kernel.run("%%agent assistant -o r\nStill there?\n")
    assert after.ok and kernel.run("print(r.ok)").stdout == "True\n"


def test_a_thread_survives_a_kernel_restart(kernel, server):
    assert kernel.run("%%agent assistant --thread plan\nWe are planning a survey of 200 farms.").ok
    kernel.restart()
    assert kernel.run("%load_ext claude_force_nb").ok
    assert kernel.run("%%agent assistant --thread plan\nHow many regions should we sample?").ok
    messages = server.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "200 farms" in str(messages[0]["content"])
    frame = kernel.run("t = %agent threads\nprint(t.loc['plan', 'turns'])")
    assert frame.stdout == "2\n"


def test_a_rerun_cell_replaces_its_turn(kernel, server):
    first = kernel.collect(execute_in_cell(kernel, "%%agent assistant --thread notes\nFirst draft.", "cell-a"))
    second = kernel.collect(execute_in_cell(kernel, "%%agent assistant --thread notes\nSecond point.", "cell-b"))
    assert first.ok and second.ok
    again = kernel.collect(execute_in_cell(kernel, "%%agent assistant --thread notes\nFirst draft, revised.", "cell-a"))
    assert again.ok
    assert len(server.requests[-1].body["messages"]) == 1  # nothing came before cell-a's turn
    shown = kernel.run("t = %agent thread show notes\nprint(list(t['user']), list(t['cell_id']))").stdout
    assert shown == "['First draft, revised.', 'Second point.'] ['cell-a', 'cell-b']\n"


def test_a_schema_result_becomes_typed_columns(kernel, server):
    reply = kernel.run("%%compare -a assistant,python-expert --schema 'label, score float, votes int' -o cmp\n"
                       "Rate the survey design.")
    assert reply.ok
    dtypes = kernel.run("print({c: str(cmp[c].dtype) for c in ('label', 'score', 'votes')})").stdout
    assert dtypes == "{'label': 'string', 'score': 'Float64', 'votes': 'Int64'}\n"
    data = kernel.run("%%agent assistant --schema 'label, score float' -o r\nRate it.\n")
    assert data.ok and kernel.run("print(sorted(r.data), type(r.data['score']).__name__)").stdout == \
        "['label', 'score'] float\n"
