"""The notebook progress bar of ``%%agent NAME --over DF``: the estimate above a tqdm widget bar.

The bar is tqdm's notebook bar (an ipywidgets box): rows done of all, rate and ETA, then the
cached and failed rows and the cost so far (the same text as the plain-Python bar,
engine/map_progress.py). It is shown from the cell's own thread, before the run starts, so
it lands in the running cell; the run then updates it from the runner thread through widget
traits only (comm messages), never through print or display.
"""

from __future__ import annotations

import html
from typing import Any

from IPython.display import DisplayHandle, Markdown, display

from ..engine.map_progress import progress_postfix
from ..engine.mapping import MapProgress

__all__ = ["MapProgressBar"]

ESTIMATING = "Estimating the run…"


class MapProgressBar:
    """A map run's ``on_progress`` callback drawing into widgets shown with :meth:`show`."""

    def __init__(self, total: int, *, mininterval: float = 0.2) -> None:
        import ipywidgets as widgets
        from tqdm.notebook import tqdm

        self.estimate = widgets.HTML(ESTIMATING)
        self.bar: Any = tqdm(total=total, unit="row", mininterval=mininterval, display=False, dynamic_ncols=True)
        self.box = widgets.VBox([self.estimate, self.bar.container])
        self._started = False
        self._handle: DisplayHandle | None = None

    def show(self) -> None:
        """Display the estimate line and the empty bar in the running cell (call on the cell's thread)."""
        self._handle = display(self, display_id=True)

    def __call__(self, progress: MapProgress) -> None:
        if not self._started:  # the run starts: its estimate, and the bar's clock from here (not the plan's)
            self._started = True
            if progress.estimate is not None:
                self.estimate.value = html.escape(f"Estimate: {progress.estimate}")
            self.bar.reset(total=progress.total)
        moved = progress.done - self.bar.n
        self.bar.set_postfix_str(progress_postfix(progress), refresh=not moved)  # a batch poll moves no row
        self.bar.update(moved)

    def close(self) -> None:
        """Draw the final state: green when every row is done, red when the run stopped early.

        The output is updated too, so its plain-text form (a saved notebook without widget
        state, nbconvert) shows the final counts rather than the empty bar."""
        self.bar.close()
        if self._handle is not None:
            self._handle.update(self)

    def discard(self) -> None:
        """Remove the bar: the run was refused before it started (a bad template, the budget)."""
        self.bar.close()
        if self._handle is not None:
            self._handle.update(Markdown(""))  # the output goes, rather than a closed widget's placeholder
        for widget in (self.estimate, *self.bar.container.children, self.bar.container, self.box):
            widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widgets, with the estimate and the bar as plain text for where widgets do not render."""
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"{html.unescape(self.estimate.value)}\n{self.text}"
        return bundle

    @property
    def text(self) -> str:
        """What the bar says right now, e.g. ``100%|█| 200/200 [00:01<00:00, cached 0, failed 0, $0.0123]``."""
        left, _, right = self.bar.container.children
        return html.unescape(f"{left.value}{right.value}").replace("\u2007", " ")
