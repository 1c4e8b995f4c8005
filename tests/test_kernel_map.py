"""``%%agent NAME --over DF`` in a real ipykernel against FakeAnthropicServer over HTTP: the
widget progress bar to 200/200, an interrupt halfway returning the partial frame, and a
re-run that the server sees only for the unfinished rows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.mapping import INTERRUPTED
from claude_force_nb.store.ledger import Ledger
from claude_force_nb.testing import Fault

from .kernels import Kernel, Reply

pytestmark = pytest.mark.kernel

ROWS = 200
MAKE_FRAME = f"import pandas as pd\nreviews = pd.DataFrame({{'review': [f'review {{i}}' for i in range({ROWS})]}})"
MAP_CELL = "%%agent assistant --over reviews --into label -o labelled\nClassify as positive or negative: {review}"


def widget_states(kernel: Kernel, reply: Reply) -> dict[str, dict[str, Any]]:
    """Every widget's state as a frontend would hold it: comm_open's state, then each update."""
    states: dict[str, dict[str, Any]] = {}
    for m in reply.messages + kernel.stray:  # updates from the runner thread may land in either
        content = m["content"]
        if m["msg_type"] == "comm_open":
            states[content["comm_id"]] = dict(content["data"]["state"])
    for m in reply.messages + kernel.stray:
        content = m["content"]
        if m["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
            states.setdefault(content["comm_id"], {}).update(content["data"]["state"])
    return states


def of_model(states: dict[str, dict[str, Any]], model: str) -> list[dict[str, Any]]:
    return [s for s in states.values() if s.get("_model_name") == model]


def summary(kernel: Kernel) -> dict[str, Any]:
    """What the kernel's ``labelled`` frame holds: rows, unfinished rows, answered rows."""
    code = ("import json\nprint(json.dumps({'rows': len(labelled), "
            f"'unfinished': int((labelled.error == {INTERRUPTED!r}).sum()), "
            "'answered': int(labelled.label.notna().sum()), 'cached': int(labelled.cached.sum()), "
            "'done': labelled.attrs['claude_force']['done']}))")
    reply = kernel.run(code)
    assert reply.ok, reply.content
    return json.loads(reply.stdout)


def test_over_shows_the_estimate_and_a_widget_bar_that_ends_at_every_row(kernel, server):
    assert kernel.run(MAKE_FRAME).ok
    reply = kernel.run(MAP_CELL)
    assert reply.ok, reply.content
    assert server.request_count == ROWS
    states = widget_states(kernel, reply)
    (bar,) = of_model(states, "FloatProgressModel")
    assert bar["value"] == ROWS and bar["max"] == ROWS and bar["bar_style"] == "success"
    texts = [s["value"] for s in of_model(states, "HTMLModel")]
    (estimate,) = [t for t in texts if t.startswith("Estimate:")]
    assert f"{ROWS} rows: 0 cached, {ROWS} to send to claude-sonnet-4-6" in estimate
    (counts,) = [t.replace("\u2007", " ") for t in texts if f"{ROWS}/{ROWS}" in t]
    assert "cached 0, failed 0, $" in counts
    (result,) = reply.of_type("execute_result")  # the frame is the cell's value
    assert "label" in result["content"]["data"]["text/html"]
    assert summary(kernel) == {"rows": ROWS, "unfinished": 0, "answered": ROWS, "cached": 0, "done": ROWS}


def test_interrupt_returns_the_partial_frame_and_a_rerun_sends_only_the_unfinished_rows(kernel, server):
    assert kernel.run(MAKE_FRAME).ok
    half = ROWS // 2
    server.script(*[Fault()] * half, *[Fault(latency_s=30)] * half)  # the second half hangs
    msg_id = kernel.execute(MAP_CELL)
    # every quick answer is recorded in the kernel's ledger (and cache) and slow rows fill the slots
    with Ledger(Settings.from_env()) as ledger:
        assert server.wait_for(lambda s: len(ledger) == half and s.in_flight == s.request_count - half >= 4,
                               timeout=30)
    kernel.km.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=20)
    assert reply.ok, reply.content  # the partial frame is the cell's value, not a traceback
    first = summary(kernel)
    assert first["rows"] == ROWS and first["done"] == half and first["unfinished"] == half
    assert first["answered"] == first["done"]
    assert f"Interrupted after {first['done']} of {ROWS} rows: run the cell again to resume" in reply.stdout
    states = widget_states(kernel, reply)
    (bar,) = of_model(states, "FloatProgressModel")
    assert bar["value"] == first["done"] and bar["bar_style"] == "danger"  # stopped early: red

    server.clear_script()
    sent_before = server.request_count
    again = kernel.run(MAP_CELL)
    assert again.ok, again.content
    # only the unfinished rows go again (a request cut while being sent may reach the server late:
    # at most one per concurrent call, default 8)
    assert first["unfinished"] <= server.request_count - sent_before <= first["unfinished"] + 8
    second = summary(kernel)
    assert second == {"rows": ROWS, "unfinished": 0, "answered": ROWS, "cached": first["done"], "done": ROWS}


def test_a_bad_template_and_a_missing_frame_are_one_line_each_and_send_nothing(kernel, server):
    assert kernel.run(MAKE_FRAME).ok
    reply = kernel.run("%%agent assistant --over reviews\nClassify: {reveiw}")
    assert reply.content["ename"] == "UsageError"
    assert "{reveiw}, which is not a column of the DataFrame (review): did you mean {review}?" in \
        reply.content["evalue"]
    reply = kernel.run("%%agent assistant --over nothing_here\nClassify: {review}")
    assert reply.content["evalue"].startswith("--over nothing_here: there is no notebook variable 'nothing_here'")
    assert server.request_count == 0


def test_a_batch_run_interrupted_and_rerun_after_a_kernel_restart_is_submitted_once(kernel, server):
    rows = 20
    make = f"import pandas as pd\nreviews = pd.DataFrame({{'review': [f'review {{i}}' for i in range({rows})]}})"
    cell = "%%agent assistant --over reviews --into label -o labelled --batch\nClassify: {review}"
    assert kernel.run(make).ok
    server.batch_delay_s = 86_400  # the batch stays in progress until the test says otherwise
    msg_id = kernel.execute(cell)
    assert server.wait_for(lambda s: len(s.batches.submitted) == 1, timeout=30)
    kernel.km.interrupt_kernel()  # stops the wait, never the batch
    reply = kernel.collect(msg_id, timeout=20)
    assert reply.ok, reply.content
    assert f"Interrupted after 0 of {rows} rows" in reply.stdout
    (batch_id,) = [line.split()[1] for line in reply.stdout.splitlines() if line.startswith("Batch ")]
    assert f"`%agent batch resume {batch_id}`" in reply.stdout
    listed = kernel.run("print(len(_ := get_ipython().run_line_magic('agent', 'batches')), _.state.iloc[0])")
    assert listed.stdout.split() == ["1", "in_progress"]

    kernel.restart()
    assert kernel.run("%load_ext claude_force_nb").ok and kernel.run(make).ok
    server.batch_delay_s = 0  # the batch has ended by the next look
    again = kernel.run(cell)
    assert again.ok, again.content
    assert [len(ids) for ids in server.batches.submitted] == [rows]  # found again, not submitted twice
    assert server.request_count == 0  # no row went through the Messages API either
    done = kernel.run("print(int(labelled.label.notna().sum()), int(labelled.error.isna().sum()))")
    assert done.stdout.split() == [str(rows), str(rows)]
    with Ledger(Settings.from_env()) as ledger:
        assert sum(1 for row in ledger.rows() if row["batch"]) == rows
