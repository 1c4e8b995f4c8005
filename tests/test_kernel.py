"""The magics in real ipykernel processes, against FakeAnthropicServer over HTTP."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.kernel


def test_answer_streams_into_the_cell(kernel, server):
    server.chunk_delay_s = 0.05
    reply = kernel.run("%%agent assistant -m claude-haiku-4-5\nExplain a p-value in two sentences.")
    assert reply.ok
    shown = reply.of_type("display_data")
    updates = reply.of_type("update_display_data")
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    partial = [u for u in updates if u["content"]["data"]["text/markdown"].endswith(" ▌")]
    assert len(partial) >= 2  # the answer arrived in pieces
    final = updates[-1]["content"]
    assert "assistant · claude-haiku-4-5" in final["data"]["text/markdown"]
    assert final["metadata"]["claude_force_nb"]["usage"]["output_tokens"] > 0


def test_run_all_completes_every_cell(kernel, server):
    cells = [f"%%agent assistant\nQuestion number {i}" for i in range(5)] + ["print('done')"]
    ids = [kernel.execute(c) for c in cells]  # queued at once, like Run All
    replies = [kernel.collect(i, timeout=60) for i in ids]
    assert [r.ok for r in replies] == [True] * 6
    assert replies[-1].stdout == "done\n" and server.request_count == 5


def test_interrupt_cancels_the_request_and_keeps_the_kernel(kernel, server):
    msg_id = kernel.execute("%%agent assistant\nTake your time [[fake:sleep=30]]")
    assert server.wait_for(lambda s: s.in_flight == 1, timeout=20)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=20)
    assert reply.content["ename"] == "KeyboardInterrupt" and time.monotonic() - t0 < 2.0
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=5)
    assert any("Interrupted" in md for md in reply.markdown())
    after = kernel.run("%%agent assistant -o r\nStill there?\n")
    assert after.ok and kernel.run("print(r.ok)").stdout == "True\n"


def test_restart_then_rerun_is_served_from_the_signed_cache(kernel, server):
    cell = "%%agent code-reviewer -o r\ndef f(x): return x/0\n"
    assert kernel.run(cell).ok
    pid_code = "import os; print(os.getpid())"
    before = kernel.run(pid_code).stdout
    kernel.restart()
    assert kernel.run(pid_code).stdout != before
    assert kernel.run("%load_ext claude_force_nb").ok
    reply = kernel.run(cell)
    assert kernel.run("print(r.cached, r.cost_usd, r.saved_usd > 0)").stdout == "True 0.0 True\n"
    assert server.request_count == 1
    assert "cached (saved $" in reply.markdown()[-1]


def test_background_run_fills_its_own_cell(kernel, server):
    first = kernel.execute("%%agent assistant --bg -o bg\nBackground please [[fake:sleep=2]]")
    reply = kernel.collect(first)
    assert reply.ok
    display_id = reply.of_type("display_data")[0]["content"]["transient"]["display_id"]
    assert server.wait_for(lambda s: s.in_flight == 1, timeout=20)
    # Another cell runs while the answer lands: it starts before the result exists and ends
    # when the result is there (bg is set after the final display update is sent).
    other = kernel.run("import time\nprint('other cell', 'bg' in globals())\n"
                       "while 'bg' not in globals():\n    time.sleep(0.01)\n")
    assert other.stdout == "other cell False\n"

    def finals():
        return [m for m in kernel.stray if m["msg_type"] == "update_display_data"
                and m["content"]["transient"]["display_id"] == display_id
                and "claude_force_nb" in m["content"]["metadata"]]

    while not finals():
        kernel.stray.append(kernel.kc.get_iopub_msg(timeout=10))
    kernel.drain(0.2)  # nothing more for this display may follow: one final update, not two
    assert len(finals()) == 1 and "Background please" in finals()[0]["content"]["data"]["text/markdown"]
    assert not any("Background please" in md for md in other.markdown())  # nothing leaked into the other cell
    assert kernel.run("print(bg.ok)").stdout == "True\n"


def test_bg_run_is_cancelled_by_agent_cancel(kernel, server):
    assert kernel.run("%%agent assistant --bg\nForever [[fake:sleep=30]]").ok
    assert server.wait_for(lambda s: s.in_flight == 1, timeout=20)
    assert kernel.run("%agent cancel").stdout == "Cancelled 1 background run.\n"
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=5)


def test_user_errors_show_one_line_without_traceback(kernel, server):
    reply = kernel.run("%%agent code-reviwer\nx")
    assert reply.content["ename"] == "UsageError"
    text = "".join(m["content"].get("text", "") for m in reply.of_type("stream"))
    errors = [m["content"] for m in reply.of_type("error")]
    shown = text + "".join("".join(e["traceback"]) for e in errors)
    assert "Did you mean 'code-reviewer'" in shown and "Traceback" not in shown


def _shown(reply) -> str:
    """Everything a cell printed: streams and error tracebacks."""
    text = "".join(m["content"].get("text", "") for m in reply.of_type("stream"))
    return text + "".join("".join(m["content"]["traceback"]) for m in reply.of_type("error"))


def test_config_shows_a_refused_setting_as_one_line_and_cells_still_run(kernel, server):
    reply = kernel.run("%config AgentMagics.max_concurrent = 0")
    lines = _shown(reply).splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "AgentMagics.max_concurrent=0 is out of range: use a whole number of 1 or more.")
    assert "Traceback" not in _shown(reply)
    assert kernel.run("%%agent assistant\nStill answered?", timeout=30).ok
    assert server.request_count == 1


def test_a_lone_surrogate_from_a_variable_is_refused_before_sending(kernel, server):
    assert kernel.run('name = "caf\\udce9"').ok
    reply = kernel.run("%%agent assistant\nAbout {name}", timeout=30)
    assert reply.content["ename"] == "UsageError"
    shown = _shown(reply)
    assert "The value of {name} holds a lone surrogate '\\udce9' at line 1, column 4" in shown
    assert "Traceback" not in shown and "thinking" not in "".join(reply.markdown())
    assert server.request_count == 0
