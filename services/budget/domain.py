"""Budget rules, pure: plan curve, execution rate, slip level, which snapshot wins, which alert.

No I/O here; the handlers load state, call these, and store what they return.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Level = Literal["ok", "warning", "critical"]
ONE_DP = Decimal("0.1")


@dataclass(frozen=True)
class PlanConfig:
    midyear_rate: Decimal = Decimal("60")  # 신속집행: share of 예산현액 spent by 30 June


@dataclass(frozen=True)
class SlipConfig:
    warning_gap: Decimal = Decimal("10")  # percentage points behind plan
    critical_gap: Decimal = Decimal("20")
    min_budget: int = 0  # 원; smaller programs never raise a slip alert


def execution_rate(spent: int, current_budget: int | None) -> Decimal | None:
    """집행률 = 지출액 / 예산현액, in % to 0.1 as the reports print it; None without a budget."""
    if not current_budget or current_budget <= 0:
        return None
    return (Decimal(spent) * 100 / current_budget).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def _interpolate(day: date, points: Sequence[tuple[date, Decimal]]) -> Decimal:
    """Linear by day between (date, cumulative %) points; flat after the last point."""
    prev_day, prev_rate = points[0]
    if day <= prev_day:
        return prev_rate
    for point_day, rate in points[1:]:
        if day <= point_day:
            span = (point_day - prev_day).days
            done = (day - prev_day).days
            return prev_rate + (rate - prev_rate) * Decimal(done) / Decimal(span)
        prev_day, prev_rate = point_day, rate
    return prev_rate


def plan_rate(as_of: date, fiscal_year: int, cfg: PlanConfig,
              monthly: Sequence[tuple[int, Decimal]] | None = None) -> Decimal:
    """Planned cumulative 집행률 (%) on `as_of`: the program's monthly plan (rate at each month's
    end) when it has one, else the default curve: 0 on 1 Jan, `midyear_rate` on 30 June, 100 on
    31 December. Dates outside the fiscal year clamp to its ends."""
    start = date(fiscal_year - 1, 12, 31)
    if monthly:
        points = [(start, Decimal(0))] + [
            (date(fiscal_year, m, calendar.monthrange(fiscal_year, m)[1]), rate) for m, rate in sorted(monthly)
        ]
    else:
        points = [(start, Decimal(0)), (date(fiscal_year, 6, 30), cfg.midyear_rate),
                  (date(fiscal_year, 12, 31), Decimal(100))]
    return _interpolate(as_of, points).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def slip_level(actual: Decimal | None, plan: Decimal, current_budget: int | None, cfg: SlipConfig) -> Level:
    if actual is None or current_budget is None or current_budget < max(cfg.min_budget, 1):
        return "ok"
    gap = plan - actual
    if gap > cfg.critical_gap:
        return "critical"
    if gap > cfg.warning_gap:
        return "warning"
    return "ok"


SnapshotDecision = Literal["apply", "stale", "same"]


def snapshot_decision(held_as_of: date | None, held_revision: int, as_of: date, revision: int) -> SnapshotDecision:
    """Cumulative snapshots: a newer as-of wins; the same as-of wins only as a higher revision
    (a correction); anything older is stale and must not overwrite."""
    if held_as_of is None or as_of > held_as_of:
        return "apply"
    if as_of == held_as_of:
        return "apply" if revision > held_revision else "same"
    return "stale"


@dataclass(frozen=True)
class ProgramBudget:
    """The numbers of one program for one fiscal year that the rules look at."""

    program_id: str
    fiscal_year: int
    title: str | None = None
    office: str | None = None
    division: str | None = None
    original: int | None = None  # None until a budget line arrived
    carried_over: int = 0
    supplementary: int = 0
    committed: int = 0
    spent: int = 0
    as_of: date | None = None
    revision: int = 0
    level: Level = "ok"

    @property
    def current_budget(self) -> int | None:
        if self.original is None:
            return None
        return self.original + self.carried_over + self.supplementary

    @property
    def rate(self) -> Decimal | None:
        return execution_rate(self.spent, self.current_budget)

    @property
    def commit_rate(self) -> Decimal | None:
        return execution_rate(self.committed, self.current_budget)


AlertChange = Literal["fire", "resolve"]


@dataclass(frozen=True)
class SlipEvaluation:
    budget: ProgramBudget
    plan: Decimal | None
    gap: Decimal | None
    change: AlertChange | None  # None: no state change, nothing to emit


def evaluate_slip(b: ProgramBudget, plan_cfg: PlanConfig, slip_cfg: SlipConfig,
                  monthly: Sequence[tuple[int, Decimal]] | None = None) -> SlipEvaluation:
    """New slip level for a program's current numbers; emits only on a change of level."""
    if b.as_of is None or b.rate is None:
        return SlipEvaluation(b, None, None, None)
    plan = plan_rate(b.as_of, b.fiscal_year, plan_cfg, monthly)
    gap = plan - b.rate
    level = slip_level(b.rate, plan, b.current_budget, slip_cfg)
    change: AlertChange | None = None
    if level != b.level:
        change = "resolve" if level == "ok" else "fire"
    return SlipEvaluation(replace(b, level=level), plan, gap, change)


def slip_summary(e: SlipEvaluation) -> str:
    b = e.budget
    name = b.title or b.program_id
    if e.change == "resolve":
        return f"{name} 집행률 {b.rate}%로 계획({e.plan}%) 대비 정상 범위로 회복 ({b.as_of} 기준)"
    return f"{name} 집행률 {b.rate}%, 계획 {e.plan}% 대비 {e.gap}%p 부진 ({b.as_of} 기준)"
