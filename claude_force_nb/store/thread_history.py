"""What a conversation thread holds, and which of its turns the next call resends.

A thread is a list of turns; a turn is one exchange (the user's message, the assistant's
answer) with what it cost. The next call in a thread sends older turns as the API's
``messages`` before its own user message. This module decides which turns fit a token
budget and how they are marked for Anthropic prompt caching; it touches no database.

Token sizes are estimated, never counted (``count_tokens`` costs a round trip): one token
per three UTF-8 bytes, like the engine's rate-limit estimate of three characters per
token for English, and no lower for text whose characters take more bytes (a CJK
character, three bytes, is about one token). Real English text averages about four
characters per token, so a budget is rarely exceeded.

Trimming drops the oldest turns first. Once a thread outgrows its budget, the first kept
turn moves in steps of half the budget rather than one turn per call: the resent prefix
then stays the same for several calls, so the prompt cache can serve it (a prefix that
changes on every call is written to the cache each time at 1.25x and never read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.results import Usage

__all__ = [
    "CACHE_BREAKPOINT",
    "DEFAULT_HISTORY_TOKENS",
    "TURN_OVERHEAD_TOKENS",
    "ThreadSummary",
    "Turn",
    "estimate_tokens",
    "history_messages",
    "kept_turns",
    "turn_tokens",
]

# A suggested default history budget (estimated tokens, about 6-10 analysis turns).
DEFAULT_HISTORY_TOKENS = 8_000
# Role markers and message framing the API adds around each turn's two messages.
TURN_OVERHEAD_TOKENS = 8
BYTES_PER_TOKEN = 3
# The one prompt-cache breakpoint a thread's history uses (a request may carry four;
# the system prompt and the tool loop may use others).
CACHE_BREAKPOINT: dict[str, str] = {"type": "ephemeral"}


def estimate_tokens(text: str) -> int:
    """A generous token count for ``text``: one token per three UTF-8 bytes, rounded up."""
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / BYTES_PER_TOKEN)


def turn_tokens(user: str, assistant: str) -> int:
    """The estimated size of one turn when it is resent as history."""
    return estimate_tokens(user) + estimate_tokens(assistant) + TURN_OVERHEAD_TOKENS


@dataclass(frozen=True)
class Turn:
    """One exchange of a thread, as stored.

    ``index`` is the turn's place in the thread (1 = oldest); ``cell_id`` the notebook cell
    that made it, when the front end sent one (re-running that cell replaces this turn);
    ``tokens`` the estimated size it adds to the history (``turn_tokens``); ``created`` a
    unix time (the latest run, for a replaced turn).
    """

    index: int
    user: str
    assistant: str
    agent: str
    model: str
    tokens: int
    created: float
    session_id: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cell_id: str | None = None
    notebook: str | None = None


@dataclass(frozen=True)
class ThreadSummary:
    """One thread at a glance: ``history_tokens`` is the estimated size of all its turns
    (what resending it whole would take), ``total_tokens`` what its turns were billed for
    (input, cache and output), ``cost_usd`` their cost (None when a turn's model had no
    price). Times are unix times; ``last_used`` is the latest turn, reset or creation."""

    name: str
    turns: int
    history_tokens: int
    total_tokens: int
    cost_usd: float | None
    created: float
    last_used: float
    last_agent: str | None
    last_model: str | None


def kept_turns(turns: Sequence[Turn], budget_tokens: int) -> list[Turn]:
    """The newest turns that fit ``budget_tokens``, oldest first (see the module docstring).

    When everything fits, everything is kept. Otherwise the turns dropped from the front
    are the fewest whose sizes reach ``need`` rounded up to a multiple of half the budget,
    where ``need`` is how far the whole thread is over budget.
    """
    total = sum(turn.tokens for turn in turns)
    if total <= budget_tokens:
        return list(turns)
    step = max(1, budget_tokens // 2)
    cut = math.ceil((total - budget_tokens) / step) * step
    dropped = 0
    for start, turn in enumerate(turns):
        if dropped >= cut:
            return list(turns[start:])
        dropped += turn.tokens
    return []


def history_messages(turns: Sequence[Turn], *, cache: bool = True) -> list[dict[str, Any]]:
    """``turns`` as API messages (user, assistant, user, ...). With ``cache``, the last
    assistant message carries the prompt-cache breakpoint, so the next call reads the
    whole prefix (system, tools and these turns) from the cache instead of paying for it."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.user})
        messages.append({"role": "assistant", "content": turn.assistant})
    if cache and messages:
        last = messages[-1]
        last["content"] = [{"type": "text", "text": last["content"], "cache_control": dict(CACHE_BREAKPOINT)}]
    return messages
