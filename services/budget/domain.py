"""Budget rules, pure: plan curve, execution rates, which snapshot wins, which budget line and
amendments are in effect on a date, and the three alert rules (집행 부진, 초과 집행, 불용 위험) as
state machines that emit only on a change of state.

No I/O here; the service loads state, calls these, and stores what they return.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property, lru_cache
from typing import Literal, NamedTuple

Level = Literal["ok", "warning", "critical"]
ONE_DP = Decimal("0.1")


def month_day(text: str) -> tuple[int, int]:
    """"06-30" -> (6, 30), as the settings spell fixed dates of every fiscal year."""
    month, day = (int(p) for p in text.split("-"))
    date(2024, month, day)  # validates (2024 is a leap year, so 02-29 passes)
    return month, day


@lru_cache(maxsize=1024)
def in_year(year: int, md: tuple[int, int]) -> date:
    month, day = md
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


#: Milestone titles that mark when a program's money can start to move: nothing is paid before
#: the first 공모, 선정, 협약, 계약, 교부 or 지급 of the year.
FUNDING_KEYWORDS: tuple[str, ...] = ("선정", "협약", "교부", "지급", "공모", "계약")


@dataclass(frozen=True)
class PlanConfig:
    midyear_rate: Decimal = Decimal("60")  # 신속집행: share of 예산현액 spent by the mid-year date
    midyear: tuple[int, int] = (6, 30)
    #: categories (or exact titles, for lines that carry none) with no plan: 기본경비, transfers.
    excluded: frozenset[str] = frozenset()
    funding_keywords: tuple[str, ...] = FUNDING_KEYWORDS

    def excludes(self, category: str | None, title: str | None) -> bool:
        return bool(self.excluded) and (category in self.excluded or title in self.excluded)

    @property
    def default_label(self) -> str:
        """How staff read the default curve: "기본 곡선(6월 말 60%)"."""
        month, _ = self.midyear
        rate = self.midyear_rate.normalize()
        return f"기본 곡선({month}월 말 {rate:f}%)"


@dataclass(frozen=True)
class SlipConfig:
    warning_gap: Decimal = Decimal("10")  # percentage points behind plan
    critical_gap: Decimal = Decimal("20")
    min_budget: int = 0  # 원; smaller programs never raise a slip or year-end alert
    #: Default-curve slips are judged only from this day of the fiscal year (a program's own
    #: 월별 집행계획 is judged from 1 January).
    default_from: tuple[int, int] = (4, 1)
    #: A default-curve slip also needs this much money behind the curve (계획 금액 − 지출액, 원).
    default_min_gap_amount: int = 100_000_000


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
    return _tenths(rate_tenths(spent, current_budget), spent < 0)


def rate_tenths(amount: int, base: int) -> int:
    """amount / base in 0.1 % units, rounded half away from zero (ROUND_HALF_UP), in integers:
    exact, and equal to the Decimal quotient quantized to 0.1 for any amount in 원 (Decimal's 28
    digits only differ from the exact quotient beyond 10^-20, where no ratio of two amounts under
    10^20 lies next to a rounding boundary). `base` > 0."""
    n = amount * 1000
    if n >= 0:
        return (2 * n + base) // (2 * base)
    return -((-2 * n + base) // (2 * base))


_TENTHS: dict[int, Decimal] = {}


def _tenths(value: int, negative: bool = False) -> Decimal:
    """0.1 % units as the Decimal the reports print ("12.3"); "-0.0" like quantize for a tiny
    negative. The common values are kept: this runs for every event."""
    if value == 0 and negative:
        return Decimal("-0.0")
    d = _TENTHS.get(value)
    if d is None:
        d = Decimal(value).scaleb(-1)
        if len(_TENTHS) < 100_000:
            _TENTHS[value] = d
    return d


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


def plan_points(fiscal_year: int, cfg: PlanConfig, monthly: Sequence[tuple[int, Decimal]] | None = None,
                funding_start: date | None = None) -> list[tuple[date, Decimal]]:
    """The (date, cumulative %) points the plan interpolates between, starting at 0 on 31 Dec
    of the previous year. The default curve of a program whose money cannot move before its
    first funding milestone (`funding_start`) stays at 0 until that day and rises from there
    (to `midyear_rate` on the mid-year date if that is still ahead, and to 100 on 31 Dec)."""
    start = date(fiscal_year - 1, 12, 31)
    if monthly:
        return [(start, Decimal(0))] + [
            (date(fiscal_year, m, calendar.monthrange(fiscal_year, m)[1]), rate) for m, rate in sorted(monthly)
        ]
    curve = [(in_year(fiscal_year, cfg.midyear), cfg.midyear_rate), (date(fiscal_year, 12, 31), Decimal(100))]
    if funding_start is not None and funding_start > start:
        start = min(funding_start, date(fiscal_year, 12, 30))
    return [(start, Decimal(0))] + [(d, r) for d, r in curve if d > start]


def plan_rate(as_of: date, fiscal_year: int, cfg: PlanConfig,
              monthly: Sequence[tuple[int, Decimal]] | None = None, funding_start: date | None = None) -> Decimal:
    """Planned cumulative 집행률 (%) on `as_of` (see `_plan_rate`); kept per curve and day, since
    every event of every program asks for it and a year has 365 days."""
    return _plan_rate(as_of, fiscal_year, cfg, tuple(monthly) if monthly else None, funding_start)


@lru_cache(maxsize=65536)
def _plan_rate(as_of: date, fiscal_year: int, cfg: PlanConfig,
               monthly: tuple[tuple[int, Decimal], ...] | None, funding_start: date | None) -> Decimal:
    """Planned cumulative 집행률 (%) on `as_of`: the program's monthly plan (rate at each month's
    end) when it has one, else the default curve: 0 on 1 Jan (or on the first funding
    milestone), `midyear_rate` on 30 June, 100 on 31 December. Dates outside the fiscal year
    clamp to its ends."""
    points = plan_points(fiscal_year, cfg, monthly, funding_start)
    return _interpolate(as_of, points).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def monthly_plan(fiscal_year: int, cfg: PlanConfig, monthly: Sequence[tuple[int, Decimal]] | None = None,
                 funding_start: date | None = None) -> list[tuple[int, Decimal]]:
    """Planned cumulative rate at each month end (what the program page shows as 월별 집행계획)."""
    return [(m, plan_rate(date(fiscal_year, m, calendar.monthrange(fiscal_year, m)[1]), fiscal_year, cfg, monthly,
                          funding_start))
            for m in range(1, 13)]


PlanBasis = Literal["monthly_plan", "default_curve"]
BASIS_MONTHLY = "월별 집행계획"


def plan_basis(monthly: Sequence[tuple[int, Decimal]] | None) -> PlanBasis:
    return "monthly_plan" if monthly else "default_curve"


@lru_cache(maxsize=4096)
def basis_label(basis: PlanBasis, cfg: PlanConfig, funding_start: date | None = None) -> str:
    """The plan basis in the words of the alert and the page."""
    if basis == "monthly_plan":
        return BASIS_MONTHLY
    label = cfg.default_label
    # "기본 곡선(6월 말 60%, 첫 지원 일정 2025-03-03부터)": the curve rises from that day
    return f"{label[:-1]}, 첫 지원 일정 {funding_start}부터)" if funding_start else label


# ---------------------------------------------------------------- the program's own schedule


@dataclass(frozen=True)
class MilestonePoint:
    """What budget keeps of a program's milestone: enough to know when its money can move."""

    title: str
    start: date | None  # actual start when known, else the planned window start
    end: date | None
    status: str = "planned"
    needs_review: bool = False


