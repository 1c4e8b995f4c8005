"""``%agent batches`` and ``%agent batch resume|cancel ID`` in a real InteractiveShell."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from claude_force_nb.views.batches import BATCH_COLUMNS, batches_frame

from .test_batching import DELAY_S, calls_for, clock, interrupted, server  # noqa: F401 (fixtures)
from .test_magics import ip  # noqa: F401 (fixture: the shell with the extension, on this module's server)


def orchestrator(ip):
    return ip.magics_manager.registry["AgentMagics"].orchestrator


def test_batches_resume_and_cancel(ip, server, clock, capsys):
    empty = ip.run_line_magic("agent", "batches")
    assert empty.empty and list(empty.columns) == list(BATCH_COLUMNS) and empty.index.name == "id"

    orch = orchestrator(ip)
    interrupted(orch, calls_for(orch, ["one", "two"]), server)
    frame = ip.run_line_magic("agent", "batches")
    [batch_id] = list(frame.index)
    row = frame.loc[batch_id]
    assert (row["state"], row["rows"], row["processing"], row["collected"]) == ("in_progress", 2, 2, False)
    assert (row["agent"], row["model"]) == ("assistant", "claude-haiku-4-5")
    assert row["created"] == pd.Timestamp(clock(), unit="s", tz="UTC")

    clock.advance(DELAY_S)
    capsys.readouterr()
    ip.run_line_magic("agent", f"batch resume {batch_id}")
    cost = orch.ledger.rows()[0]["cost_usd"] + orch.ledger.rows()[1]["cost_usd"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Batch {batch_id} ended: 2 answers cached, 0 failed (see the ledger) · ${cost:.4f}")
    done = ip.run_line_magic("agent", "batches").loc[batch_id]
    assert (done["state"], done["succeeded"], bool(done["collected"])) == ("ended", 2, True)
    assert done["cost_usd"] == pytest.approx(cost)

    interrupted(orch, calls_for(orch, ["three"]), server, batches=2)
    second = ip.run_line_magic("agent", "batches").index[0]
    ip.run_line_magic("agent", f"batch cancel {second}")
    assert capsys.readouterr().out.strip() == (
        f"Batch {second} is canceling: `%agent batch resume {second}` collects it.")
    assert bool(ip.run_line_magic("agent", "batches").loc[second, "cancel_requested"])


def test_bad_batch_commands_are_one_line_naming_the_fix(ip):
    with pytest.raises(UsageError, match="`%agent batches` lists the batches"):
        ip.run_line_magic("agent", "batch resume msgbatch_unknown")
    with pytest.raises(UsageError, match="Usage: %agent batch resume|cancel ID"):
        ip.run_line_magic("agent", "batch stop msgbatch_1")
    with pytest.raises(UsageError, match="takes no arguments"):
        ip.run_line_magic("agent", "batches now")


def test_batches_frame_dtypes_with_rows():
    record = {"id": "msgbatch_1", "created": 1_800_000_000.0, "session_id": "s", "agent": "a", "model": "m",
              "state": "ended", "requests": 3, "processing": 0, "succeeded": 2, "errored": 1, "canceled": 0,
              "expired": 0, "cost_usd": 0.5, "ended": None, "cancel_requested": False, "collected": True}
    frame = batches_frame([record])
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        name: "string" if kind == "string" else kind for name, kind in BATCH_COLUMNS.items()}
    assert frame.loc["msgbatch_1", "rows"] == 3 and pd.isna(frame.loc["msgbatch_1", "ended"])
