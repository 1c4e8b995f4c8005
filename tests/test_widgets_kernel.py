"""AgentConsole in a real kernel, driven through comm messages exactly as a frontend does.

The cell that shows the console opens one comm per widget (``comm_open`` on iopub, with
the widget's state). A frontend then sends ``comm_msg`` on the shell channel: an
``update`` when the user types, a ``custom`` ``{"event": "click"}`` when a button is
pressed. What the background run changes comes back as ``comm_msg`` state updates.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

import pytest

from .kernels import Kernel

pytestmark = pytest.mark.kernel


class Frontend:
    """The widget side of a notebook frontend, reduced to what the tests need."""

    def __init__(self, kernel: Kernel, opened: list[dict[str, Any]]) -> None:
        self.kernel = kernel
        self.models = {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in opened}

    def find(self, model_name: str, **state: Any) -> str:
        """The comm id of the one widget of this model whose state has these values."""
        (comm_id,) = [cid for cid, s in self.models.items()
                      if s["_model_name"] == model_name and all(s.get(k) == v for k, v in state.items())]
        return comm_id

    def send(self, comm_id: str, data: dict[str, Any], timeout: float = 20) -> None:
        """Send a comm_msg on the shell channel and wait until the kernel has handled it."""
        kc = self.kernel.kc
        msg = kc.session.send(kc.shell_channel.socket, "comm_msg", {"comm_id": comm_id, "data": data})
        msg_id = msg["header"]["msg_id"]
        self.wait(lambda m: m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                  and m["content"]["execution_state"] == "idle", timeout)

    def set_value(self, comm_id: str, value: Any) -> None:
        self.send(comm_id, {"method": "update", "state": {"value": value}, "buffer_paths": []})

    def click(self, comm_id: str) -> None:
        self.send(comm_id, {"method": "custom", "content": {"event": "click"}})

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        """The first message matching ``predicate``: among those already read (kernel.stray,
        where waiting for an earlier message may have put it), else read from iopub."""
        for msg in self.kernel.stray:
            if predicate(msg):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.kernel.kc.get_iopub_msg(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no matching iopub message arrived") from None
            self.kernel.stray.append(msg)
            if predicate(msg):
                return msg

    def updates(self, comm_id: str, key: str) -> list[Any]:
        """Every value of ``key`` the kernel sent for this widget so far, in order."""
        return [m["content"]["data"]["state"][key] for m in self.kernel.stray
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
                and m["content"]["data"].get("method") == "update" and key in m["content"]["data"]["state"]]


def is_update(comm_id: str, key: str, test: Callable[[Any], bool]) -> Callable[[dict[str, Any]], bool]:
    def check(m: dict[str, Any]) -> bool:
        if m["msg_type"] != "comm_msg" or m["content"]["comm_id"] != comm_id:
            return False
        state = m["content"]["data"].get("state", {})
        return key in state and test(state[key])

    return check


def show_console(kernel: Kernel) -> Frontend:
    reply = kernel.run("c = %agent console\nc")
    assert reply.ok
    (shown,) = reply.of_type("execute_result")
    assert "application/vnd.jupyter.widget-view+json" in shown["content"]["data"]
    return Frontend(kernel, reply.of_type("comm_open"))


def markdown_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)


def test_console_runs_from_comm_messages_and_streams_into_its_output(kernel, server):
    server.chunk_delay_s = 0.05
    ui = show_console(kernel)
    task, run, answer = ui.find("TextareaModel"), ui.find("ButtonModel", description="Run"), ui.find("OutputModel")
    question = "What does a p-value measure?\nAnswer in one paragraph."
    ui.set_value(task, question)
    ui.click(run)
    final = ui.wait(is_update(answer, "outputs", lambda outs: "assistant · claude-sonnet-4-6" in markdown_of(outs)))
    (request,) = server.requests
    assert request.body["messages"] == [{"role": "user", "content": question}]
    streamed = [markdown_of(o) for o in ui.updates(answer, "outputs")]
    assert sum(md.endswith(" ▌") for md in streamed) >= 2  # partial answers arrived before the final one
    (output,) = final["content"]["data"]["state"]["outputs"]
    assert output["metadata"]["claude_force_nb"]["usage"]["output_tokens"] > 0
    ui.wait(is_update(run, "disabled", lambda disabled: disabled is False))  # enabled again once done
    assert ui.updates(run, "disabled") == [True, False]  # disabled while running
    check = kernel.run("print(len(c.results), c.last_result.ok, repr(c.task.value))")
    assert check.stdout == f"1 True {question!r}\n"


def test_cancel_button_stops_the_request_in_flight(kernel, server):
    ui = show_console(kernel)
    cancel = ui.find("ButtonModel", description="Cancel")
    ui.set_value(ui.find("TextareaModel"), "Take your time [[fake:sleep=30]]")
    ui.click(ui.find("ButtonModel", description="Run"))
    assert server.wait_for(lambda s: s.in_flight == 1, timeout=20)
    t0 = time.monotonic()
    assert kernel.run("print(c.running)").stdout == "True\n"  # the kernel is free while the run waits
    assert time.monotonic() - t0 < 2.0
    ui.click(cancel)
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=5)
    answer = ui.find("OutputModel")
    ui.wait(is_update(answer, "outputs", lambda outs: "Cancelled" in markdown_of(outs)), timeout=5)
    ui.wait(is_update(cancel, "disabled", lambda disabled: disabled is True), timeout=5)
    assert ui.updates(cancel, "disabled") == [False, True]
    assert kernel.run("print(c.running, c.results, c.future.cancelled())").stdout == "False [] True\n"
    assert server.request_count == 1
