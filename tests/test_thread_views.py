"""DataFrames of threads and of one thread's turns, over a real ThreadStore file."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from claude_force_nb.core.errors import UnknownThreadError
from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.thread_history import turn_tokens
from claude_force_nb.store.threads import ThreadStore
from claude_force_nb.views.threads import THREAD_COLUMNS, THREADS_COLUMNS, thread_frame, threads_frame

MODEL = "claude-sonnet-4-6"


@pytest.fixture
def store(tmp_path):
    home = tmp_path / "home"
    with ThreadStore(Settings(data_dir=home, secrets_dir=home / "secrets")) as threads:
        yield threads


def utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_threads_frame_has_one_typed_row_per_thread_most_recent_first(store):
    store.add_turn("sales", "q1", "a1", agent="analyst", model=MODEL, usage=Usage(100, 20, 0, 0, 50),
                   cost_usd=0.01, created=1_700_000_000.0)
    store.add_turn("sales", "q2", "a2", agent="writer", model=MODEL, usage=Usage(10, 2), cost_usd=0.02,
                   created=1_700_000_060.0)
    store.add_turn("eda", "q", "a", agent="analyst", model="model-without-price", created=1_700_000_030.0)
    frame = threads_frame(store)
    assert list(frame.index) == ["sales", "eda"] and frame.index.name == "thread"
    assert list(frame.columns) == list(THREADS_COLUMNS) and dtypes(frame) == THREADS_COLUMNS
    sales = frame.loc["sales"]
    assert (sales["turns"], sales["total_tokens"]) == (2, 182)
    assert sales["history_tokens"] == turn_tokens("q1", "a1") + turn_tokens("q2", "a2")
    assert sales["cost_usd"] == pytest.approx(0.03)
    assert (sales["created"], sales["last_used"]) == (utc(1_700_000_000), utc(1_700_000_060))
    assert (sales["last_agent"], sales["last_model"]) == ("writer", MODEL)
    assert math.isnan(frame.loc["eda", "cost_usd"])                 # unknown price: NaN, not $0


def test_a_reset_thread_shows_no_agent(store):
    store.add_turn("t", "q", "a", agent="analyst", model=MODEL, cost_usd=0.5)
    store.reset("t")
    row = threads_frame(store).loc["t"]
    assert row["turns"] == 0 and row["cost_usd"] == 0.0 and pd.isna(row["last_agent"])


def test_thread_frame_has_one_typed_row_per_turn(store):
    store.add_turn("t", "first question", "first answer", agent="analyst", model=MODEL, usage=Usage(1, 2, 3, 4, 5),
                   cost_usd=0.25, cell_id="cell-1", notebook="q3.ipynb", created=1_700_000_000.0)
    store.add_turn("t", "second", "answer", agent="writer", model=MODEL, created=1_700_000_100.0)
    frame = thread_frame(store, "t")
    assert list(frame.index) == [1, 2] and frame.index.name == "turn" and str(frame.index.dtype) == "int64"
    assert list(frame.columns) == list(THREAD_COLUMNS) and dtypes(frame) == THREAD_COLUMNS
    first = frame.loc[1]
    assert (first["user"], first["assistant"], first["agent"]) == ("first question", "first answer", "analyst")
    assert [first[c] for c in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                               "cache_read_tokens")] == [1, 2, 3, 4, 5]
    assert first["history_tokens"] == turn_tokens("first question", "first answer")
    assert (first["cost_usd"], first["created"]) == (0.25, utc(1_700_000_000))
    assert (first["cell_id"], first["notebook"]) == ("cell-1", "q3.ipynb") and len(first["session_id"]) == 12
    second = frame.loc[2]
    assert math.isnan(second["cost_usd"]) and pd.isna(second["cell_id"]) and pd.isna(second["notebook"])


def test_empty_frames_keep_their_columns_and_dtypes(store):
    assert threads_frame(store).empty and dtypes(threads_frame(store)) == THREADS_COLUMNS
    store.add_turn("t", "q", "a", agent="analyst", model=MODEL)
    store.reset("t")
    frame = thread_frame(store, "t")
    assert frame.empty and dtypes(frame) == THREAD_COLUMNS and str(frame.index.dtype) == "int64"


def test_an_unknown_thread_is_named(store):
    store.add_turn("sales", "q", "a", agent="analyst", model=MODEL)
    with pytest.raises(UnknownThreadError, match=r"^Unknown thread 'sale'\. Did you mean 'sales'\?"):
        thread_frame(store, "sale")