def is_funding(title: str, cfg: PlanConfig) -> bool:
    return any(k in title for k in cfg.funding_keywords)


def funding_start(milestones: Iterable[MilestonePoint], fiscal_year: int, cfg: PlanConfig) -> date | None:
    """The first day of `fiscal_year` on which the program's money can move: the earliest start
    of a funding milestone (공모/선정/협약/계약/교부/지급) in the year. None (no delay: the
    default curve from 1 January) when the program has none, or when one is already under way
    on 1 January (a window that began last year and has not ended). Cancelled milestones and
    windows that could not be read do not count; a window with no start says nothing."""
    jan1 = date(fiscal_year, 1, 1)
    starts: list[date] = []
    for m in milestones:
        if m.status == "cancelled" or m.needs_review or m.start is None or not is_funding(m.title, cfg):
            continue
        if m.start < jan1:
            if m.end is None or m.end >= jan1:
                return None  # already under way when the year begins
            continue
        if m.start.year == fiscal_year:
            starts.append(m.start)
    first = min(starts, default=None)
    return first if first is not None and first > jan1 else None


# ---------------------------------------------------------------- which line is in effect


#: A line that states no effective date counts from the start of time.
FROM_THE_START = date.min


@dataclass(frozen=True)
class LineVersion:
    """One budget line as stated on one date."""

    since: date  # the effective date, or FROM_THE_START
    original: int
    carried_over: int = 0
    supplementary: int = 0

    @property
    def effective_date(self) -> date | None:
        return None if self.since == FROM_THE_START else self.since


