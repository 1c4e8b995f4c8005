"""The text progress bar of a map run in plain Python (the notebook shows a widget bar).

tqdm draws it on stderr: rows done of all, rate and ETA, and after them the cached and
failed rows and the cost so far. The estimate is printed above it when the run starts.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from .limits import format_usd

if TYPE_CHECKING:  # pragma: no cover
    from .mapping import MapProgress

__all__ = ["TextProgress", "progress_postfix"]


def progress_postfix(progress: MapProgress) -> str:
    """What follows the bar: ``cached 120, failed 2, $0.0312``, and in batch mode what the
    batches have processed so far (their answers fill the rows as each batch ends)."""
    text = f"cached {progress.cached:,}, failed {progress.failed:,}, {format_usd(progress.cost_usd)}"
    if (batch := progress.batch) is not None:
        which = "batch" if len(batch.batch_ids) == 1 else f"{len(batch.batch_ids)} batches"
        text += f", {which} {batch.done:,}/{batch.total:,} processed"
    return text


class TextProgress:
    """A map's ``on_progress`` callback drawing a tqdm text bar (closed when the last row is done)."""

    def __init__(self, *, file: TextIO | None = None, mininterval: float = 0.2) -> None:
        self._file = file or sys.stderr
        self._mininterval = mininterval
        self._bar: Any = None

    def __call__(self, progress: MapProgress) -> None:
        if self._bar is None:
            self._open(progress)
        moved = progress.done - self._bar.n
        self._bar.set_postfix_str(progress_postfix(progress), refresh=not moved)  # a batch poll moves no row
        self._bar.update(moved)
        if progress.done == progress.total:
            self.close()

    def _open(self, progress: MapProgress) -> None:
        from tqdm.std import tqdm  # the text bar only: never the notebook one from here

        if progress.estimate is not None:
            print(f"Estimate: {progress.estimate}", file=self._file)
        self._bar = tqdm(total=progress.total, unit="row", file=self._file, mininterval=self._mininterval,
                         dynamic_ncols=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
