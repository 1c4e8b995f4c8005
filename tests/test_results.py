"""Results: Usage as the API reports it."""

from __future__ import annotations

from claude_force_nb.core.results import Usage


def test_usage_from_api_splits_cache_writes():
    u = Usage.from_api({"input_tokens": 5, "output_tokens": 6, "cache_creation_input_tokens": 30,
                        "cache_read_input_tokens": 7, "cache_creation": {"ephemeral_5m_input_tokens": 10,
                                                                         "ephemeral_1h_input_tokens": 20}})
    assert u == Usage(5, 6, 10, 20, 7) and u.total_input_tokens == 42
    assert Usage.from_api({"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 9}).cache_write_5m_tokens == 9
