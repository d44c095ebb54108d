"""The deeper budget rules, pure: over-execution, year-end projection, excluded categories,
configurable plan curve, and rollups."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.budget.domain import (
    Line,
    PlanConfig,
    ProgramBudget,
    RuleConfig,
    SlipConfig,
    YearEndConfig,
    evaluate,
    month_day,
    monthly_plan,
    over_level,
    plan_rate,
    projected_year_end,
    rollup,
)

B = 1_000_000_000


def prog(spent: int, committed: int | None = None, as_of: date = date(2025, 9, 30), **kw: object) -> ProgramBudget:
    return ProgramBudget("P", 2025, title="사업", original=B, spent=spent,
                         committed=spent if committed is None else committed, as_of=as_of, **kw)  # type: ignore[arg-type]


def test_plan_curve_midyear_date_and_rate_are_configurable():
    cfg = PlanConfig(midyear_rate=Decimal("58"), midyear=month_day("06-30"))
    assert plan_rate(date(2025, 6, 30), 2025, cfg) == Decimal("58.0")
    early = PlanConfig(midyear=month_day("05-31"))
    assert plan_rate(date(2025, 5, 31), 2025, early) == Decimal("60.0")
    assert [m for m, _ in monthly_plan(2025, PlanConfig())] == list(range(1, 13))
    assert monthly_plan(2025, PlanConfig())[11] == (12, Decimal("100.0"))
    with pytest.raises(ValueError):
        month_day("13-01")


def test_excluded_categories_have_no_plan_and_an_open_slip_resolves():
    cfg = RuleConfig(plan=PlanConfig(excluded=frozenset({"기본경비"})))
    b = ProgramBudget("P", 2025, title="기본경비", original=B, spent=0, as_of=date(2025, 3, 31), level="warning")
    ev = evaluate(b, cfg)
    assert ev.plan is None and ev.budget.level == "ok"
    assert [(c.rule, c.change) for c in ev.changes] == [("execution_slipped", "resolve")]


@pytest.mark.parametrize(("spent", "committed", "level"), [
    (B, B, "ok"), (B + 1, B, "critical"), (10, B + 1, "critical"), (0, 0, "ok"),
])
def test_over_execution_on_either_basis(spent, committed, level):
    assert over_level(prog(spent, committed)) == level


def test_projection_uses_the_recent_pace_not_the_whole_year():
    cfg = YearEndConfig()
    # 60% by 30 June, only +5%p over the 60 days to 30 Sept: about 12.5%p more by 31 Dec.
    history = [(date(2025, 6, 30), 600_000_000), (date(2025, 8, 1), 620_000_000)]
    b = prog(650_000_000)
    assert projected_year_end(b, history, cfg) == Decimal("69.6")  # anchor 1 Aug (within 60..105 days)
    # Without any snapshot in the look-back window, the pace since 1 January is used.
    assert projected_year_end(b, [], cfg) == Decimal("86.9")  # 65% × 365/273


def test_year_end_risk_only_after_the_start_date_and_above_min_budget():
    cfg = RuleConfig()
    early = evaluate(prog(300_000_000, as_of=date(2025, 8, 31)), cfg)
    assert early.budget.year_end_level == "ok" and early.projected is not None
    late = evaluate(prog(300_000_000), cfg)
    assert late.budget.year_end_level == "critical"
    assert ("year_end_risk", "fire") in [(c.rule, c.change) for c in late.changes]
    small = evaluate(prog(300_000_000), RuleConfig(slip=SlipConfig(min_budget=B + 1)))
    assert small.budget.year_end_level == "ok" and small.budget.level == "ok"
    fine = evaluate(prog(900_000_000, year_end_level="warning"), cfg)
    assert [(c.rule, c.change) for c in fine.changes] == [("year_end_risk", "resolve")]


def test_rules_fire_independently_and_only_on_change():
    cfg = RuleConfig()
    first = evaluate(prog(100_000_000, committed=B + 5), cfg)
    assert {c.rule for c in first.changes} == {"execution_slipped", "over_execution", "year_end_risk"}
    again = evaluate(first.budget, cfg)
    assert again.changes == []


def test_rollup_by_division_office_and_total():
    lines = [
        Line("경제실", "가과", 1_000, 0, 0, 200, 100, Decimal("50")),
        Line("경제실", "가과", 3_000, 500, -500, 0, 0, Decimal("10")),
        Line("경제실", "나과", 2_000, 0, 0, 2_000, 1_000, None),  # no plan (excluded)
    ]
    divisions, offices, total = rollup(lines)
    ga = divisions[("경제실", "가과")]
    assert (ga.programs, ga.current, ga.spent, ga.balance, ga.rate, ga.commit_rate) == \
        (2, 4_000, 100, 3_900, Decimal("2.5"), Decimal("5.0"))
    assert ga.plan == Decimal("20.0")  # (50×1000 + 10×3000) / 4000
    assert ga.gap == Decimal("17.5")
    assert divisions[("경제실", "나과")].plan is None and divisions[("경제실", "나과")].gap is None
    assert offices["경제실"].current == total.current == 6_000 and total.rate == Decimal("18.3")
    assert total.gap == Decimal("17.5")  # planned programs only
