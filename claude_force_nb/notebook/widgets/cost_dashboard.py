"""CostDashboard: spend, savings and calls from the ledger, as totals, a table and charts.

The dashboard reads the Ledger it is given (or its orchestrator's) through views
(``reports``, ``plots``); matplotlib is optional and imported when first drawing.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ._base import App, html_output, output

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ...engine.orchestrator import Orchestrator
    from ...store.ledger import Ledger

__all__ = ["CostDashboard"]

MY_GROUPS = ("agent", "model", "day")
TEAM_GROUPS = ("agent", "model", "day", "user")


class CostDashboard(App):
    """Spend, savings and calls from the ledger: totals, a table by agent/model/day, charts.

    ``CostDashboard(ledger=Ledger(...))`` shows that ledger; ``CostDashboard(orch)``
    the orchestrator's. With a team tier on Redis (``Settings.redis_url``) the Scope buttons
    switch to the whole team's calls, grouped by user too.
    """

    def __init__(self, orchestrator: Orchestrator | None = None, *, ledger: Ledger | None = None) -> None:
        super().__init__(orchestrator)
        self.ledger: Ledger = ledger if ledger is not None else self.orchestrator.ledger
        self.runs: pd.DataFrame | None = None
        self.costs: pd.DataFrame | None = None
        self.totals: dict[str, Any] = {}
        self.totals_html = W.HTML()
        self.by = W.ToggleButtons(options=list(MY_GROUPS), value="agent", description="By")
        team = self.ledger.team is not None
        self.scope = W.ToggleButtons(options=["me", "team"] if team else ["me"], value="me", description="Scope",
                                     tooltips=["this home's ledger", "every team member's calls (Redis)"][:1 + team])
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.table = W.Output()
        self.plot = W.Output()
        self.root = W.VBox([
            self.totals_html,
            W.HBox([self.scope, self.by, self.refresh_button], layout=W.Layout(align_items="center")),
            self.table,
            self.plot,
        ])
        self.by.observe(lambda _change: self._render_table(), names="value")
        self.scope.observe(lambda _change: self._switch_scope(), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.refresh()

    def _switch_scope(self) -> None:
        groups = TEAM_GROUPS if self.scope.value == "team" else MY_GROUPS
        if self.by.value not in groups:
            self.by.value = "agent"
        self.by.options = list(groups)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the ledger (or the team stream) and redraw everything."""
        from ...views import reports

        scope = self.scope.value
        self.runs = reports.runs(scope=scope, ledger=self.ledger)
        total = reports.costs(by="agent", scope=scope, ledger=self.ledger).loc[reports.TOTAL]
        self.totals = {
            "cost_usd": float(total["cost_usd"]),
            "saved_usd": float(total["saved_usd"]),
            "calls": int(total["calls"]),
            "cached_calls": int(total["cached_calls"]),
            "hit_rate": float(total["hit_rate"]),
            "unpriced": int(total["unpriced"]),
        }
        t = self.totals
        unpriced = f" · {t['unpriced']} unpriced" if t["unpriced"] else ""
        self.totals_html.value = (
            f"Spent <b>${t['cost_usd']:,.4f}</b> · saved <b>${t['saved_usd']:,.4f}</b> by the cache · "
            f"<b>{t['calls']:,}</b> calls · hit rate <b>{t['hit_rate']:.1%}</b>{unpriced}"
            f" <span style='color: #666;'>(updated {time.strftime('%H:%M:%S')})</span>"
        )
        self._render_table()
        self._render_plots()

    def _render_table(self) -> None:
        from ...views import reports

        self.costs = frame = reports.costs(by=self.by.value, scope=self.scope.value, ledger=self.ledger)
        styler = reports.styled(frame).format_index(escape="html", axis=0)
        self.table.outputs = (html_output(styler.to_html(), repr(frame)),)

    def _render_plots(self) -> None:
        from ...views import plots

        assert self.runs is not None
        try:
            fig = plots.new_figure(figsize=(11.0, 3.6))
        except plots.MissingPlotDependency:
            self.plot.outputs = (output({"text/plain": plots.PLOT_HINT}),)
            return
        cost_ax, latency_ax = fig.subplots(1, 2)
        plots.plot_cost_by_day(self.runs, ax=cost_ax)
        plots.plot_latency(self.runs, ax=latency_ax)
        png = base64.b64encode(plots.figure_png(fig)).decode("ascii")
        self.plot.outputs = (output({"image/png": png, "text/plain": "<cost by day and latency charts>"}),)
