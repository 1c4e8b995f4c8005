"""CacheBrowser: filter, preview and delete entries of the signed response cache; verify it.

The browser works on the ResponseCache it is given (or its orchestrator's); entries
are read through views (``reports.cache_contents``) and filtered there too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...core.results import format_cost
from ...views.compare import ALL, clip, clip_columns, filter_entries
from ._base import App, html_output

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ...engine.orchestrator import Orchestrator
    from ...store.cache import ResponseCache

__all__ = ["CacheBrowser"]


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover


class CacheBrowser(App):
    """Browse the signed response cache: filter, preview, delete an entry, verify signatures.

    ``CacheBrowser(cache=ResponseCache(...))`` browses that cache; ``CacheBrowser(orch)``
    browses the orchestrator's.
    """

    COLUMNS = ("key", "agent", "model", "created", "expires", "hits", "cost_usd", "task", "answer")

    def __init__(self, orchestrator: Orchestrator | None = None, *, cache: ResponseCache | None = None) -> None:
        super().__init__(orchestrator)
        self.cache: ResponseCache = cache if cache is not None else self.orchestrator.cache
        self.frame: pd.DataFrame | None = None
        self.filtered: pd.DataFrame | None = None
        self.header = W.HTML()
        self.agent_filter = W.Dropdown(options=[ALL], value=ALL, description="Agent", layout=W.Layout(width="16em"))
        self.model_filter = W.Dropdown(options=[ALL], value=ALL, description="Model", layout=W.Layout(width="18em"))
        self.search = W.Text(placeholder="text in task or answer", description="Search",
                             continuous_update=False, layout=W.Layout(width="20em"))
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.selector = W.Select(options=[], rows=8, layout=W.Layout(width="100%"))
        self.preview = W.Output(layout=W.Layout(border="1px solid #ddd", padding="0.25em 0.75em"))
        self.delete_button = W.Button(description="Delete entry", icon="trash", button_style="danger", disabled=True)
        self.verify_button = W.Button(description="Verify signatures", icon="check")
        self.status = W.HTML()
        self.table = W.Output()
        self.root = W.VBox([
            self.header,
            W.HBox([self.agent_filter, self.model_filter, self.search, self.refresh_button]),
            self.selector,
            self.preview,
            W.HBox([self.delete_button, self.verify_button, self.status], layout=W.Layout(align_items="center")),
            self.table,
        ])
        self._quiet = False
        for widget in (self.agent_filter, self.model_filter, self.search):
            widget.observe(self._filters_changed, names="value")
        self.selector.observe(self._selected, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.delete_button.on_click(lambda _b: self.delete())
        self.verify_button.on_click(lambda _b: self.verify())
        self.refresh()

    @property
    def selected_key(self) -> str | None:
        """The full cache key of the selected entry."""
        return self.selector.value

    def refresh(self) -> None:
        """Re-read the entries and the counters; keep the filters and the selection when possible."""
        from ...views import reports

        self.frame = reports.cache_contents(cache=self.cache)
        stats = self.cache.stats()
        lookups = stats["hits"] + stats["misses"]
        self.header.value = (
            f"<b>{stats['entries']:,}</b> entries · <b>{_size(stats['bytes'])}</b> · hit rate "
            f"<b>{stats['hit_rate']:.0%}</b> in this kernel ({stats['hits']} of {lookups} lookups) · "
            f"<b>{stats['integrity_failures']}</b> integrity failures"
        )
        self._quiet = True
        try:
            for dropdown, column in ((self.agent_filter, "agent"), (self.model_filter, "model")):
                present = sorted({str(v) for v in self.frame[column].dropna() if str(v)})
                current = dropdown.value
                dropdown.options = [ALL, *present]
                dropdown.value = current if current in present else ALL
        finally:
            self._quiet = False
        self._apply_filters()

    def _filters_changed(self, change: Any) -> None:
        if not self._quiet:
            self._apply_filters()

    def _apply_filters(self) -> None:
        assert self.frame is not None
        selected = self.selector.value
        self.filtered = filtered = filter_entries(
            self.frame, self.agent_filter.value, self.model_filter.value, self.search.value
        )
        options = []
        for key, row in filtered.iterrows():
            created = row["created"].strftime("%Y-%m-%d %H:%M") if row["created"] == row["created"] else "?"
            options.append((f"{created} · {row['agent']} · {row['model']} · {clip(row['task'], 70)}", key))
        self.selector.options = options
        self.selector.value = selected if selected in filtered.index else None
        self._selected(None)
        shown = clip_columns(filtered[list(self.COLUMNS)], ["task", "answer"], 80)
        total = len(self.frame)
        caption = f"<p style='color: #666;'>{len(filtered)} of {total} entries</p>"
        self.table.outputs = (html_output(caption + shown.to_html(escape=True, index=False, na_rep="—"),
                                          f"{len(filtered)} of {total} entries"),)

    def _selected(self, change: Any) -> None:
        key = self.selector.value
        self.delete_button.disabled = key is None
        if key is None or self.frame is None or key not in self.frame.index:
            hint = html_output("<i style='color: #666;'>Select an entry to preview it.</i>", "(no entry selected)")
            self.preview.outputs = (hint,)
            return
        row = self.frame.loc[key]

        def when(value: Any) -> str:
            return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value == value else "never"

        cost = row["cost_usd"]
        fields = [
            ("Key", f"{key[:15]}…"),
            ("Agent", row["agent"]),
            ("Model", row["model"]),
            ("Cost when made", format_cost(None if cost != cost else float(cost))),
            ("Created", when(row["created"])),
            ("Expires", when(row["expires"])),
            ("Hits", f"{int(row['hits'])}"),
            ("Size", _size(int(row["size"]))),
            ("Task", row["task"]),
            ("Answer", row["answer"]),
        ]
        rows = "".join(
            f"<tr><th style='text-align: left; padding-right: 1em; vertical-align: top;'>{html.escape(name)}</th>"
            f"<td style='text-align: left; white-space: pre-wrap;'>{html.escape(str(value))}</td></tr>"
            for name, value in fields
        )
        plain = "\n".join(f"{name}: {value}" for name, value in fields)
        self.preview.outputs = (html_output(f"<table>{rows}</table>", plain),)

    def delete(self) -> bool:
        """Delete the selected entry (by its full key); True if it was removed."""
        key = self.selector.value
        if key is None:
            self._say("Select an entry first.", "warn")
            return False
        removed = self.cache.delete(key)
        self.refresh()
        if removed:
            self._say(f"Deleted entry {key[:15]}…", "ok")
        else:
            self._say("That entry was already gone.", "warn")
        return removed

    def verify(self) -> concurrent.futures.Future[list[str]]:
        """Re-check every signature in the background; the count of bad entries goes to ``status``."""
        if self.running:
            assert self.future is not None
            return self.future
        cache = self.cache
        self.verify_button.disabled = True
        self._say("Verifying signatures…")

        async def work() -> list[str]:
            try:
                bad: list[str] = await asyncio.to_thread(cache.verify)
            except Exception as exc:
                self._say(f"Verification failed: {type(exc).__name__}: {exc}", "error")
                self.verify_button.disabled = False
                raise
            if bad:
                self._say(f"{len(bad)} bad entries: {', '.join(k[:15] for k in bad)}", "error")
            else:
                self._say("Verified: 0 bad entries.", "ok")
            self.verify_button.disabled = False
            return bad

        def cancelled() -> None:
            self._say("Verification cancelled.", "warn")
            self.verify_button.disabled = False

        return self._start(work, cancelled)