@dataclass(frozen=True)
class AmendmentPoint:
    amendment_id: str
    effective: date  # the amendment's effective date, else the date its event states it happened
    change: int


def version_on(versions: Iterable[LineVersion], on: date | None) -> LineVersion | None:
    """The line in effect on `on`: the latest one effective on or before it; None if every line
    takes effect later. With `on` None: the latest line."""
    best: LineVersion | None = None
    for v in versions:
        if (on is None or v.since <= on) and (best is None or v.since > best.since):
            best = v
    return best


def supplementary_on(line: LineVersion, amendments: Iterable[AmendmentPoint], on: date | None) -> int:
    """추경 in effect on `on` (None: all recorded). A line printed without a 추경 column (0) takes
    the amendments effective by then. A line that states its 추경 already includes the
    amendments up to its own date: only later ones add to it (an undated line that states its
    추경 replaces all of them)."""
    due = [a for a in amendments if on is None or a.effective <= on]
    if line.supplementary == 0:
        return sum(a.change for a in due)
    if line.effective_date is None:
        return line.supplementary
    return line.supplementary + sum(a.change for a in due if a.effective > line.since)


def budget_on(versions: Iterable[LineVersion], amendments: Iterable[AmendmentPoint],
              on: date | None) -> tuple[int, int, int] | None:
    """(본예산, 이월 등, 추경) in effect on `on`; None when no line is in effect yet."""
    line = version_on(versions, on)
    if line is None:
        return None
    return line.original, line.carried_over, supplementary_on(line, amendments, on)


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
    committed: int | None = 0  # None: the latest source printed only 지출액
    spent: int = 0
    as_of: date | None = None
    revision: int = 0
    level: Level = "ok"  # 집행 부진 state
    over_level: Level = "ok"  # 초과 집행 state
    year_end_level: Level = "ok"  # 불용 위험 state
    account: str | None = None
    scope: str = "record"  # record / part / unlinked: only programs of record are judged
    parent_program_id: str | None = None
    effective_date: date | None = None  # of the line the figures come from

    @property
    def of_record(self) -> bool:
        return self.scope == "record"

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
        return None if self.committed is None else execution_rate(self.committed, self.current_budget)


AlertChange = Literal["fire", "resolve"]
RuleName = Literal["execution_slipped", "over_execution", "year_end_risk"]


def _change(old: Level, new: Level) -> AlertChange | None:
    if new == old:
        return None
    return "resolve" if new == "ok" else "fire"


#: Why a slip was not judged (the level stays ok): an excluded category, a line that is not a
#: program of record, a default-curve gap before the default curve's start date, or one that
#: is too little money to act on.
Hold = Literal["excluded", "not_of_record", "before_default_start", "below_gap_amount"]


@dataclass(frozen=True)
class SlipEvaluation:
    budget: ProgramBudget
    plan: Decimal | None
    gap: Decimal | None
    change: AlertChange | None  # None: no state change, nothing to emit
    basis: PlanBasis | None = None
    basis_text: str | None = None
    funding_start: date | None = None  # the default curve starts here (0 before)
    planned_amount: int | None = None  # plan % × 예산현액, 원: what the plan says is spent by now
    gap_amount: int | None = None  # planned_amount − 지출액, 원 (positive = behind)
    held: Hold | None = None
    held_from: date | None = None  # for before_default_start: the first day default-curve slips are judged


def won_text(won: int) -> str:
    """An amount as staff read it in the reports: 백만원 (rounded half-up), small ones in 원."""
    if abs(won) < 1_000_000:
        return f"{won:,}원"
    return f"{(Decimal(won) / 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP):,}백만원"


