"""The shipped notebooks execute top to bottom in real kernels (offline)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT
from .kernels import write_kernelspec

pytestmark = pytest.mark.kernel
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if not p.name.endswith(".executed.ipynb")]


def execute(path, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("CLAUDE_FORCE_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    kernel = write_kernelspec(tmp_path / "jupyter")
    NotebookClient(nb, kernel_name=kernel, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []


def test_quickstart_rerun_is_cached_and_free(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path, monkeypatch)
    badges = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "display_data" and "text/markdown" in o.get("data", {})]
    assert sum("cached (saved $" in b for b in badges) == 1
    second = execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path, monkeypatch)  # a new kernel, same home
    badges = [o["data"]["text/markdown"] for c in second.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "display_data" and "text/markdown" in o.get("data", {})]
    assert badges and all("cached (saved $" in b for b in badges)


def test_tools_and_threads_shows_tool_calls_typed_columns_and_a_thread(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "tools_and_threads.ipynb", tmp_path, monkeypatch)

    def shown(cell):
        return "\n".join(str(o.get("data", {}).get("text/markdown") or o.get("data", {}).get("text/plain") or "")
                         for o in cell.outputs)

    code = [c for c in nb.cells if c.cell_type == "code"]
    by_source = {c.source.splitlines()[0]: c for c in code}
    assert "→ top_region(metric=" in shown(by_source["%%agent data-analyst --tools top_region -o answer"])
    assert "→ list_variables() · " in shown(by_source["%%agent data-analyst --tools notebook,top_region"])
    dtypes = shown(by_source['ratings[["agent", "label", "confidence"]].dtypes'])
    assert "Float64" in dtypes and "string" in dtypes
    turns = shown(by_source["turns = %agent thread show survey"])
    assert "200 farms" in turns and "per region" in turns


def test_workflows_notebook_shows_live_tables_and_a_cached_rerun(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "workflows.ipynb", tmp_path, monkeypatch)
    cells = {c.source.split("\n")[0]: c for c in nb.cells if c.cell_type == "code"}
    first, again = cells["%%workflow -o wf"], cells["%%workflow -o again"]
    tables = [o["data"]["text/html"] for o in first.outputs if "text/html" in o.get("data", {})]
    assert tables and tables[-1].count(">done<") == 4  # the table, updated in place, ends with every node done
    badge = again.outputs[-1]["data"]["text/markdown"]
    assert "workflow · 4 cached · $0" in badge
    heavy = cells["%%heavy -n 4 -o h"].outputs
    assert "workflow heavy · 6 done" in heavy[-1]["data"]["text/markdown"]


def test_data_scale_notebook_estimates_maps_types_and_reruns_from_the_cache(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "data_scale.ipynb", tmp_path, monkeypatch)
    cells = {c.source.split("\n")[0]: c for c in nb.cells if c.cell_type == "code"}

    def plain(line):
        return [o["data"]["text/plain"] for o in cells[line].outputs if "text/plain" in o.get("data", {})]

    dry = plain("%%agent assistant --over reviews --dry-run -m claude-haiku-4-5 --max-tokens 50")
    assert dry[0].startswith("50 rows: 0 cached, 50 to send to claude-haiku-4-5")
    bar, frame = plain("%%agent assistant --over reviews --into label -m claude-haiku-4-5 --max-tokens 50 -o labelled")
    assert bar.startswith("Estimate: 50 rows: 0 cached") and "50/50 [" in bar and "cached 0, failed 0, $" in bar
    dtypes = plain("typed.dtypes")[0]
    assert "Float64" in dtypes and "boolean" in dtypes and "string" in dtypes
    again = plain("%%agent assistant --over reviews --into label -m claude-haiku-4-5 --max-tokens 50 -o again")[0]
    assert again.startswith("Estimate: 50 rows: 50 cached, 0 to send") and "cached 50, failed 0, $0" in again
    assert plain("int(again.cached.sum()), round(float(again.cost_usd.sum()), 6), (again.label == labelled.label).all()"
                 ) == ["(50, 0.0, np.True_)"]
    assert plain("int(batched.verdict.notna().sum()), bool((batched.cost_usd > 0).all())") == ["(50, True)"]
    (batches,) = plain("%agent batches")
    assert "ended" in batches and "50" in batches
