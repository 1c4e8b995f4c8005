"""Tests for claude_force_nb.testing.clock.ManualClock."""

from __future__ import annotations

import pytest

from claude_force_nb.testing import ManualClock


def test_manual_clock_moves_only_when_told():
    clock = ManualClock()
    assert clock() == 1_800_000_000.0 == clock()
    assert clock.advance(1.5) == 1_800_000_001.5 == clock()
    clock.set(5.0)
    assert clock() == 5.0
    assert repr(clock) == "ManualClock(5.000)"
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-0.1)
    assert ManualClock(start=42)() == 42.0
