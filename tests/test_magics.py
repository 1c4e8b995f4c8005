"""Magics in an in-process IPython shell against FakeAnthropicServer (no kernel: fast)."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets import TraitError

from claude_force_nb.testing import Fault

from .conftest import ROOT, TEST_KEY

TIMEOUT = 15


@pytest.fixture
def ip(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("CLAUDE_FORCE_CACHE_SECRET", "magic-tests-secret")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "claude_force_nb")
    yield shell
    shell.run_line_magic("unload_ext", "claude_force_nb")
    shell.config.pop("AgentMagics", None)  # the shell is a singleton: forget %config
    shell.user_ns.pop("res", None)


def magics_of(ip):
    return ip.magics_manager.registry["AgentMagics"]


def cell(ip, line: str, body: str):
    with capture_output() as cap:
        value = ip.run_cell_magic(line.split()[0], " ".join(line.split()[1:]), body)
    return value, cap


def last_output(cap):
    return cap.outputs[-1]


# -- %%agent ------------------------------------------------------------------------------

def test_agent_cell_streams_and_ends_with_badge_and_provenance(ip, server):
    _, cap = cell(ip, "agent assistant -m claude-haiku-4-5", "What is a p-value?\n")
    out = last_output(cap)
    md = out.data["text/markdown"]
    assert "Offline answer" in md and "assistant · claude-haiku-4-5" in md and "in /" in md
    meta = out.metadata["claude_force_nb"]
    assert meta["agent"] == "assistant" and meta["model"] == "claude-haiku-4-5-20251001"  # the API's dated id
    assert meta["cache_key"].startswith("v1:") and meta["usage"]["output_tokens"] > 0
    body = server.requests[-1].body
    assert body["messages"][0]["content"] == "What is a p-value?" and body["model"] == "claude-haiku-4-5"


def test_out_variable_and_cached_rerun(ip, server):
    cell(ip, "agent assistant -o res", "cache test")
    first = ip.user_ns["res"]
    _, cap = cell(ip, "agent assistant -o res", "cache test")
    second = ip.user_ns["res"]
    assert server.request_count == 1 and second.cached and second.text == first.text
    assert "cached (saved $" in last_output(cap).data["text/markdown"]


def test_cell_interpolates_from_user_namespace(ip, server):
    ip.user_ns["frame_name"] = "sales_2026"
    cell(ip, "agent assistant", "Describe {frame_name} and {{frame_name}} and {missing} in {'a': {'b': 1}}")
    assert server.requests[-1].body["messages"][0]["content"] == (
        "Describe sales_2026 and {frame_name} and {missing} in {'a': {'b': 1}}")
    cell(ip, "agent assistant --no-interpolate", "Describe {frame_name}")
    assert server.requests[-1].body["messages"][0]["content"] == "Describe {frame_name}"


def test_flags_reach_the_request(ip, server):
    cell(ip, "agent assistant --max-tokens 77 -t 0.3 --system 'Answer in French.' --no-stream --no-cache", "Bonjour")
    body = server.requests[-1].body
    assert body["max_tokens"] == 77 and body["temperature"] == 0.3 and "stream" not in body
    assert body["system"].endswith("\n\nAnswer in French.")


def test_config_trait_sets_default_model(ip, server):
    ip.run_line_magic("config", 'AgentMagics.default_model = "claude-haiku-4-5"')
    cell(ip, "agent assistant", "which model?")
    assert server.requests[-1].body["model"] == "claude-haiku-4-5"


def test_code_format_offers_next_input(ip, server):
    server.script(Fault(text="Use this:\n```python\nprint('hi')\n```\nDone."))
    cell(ip, "agent python-expert -f code", "print hi")
    assert ip.rl_next_input == "print('hi')"


@pytest.mark.parametrize(
    "line,match",
    [
        ("agent assistant --bogus", "unrecognized arguments: --bogus"),
        ("agent code-reviwer", "Did you mean 'code-reviewer'"),
        ("agent assistant --max-tokens 0", "max_tokens=0 is out of range"),
        ("agent assistant -t 2", "temperature=2.0 is out of range"),
    ],
)
def test_user_mistakes_are_usage_errors(ip, server, line, match):
    with pytest.raises(UsageError, match=match):
        cell(ip, line, "task")
    assert server.request_count == 0


def test_empty_cell_is_refused(ip, server):
    with pytest.raises(UsageError, match="task is empty"):
        cell(ip, "agent assistant", "\n  \n")


def test_missing_key_explains_both_options(ip, server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    ip.run_line_magic("config", "AgentMagics.max_tokens = 100")  # rebuild the orchestrator
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY.*CLAUDE_FORCE_OFFLINE=1"):
        cell(ip, "agent assistant", "hello")


def test_api_failure_shows_one_line_not_a_traceback(ip, server):
    server.fail_next(400, message="prompt is too long")
    _, cap = cell(ip, "agent assistant -o res", "x")
    md = last_output(cap).data["text/markdown"]
    assert "assistant failed:" in md and "prompt is too long" in md and "Traceback" not in md
    assert ip.user_ns["res"].error_type == "invalid_request_error"


def test_background_run_fills_in_later_and_cancel_stops_it(ip, server):
    value, _ = cell(ip, "agent assistant --bg -o res", "slow [[fake:sleep=0.3]]")
    assert value is None and "res" not in ip.user_ns
    assert magics_of(ip).wait_background(TIMEOUT)
    assert ip.user_ns["res"].ok
    cell(ip, "agent assistant --bg", "very slow [[fake:sleep=30]]")
    assert server.wait_for(lambda s: s.in_flight == 1)
    with capture_output() as cap:
        ip.run_line_magic("agent", "cancel")
    assert "Cancelled 1 background run." in cap.stdout
    assert server.wait_for(lambda s: s.disconnects == 1)


def test_cancelled_background_run_ends_on_cancelled_even_mid_stream(ip, server):
    server.script(Fault(text=" ".join(f"word{i}" for i in range(600))))
    server.chunk_delay_s = 0.02  # 200 deltas: a stream still running when Cancel comes
    with capture_output() as cap:
        ip.run_cell_magic("agent", "assistant --bg -o res", "stream a long answer")
        assert server.wait_for(lambda s: any(o.update and "▌" in o.data["text/markdown"] for o in list(cap.outputs)))
        assert magics_of(ip).cancel_all() == 1
        assert magics_of(ip).wait_background(TIMEOUT)
        final = cap.outputs[-1]
    assert server.wait_for(lambda s: s.disconnects == 1)
    assert final.update and final.data["text/markdown"] == "**Error:** Cancelled."
    assert "res" not in ip.user_ns and magics_of(ip).cancel_all() == 0


# -- %%compare and %agent subcommands ---------------------------------------------------------

def test_compare_runs_the_cross_product(ip, server):
    frame, cap = cell(ip, "compare -a assistant,python-expert -m claude-haiku-4-5,claude-sonnet-4-6 -o cmp", "Mean or median?")
    assert server.request_count == 4 and frame is ip.user_ns["cmp"]
    assert list(frame[["agent", "model"]].itertuples(index=False, name=None)) == [
        ("assistant", "claude-haiku-4-5-20251001"), ("assistant", "claude-sonnet-4-6"),
        ("python-expert", "claude-haiku-4-5-20251001"), ("python-expert", "claude-sonnet-4-6")]
    assert frame["cost_usd"].gt(0).all() and not frame["cached"].any()
    html = cap.outputs[0].data["text/html"]
    assert html.count("claude-sonnet-4-6") >= 2 and "display: flex" in html


def test_list_costs_stats_return_dataframes(ip, server):
    cell(ip, "agent assistant -m claude-haiku-4-5", "one")
    cell(ip, "agent assistant -m claude-haiku-4-5", "one")
    agents = ip.run_line_magic("agent", "list")
    assert {"assistant", "code-reviewer", "python-expert"} <= set(agents["name"])
    costs = ip.run_line_magic("agent", "costs --by model")
    assert isinstance(costs, pd.DataFrame)
    assert costs.loc["TOTAL", "calls"] == 2 and costs.loc["TOTAL", "cached_calls"] == 1
    runs = ip.run_line_magic("agent", "runs")
    assert len(runs) == 2 and runs["cached"].tolist() == [False, True]
    assert costs.loc["TOTAL", "cost_usd"] == pytest.approx(runs["cost_usd"].sum(), abs=1e-12)
    assert ip.run_line_magic("agent", "stats").loc["assistant", "calls"] == 2


def test_cache_subcommands(ip, server):
    cell(ip, "agent assistant", "to cache")
    assert ip.run_line_magic("agent", "cache stats")["entries"] == 1
    assert len(ip.run_line_magic("agent", "cache list")) == 1
    with capture_output():
        assert ip.run_line_magic("agent", "cache verify") == []
    with capture_output() as cap:
        ip.run_line_magic("agent", "cache clear")
    assert "Removed 1 cached answers" in cap.stdout
    assert len(ip.run_line_magic("agent", "runs")) == 1  # the ledger is kept


def test_budget_subcommand(ip, server):
    with capture_output() as cap:
        ip.run_line_magic("agent", "budget 0.000001")
    assert cap.stdout == "Budget: $0.000001; spent this kernel: $0.00\n"
    with pytest.raises(UsageError, match="Budget"):
        cell(ip, "agent assistant", "too expensive")
    assert server.request_count == 0
    with pytest.raises(UsageError, match="not a number"):
        ip.run_line_magic("agent", "budget lots")


def test_unknown_subcommand(ip):
    with pytest.raises(UsageError, match="Unknown subcommand 'frobnicate'"):
        ip.run_line_magic("agent", "frobnicate")


def test_unload_removes_magics(ip):
    ip.run_line_magic("unload_ext", "claude_force_nb")
    assert "agent" not in ip.magics_manager.magics["cell"] and "compare" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "claude_force_nb")
    assert "agent" in ip.magics_manager.magics["line"]


def test_load_ext_is_fast_and_imports_neither_pandas_nor_the_sdk_nor_pydantic():
    code = (
        "import sys, time\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "t = time.perf_counter(); ip.run_line_magic('load_ext', 'claude_force_nb'); dt = time.perf_counter() - t\n"
        "print(dt, *(name in sys.modules for name in ('pandas', 'anthropic', 'pydantic')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    assert out[1:] == ["False", "False", "False"]
    assert float(out[0]) < 3.0  # the README figure comes from benchmarks/, this only catches regressions


def test_widget_apps_open_and_are_cancelled_and_closed_with_the_extension(ip, server):
    from claude_force_nb.notebook.widgets import AgentConsole, CacheBrowser, CompareView, CostDashboard

    opened = [ip.run_line_magic("agent", cmd) for cmd in ("console", "compare-ui", "cache-ui", "dashboard")]
    assert [type(a) for a in opened] == [AgentConsole, CompareView, CacheBrowser, CostDashboard]
    orch = magics_of(ip).orchestrator
    assert all(app.orchestrator is orch for app in opened[:2])
    assert opened[2].cache is orch.cache and opened[3].ledger is orch.ledger  # handles, not the orchestrator
    console = opened[0]
    console.task.value = "slow [[fake:sleep=30]]"
    console.run()
    assert server.wait_for(lambda s: s.in_flight == 1)
    with capture_output() as cap:
        ip.run_line_magic("agent", "cancel")
    assert "Cancelled 1 background run." in cap.stdout
    assert server.wait_for(lambda s: s.disconnects == 1)
    ip.run_line_magic("unload_ext", "claude_force_nb")
    assert all(app.closed for app in opened)
    ip.run_line_magic("load_ext", "claude_force_nb")


def test_environment_defaults_reach_the_magics(ip, server, monkeypatch):
    monkeypatch.setenv("CLAUDE_FORCE_MODEL", "claude-haiku-4-5")
    monkeypatch.setenv("CLAUDE_FORCE_BUDGET_USD", "0.000001")
    ip.run_line_magic("unload_ext", "claude_force_nb")
    ip.run_line_magic("load_ext", "claude_force_nb")
    with pytest.raises(UsageError, match=r"Budget \$0.000001 would be exceeded"):
        cell(ip, "agent assistant", "refused by the environment's budget")
    with capture_output():
        ip.run_line_magic("agent", "budget off")
    cell(ip, "agent assistant", "which model?")
    assert server.requests[-1].body["model"] == "claude-haiku-4-5"


def test_config_change_keeps_spend_and_the_same_orchestrator(ip, server):
    cell(ip, "agent assistant -m claude-haiku-4-5", "spend a little")
    magics = ip.magics_manager.registry["AgentMagics"]
    before = magics.orchestrator
    spent = before.budget.spent_usd
    assert spent > 0
    ip.run_line_magic("config", "AgentMagics.stream = False")
    ip.run_line_magic("config", "AgentMagics.max_concurrent = 2")
    assert magics.orchestrator is before and before.budget.spent_usd == spent
    assert before.settings.stream is False and before.settings.max_concurrent == 2
    cell(ip, "agent assistant", "no stream now")
    assert "stream" not in server.requests[-1].body


def test_a_bug_in_a_background_run_shows_its_traceback_in_the_cell(ip, server, monkeypatch):
    magics = magics_of(ip)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(magics.orchestrator, "_prepare", broken)
    with capture_output() as cap:
        ip.run_cell_magic("agent", "assistant --bg", "x")
        assert magics.wait_background(TIMEOUT)
    shown = cap.outputs[-1].data["text/markdown"]
    assert "Traceback" in shown and "ZeroDivisionError: a bug, not a user error" in shown


def test_unbalanced_quote_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="check the quotes"):
        ip.run_line_magic("agent", 'budget "5')


# -- settings and budgets refused with one line ---------------------------------------------

@pytest.mark.parametrize("value,message", [
    ("0", "AgentMagics.max_concurrent=0 is out of range: use a whole number of 1 or more."),
    ("-1", "AgentMagics.max_concurrent=-1 is out of range: use a whole number of 1 or more."),
])
def test_config_refuses_a_bad_setting_and_keeps_the_old_value(ip, server, value, message):
    magics = magics_of(ip)
    ip.run_line_magic("config", "AgentMagics.max_concurrent = 3")
    ip.run_line_magic("config", f"AgentMagics.max_concurrent = {value}")  # IPython prints the TraitError's line
    assert magics.max_concurrent == 3 and magics.orchestrator.settings.max_concurrent == 3
    with pytest.raises(TraitError, match=f"^{message}$"):
        magics.max_concurrent = int(value)
    _, cap = cell(ip, "agent assistant", "still answered")
    assert "Offline answer" in last_output(cap).data["text/markdown"]


def test_a_bad_setting_in_the_ipython_configuration_stops_load_ext_with_one_line(ip, server):
    ip.run_line_magic("unload_ext", "claude_force_nb")
    ip.config.AgentMagics.max_concurrent = 0
    with pytest.raises(UsageError, match=r"^AgentMagics\.max_concurrent=0 is out of range: use a whole number of 1 or "
                                         r"more\. It is set in the IPython configuration \(c\.AgentMagics\.\.\.\): fix or remove it\.$"):
        ip.run_line_magic("load_ext", "claude_force_nb")
    ip.config.AgentMagics.max_concurrent = 2
    ip.run_line_magic("load_ext", "claude_force_nb")
    assert magics_of(ip).max_concurrent == 2


@pytest.mark.parametrize("trait,value,message", [
    ("budget_usd", float("nan"), "AgentMagics.budget_usd=nan is not a budget"),
    ("max_tokens", 0, "AgentMagics.max_tokens=0 is out of range"),
    ("default_model", "claude haiku", "AgentMagics.default_model='claude haiku' is not a model id"),
])
def test_every_setting_trait_has_the_settings_rule(ip, trait, value, message):
    with pytest.raises(TraitError, match=message):
        setattr(magics_of(ip), trait, value)
    assert getattr(magics_of(ip), trait) is None


@pytest.mark.parametrize("word", ["nan", "-5", "inf", "$-0.01"])
def test_budget_that_is_not_an_amount_is_refused(ip, server, word):
    with capture_output():
        ip.run_line_magic("agent", "budget 2")
    with pytest.raises(UsageError, match=rf"^Budget '{re.escape(word)}' is not a budget \(it must be 0 or more, and finite\)"):
        ip.run_line_magic("agent", f"budget {word}")
    assert magics_of(ip).orchestrator.budget.budget_usd == 2.0


def test_small_budget_is_shown_with_its_digits(ip, server):
    with capture_output() as cap:
        ip.run_line_magic("agent", "budget 0.001")
    assert cap.stdout.startswith("Budget: $0.001;")


def test_compare_rows_refused_by_the_budget_show_their_own_model(ip, server):
    with capture_output():
        ip.run_line_magic("agent", "budget 0.00001")
    frame, _ = cell(ip, "compare -a assistant -m claude-haiku-4-5,claude-opus-4-6", "too dear")
    assert frame["model"].tolist() == ["claude-haiku-4-5", "claude-opus-4-6"]
    assert frame["error"].str.startswith("Budget $0.00001 would be exceeded").all() and server.request_count == 0


# -- user mistakes: one line, nothing sent ---------------------------------------------------

@pytest.mark.parametrize("line,match", [
    ("costs --by nonsense", r"^Cannot group by 'nonsense': use one of agent, model, day, session, e\.g\. `%agent costs --by model`\.$"),
    ("stats --by nonsense", r"^Cannot group by 'nonsense': use one of agent, model, day, session"),
    ("costs --by", r"^Usage: %agent costs \[--by agent\|model\|day\|session\] \(got '--by'\)\.$"),
    ("list extra", r"^%agent list takes no arguments \(got 'extra'\): use `%agent list`\.$"),
    ("runs extra", r"^%agent runs takes no arguments"),
    ("cancel now", r"^%agent cancel takes no arguments"),
    ("cache stats now", r"^Usage: %agent cache \[stats\|list\|clear\|verify\|prune\] \(got 'stats now'\)\.$"),
    ("budget 1 2", r"^Usage: %agent budget \[USD\|off\] \(got '1 2'\)\.$"),
])
def test_subcommand_mistakes_are_one_line(ip, server, line, match):
    with pytest.raises(UsageError, match=match):
        ip.run_line_magic("agent", line)


@pytest.mark.parametrize("line,match", [
    ("agent assistant -o class", r"^-o: 'class' is a Python keyword, so no variable can have that name: use e\.g\. 'class_'\.$"),
    ("agent assistant -o 1abc", r"^-o: '1abc' is not a usable variable name: use letters, digits and _, not starting with a digit"),
    ("agent assistant -o 'a b'", r"^-o: 'a b' is not a usable variable name"),
    ("compare -a assistant -o for", r"^-o: 'for' is a Python keyword"),
    ("compare -a ,", r"^-a ',' names no agent: give comma-separated names, e\.g\. -a assistant,code-reviewer\.$"),
    ("compare -a assistant -m ' , '", r"^-m ' , ' names no model: give comma-separated names"),
    ("agent assistant -t -inf", r"^temperature=-inf is out of range: use a number from 0 to 1\.$"),
    ("compare -a assistant -t -inf", r"^temperature=-inf is out of range"),
])
def test_flag_mistakes_are_one_line_and_nothing_is_sent(ip, server, line, match):
    with pytest.raises(UsageError, match=match):
        cell(ip, line, "task")
    assert server.request_count == 0


def test_a_lone_surrogate_is_refused_with_where_it_is(ip, server):
    with pytest.raises(UsageError, match=r"^The cell holds a lone surrogate '\\udce9' at line 2, column 4: it cannot be sent"):
        cell(ip, "agent assistant", "first line\ncaf\udce9 au lait")
    ip.user_ns["name"] = "caf\udce9"
    with pytest.raises(UsageError, match=r"^The value of \{name\} holds a lone surrogate '\\udce9' at line 1, column 4: .*"
                                         r"Write \{\{name\}\} to send it literally, or use --no-interpolate\.$"):
        cell(ip, "agent assistant", "About {name}")
    assert server.request_count == 0 and magics_of(ip).orchestrator.ledger.rows() == []
    ip.user_ns.pop("name")


def test_a_value_whose_str_fails_is_refused_in_one_line(ip, server):
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text for you\nsecond line")

    ip.user_ns["b"] = Unprintable()
    with pytest.raises(UsageError, match=r"^Cannot fill in \{b\}: ValueError: no text for you\. Write \{\{b\}\}"):
        cell(ip, "agent assistant", "Explain {b}")
    assert server.request_count == 0
    ip.user_ns.pop("b")


# -- pacing shown where the user waits -------------------------------------------------------

def test_a_paced_cell_says_so_and_agent_pacing_shows_the_counters(ip, server):
    server.fail_next(429, retry_after_ms=15_000)  # a long pause: the test cancels once it is shown
    magics = magics_of(ip)
    with capture_output() as cap:
        ip.run_cell_magic("agent", "assistant --bg", "wait for the rate limit")
        assert server.wait_for(lambda s: any(
            "paced: 429, resuming in" in o.data.get("text/markdown", "") for o in list(cap.outputs)), timeout=TIMEOUT)
        assert magics.cancel_all() == 1 and magics.wait_background(TIMEOUT)
    paced = next(o.data for o in cap.outputs if "paced: 429" in o.data.get("text/markdown", ""))
    assert re.fullmatch(r"\*assistant \(claude-sonnet-4-6\) is thinking… \(paced: 429, resuming in \d+\.\ds\)\*",
                        paced["text/markdown"])
    assert cap.outputs[-1].data["text/markdown"] == "**Error:** Cancelled."
    with capture_output() as cap:
        ip.run_line_magic("agent", "pacing")
    first, second = cap.stdout.splitlines()
    assert first.startswith("Pacing: paced: 429, resuming in")
    assert second == "429 (rate limited): 1 · 529 (overloaded): 0 · waited 0.0 s · concurrency 8 of 8 (0 in flight)"
