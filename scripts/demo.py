"""`make demo`: the main job, offline, against the built-in Anthropic-compatible server.

1. Four agents answer four tasks concurrently (from plain Python).
2. notebooks/quickstart.ipynb is executed headless in a real Jupyter kernel: %%agent
   cells stream answers, a re-run is served from the signed cache for $0, %%compare
   puts agents and models side by side, and `%agent costs` totals it all.

Nothing leaves the machine: CLAUDE_FORCE_OFFLINE=1 starts the fake server in-process.
Data goes to CLAUDE_FORCE_HOME (default: .demo-home/ here), so a second `make demo` is
served from the cache.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.kernels (the kernelspec helper)
os.environ["CLAUDE_FORCE_OFFLINE"] = "1"
os.environ.setdefault("CLAUDE_FORCE_HOME", str(ROOT / ".demo-home"))

from claude_force_nb import Orchestrator, reports  # noqa: E402
from tests.kernels import write_kernelspec  # noqa: E402

TASKS = [
    ("python-expert", "How do I read a 5 GB CSV in chunks and compute a per-group mean with pandas?"),
    ("code-reviewer", "def mean(xs):\n    return sum(xs) / len(xs)\n"),
    ("sql-expert", "Top 3 customers by revenue per month from orders(customer_id, amount, created_at)."),
    ("data-analyst", "Is a 2% lift in conversion from 10,000 visitors per arm significant?"),
]


def concurrent_run() -> None:
    print("== 1. Four agents, concurrently (Orchestrator.run_many_sync) ==")
    with Orchestrator() as orch:
        t0 = time.perf_counter()
        results = orch.run_many_sync(TASKS)
        wall = time.perf_counter() - t0
    for r in results:
        print(f"  {r.footer()}")
    print(f"  wall time {wall:.2f}s for {len(results)} calls\n")


def run_notebook() -> None:
    import nbformat
    from nbclient import NotebookClient

    print("== 2. notebooks/quickstart.ipynb in a real kernel ==")
    source = ROOT / "notebooks" / "quickstart.ipynb"
    target = ROOT / "notebooks" / "quickstart.executed.ipynb"
    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory() as jupyter_path:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [jupyter_path, os.environ.get("JUPYTER_PATH")]))
        kernel = write_kernelspec(jupyter_path)
        t0 = time.perf_counter()
        resources = {"metadata": {"path": str(ROOT / "notebooks")}}
        NotebookClient(nb, kernel_name=kernel, timeout=120, resources=resources).execute()
    nbformat.write(nb, target)
    print(f"  executed {len(nb.cells)} cells in {time.perf_counter() - t0:.1f}s -> {target.relative_to(ROOT)}")
    print("\n== Costs so far (%agent costs) ==")
    table = reports.costs(by="agent")
    money = "${:,.4f}".format
    print(table.to_string(formatters={"cost_usd": money, "saved_usd": money, "hit_rate": "{:.0%}".format}))
    print(f"\nData lives in {os.environ['CLAUDE_FORCE_HOME']} (cache.sqlite3, ledger.sqlite3).")
    print("Run `make demo` again: it is served from the cache.")


def main() -> int:
    concurrent_run()
    run_notebook()
    return 0


if __name__ == "__main__":
    sys.exit(main())
