"""The only place prices live: ``cost_of(model, usage, batch=False)``.

Prices are USD per million tokens, read from ``data/prices.json`` and optionally
overridden by ``prices.json`` in the data directory (same shape; models merge by id).
Arithmetic is done in Decimal so costs are exact to the token; an unknown model costs
``None`` and warns once — never a silent guess.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import warnings
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .results import Usage

__all__ = ["PriceTable", "UnknownModelWarning", "cost_of", "price_table"]

log = logging.getLogger(__name__)
PER_TOKEN = Decimal(1_000_000)
FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_DATED = re.compile(r"^(?P<base>.+?)-(?P<date>\d{8})$")


class UnknownModelWarning(UserWarning):
    """A model without a price: its cost is recorded as unknown (None / NaN)."""


class PriceTable:
    """Per-model prices with alias and dated-id resolution."""

    def __init__(self, models: dict[str, dict[str, Any]], aliases: dict[str, str] | None = None) -> None:
        self.models = {name: self._checked(name, row) for name, row in models.items()}
        self.aliases = dict(aliases or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _checked(name: str, row: dict[str, Any]) -> dict[str, Decimal]:
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise ConfigurationError(
                f"Price row for {name!r} lacks {', '.join(missing)}: "
                f"give all of {', '.join(FIELDS)} (USD per million tokens)."
            )
        return {f: Decimal(str(row[f])) for f in FIELDS}

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        """Built-in prices merged with the user's override file, if present."""
        data = json.loads(resources.files("claude_force_nb").joinpath("data/prices.json").read_text("utf-8"))
        models, aliases = dict(data["models"]), dict(data.get("aliases", {}))
        if override is not None and Path(override).is_file():
            try:
                extra = json.loads(Path(override).read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"Cannot read prices from {override}: {exc}. Fix or remove the file.") from exc
            models.update(extra.get("models", {}))
            aliases.update(extra.get("aliases", {}))
        return cls(models, aliases)

    def resolve(self, model: str) -> str | None:
        """The priced id for ``model`` (aliases and -YYYYMMDD snapshots map to their base)."""
        if model in self.models:
            return model
        if model in self.aliases:
            return self.aliases[model]
        if (m := _DATED.match(model)) and m["base"] in self.models:
            return m["base"]
        return None

    def prices(self, model: str) -> dict[str, Decimal] | None:
        base = self.resolve(model)
        return self.models.get(base) if base else None

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        p = self.prices(model)
        if p is None:
            with self._lock:
                first = model not in self._warned
                self._warned.add(model)
            if first:
                warnings.warn(
                    f"No price for model {model!r}: its cost is recorded as unknown. "
                    f"Add it to prices.json in the claude-force-nb data directory.",
                    UnknownModelWarning,
                    stacklevel=3,
                )
            return None
        total = (
            p["input"] * usage.input_tokens
            + p["output"] * usage.output_tokens
            + p["cache_write_5m"] * usage.cache_write_5m_tokens
            + p["cache_write_1h"] * usage.cache_write_1h_tokens
            + p["cache_read"] * usage.cache_read_tokens
        ) / PER_TOKEN
        if batch:
            total /= 2
        return float(total)

    def worst_case(self, model: str, input_tokens: int, max_tokens: int) -> float | None:
        """Upper bound for a call: every input token at the dearest input rate, plus max_tokens out."""
        p = self.prices(model)
        if p is None:
            return None
        top_input = max(p["input"], p["cache_write_5m"], p["cache_write_1h"])
        return float((top_input * input_tokens + p["output"] * max_tokens) / PER_TOKEN)


_tables: dict[Path | None, PriceTable] = {}
_tables_lock = threading.Lock()


def price_table(override: Path | None = None) -> PriceTable:
    """The process-wide table for an override path (loaded once)."""
    with _tables_lock:
        if override not in _tables:
            _tables[override] = PriceTable.load(override)
        return _tables[override]


def cost_of(model: str, usage: Usage, batch: bool = False, *, override: Path | None = None) -> float | None:
    """Exact USD cost of ``usage`` on ``model``; None (and one warning) if it has no price."""
    return price_table(override).cost(model, usage, batch=batch)
