"""pandas views of the ledger and the cache. Functions return DataFrames; they never display.

pandas is imported inside each function so ``%load_ext claude_force_nb`` stays fast.

While the ledger's file cannot be written (a read-only home, a full disk), the frames include
the rows it keeps in memory (negative ids), and ``frame.attrs["note"]`` says what is not
saved and why (``styled`` shows it as the caption); ``attrs["persistence"]`` has the figures.

``scope="team"`` reads the team ledger stream on Redis instead (``store.team_ledger``): every
member's rows, with ``user`` and ``host`` columns, indexed by each row's stable ``uid``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..store.cache import ENTRY_COLUMNS, ResponseCache
from ..store.ledger import COLUMNS as LEDGER_COLUMNS
from ..store.team_ledger import TEAM_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from ..store.ledger import Ledger

__all__ = ["cache_contents", "costs", "runs", "stats", "styled"]

SCOPES = ("me", "team")


def _dtypes(columns: dict[str, type], index: str) -> dict[str, str]:
    return {
        name: "datetime64[ns, UTC]" if name == "ts" else "category" if name in ("agent", "model", "user", "host")
        else {int: "int64", float: "float64", bool: "bool", str: "string"}[kind]
        for name, kind in columns.items() if name != index
    }


# dtypes of runs(), derived from the ledger's one description of its table (id is the index)
RUN_COLUMNS = _dtypes(LEDGER_COLUMNS, "id")
TEAM_RUN_COLUMNS = _dtypes(TEAM_COLUMNS, "uid")       # runs(scope="team"), indexed by uid
GROUPINGS = ("agent", "model", "day", "session")
TEAM_GROUPINGS = ("user", *GROUPINGS)
TOTAL = "TOTAL"


def _read_ledger(ledger: Ledger | None, **filters: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, status) of ``ledger``, or of the default one (opened and closed here)."""
    from ..store.ledger import Ledger

    owned = ledger is None
    ledger = ledger if ledger is not None else Ledger(Settings.from_env())
    try:
        return ledger.rows(**filters), ledger.status()
    finally:
        if owned:
            ledger.close()


