"""Budget rules, pure: plan curve, execution rates, which snapshot wins, and the three alert
rules (집행 부진, 초과 집행, 불용 위험) as state machines that emit only on a change of state.

No I/O here; the service loads state, calls these, and stores what they return.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Literal

Level = Literal["ok", "warning", "critical"]
ONE_DP = Decimal("0.1")


def month_day(text: str) -> tuple[int, int]:
    """"06-30" -> (6, 30), as the settings spell fixed dates of every fiscal year."""
    month, day = (int(p) for p in text.split("-"))
    date(2024, month, day)  # validates (2024 is a leap year, so 02-29 passes)
    return month, day


def in_year(year: int, md: tuple[int, int]) -> date:
    month, day = md
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class PlanConfig:
    midyear_rate: Decimal = Decimal("60")  # 신속집행: share of 예산현액 spent by the mid-year date
    midyear: tuple[int, int] = (6, 30)
    #: categories (or exact titles, for lines that carry none) with no plan: 기본경비, transfers.
    excluded: frozenset[str] = frozenset()

    def excludes(self, category: str | None, title: str | None) -> bool:
        return bool(self.excluded) and (category in self.excluded or title in self.excluded)


@dataclass(frozen=True)
class SlipConfig:
    warning_gap: Decimal = Decimal("10")  # percentage points behind plan
    critical_gap: Decimal = Decimal("20")
    min_budget: int = 0  # 원; smaller programs never raise a slip or year-end alert


@dataclass(frozen=True)
class YearEndConfig:
    start: tuple[int, int] = (9, 1)  # 불용 위험 is judged from this day of the fiscal year
    warning_rate: Decimal = Decimal("90")  # projected year-end 집행률 below this: warning
    critical_rate: Decimal = Decimal("70")
    window_days: int = 60  # pace measured over about this many recent days


@dataclass(frozen=True)
class RuleConfig:
    plan: PlanConfig = field(default_factory=PlanConfig)
    slip: SlipConfig = field(default_factory=SlipConfig)
    year_end: YearEndConfig = field(default_factory=YearEndConfig)


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


def plan_points(fiscal_year: int, cfg: PlanConfig,
                monthly: Sequence[tuple[int, Decimal]] | None = None) -> list[tuple[date, Decimal]]:
    """The (date, cumulative %) points the plan interpolates between, starting at 0 on 31 Dec
    of the previous year."""
    start = date(fiscal_year - 1, 12, 31)
    if monthly:
        return [(start, Decimal(0))] + [
            (date(fiscal_year, m, calendar.monthrange(fiscal_year, m)[1]), rate) for m, rate in sorted(monthly)
        ]
    return [(start, Decimal(0)), (in_year(fiscal_year, cfg.midyear), cfg.midyear_rate),
            (date(fiscal_year, 12, 31), Decimal(100))]


def plan_rate(as_of: date, fiscal_year: int, cfg: PlanConfig,
              monthly: Sequence[tuple[int, Decimal]] | None = None) -> Decimal:
    """Planned cumulative 집행률 (%) on `as_of`: the program's monthly plan (rate at each month's
    end) when it has one, else the default curve: 0 on 1 Jan, `midyear_rate` on 30 June, 100 on
    31 December. Dates outside the fiscal year clamp to its ends."""
    return _interpolate(as_of, plan_points(fiscal_year, cfg, monthly)).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def monthly_plan(fiscal_year: int, cfg: PlanConfig,
                 monthly: Sequence[tuple[int, Decimal]] | None = None) -> list[tuple[int, Decimal]]:
    """Planned cumulative rate at each month end (what the program page shows as 월별 집행계획)."""
    return [(m, plan_rate(date(fiscal_year, m, calendar.monthrange(fiscal_year, m)[1]), fiscal_year, cfg, monthly))
            for m in range(1, 13)]


def slip_level(actual: Decimal | None, plan: Decimal | None, current_budget: int | None,
               cfg: SlipConfig) -> Level:
    if actual is None or plan is None or current_budget is None or current_budget < max(cfg.min_budget, 1):
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
    category: str | None = None
    original: int | None = None  # None until a budget line arrived
    carried_over: int = 0
    supplementary: int = 0
    committed: int = 0
    spent: int = 0
    as_of: date | None = None
    revision: int = 0
    level: Level = "ok"  # 집행 부진 state
    over_level: Level = "ok"  # 초과 집행 state
    year_end_level: Level = "ok"  # 불용 위험 state

    @property
    def current_budget(self) -> int | None:
        if self.original is None:
            return None
        return self.original + self.carried_over + self.supplementary

    @property
    def balance(self) -> int | None:
        """집행잔액 = 예산현액 − 지출액."""
        current = self.current_budget
        return None if current is None else current - self.spent

    # Cached: the rules read them several times per event, and the instance never changes.
    @cached_property
    def rate(self) -> Decimal | None:
        return execution_rate(self.spent, self.current_budget)

    @cached_property
    def commit_rate(self) -> Decimal | None:
        return execution_rate(self.committed, self.current_budget)


AlertChange = Literal["fire", "resolve"]
RuleName = Literal["execution_slipped", "over_execution", "year_end_risk"]


def _change(old: Level, new: Level) -> AlertChange | None:
    if new == old:
        return None
    return "resolve" if new == "ok" else "fire"


@dataclass(frozen=True)
class SlipEvaluation:
    budget: ProgramBudget
    plan: Decimal | None
    gap: Decimal | None
    change: AlertChange | None  # None: no state change, nothing to emit


def evaluate_slip(b: ProgramBudget, plan_cfg: PlanConfig, slip_cfg: SlipConfig,
                  monthly: Sequence[tuple[int, Decimal]] | None = None) -> SlipEvaluation:
    """New slip level for a program's current numbers; emits only on a change of level.
    Programs in an excluded category have no plan, hence no slip (an open slip resolves)."""
    if b.as_of is None or b.rate is None:
        return SlipEvaluation(b, None, None, None)
    if plan_cfg.excludes(b.category, b.title):
        return SlipEvaluation(b if b.level == "ok" else replace(b, level="ok"), None, None, _change(b.level, "ok"))
    plan = plan_rate(b.as_of, b.fiscal_year, plan_cfg, monthly)
    gap = plan - b.rate
    level = slip_level(b.rate, plan, b.current_budget, slip_cfg)
    # `replace` only on a change: this runs for every event of every batch.
    return SlipEvaluation(b if level == b.level else replace(b, level=level), plan, gap, _change(b.level, level))


def slip_summary(e: SlipEvaluation) -> str:
    b = e.budget
    name = b.title or b.program_id
    if e.change == "resolve":
        if e.plan is None:
            return f"{name} 집행계획 적용 제외로 집행 부진 알림 해소 ({b.as_of} 기준)"
        return f"{name} 집행률 {b.rate}%로 계획({e.plan}%) 대비 정상 범위로 회복 ({b.as_of} 기준)"
    return f"{name} 집행률 {b.rate}%, 계획 {e.plan}% 대비 {e.gap}%p 부진 ({b.as_of} 기준)"


def over_level(b: ProgramBudget) -> Level:
    """지출액 or 원인행위액 above 예산현액 is always critical: money spent without a budget."""
    current = b.current_budget
    if current is None or b.as_of is None:
        return "ok"
    return "critical" if (b.spent > current or b.committed > current) else "ok"


def over_summary(b: ProgramBudget, change: AlertChange) -> str:
    name = b.title or b.program_id
    current = b.current_budget or 0
    if change == "resolve":
        return f"{name} 집행액이 예산현액({current:,}원) 이내로 돌아옴 ({b.as_of} 기준)"
    which = "지출액" if b.spent > current else "원인행위액"
    amount = b.spent if b.spent > current else b.committed
    return f"{name} {which} {amount:,}원이 예산현액 {current:,}원을 {amount - current:,}원 초과 ({b.as_of} 기준)"


def projected_year_end(b: ProgramBudget, history: Sequence[tuple[date, int]], cfg: YearEndConfig) -> Decimal | None:
    """Year-end 집행률 if the program keeps its recent pace: 지출액 now plus the daily pace since
    the anchor (its latest snapshot between `window_days`+45 and `window_days` days ago, else 0 on
    31 Dec of the previous year) times the days left. `history` is (as_of, spent), any order.
    The anchor window is fixed relative to as_of so the result never depends on batch boundaries."""
    current = b.current_budget
    if b.as_of is None or not current or current <= 0:
        return None
    latest = b.as_of - timedelta(days=cfg.window_days)
    earliest = latest - timedelta(days=45)
    anchors = [(d, s) for d, s in history if earliest < d <= latest]
    anchor_day, anchor_spent = max(anchors) if anchors else (date(b.fiscal_year - 1, 12, 31), 0)
    if b.as_of <= anchor_day:
        return execution_rate(b.spent, current)
    pace = Decimal(b.spent - anchor_spent) / Decimal((b.as_of - anchor_day).days)
    left = max(0, (date(b.fiscal_year, 12, 31) - b.as_of).days)
    projected = Decimal(b.spent) + max(pace, Decimal(0)) * left
    return (projected * 100 / current).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def year_end_level(b: ProgramBudget, projected: Decimal | None, plan_cfg: PlanConfig, slip_cfg: SlipConfig,
                   cfg: YearEndConfig) -> Level:
    if (projected is None or b.as_of is None or b.as_of < in_year(b.fiscal_year, cfg.start)
            or plan_cfg.excludes(b.category, b.title) or (b.current_budget or 0) < max(slip_cfg.min_budget, 1)):
        return "ok"
    if projected < cfg.critical_rate:
        return "critical"
    if projected < cfg.warning_rate:
        return "warning"
    return "ok"


def year_end_summary(b: ProgramBudget, projected: Decimal | None, change: AlertChange) -> str:
    name = b.title or b.program_id
    if change == "resolve":
        return f"{name} 연말 예상 집행률 {projected}%로 불용 위험 해소 ({b.as_of} 기준, 현재 {b.rate}%)"
    return f"{name} 현 추세로 연말 예상 집행률 {projected}% — 불용 위험 ({b.as_of} 기준, 현재 {b.rate}%)"


@dataclass(frozen=True)
class RuleChange:
    rule: RuleName
    change: AlertChange
    level: Level  # the new level (ok when resolved)
    summary: str


@dataclass(frozen=True)
class Evaluation:
    budget: ProgramBudget  # with the new levels
    plan: Decimal | None
    gap: Decimal | None  # plan − actual, percentage points (positive = behind)
    projected: Decimal | None
    changes: list[RuleChange]


def evaluate(b: ProgramBudget, cfg: RuleConfig, monthly: Sequence[tuple[int, Decimal]] | None = None,
             history: Sequence[tuple[date, int]] = ()) -> Evaluation:
    """All three rules on a program's current numbers; a RuleChange only where a state changed."""
    changes: list[RuleChange] = []
    slip = evaluate_slip(b, cfg.plan, cfg.slip, monthly)
    b = slip.budget
    if slip.change is not None:
        changes.append(RuleChange("execution_slipped", slip.change, b.level, slip_summary(slip)))
    over = over_level(b)
    if (change := _change(b.over_level, over)) is not None:
        b = replace(b, over_level=over)
        changes.append(RuleChange("over_execution", change, over, over_summary(b, change)))
    projected = projected_year_end(b, history, cfg.year_end)
    risk = year_end_level(b, projected, cfg.plan, cfg.slip, cfg.year_end)
    if (change := _change(b.year_end_level, risk)) is not None:
        b = replace(b, year_end_level=risk)
        changes.append(RuleChange("year_end_risk", change, risk, year_end_summary(b, projected, change)))
    return Evaluation(b, slip.plan, slip.gap, projected, changes)


