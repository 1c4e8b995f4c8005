"""Charts of the ledger (views/plots.py): exact bar heights on a hand-built runs frame."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from claude_force_nb.views import plots


def runs_frame() -> pd.DataFrame:
    """Four days, two models, one cache hit and one failure; the columns reports.runs() has."""
    ts = pd.to_datetime(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 09:00", "2026-01-03 09:00",
                         "2026-01-03 10:00", "2026-01-04 10:00"], utc=True)
    return pd.DataFrame({
        "ts": ts,
        "model": pd.Categorical(["haiku", "sonnet", "haiku", "sonnet", "sonnet", "haiku"]),
        "cached": [False, False, False, False, True, False],
        "ok": [True, True, True, True, True, False],
        "cost_usd": [0.25, 1.0, 0.5, 2.0, 0.0, 0.0],
        "latency_s": [1.0, 2.0, 1.5, 3.0, 0.01, 0.5],
    })


def test_cost_by_day_stacks_one_series_per_model():
    fig = plots.plot_cost_by_day(runs_frame())
    (ax,) = fig.axes
    haiku, sonnet = ax.containers
    assert [p.get_height() for p in haiku] == [0.25, 0.5, 0.0, 0.0]
    assert [p.get_height() for p in sonnet] == [1.0, 0.0, 2.0, 0.0]
    assert [p.get_y() for p in sonnet] == [0.25, 0.5, 0.0, 0.0]  # stacked on haiku
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["haiku", "sonnet"]
    assert plots.figure_png(fig).startswith(b"\x89PNG")


def test_latency_histogram_has_one_series_per_model_of_successful_api_calls():
    fig = plots.plot_latency(runs_frame())
    (ax,) = fig.axes
    assert len(ax.containers) == 2
    counts = [sum(p.get_height() for p in c) for c in ax.containers]
    assert counts == [2, 2]  # the cache hit and the failure are left out


def test_plots_draw_on_a_given_axes_and_handle_no_data():
    fig = plots.new_figure()
    left, right = fig.subplots(1, 2)
    assert plots.plot_cost_by_day(runs_frame().iloc[:0], ax=left) is fig
    assert plots.plot_latency(runs_frame().iloc[:0], ax=right) is fig
    assert left.containers == [] and left.texts[0].get_text() == "No API calls yet"


def test_plots_without_matplotlib_raise_an_import_error_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'claude-force-nb\[plot\]'") as info:
        plots.plot_cost_by_day(runs_frame())
    assert isinstance(info.value, plots.MissingPlotDependency)