def evaluate_slip(b: ProgramBudget, plan_cfg: PlanConfig, slip_cfg: SlipConfig,
                  monthly: Sequence[tuple[int, Decimal]] | None = None,
                  funding_start: date | None = None) -> SlipEvaluation:
    """New slip level for a program's figures on its as-of date; emits only on a change of level.

    The basis is the program's own 월별 집행계획 when it published one, else the default curve
    (which starts at the program's first funding milestone when it has one). Default-curve gaps
    are judged only from `slip_cfg.default_from` and only when the money behind the curve also
    exceeds `default_min_gap_amount`: the curve is a guess about the program, its own plan is not.
    Programs in an excluded category, and lines that are not programs of record, have no plan,
    hence no slip (an open slip resolves)."""
    if b.as_of is None or b.rate is None:
        return SlipEvaluation(b, None, None, None)
    if not b.of_record or plan_cfg.excludes(b.category, b.title):
        hold: Hold = "excluded" if b.of_record else "not_of_record"
        return SlipEvaluation(b if b.level == "ok" else replace(b, level="ok"), None, None, _change(b.level, "ok"),
                              held=hold)
    basis = plan_basis(monthly)
    start = funding_start if basis == "default_curve" else None
    plan = plan_rate(b.as_of, b.fiscal_year, plan_cfg, monthly, start)
    gap = plan - b.rate
    current = b.current_budget or 0
    planned_amount = int((plan * current / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    gap_amount = planned_amount - b.spent
    level = slip_level(b.rate, plan, b.current_budget, slip_cfg)
    held: Hold | None = None
    held_from: date | None = None
    if level != "ok" and basis == "default_curve":
        judged_from = in_year(b.fiscal_year, slip_cfg.default_from)
        if b.as_of < judged_from:
            held, held_from = "before_default_start", judged_from
        elif gap_amount <= slip_cfg.default_min_gap_amount:
            held = "below_gap_amount"
        if held is not None:
            level = "ok"
    # `replace` only on a change: this runs for every event of every batch.
    return SlipEvaluation(b if level == b.level else replace(b, level=level), plan, gap, _change(b.level, level),
                          basis, basis_label(basis, plan_cfg, start), start, planned_amount, gap_amount, held,
                          held_from)


def slip_summary(e: SlipEvaluation, slip_cfg: SlipConfig | None = None) -> str:
    """One Korean sentence: the figures of record (집행률, 예산현액, 지출액, 기준일) and the plan
    basis the judgement used."""
    b = e.budget
    name = b.title or b.program_id
    record = f"집행률 {b.rate}%(예산현액 {won_text(b.current_budget or 0)} 중 지출 {won_text(b.spent)}, {b.as_of} 기준)"
    if e.change == "resolve":
        if e.held == "excluded":
            return f"{name} 집행계획 적용 제외로 집행 부진 알림 해소 ({b.as_of} 기준)"
        if e.held == "not_of_record":
            return (f"{name} 세부사업이 아닌 항목(하위 항목 또는 미연결)으로 분류되어 집행 부진 알림 해소"
                    f" ({b.as_of} 기준)")
        if e.held == "before_default_start":
            return (f"{name} {record}: {e.basis_text}은 {e.held_from}부터 판단하므로 집행 부진 알림 해소")
        if e.held == "below_gap_amount":
            threshold = won_text(slip_cfg.default_min_gap_amount) if slip_cfg else "기준"
            return (f"{name} {record}: {e.basis_text} 기준 계획 대비 부족액 {won_text(e.gap_amount or 0)}이"
                    f" {threshold} 이하로 집행 부진 알림 해소")
        return f"{name} {record}: {e.basis_text} 기준 계획({e.plan}%) 대비 정상 범위로 회복"
    return (f"{name} {record}: {e.basis_text} 기준 계획 {e.plan}%(지출 예정 {won_text(e.planned_amount or 0)})"
            f" 대비 {e.gap}%p 부진")


def over_level(b: ProgramBudget) -> Level:
    """지출액 or 원인행위액 above 예산현액 is always critical: money spent without a budget."""
    current = b.current_budget
    if current is None or b.as_of is None or not b.of_record:
        return "ok"
    return "critical" if (b.spent > current or (b.committed or 0) > current) else "ok"


def over_amount(b: ProgramBudget) -> int | None:
    current = b.current_budget
    return None if current is None else max(b.spent, b.committed or 0) - current


def over_summary(b: ProgramBudget, change: AlertChange) -> str:
    name = b.title or b.program_id
    current = b.current_budget or 0
    if change == "resolve":
        return f"{name} 집행액이 예산현액({current:,}원) 이내로 돌아옴 ({b.as_of} 기준)"
    which = "지출액" if b.spent > current else "원인행위액"
    amount = b.spent if b.spent > current else (b.committed or 0)
    return f"{name} {which} {amount:,}원이 예산현액 {current:,}원을 {amount - current:,}원 초과 ({b.as_of} 기준)"


def projected_year_end(b: ProgramBudget, history: Sequence[tuple[date, int]], cfg: YearEndConfig) -> Decimal | None:
    """Year-end 집행률 if the program keeps its recent pace: 지출액 now plus the daily pace since
    the anchor (its latest snapshot between `window_days`+45 and `window_days` days ago, else 0 on
    31 Dec of the previous year) times the days left. `history` is (as_of, spent), any order.
    The anchor window is fixed relative to as_of so the result never depends on batch boundaries."""
    if b.as_of is None:
        return None
    return _projected(b.as_of, b.fiscal_year, b.spent, b.current_budget, history, cfg.window_days)


_ZERO = Decimal(0)


@lru_cache(maxsize=8192)
def _window(as_of: date, fiscal_year: int, window_days: int) -> tuple[date, date, date, int]:
    """(earliest, latest) anchor days, the default anchor (31 Dec of the previous year) and the
    days left in the year, for an as-of date: the same few hundred dates for every program."""
    latest = as_of - timedelta(days=window_days)
    return (latest - timedelta(days=45), latest, date(fiscal_year - 1, 12, 31),
            max(0, (date(fiscal_year, 12, 31) - as_of).days))


def _projected(as_of: date, fiscal_year: int, spent: int, current: int | None,
               history: Sequence[tuple[date, int]], window_days: int) -> Decimal | None:
    """`projected_year_end` on the figures themselves (`judge` has them at hand)."""
    if not current or current <= 0:
        return None
    earliest, latest, anchor_day, left = _window(as_of, fiscal_year, window_days)
    anchor_spent = 0
    if history:
        anchors = [(d, s) for d, s in history if earliest < d <= latest]
        if anchors:
            anchor_day, anchor_spent = max(anchors)
    if as_of <= anchor_day:
        return execution_rate(spent, current)
    pace = Decimal(spent - anchor_spent) / Decimal((as_of - anchor_day).days)
    projected = Decimal(spent) + max(pace, _ZERO) * left
    return (projected * 100 / current).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def year_end_level(b: ProgramBudget, projected: Decimal | None, plan_cfg: PlanConfig, slip_cfg: SlipConfig,
                   cfg: YearEndConfig) -> Level:
    if (projected is None or b.as_of is None or b.as_of < in_year(b.fiscal_year, cfg.start) or not b.of_record
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
    slip: SlipEvaluation | None = None


def evaluate(b: ProgramBudget, cfg: RuleConfig, monthly: Sequence[tuple[int, Decimal]] | None = None,
             history: Sequence[tuple[date, int]] = (), funding_start: date | None = None) -> Evaluation:
    """All three rules on a program's numbers on its as-of date; a RuleChange only where a state
    changed."""
    changes: list[RuleChange] = []
    slip = evaluate_slip(b, cfg.plan, cfg.slip, monthly, funding_start)
    b = slip.budget
    if slip.change is not None:
        changes.append(RuleChange("execution_slipped", slip.change, b.level, slip_summary(slip, cfg.slip)))
    over = over_level(b)
    if (change := _change(b.over_level, over)) is not None:
        b = replace(b, over_level=over)
        changes.append(RuleChange("over_execution", change, over, over_summary(b, change)))
    projected = projected_year_end(b, history, cfg.year_end)
    risk = year_end_level(b, projected, cfg.plan, cfg.slip, cfg.year_end)
    if (change := _change(b.year_end_level, risk)) is not None:
        b = replace(b, year_end_level=risk)
        changes.append(RuleChange("year_end_risk", change, risk, year_end_summary(b, projected, change)))
    return Evaluation(b, slip.plan, slip.gap, projected, changes, slip)


class Judgement(NamedTuple):
    """What `evaluate` decides about a program, without the alert texts: its three levels and
    the plan, gap and projection the view stores."""

    level: Level
    over_level: Level
    year_end_level: Level
    plan: Decimal | None
    gap: Decimal | None
    projected: Decimal | None


def judge(b: ProgramBudget, cfg: RuleConfig, monthly: Sequence[tuple[int, Decimal]] | None = None,
          history: Sequence[tuple[date, int]] = (), funding_start: date | None = None) -> Judgement:
    """The same decisions as `evaluate` (the tests hold them equal), by the shortest path: no
    intermediate objects and no texts, since it runs after every event. The service calls
    `evaluate` only when a level changes, for the alert."""
    level = b.level
    plan = gap = None
    # Read once, not through the properties: this runs after every event (`b.rate` is a
    # functools.cached_property, which takes a lock on every first read).
    original, as_of, spent = b.original, b.as_of, b.spent
    current = None if original is None else original + b.carried_over + b.supplementary
    rate = execution_rate(spent, current)
    slip_cfg, plan_cfg = cfg.slip, cfg.plan
    of_record = b.scope == "record"
    judged = of_record and not plan_cfg.excludes(b.category, b.title)
    if as_of is not None and rate is not None:
        if not judged:
            level = "ok"
        else:
            start = None if monthly else funding_start
            plan = plan_rate(as_of, b.fiscal_year, plan_cfg, monthly, start)
            gap = plan - rate
            level = slip_level(rate, plan, current, slip_cfg)
            if level != "ok" and not monthly:
                if as_of < in_year(b.fiscal_year, slip_cfg.default_from):
                    level = "ok"
                else:
                    planned = int((plan * (current or 0) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                    if planned - spent <= slip_cfg.default_min_gap_amount:
                        level = "ok"
    if as_of is None:
        return Judgement(level, "ok", "ok", plan, gap, None)
    over: Level = "ok"
    if current is not None and of_record and (spent > current or (b.committed or 0) > current):
        over = "critical"
    year_end = cfg.year_end
    projected = _projected(as_of, b.fiscal_year, spent, current, history, year_end.window_days)
    risk: Level = "ok"
    # year_end_level's conditions, cheapest first (before the year-end start date, always ok)
    if (projected is not None and as_of >= in_year(b.fiscal_year, year_end.start) and judged
            and (current or 0) >= max(slip_cfg.min_budget, 1)):
        risk = "critical" if projected < year_end.critical_rate else "warning" if projected < year_end.warning_rate \
            else "ok"
    return Judgement(level, over, risk, plan, gap, projected)


def with_execution(b: ProgramBudget, committed: int | None, spent: int, as_of: date, revision: int) -> ProgramBudget:
    """`replace(b, committed=…, spent=…, as_of=…, revision=…)` for the hot path (one call per
    snapshot): a copy of the instance's fields without running the frozen dataclass's __init__
    (twenty checked assignments), and without the rates cached on `b`."""
    new = object.__new__(ProgramBudget)
    fields = b.__dict__.copy()
    if "rate" in fields or "commit_rate" in fields:
        fields.pop("rate", None)
        fields.pop("commit_rate", None)
    fields["committed"], fields["spent"], fields["as_of"], fields["revision"] = committed, spent, as_of, revision
    object.__setattr__(new, "__dict__", fields)
    return new


FigureValue = int | Decimal | str | None


def alert_figures(ev: Evaluation, rule: RuleName) -> dict[str, FigureValue]:
    """The figures of record an alert carries (what notify renders and staff check against the
    report): 집행률 and its basis, 예산현액 and its parts, 지출액, 원인행위액 (None when the source
    printed none), the plan, and the as-of date."""
    b = ev.budget
    slip = ev.slip
    figures: dict[str, FigureValue] = {
        "rate": b.rate, "commit_rate": b.commit_rate, "plan": ev.plan, "gap": ev.gap,
        "original": b.original, "carried_over": b.carried_over, "supplementary": b.supplementary,
        "current_budget": b.current_budget, "committed": b.committed, "spent": b.spent, "balance": b.balance,
        "as_of": b.as_of.isoformat() if b.as_of else None,
        "line_effective_date": b.effective_date.isoformat() if b.effective_date else None,
    }
    if slip is not None and slip.basis is not None:
        figures.update(basis=slip.basis, basis_text=slip.basis_text, planned_amount=slip.planned_amount,
                       gap_amount=slip.gap_amount,
                       funding_start=slip.funding_start.isoformat() if slip.funding_start else None)
    if rule == "over_execution":
        figures["over_amount"] = over_amount(b)
    if rule == "year_end_risk":
        figures["projected_rate"] = ev.projected
    return figures


# ---------------------------------------------------------------- rollups (과 / 실 / 전체)

@dataclass(frozen=True)
class Line:
    """One program's figures as a rollup sees them (current view, or as of a date)."""

    office: str | None
    division: str | None
    original: int
    carried_over: int
    supplementary: int
    committed: int | None  # None: the source printed only 지출액
    spent: int
    plan: Decimal | None  # planned cumulative % on the rollup's date; None when excluded
    account: str | None = None

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
    committed: int = 0  # of the programs whose 원인행위액 is known
    committed_unknown: int = 0  # programs whose source printed no 원인행위액
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
        if line.committed is None:
            self.committed_unknown += 1
        else:
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
        """None while any program's 원인행위액 is unknown: a rate over part of the programs
        against the whole budget would read as too low."""
        return None if self.committed_unknown else execution_rate(self.committed, self.current)

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


#: A 기금 (fund) is reported apart from the 세출 (expenditure) budget and never enters its total.
FUND = "기금"
#: How lines that state no account are shown by account; they count as 세출.
NO_ACCOUNT = "미지정"


def of_account(lines: Iterable[Line], account: str | None) -> list[Line]:
    """The lines a rollup covers: without `account`, the 세출 (일반회계, 특별회계 and lines that
    state no account), i.e. everything but 기금; else only that account ("미지정": no account)."""
    if account is None:
        return [ln for ln in lines if ln.account != FUND]
    wanted = None if account == NO_ACCOUNT else account
    return [ln for ln in lines if ln.account == wanted]


def by_account(lines: Iterable[Line]) -> dict[str, Rollup]:
    """Sums per account, 기금 included (it is shown beside the 세출 total, never inside it)."""
    out: dict[str, Rollup] = {}
    for ln in lines:
        out.setdefault(ln.account or NO_ACCOUNT, Rollup()).add(ln)
    return out


# ---------------------------------------------------------------- division facts of record

@dataclass(frozen=True)
class Reported:
    """What a report states for a whole 과 or 실 on a date (a 과별 집행 현황 row, a 예산현황's
    소계 or 계), in 원: None where it prints no figure."""

    as_of: date
    current: int | None
    committed: int | None
    spent: int | None
    original: int | None = None


def combine_reported(items: Sequence[Reported]) -> Reported | None:
    """The figures of record of several 실 together (the 계 of the whole view): the sum of each
    column every one of them states, on their common date. None when there is nothing to add or
    the dates differ (figures of different dates do not make one figure of record)."""
    if not items or len({r.as_of for r in items}) != 1:
        return None

    def total(values: Sequence[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    return Reported(items[0].as_of, total([r.current for r in items]), total([r.committed for r in items]),
                    total([r.spent for r in items]), total([r.original for r in items]))


def reconcile_division(reported: Reported, programs: Rollup) -> dict[str, int | None]:
    """Reported − the sum of the programs, per column. None where the report prints no figure,
    where no program of the division is in the view (nothing to compare with: the reported
    figures still stand), or, for 원인행위액, where a program's is unknown. A 예산현황's 소계 is
    printed rounded to its unit while some programs carry exact figures, so a small difference
    here is rounding, not a missing program."""
    if programs.programs == 0:
        return {"original": None, "current": None, "committed": None, "spent": None}

    def diff(printed: int | None, summed: int) -> int | None:
        return None if printed is None else printed - summed

    return {
        "original": diff(reported.original, programs.original),
        "current": diff(reported.current, programs.current),
        "committed": None if programs.committed_unknown else diff(reported.committed, programs.committed),
        "spent": diff(reported.spent, programs.spent),
    }
