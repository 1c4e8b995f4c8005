"""After os.fork() an Orchestrator the parent used works in the child: a real fork, with a deadline.

The parent has used everything per-process before forking (the runner loop, the client and
its connections, the persistence writer's thread, the Pacer) and has a call in flight, so
the child inherits a Pacer that counts it and a writer whose thread does not exist there.
"""

from __future__ import annotations

import json
import os
import select
import signal
import traceback
import warnings

import pytest

from claude_force_nb.engine import runner

CHILD_DEADLINE_S = 20.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(work) -> dict:
    """Fork; run ``work()`` in the child and return what it returned (a dict), or fail if it hangs."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() of a multi-threaded process" (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's atexit or pytest
        os.close(read_end)
        try:
            payload = {"value": work()}
        except BaseException:
            payload = {"error": traceback.format_exc()}
        os.write(write_end, json.dumps(payload).encode())
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], CHILD_DEADLINE_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the child did not finish within {CHILD_DEADLINE_S:.0f}s: it hangs")
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    payload = json.loads(b"".join(chunks) or b'{"error": "the child died without a word"}')
    assert "error" not in payload, payload["error"]
    return payload["value"]


def test_an_orchestrator_used_before_fork_works_in_the_child(make_orch, server):
    orch = make_orch(max_concurrent=1)
    assert orch.run_sync("assistant", "in the parent").ok
    parent_call = runner.submit(orch.run("assistant", "held in the parent [[fake:sleep=30]]", use_cache=False))
    assert server.wait_for(lambda s: s.in_flight == 1)

    def child() -> dict:
        one = orch.run_sync("assistant", "in the child", use_cache=False)
        many = orch.run_many_sync([("assistant", f"child job {i}") for i in range(3)], use_cache=False)
        return {"one": one.error or one.text, "many": [r.error or r.text for r in many],
                "stats": orch.pacer.stats().in_flight}

    seen = in_child(child)
    assert "in the child" in seen["one"] and seen["stats"] == 0
    assert [f"child job {i}" in text for i, text in enumerate(seen["many"])] == [True] * 3
    ledger_tasks = sorted(row["task_head"] for row in orch.ledger.rows())
    assert ledger_tasks == ["child job 0", "child job 1", "child job 2", "in the child", "in the parent"]
    parent_call.cancel()
    assert server.wait_for(lambda s: s.disconnects == 1)
    assert orch.run_sync("assistant", "the parent goes on", use_cache=False).ok
