from datetime import date
from decimal import Decimal

import pytest

from services.budget.domain import (
    PlanConfig,
    ProgramBudget,
    SlipConfig,
    evaluate_slip,
    execution_rate,
    plan_rate,
    slip_level,
    snapshot_decision,
)

CFG = PlanConfig()


@pytest.mark.parametrize(("day", "expected"), [
    (date(2025, 1, 1), Decimal("0.3")),  # 60 * 1/181
    (date(2025, 1, 31), Decimal("10.3")),  # 60 * 31/181
    (date(2025, 6, 30), Decimal("60.0")),
    (date(2025, 12, 31), Decimal("100.0")),
    (date(2025, 9, 30), Decimal("80.0")),  # 60 + 40 * 92/184
    (date(2026, 3, 1), Decimal("100.0")),
    (date(2024, 11, 1), Decimal("0.0")),
])
def test_default_plan_curve(day, expected):
    assert plan_rate(day, 2025, CFG) == expected


def test_monthly_plan_overrides_the_default():
    monthly = [(3, Decimal("30")), (6, Decimal("50")), (12, Decimal("100"))]
    assert plan_rate(date(2025, 3, 31), 2025, CFG, monthly) == Decimal("30.0")
    assert plan_rate(date(2025, 5, 15), 2025, CFG, monthly) == Decimal("39.9")  # 30 + 20*45/91


def test_execution_rate_rounds_like_the_reports():
    assert execution_rate(3_032_947, 21_358_000) == Decimal("14.2")
    assert execution_rate(1, 0) is None
    assert execution_rate(5, None) is None


@pytest.mark.parametrize(("actual", "plan", "level"), [
    (Decimal("50"), Decimal("55"), "ok"), (Decimal("45"), Decimal("55"), "ok"),
    (Decimal("44.9"), Decimal("55"), "warning"), (Decimal("35"), Decimal("55"), "warning"),
    (Decimal("34.9"), Decimal("55"), "critical"),
])
def test_slip_levels_at_the_gap_boundaries(actual, plan, level):
    assert slip_level(actual, plan, 1_000_000, SlipConfig()) == level


def test_small_programs_never_slip():
    assert slip_level(Decimal(0), Decimal(60), 999, SlipConfig(min_budget=1000)) == "ok"


@pytest.mark.parametrize(("held", "rev", "new", "new_rev", "decision"), [
    (None, 0, date(2025, 1, 31), 0, "apply"),
    (date(2025, 1, 31), 0, date(2025, 2, 28), 0, "apply"),
    (date(2025, 2, 28), 0, date(2025, 1, 31), 5, "stale"),
    (date(2025, 1, 31), 0, date(2025, 1, 31), 0, "same"),
    (date(2025, 1, 31), 0, date(2025, 1, 31), 1, "apply"),
    (date(2025, 1, 31), 2, date(2025, 1, 31), 1, "same"),
])
def test_which_snapshot_wins(held, rev, new, new_rev, decision):
    assert snapshot_decision(held, rev, new, new_rev) == decision


def _budget(spent: int, level: str = "ok", as_of: date = date(2025, 3, 31)) -> ProgramBudget:
    return ProgramBudget("P", 2025, title="서울형 R&D 지원", original=1_000_000, spent=spent,
                         as_of=as_of, level=level)  # type: ignore[arg-type]


#: The level state machine on its own: default-curve gaps judged from 1 January, any amount.
JUDGE_ALL = SlipConfig(default_from=(1, 1), default_min_gap_amount=0)


def test_fires_once_per_change_of_level_and_recovers():
    # plan on 31 March: 60*90/181 = 29.8%
    first = evaluate_slip(_budget(50_000), CFG, JUDGE_ALL)
    assert (first.budget.level, first.change) == ("critical", "fire")
    again = evaluate_slip(_budget(60_000, "critical"), CFG, JUDGE_ALL)
    assert again.change is None
    better = evaluate_slip(_budget(150_000, "critical"), CFG, JUDGE_ALL)
    assert (better.budget.level, better.change) == ("warning", "fire")
    back = evaluate_slip(_budget(250_000, "warning"), CFG, JUDGE_ALL)
    assert (back.budget.level, back.change) == ("ok", "resolve")
    assert back.gap == Decimal("4.8")


def test_no_budget_no_alert():
    b = ProgramBudget("P", 2025, spent=10, as_of=date(2025, 3, 31))
    assert evaluate_slip(b, CFG, SlipConfig()).change is None
