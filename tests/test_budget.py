"""The budget holds for any text, refuses amounts that are not budgets, and shows small ones."""

from __future__ import annotations

import math

import pytest

from claude_force_nb.core.errors import BudgetExceededError, InvalidInputError
from claude_force_nb.engine.limits import REQUEST_OVERHEAD_TOKENS, BudgetGuard, format_usd, input_token_bound

HAIKU = "claude-haiku-4-5"
OPUS = "claude-opus-4-6"


def test_the_input_bound_counts_every_utf8_byte():
    assert input_token_bound("abc", "de") == 5 + REQUEST_OVERHEAD_TOKENS
    assert input_token_bound("数" * 10) == 30 + REQUEST_OVERHEAD_TOKENS  # 3 bytes each: a rare ideograph can be 3 tokens
    assert input_token_bound("🙂") == 4 + REQUEST_OVERHEAD_TOKENS


def test_60000_cjk_characters_cannot_slip_past_a_small_budget(make_orch, server):
    # About one token a character on the real API: 60,000 of them spent $0.061 of a $0.05
    # budget when the check assumed 3 characters a token.
    orch = make_orch(budget_usd=0.05)
    with pytest.raises(BudgetExceededError, match=r"^Budget \$0\.05 would be exceeded: this call may cost up to \$0\.37"):
        orch.run_sync("assistant", "数" * 60_000, model=HAIKU)
    assert server.request_count == 0 and orch.budget.reserved_usd == 0


def test_calls_inside_the_budget_still_go_and_spend_stays_under_it(make_orch, server):
    orch = make_orch(budget_usd=0.05)
    for n in range(3):
        assert orch.run_sync("assistant", f"short question {n}", model=HAIKU, max_tokens=200).ok
    assert server.request_count == 3 and 0 < orch.budget.spent_usd <= 0.05


@pytest.mark.parametrize("amount", [math.nan, -5.0, math.inf, "5"])
def test_an_amount_that_is_not_a_budget_is_refused(amount):
    with pytest.raises(InvalidInputError, match=r"^budget_usd=.* is not a (budget|number)"):
        BudgetGuard(amount)  # type: ignore[arg-type]
    guard = BudgetGuard(1.0)
    with pytest.raises(InvalidInputError):
        guard.budget_usd = amount  # type: ignore[assignment]
    assert guard.budget_usd == 1.0


@pytest.mark.parametrize(
    "amount,shown",
    [(0, "$0.00"), (5, "$5.00"), (0.05, "$0.05"), (0.001, "$0.001"), (0.0125, "$0.0125"), (0.000001, "$0.000001"),
     (1 / 3, "$0.333"), (1234.5, "$1,234.50")],
)
def test_amounts_show_enough_digits(amount, shown):
    assert format_usd(amount) == shown


def test_a_small_budget_is_named_with_its_digits():
    with pytest.raises(BudgetExceededError, match=r"^Budget \$0\.001 would be exceeded: .* and \$0\.001 is left\."):
        BudgetGuard(0.001).reserve(0.01, HAIKU)


def test_run_many_rows_refused_by_the_budget_show_their_own_model(make_orch, server):
    orch = make_orch(budget_usd=0.0001)
    results = orch.run_many_sync([("assistant", "one", {"model": OPUS}), ("assistant", "two", {"model": HAIKU}),
                                  ("assistant", "three")])
    assert [(r.model, r.error_type) for r in results] == [
        (OPUS, "BudgetExceededError"), (HAIKU, "BudgetExceededError"), (orch.settings.default_model, "BudgetExceededError")]
    assert server.request_count == 0
