"""``%agent batches`` and ``%agent batch resume|cancel ID``: the Message Batches of this home.

``resume`` waits in the cell (a progress line kept up to date through a display handle)
and then says what landed in the cache; an interrupt stops the wait, never the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..core.errors import UnknownBatchError
from ..engine.batching import BatchProgress

__all__ = ["BATCH_ACTIONS", "batch_command", "batches_command"]

BATCH_ACTIONS = ("resume", "cancel")


def batches_command(orch: Any, rest: Sequence[str]) -> Any:
    """``%agent batches``: a DataFrame of every batch, newest first."""
    from ..views.batches import batches_frame

    if rest:
        raise UsageError(f"%agent batches takes no arguments (got {' '.join(rest)!r}): use `%agent batches`.")
    return batches_frame(orch.batches())


def batch_command(orch: Any, rest: Sequence[str]) -> None:
    """``%agent batch resume ID`` (wait, then collect) or ``%agent batch cancel ID``."""
    if len(rest) != 2 or rest[0] not in BATCH_ACTIONS:
        raise UsageError(f"Usage: %agent batch resume|cancel ID (got {' '.join(rest)!r}); "
                         "`%agent batches` lists the ids.")
    action, batch_id = rest
    try:
        if action == "cancel":
            print(orch.cancel_batch_sync(batch_id).line())
            return
        handle = display(f"Waiting for batch {batch_id}…", display_id=True)

        def show(progress: BatchProgress) -> None:
            if handle is not None:
                handle.update(progress.line())

        summary = orch.resume_batch_sync(batch_id, on_progress=show)
    except UnknownBatchError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"Stopped waiting; batch {batch_id} goes on: `%agent batch resume {batch_id}` collects it.")
        return
    print(summary.line())
