"""Which turns a thread resends: token estimates, trimming to a budget, the cache breakpoint."""

from __future__ import annotations

import pytest

from claude_force_nb.store.thread_history import (
    TURN_OVERHEAD_TOKENS,
    Turn,
    estimate_tokens,
    history_messages,
    kept_turns,
    turn_tokens,
)


def make_turn(index: int, tokens: int) -> Turn:
    return Turn(index=index, user=f"q{index}", assistant=f"a{index}", agent="assistant", model="m",
                tokens=tokens, created=float(index), session_id="s")


def indexes(turns: list[Turn]) -> list[int]:
    return [turn.index for turn in turns]


@pytest.mark.parametrize(("text", "tokens"), [
    ("", 0), ("abc", 1), ("abcd", 2), ("x" * 300, 100),
    ("数据", 2),           # 3 UTF-8 bytes each: about one token per CJK character
    ("🙂", 2),             # 4 bytes
])
def test_estimate_is_one_token_per_three_utf8_bytes(text, tokens):
    assert estimate_tokens(text) == tokens


def test_turn_tokens_counts_both_messages_and_their_framing():
    assert turn_tokens("x" * 30, "y" * 3) == 10 + 1 + TURN_OVERHEAD_TOKENS


def test_everything_is_kept_when_it_fits():
    turns = [make_turn(i, 100) for i in range(1, 5)]
    assert indexes(kept_turns(turns, 400)) == [1, 2, 3, 4]
    assert kept_turns([], 0) == []


def test_oldest_turns_go_first_in_steps_of_half_the_budget():
    turns = [make_turn(i, 100) for i in range(1, 6)]          # 500 tokens, budget 400: 100 over
    # the cut is rounded up to 200 (half the budget): turns 1 and 2 go, 300 tokens stay
    assert indexes(kept_turns(turns, 400)) == [3, 4, 5]
    assert indexes(kept_turns(turns, 450)) == [4, 5]            # 50 over, cut 225: whole turns up to 300 go
    assert indexes(kept_turns(turns, 150)) == [5]               # 350 over, cut 375: four turns go
    assert sum(t.tokens for t in kept_turns(turns, 400)) <= 400


def test_the_first_kept_turn_stays_put_for_several_calls():
    """Appending turns one by one, the resent prefix changes only every few calls, so the
    prompt cache can serve it; it always fits the budget."""
    budget = 1000
    starts = []
    for n in range(1, 41):
        kept = kept_turns([make_turn(i, 100) for i in range(1, n + 1)], budget)
        size = sum(t.tokens for t in kept)
        assert min(100 * n, budget // 2) <= size <= budget and kept[-1].index == n
        starts.append(kept[0].index)
    changes = sum(1 for before, after in zip(starts, starts[1:]) if after != before)
    assert starts[:10] == [1] * 10 and changes == 6          # 40 calls, 6 moves of 5 turns
    assert starts[-1] == 31


def test_a_turn_larger_than_the_budget_is_not_sent():
    turns = [make_turn(1, 50), make_turn(2, 500)]
    assert kept_turns(turns, 400) == []
    assert kept_turns(turns, 0) == []


def test_messages_alternate_and_the_last_answer_carries_the_breakpoint():
    turns = [make_turn(1, 10), make_turn(2, 10)]
    assert history_messages(turns) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [{"type": "text", "text": "a2", "cache_control": {"type": "ephemeral"}}]},
    ]
    assert history_messages(turns, cache=False)[-1] == {"role": "assistant", "content": "a2"}
    assert history_messages([]) == []


def test_each_history_has_its_own_breakpoint_dict():
    first = history_messages([make_turn(1, 10)])
    first[-1]["content"][0]["cache_control"]["ttl"] = "1h"     # a caller editing its copy
    assert history_messages([make_turn(1, 10)])[-1]["content"][0]["cache_control"] == {"type": "ephemeral"}
