"""Charts of the ledger: cost by day (stacked by model) and the latency of API calls.

Both functions take the DataFrame of :func:`claude_force_nb.reports.runs` and draw on
``ax`` (a new ``matplotlib.figure.Figure`` when ``ax`` is None); they return the Figure.
matplotlib is optional (``pip install 'claude-force-nb[plot]'``) and imported only when a
chart is drawn. pyplot is never used: figures are plain ``Figure`` objects rendered with
Agg, so nothing pops up and drawing from a background thread is safe.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOT_HINT", "MissingPlotDependency", "figure_png", "new_figure", "plot_cost_by_day", "plot_latency"]

PLOT_HINT = "pip install 'claude-force-nb[plot]' for charts"


class MissingPlotDependency(ImportError):
    """matplotlib is not installed."""


def new_figure(*, figsize: tuple[float, float] = (6.0, 3.5), **kwargs: Any) -> Figure:
    """A pyplot-free Figure (constrained layout); raises MissingPlotDependency without matplotlib."""
    try:
        import matplotlib  # noqa: F401  (checked first: a cached submodule would hide its absence)
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingPlotDependency(f"matplotlib is not installed: {PLOT_HINT}.") from exc
    return Figure(figsize=figsize, layout="constrained", **kwargs)


def _axes(ax: Axes | None) -> Axes:
    return ax if ax is not None else new_figure().add_subplot()


def _empty(ax: Axes, title: str, message: str) -> Figure:
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure  # type: ignore[return-value]


def plot_cost_by_day(frame: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Bars of API spend per UTC day, one stacked series per model (cache hits cost nothing
    and are left out; a model without a price counts as 0)."""
    import numpy as np

    ax = _axes(ax)
    title = "Cost by day (USD), stacked by model"
    live = frame[~frame["cached"].astype(bool)]
    if live.empty:
        return _empty(ax, title, "No API calls yet")
    day = live["ts"].dt.strftime("%Y-%m-%d").rename("day")
    model = live["model"].astype(str).rename("model")
    table = (
        live["cost_usd"].astype("float64").fillna(0.0)
        .groupby([day, model]).sum()
        .unstack("model", fill_value=0.0)
        .sort_index()
    )
    days = [str(d) for d in table.index]
    bottom = np.zeros(len(days))
    for name in sorted(table.columns):
        values = table[name].to_numpy(dtype="float64")
        ax.bar(days, values, bottom=bottom, label=name)
        bottom += values
    ax.set_title(title)
    ax.set_ylabel("USD")
    ax.legend(fontsize="small")
    return ax.figure  # type: ignore[return-value]


def plot_latency(frame: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Histogram of the latency of successful API calls (not cache hits), one series per model."""
    ax = _axes(ax)
    title = "Latency of API calls"
    live = frame[~frame["cached"].astype(bool) & frame["ok"].astype(bool) & (frame["latency_s"] > 0)]
    if live.empty:
        return _empty(ax, title, "No API calls yet")
    model = live["model"].astype(str)
    names = sorted(model.unique())
    data = [live.loc[model == name, "latency_s"].to_numpy(dtype="float64") for name in names]
    bins = max(5, min(20, len(live) // 2))
    from matplotlib.ticker import MaxNLocator

    ax.hist(data, bins=bins, label=names)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel("seconds")
    ax.set_ylabel("calls")
    ax.legend(fontsize="small")
    return ax.figure  # type: ignore[return-value]


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered to PNG bytes (Agg, no pyplot)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
