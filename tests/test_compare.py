"""views/compare.py: the comparison table, the cache-entry filter, clipping text for a table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.schemas import OutputSchema
from claude_force_nb.views import reports
from claude_force_nb.views.compare import ALL, clip, clip_columns, comparison_frame, filter_entries


def test_comparison_frame_has_one_row_per_run_in_order():
    ok = AgentResult(agent="a", model="m1", text="answer", usage=Usage(10, 5, 2, 1, 3), cost_usd=0.25,
                     latency_s=1.5, cached=True)
    failed = AgentResult(agent="b", model="m2", text="", cost_usd=None, error="boom", error_type="api_error")
    frame = comparison_frame([ok, failed])
    assert list(frame.columns) == ["agent", "model", "text", "input_tokens", "output_tokens", "cost_usd",
                                   "latency_s", "cached", "error"]
    assert frame.iloc[0, :8].tolist() == ["a", "m1", "answer", 16, 5, 0.25, 1.5, True]
    assert pd.isna(frame.loc[0, "error"]) and pd.isna(frame.loc[1, "text"])  # missing, whatever pandas' string dtype
    assert frame.loc[1, "error"] == "boom" and math.isnan(frame.loc[1, "cost_usd"])


def test_schema_fields_become_typed_columns_after_the_text():
    from pydantic import BaseModel

    class Rating(BaseModel):
        label: str
        score: float
        votes: int
        text: str  # named like a run column: it must not hide the answer

    model_answer = Rating(label="good", score=2.0, votes=3, text="because")  # a whole float stays a float
    runs = [AgentResult(agent="a", model="m", text="{...}", data=model_answer),
            AgentResult(agent="b", model="m", text="{...}", data={"label": "bad", "score": 1.0, "votes": 7,
                                                                 "text": "why"}),
            AgentResult(agent="c", model="m", error="no", error_type="schema_mismatch")]
    frame = comparison_frame(runs, OutputSchema.from_spec(Rating))
    assert list(frame.columns[:7]) == ["agent", "model", "text", "label", "score", "votes", "data.text"]
    assert [str(frame[c].dtype) for c in ("label", "score", "votes", "data.text")] == [
        "string", "Float64", "Int64", "string"]
    whole = comparison_frame(runs[:1], OutputSchema.from_spec("score float, tags list[str]"))
    assert str(whole["score"].dtype) == "Float64" and whole["tags"].dtype == object  # typed by the schema, not the values
    assert frame["votes"].tolist()[:2] == [3, 7] and frame["votes"].isna().tolist() == [False, False, True]
    assert frame["text"].tolist()[:2] == ["{...}", "{...}"] and frame["data.text"].tolist()[:2] == ["because", "why"]


def test_comparison_frame_of_no_runs_is_empty_with_the_columns():
    frame = comparison_frame([])
    assert frame.empty and "cost_usd" in frame.columns


def entries_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": ["k1", "k2", "k3", "k4"],
            "agent": ["assistant", "sql-expert", "assistant", None],
            "model": ["claude-haiku-4-5", "claude-haiku-4-5", "claude-sonnet-4-6", "claude-sonnet-4-6"],
            "task": ["Median vs MEAN?", "Index a join", "unrelated", None],
            "answer": ["use the median", "add an index on median_id", "Mean is fine", "xyzzy"],
        },
        index=pd.Index(["v1:a", "v1:b", "v1:c", "v1:d"], name="cache_key"),
    )


@pytest.mark.parametrize(
    ("agent", "model", "text", "expected"),
    [
        (None, None, None, ["v1:a", "v1:b", "v1:c", "v1:d"]),
        (ALL, "", "  ", ["v1:a", "v1:b", "v1:c", "v1:d"]),
        ("assistant", ALL, "", ["v1:a", "v1:c"]),
        (ALL, "claude-haiku-4-5", None, ["v1:a", "v1:b"]),
        ("assistant", "claude-sonnet-4-6", None, ["v1:c"]),
        (None, None, "median", ["v1:a", "v1:b"]),   # task or answer, any case
        (None, None, "mean", ["v1:a", "v1:c"]),
        ("sql-expert", None, "MEAN", []),
        (None, None, "XYZ", ["v1:d"]),              # missing task is no match, answer still is
        ("nobody", None, None, []),
    ],
)
def test_filter_entries(agent, model, text, expected):
    frame = entries_frame()
    got = filter_entries(frame, agent, model, text)
    assert list(got.index) == expected
    pd.testing.assert_frame_equal(got, frame.loc[expected])


def test_filter_entries_on_an_empty_cache(orch):
    empty = reports.cache_contents(cache=orch.cache)
    assert filter_entries(empty, "assistant", None, "x").empty


@pytest.mark.parametrize(("text", "expected"), [("short", "short"), ("x" * 10, "x" * 10), ("x" * 11, "x" * 9 + "…"),
                                                (None, None), (3.5, 3.5)])
def test_clip(text, expected):
    assert clip(text, 10) == expected


def test_clip_columns_leaves_the_frame_and_other_columns_alone():
    frame = pd.DataFrame({"task": ["a" * 20, None], "answer": ["b" * 20, "ok"], "n": [1, 2]})
    shown = clip_columns(frame, ["task"], 5)
    assert shown["task"][0] == "aaaa…" and pd.isna(shown["task"][1])
    assert shown["answer"].tolist() == frame["answer"].tolist()
    assert frame["task"][0] == "a" * 20 and shown["n"].tolist() == [1, 2]