def _read_team(ledger: Ledger | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, status) of the team stream of ``ledger`` (or of the default one)."""
    from ..store.ledger import Ledger

    owned = ledger is None
    ledger = ledger if ledger is not None else Ledger(Settings.from_env())
    try:
        if ledger.team is None:
            raise ConfigurationError("scope='team' needs the team tier: set CLAUDE_FORCE_REDIS_URL "
                                     "(or Settings.redis_url) and the team's CLAUDE_FORCE_CACHE_SECRET.")
        ledger.flush()                  # this user's rows not sent yet go first
        return ledger.team.rows(), {"persistent": True, **ledger.team.status()}
    finally:
        if owned:
            ledger.close()


def _note(status: dict[str, Any]) -> str | None:
    """One line on what the ledger could not save, or None when everything is saved."""
    if status.get("persistent", True):
        return None
    dropped = status.get("dropped_rows", 0)
    lost = f"; {dropped:,} older ones were dropped" if dropped else ""
    return (f"Not saved to {status.get('path')} ({status.get('reason')}): {status.get('unsaved_rows', 0):,} "
            f"calls are kept in memory (negative ids) and written when it can be written again{lost}.")


def _annotate(frame: pd.DataFrame, status: dict[str, Any]) -> pd.DataFrame:
    frame.attrs["persistence"] = dict(status)
    if note := _note(status):
        frame.attrs["note"] = note
    return frame


def runs(
    since: datetime | float | str | None = None,
    agent: str | None = None,
    model: str | None = None,
    session: str | None = None,
    *,
    scope: str = "me",
    ledger: Ledger | None = None,
) -> pd.DataFrame:
    """One row per ledger call (hits, misses, failures), oldest first, indexed by id, with the
    dtypes of RUN_COLUMNS (flags as bool, agent and model as categories, ts in UTC).

    ``scope="team"``: every team member's calls from the team stream, indexed by uid, with
    ``user`` and ``host`` too (TEAM_RUN_COLUMNS)."""
    import pandas as pd

    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r} is not a scope: use 'me' (this home's ledger) or 'team' (the team stream).")
    if isinstance(since, str):
        since = pd.Timestamp(since, tz="UTC").to_pydatetime()
    if scope == "me":
        rows, status = _read_ledger(ledger, since=since, agent=agent, model=model, session=session)
        return _annotate(_typed(rows, LEDGER_COLUMNS, RUN_COLUMNS, "id"), status)
    rows, status = _read_team(ledger)
    frame = _typed(rows, TEAM_COLUMNS, TEAM_RUN_COLUMNS, "uid")
    if since is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(since.timestamp() if isinstance(since, datetime) else since,
                                                  unit="s", tz="UTC")]
    for column, value in (("agent", agent), ("model", model), ("session_id", session)):
        if value is not None:
            frame = frame[frame[column] == value]
    return _annotate(frame, status)


def _typed(rows: list[dict[str, Any]], columns: dict[str, type], dtypes: dict[str, str], index: str) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    frame["ts"] = pd.to_datetime(frame["ts"].astype("float64"), unit="s", utc=True).astype("datetime64[ns, UTC]")
    for column, dtype in dtypes.items():
        if column != "ts":
            frame[column] = frame[column].astype(dtype)
    return frame.set_index(index)


def _group_key(frame: pd.DataFrame, by: str) -> pd.Series:
    groupings = TEAM_GROUPINGS if "user" in frame.columns else GROUPINGS
    if by not in groupings:
        raise ValueError(f"by={by!r} is not a grouping: use one of {', '.join(groupings)}.")
    if by == "day":
        return frame["ts"].dt.strftime("%Y-%m-%d")
    if by == "session":
        return frame["session_id"].astype(str)
    return frame[by].astype(str)


def costs(by: str = "agent", since: Any = None, *, scope: str = "me", ledger: Ledger | None = None) -> pd.DataFrame:
    """Calls, cache hits, tokens, cost and savings per agent/model/day/session, plus a TOTAL row.

    ``unpriced`` counts calls whose model has no price (their cost is unknown, not zero).
    ``scope="team"``: the whole team's, from the team stream; ``by="user"`` groups by member.
    """
    import pandas as pd

    frame = runs(since=since, scope=scope, ledger=ledger)
    status = frame.attrs["persistence"]
    key = _group_key(frame, by).rename(by)
    frame = frame.assign(
        calls=1,
        cached_calls=frame["cached"].astype("int64"),
        cache_write_tokens=frame["cache_write_5m_tokens"] + frame["cache_write_1h_tokens"],
        unpriced=(frame["cost_usd"].isna() & frame["ok"]).astype("int64"),
    )
    sums = ["calls", "cached_calls", "input_tokens", "output_tokens", "cache_write_tokens",
            "cache_read_tokens", "cost_usd", "saved_usd", "unpriced"]
    table = frame.groupby(key, observed=True)[sums].sum(min_count=0)
    table.loc[TOTAL] = table.sum(numeric_only=True)
    table["hit_rate"] = (table["cached_calls"] / table["calls"]).where(table["calls"] > 0, 0.0)
    columns = ["calls", "cached_calls", "hit_rate", "input_tokens", "output_tokens", "cache_write_tokens",
               "cache_read_tokens", "cost_usd", "saved_usd", "unpriced"]
    table = table[columns].astype({c: "int64" for c in columns if c not in ("hit_rate", "cost_usd", "saved_usd")})
    table["cost_usd"] = table["cost_usd"].round(10)
    table["saved_usd"] = table["saved_usd"].round(10)
    table.index = pd.Index(table.index, name=by)
    return _annotate(table, status)


def stats(by: str = "agent", *, ledger: Ledger | None = None) -> pd.DataFrame:
    """Calls, error rate, latency p50/p95/max, output tokens per second, retries, and what
    pacing cost: ``rate_limited`` (429s met) and ``overloaded`` (529s met), summed per group, and
    ``mean_wait_s``, the mean seconds a call waited for pacing or retry-after (calls wait at the
    same time, so a sum would count a pause once per waiting call)."""
    import pandas as pd

    frame = runs(ledger=ledger)
    key = _group_key(frame, by).rename(by)
    live = frame[~frame["cached"] & frame["ok"] & (frame["latency_s"] > 0)]
    grouped = frame.groupby(key, observed=True)
    table = pd.DataFrame({
        "calls": grouped.size(),
        "errors": grouped["ok"].apply(lambda s: int((~s).sum())),
        "latency_p50_s": grouped["latency_s"].quantile(0.5),
        "latency_p95_s": grouped["latency_s"].quantile(0.95),
        "latency_max_s": grouped["latency_s"].max(),
        "retries": grouped["attempts"].apply(lambda s: int((s - 1).clip(lower=0).sum())),
        "rate_limited": grouped["rate_limited"].sum(),
        "overloaded": grouped["overloaded"].sum(),
        "mean_wait_s": grouped["waited_s"].mean(),
    })
    live_key = key.loc[live.index]
    out_per_s = live["output_tokens"].groupby(live_key).sum() / live["latency_s"].groupby(live_key).sum()
    table["tokens_per_s"] = out_per_s.reindex(table.index)
    table["error_rate"] = table["errors"] / table["calls"]
    table.index = pd.Index(table.index, name=by)
    table = table[["calls", "errors", "error_rate", "latency_p50_s", "latency_p95_s", "latency_max_s",
                   "tokens_per_s", "retries", "rate_limited", "overloaded", "mean_wait_s"]]
    counts = {name: "int64" for name in ("calls", "errors", "retries", "rate_limited", "overloaded")}
    return _annotate(table.astype({**counts, "mean_wait_s": "float64"}), frame.attrs["persistence"])


def cache_contents(*, cache: ResponseCache | None = None) -> pd.DataFrame:
    """The entries ``get`` would serve, most recent first, indexed by full cache key.

    Columns: key (12-char prefix), agent, model, created, expires (datetime64[ns, UTC]), size,
    hits, cost_usd (NaN: unknown price), task and answer (first lines), then age and ttl_left
    (timedeltas from now)."""
    import pandas as pd

    owned = cache is None
    cache = cache or ResponseCache(Settings.from_env())
    try:
        rows = cache.entries()
    finally:
        if owned:
            cache.close()

    def column(name: str) -> pd.Series:
        values = [row[name] for row in rows]
        if name in ("created", "expires"):
            seconds = pd.Series(values, dtype="float64")
            return pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")
        return pd.Series(values, dtype={int: "int64", float: "float64", str: str}[ENTRY_COLUMNS[name]])

    keys = [row["cache_key"] for row in rows]
    frame = pd.DataFrame({
        "key": pd.Series([key[:12] for key in keys], dtype=str),
        **{name: column(name) for name in ENTRY_COLUMNS if name != "cache_key"},
    })
    frame.index = pd.Index(keys, dtype=str, name="cache_key")
    now = pd.Timestamp.now(tz="UTC")
    frame["age"] = now - frame["created"]
    frame["ttl_left"] = frame["expires"] - now
    return frame


def styled(frame: pd.DataFrame) -> Any:
    """A pandas Styler: currency and percentage formats, the TOTAL row in bold."""
    formats = {c: "${:,.4f}" for c in frame.columns if c.endswith("_usd")}
    formats.update({c: "{:.1%}" for c in frame.columns if c.endswith("_rate")})
    formats.update({c: "{:.2f}" for c in frame.columns if c.endswith("_s") or c == "tokens_per_s"})
    styler = frame.style.format(formats, na_rep="?")
    if note := frame.attrs.get("note"):
        styler = styler.set_caption(note)
    if TOTAL in frame.index:
        styler = styler.apply(lambda row: ["font-weight: bold" if row.name == TOTAL else ""] * len(row), axis=1)
    return styler