# ---------------------------------------------------------------- rollups (과 / 실 / 전체)

@dataclass(frozen=True)
class Line:
    """One program's figures as a rollup sees them (current view, or as of a date)."""

    office: str | None
    division: str | None
    original: int
    carried_over: int
    supplementary: int
    committed: int
    spent: int
    plan: Decimal | None  # planned cumulative % on the rollup's date; None when excluded

    @property
    def current(self) -> int:
        return self.original + self.carried_over + self.supplementary


@dataclass
class Rollup:
    programs: int = 0
    original: int = 0
    carried_over: int = 0
    supplementary: int = 0
    current: int = 0
    committed: int = 0
    spent: int = 0
    planned_budget: int = 0  # 예산현액 of the programs that have a plan
    planned_spent: int = 0  # their 지출액
    planned_amount: Decimal = Decimal(0)  # Σ plan% × 예산현액: what the plan says is spent by now

    def add(self, line: Line) -> None:
        self.programs += 1
        self.original += line.original
        self.carried_over += line.carried_over
        self.supplementary += line.supplementary
        self.current += line.current
        self.committed += line.committed
        self.spent += line.spent
        if line.plan is not None:
            self.planned_budget += line.current
            self.planned_spent += line.spent
            self.planned_amount += line.plan * line.current / 100

    @property
    def balance(self) -> int:
        return self.current - self.spent

    @property
    def rate(self) -> Decimal | None:
        return execution_rate(self.spent, self.current)

    @property
    def commit_rate(self) -> Decimal | None:
        return execution_rate(self.committed, self.current)

    @property
    def plan(self) -> Decimal | None:
        """Budget-weighted planned rate of the programs that have a plan."""
        if self.planned_budget <= 0:
            return None
        return (self.planned_amount * 100 / self.planned_budget).quantize(ONE_DP, rounding=ROUND_HALF_UP)

    @property
    def gap(self) -> Decimal | None:
        """Plan − actual over the planned programs, in %p (positive = behind plan)."""
        plan, actual = self.plan, execution_rate(self.planned_spent, self.planned_budget)
        return None if plan is None or actual is None else plan - actual


def rollup(lines: Sequence[Line]) -> tuple[dict[tuple[str | None, str | None], Rollup],
                                          dict[str | None, Rollup], Rollup]:
    """Sums by (실, 과), by 실, and the whole."""
    divisions: dict[tuple[str | None, str | None], Rollup] = {}
    offices: dict[str | None, Rollup] = {}
    total = Rollup()
    for line in lines:
        divisions.setdefault((line.office, line.division), Rollup()).add(line)
        offices.setdefault(line.office, Rollup()).add(line)
        total.add(line)
    return divisions, offices, total
