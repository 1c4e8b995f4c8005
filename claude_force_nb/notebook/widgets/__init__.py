"""ipywidgets apps: AgentConsole, CompareView, CacheBrowser, CostDashboard and WorkflowApp.

Each app is a plain class that owns a ``root`` Box, displays through
``_repr_mimebundle_`` (so ``app`` as the last line of a cell shows it), and has
``close()``, which cancels its work in flight and closes every widget it made. The
widgets are public attributes, so code (and tests) can drive an app the way a user does:
``console.task.value = "..."; console.run_button.click()``.

The kernel is never blocked. Agent calls run as background jobs on the private runner
loop (:class:`claude_force_nb.engine.background.BackgroundJob`) and the callback returns
at once; ``run()`` returns a ``concurrent.futures.Future`` that resolves only after the
app has finished its own bookkeeping (results, status, totals), also when the run is
cancelled. Work on that loop reports progress only through widget state
(``Output.outputs = ...``, ``HTML.value = ...``), never ``print`` or ``with out:``,
which would land in whichever cell happens to be running. Cache and ledger reads are
local SQLite queries and run directly; the cache's full signature check (``verify``)
runs in the background.

One module per app over a shared base (``_base``). The apps build no DataFrames
themselves: views do (``views.compare``, ``views.reports``, ``views.plots``); pandas and
matplotlib are imported when first needed.
"""

from __future__ import annotations

from ...views.compare import ALL, filter_entries
from ._base import known_models
from .agent_console import AgentConsole
from .cache_browser import CacheBrowser
from .compare_view import CompareView
from .cost_dashboard import CostDashboard
from .workflow_app import WorkflowApp

__all__ = ["ALL", "AgentConsole", "CacheBrowser", "CompareView", "CostDashboard", "WorkflowApp", "filter_entries",
           "known_models"]
