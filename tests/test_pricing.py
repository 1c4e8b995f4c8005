"""Pricing: exact costs from data/prices.json, user overrides, unknown models."""

from __future__ import annotations

import pytest

from claude_force_nb.core.errors import ConfigurationError
from claude_force_nb.core.pricing import PriceTable, UnknownModelWarning, cost_of
from claude_force_nb.core.results import Usage


@pytest.mark.parametrize(
    "model,usage,expected",
    [
        ("claude-sonnet-4-6", Usage(1_000_000, 0), 3.0),
        ("claude-sonnet-4-6", Usage(0, 1_000_000), 15.0),
        ("claude-sonnet-4-6", Usage(1000, 500, 100, 0, 2000), 0.011475),
        ("claude-opus-4-6", Usage(10, 20, 30, 40, 50), 0.0011625),
        ("claude-haiku-4-5-20251001", Usage(1234, 567), 0.004069),
        ("claude-opus-4-5-20251101", Usage(0, 0, 0, 1_000_000, 0), 10.0),
    ],
)
def test_cost_is_exact(model, usage, expected):
    assert cost_of(model, usage) == expected


def test_batch_is_half_price():
    assert cost_of("claude-sonnet-4-6", Usage(1000, 500), batch=True) == 0.00525


def test_unknown_model_is_none_with_one_warning():
    table = PriceTable.load()
    with pytest.warns(UnknownModelWarning, match="claude-nope"):
        assert table.cost("claude-nope", Usage(1, 1)) is None
    assert table.cost("claude-nope", Usage(1, 1)) is None  # no second warning (warnings are errors here)


def test_user_prices_override_and_add(tmp_path):
    override = tmp_path / "prices.json"
    override.write_text('{"models": {"claude-haiku-4-5": {"input": 2, "output": 10, "cache_write_5m": 2.5, '
                        '"cache_write_1h": 4, "cache_read": 0.2}, "my-proxy-model": {"input": 1, "output": 1, '
                        '"cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1}}}')
    table = PriceTable.load(override)
    assert table.cost("claude-haiku-4-5", Usage(1_000_000, 0)) == 2.0
    assert table.cost("my-proxy-model", Usage(500_000, 500_000)) == 1.0
    assert table.cost("claude-sonnet-4-6", Usage(1_000_000, 0)) == 3.0


def test_bad_price_file_names_the_problem(tmp_path):
    override = tmp_path / "prices.json"
    override.write_text('{"models": {"m": {"input": 1}}}')
    with pytest.raises(ConfigurationError, match="lacks output"):
        PriceTable.load(override)
