"""``%%agent NAME --over DF`` in an in-process IPython shell against FakeAnthropicServer, and
the template filling of notebook variables (row fields vs variables)."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from claude_force_nb.engine.mapping import MapEstimate, MapProgress
from claude_force_nb.notebook.map_magic import fill_template
from claude_force_nb.notebook.map_progress_bar import MapProgressBar

from .test_magics import cell, ip  # noqa: F401  (ip is a fixture)

NAMES = ("reviews", "tone", "labelled", "est", "stars", "single")


@pytest.fixture
def ns(ip):  # noqa: F811
    ip.user_ns.update(reviews=pd.DataFrame({"review": ["great", "awful", "fine"], "stars": [5, 1, 3]}),
                      tone="{formal}", stars=99, single=pd.Series([1, 2]))
    yield ip.user_ns
    for name in NAMES:
        ip.user_ns.pop(name, None)


def prompts(server) -> list[str]:
    return sorted(r.body["messages"][-1]["content"] for r in server.requests if r.path == "/v1/messages")


# -- row fields and notebook variables ---------------------------------------------------

def test_fill_template_fills_variables_once_and_keeps_columns_and_literal_braces():
    namespace = {"tone": "{formal}", "stars": 99, "limit": 0.5, "frame": pd.DataFrame({"a": [1]})}
    filled = fill_template("In a {tone} tone, {{not a field}}: {review} ({stars}) over {limit:.2f} {nowhere}",
                           ["review", "stars"], namespace, 2_000)
    # tone's braces are doubled so they stay text; stars is a column as well, so it stays the row's
    assert filled == "In a {{formal}} tone, {{not a field}}: {review} ({stars}) over 0.50 {nowhere}"
    assert filled.format(review="great", stars=5, nowhere="") == "In a {formal} tone, {not a field}: great (5) over 0.50 "
    assert "| a |" in fill_template("Data: {frame} {review}", ["review"], namespace, 2_000)  # a table: summarised
    assert fill_template("Lone { brace {review}", ["review"], namespace, 2_000) == "Lone { brace {review}"


def test_fill_template_with_a_spec_the_value_refuses_is_one_line():
    with pytest.raises(UsageError, match=r"^Cannot fill in \{tone:\.2f\} from the notebook: ValueError"):
        fill_template("{tone:.2f} {review}", ["review"], {"tone": "formal"}, 2_000)


# -- the run ------------------------------------------------------------------------------

def test_over_sends_each_row_and_returns_the_frame(ip, ns, server):  # noqa: F811
    out, _ = cell(ip, "agent assistant --over reviews --into label -o labelled",
                  "In a {tone} tone, classify: {review} ({stars} stars)\n")
    assert prompts(server) == [f"In a {{formal}} tone, classify: {r} ({s} stars)"
                               for r, s in sorted([("awful", 1), ("fine", 3), ("great", 5)])]
    assert ns["labelled"] is out and list(out.columns) == ["review", "stars", "label", "cost_usd", "cached", "error"]
    assert out.label.str.contains("Offline answer").all() and not out.cached.any() and out.error.isna().all()
    assert out.cost_usd.gt(0).all() and out.attrs["claude_force"]["done"] == 3
    again, _ = cell(ip, "agent assistant --over reviews --into label",
                    "In a {tone} tone, classify: {review} ({stars} stars)\n")
    assert server.request_count == 3 and again.cached.all() and again.cost_usd.eq(0).all()
    assert again.label.tolist() == out.label.tolist()


def test_schema_gives_typed_columns(ip, ns, server):  # noqa: F811
    out, _ = cell(ip, "agent assistant --over reviews --schema 'label, score float'",
                  "Classify: {review}")
    assert str(out["score"].dtype) == "Float64" and str(out["label"].dtype) == "string"
    assert out["label"].notna().all() and server.request_count == 3


def test_dry_run_returns_the_estimate_and_sends_nothing(ip, ns, server):  # noqa: F811
    estimate, _ = cell(ip, "agent assistant --over reviews --dry-run -o est -m claude-haiku-4-5",
                       "Classify: {review}")
    assert isinstance(estimate, MapEstimate) and ns["est"] is estimate
    assert (estimate.rows, estimate.cached, estimate.to_send, estimate.model) == (3, 0, 3, "claude-haiku-4-5")
    assert server.request_count == 0
    shown = ip.display_formatter.format(estimate)[0]["text/plain"]
    assert shown == str(estimate) and shown.startswith("3 rows: 0 cached, 3 to send to claude-haiku-4-5")
    batch, _ = cell(ip, "agent assistant --over reviews --dry-run --batch", "Classify: {review}")
    assert batch.batch and "batch price" in str(batch)


def test_a_budget_the_estimate_does_not_fit_is_refused_with_the_figures(ip, ns, server):  # noqa: F811
    shell = ip
    shell.run_line_magic("config", "AgentMagics.budget_usd = 0.0001")
    with pytest.raises(UsageError, match=r"^This map is estimated at \$.* \(3 rows to send, .*budget has \$"):
        cell(shell, "agent assistant --over reviews", "Classify: {review}")
    assert server.request_count == 0


@pytest.mark.parametrize("line,body,match", [
    ("--over nope", "{review}", r"^--over nope: there is no notebook variable 'nope'\. Load the DataFrame first"),
    ("--over tone", "{review}", r"^--over tone: tone is a str, not a pandas DataFrame: pass a DataFrame\.$"),
    ("--over single", "{review}", r"not a pandas DataFrame: pass a DataFrame \(a Series: single\.to_frame\(\)\)"),
    ("--over reviews", "Classify {reveiw}", r"^The prompt names \{reveiw\}, .*did you mean \{review\}\?"),
    ("--over reviews --no-interpolate", "{tone} {review}", r"^The prompt names \{tone\}, which is not a column"),
    ("--over reviews", "Same for all: {tone}", r"^The prompt names no column"),
    ("--over reviews --thread t1", "{review}", r"^--thread does not work with --over: every row is its own call"),
    ("--over reviews --tools notebook", "{review}", r"^--tools does not work with --over"),
    ("--over reviews --bg", "{review}", r"^--bg does not work with --over"),
    ("--over reviews -f code", "{review}", r"^-f/--format does not work with --over"),
    ("--dry-run", "{review}", r"^--into, --dry-run, --window and --batch work with --over DF"),
    ("--over reviews --window 0", "{review}", r"^--window 0: at least one row must be in flight; give 1 or more"),
    ("--over reviews --into review", "{review}", r"already has a column 'review': pass into= another name"),
])
def test_mistakes_are_one_line_and_send_nothing(ip, ns, server, line, body, match):  # noqa: F811
    with pytest.raises(UsageError, match=match):
        cell(ip, f"agent assistant {line}", body)
    assert server.request_count == 0


# -- the widget bar (headless: ipywidgets 8 gives widgets without a kernel a DummyComm) ----

ESTIMATE = MapEstimate(rows=4, cached=1, to_send=3, input_tokens=30, output_tokens=900, max_output_tokens=1024,
                       cost_usd=0.0136, worst_cost_usd=0.0462, model="claude-sonnet-4-6")


def test_widget_bar_shows_the_estimate_then_rows_cached_failed_and_cost():
    bar = MapProgressBar(4, mininterval=0)
    assert bar.estimate.value == "Estimating the run…"
    bar(MapProgress(4, estimate=ESTIMATE))
    assert bar.estimate.value == "Estimate: 4 rows: 1 cached, 3 to send to claude-sonnet-4-6 (~30 input + ~900 " \
        "output tokens); cost ~$0.0136 (at most $0.0462)"
    for done, cached, failed, cost in [(1, 1, 0, 0.0), (2, 1, 1, 0.0), (3, 1, 1, 0.01), (4, 1, 1, 0.02)]:
        bar(MapProgress(4, done=done, cached=cached, failed=failed, cost_usd=cost, estimate=ESTIMATE))
    bar.close()
    _, progress, _ = bar.bar.container.children
    assert (progress.value, progress.max, progress.bar_style) == (4, 4, "success")
    assert "4/4 [" in bar.text and bar.text.endswith("cached 1, failed 1, $0.02]")


def test_widget_bar_of_a_stopped_run_turns_red_and_a_refused_run_leaves_nothing():
    bar = MapProgressBar(4, mininterval=0)
    bar(MapProgress(4, estimate=ESTIMATE))
    bar(MapProgress(4, done=2, estimate=ESTIMATE))
    bar.close()
    _, progress, _ = bar.bar.container.children
    assert (progress.value, progress.bar_style) == (2, "danger") and "2/4 [" in bar.text
    refused = MapProgressBar(4)
    refused.discard()
    assert refused.box.comm is None and refused.estimate.comm is None and refused.bar.container.comm is None  # closed: the frontend drops them
