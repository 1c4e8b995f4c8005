"""The pandas view of this home's Message Batches (``%agent batches``).

Returns a DataFrame with fixed dtypes, also when there is no batch; never displays.
pandas is imported inside the function so ``%load_ext`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BATCH_COLUMNS", "batches_frame"]

TIME = "datetime64[ns, UTC]"
# one row per batch, newest first, indexed by its id; "rows" = requests in it
BATCH_COLUMNS: dict[str, str] = {
    "created": TIME, "state": "string", "rows": "int64", "processing": "int64", "succeeded": "int64",
    "errored": "int64", "canceled": "int64", "expired": "int64", "cost_usd": "float64", "agent": "string",
    "model": "string", "collected": "bool", "cancel_requested": "bool", "ended": TIME,
}


def batches_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``records`` (``engine.batching.batch_list``: dicts of store.batches.BatchRecord) as a
    frame: created, state, the request counts, cost_usd so far, agent, model, rows, whether
    its answers are collected; indexed by batch id."""
    import pandas as pd

    data = {}
    for name, dtype in BATCH_COLUMNS.items():
        values = [record["requests" if name == "rows" else name] for record in records]
        if dtype == TIME:
            data[name] = pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True).astype(TIME)
        else:
            data[name] = pd.Series(values, dtype=object).astype(dtype)
    frame = pd.DataFrame(data)
    frame.index = pd.Index([record["id"] for record in records], name="id", dtype="string")
    return frame
