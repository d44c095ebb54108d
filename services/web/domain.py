"""Pure rules of the staff pages: units, the 예산현황 table as the report prints it, who sees
which alert, the spending-against-plan chart geometry and milestone moves. No I/O."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from contracts.alerts import RULE_TITLES, SEVERITY_TITLES
from contracts.money import UNIT_FACTORS
from services.web.clients import Alert, BudgetProgram, BudgetProgramDetail, BudgetSummary, Figures, Milestone, Reported
from services.web.session import Identity

UNITS: tuple[str, ...] = ("천원", "백만원", "억원")
DEFAULT_UNIT = "백만원"  # the unit of the business report's 예산현황


def amount(won: int | None, unit: str) -> str:
    """원 in a report unit, rounded half-up to a whole number as the report tables print it."""
    if won is None:
        return "-"
    value = (Decimal(won) / UNIT_FACTORS[unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{value:,}"


def unit_value(won: int | None, unit: str) -> Decimal | None:
    """The same figure as a number (for spreadsheets), rounded as printed."""
    if won is None:
        return None
    return (Decimal(won) / UNIT_FACTORS[unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def signed_amount(won: int, unit: str) -> str:
    """A difference in a report unit with its sign (the sign of the exact difference, so a
    difference smaller than half a unit still says which way it goes: +0 / -0)."""
    value = (Decimal(abs(won)) / UNIT_FACTORS[unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{'-' if won < 0 else '+'}{value:,}"


def versus_plan(rate: Decimal | None, plan: Decimal | None) -> Decimal | None:
    """계획 대비: 집행률 minus the planned rate, in %p (negative = behind plan)."""
    if rate is None or plan is None:
        return None
    return rate - plan


def signed_pp(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}%p".replace("+0.0", "0.0").replace("-0.0", "0.0")


# ---------------------------------------------------------------- the 예산현황 table

SortKey = Literal["report", "title", "original", "current", "spent", "rate", "versus"]
SORT_KEYS: tuple[SortKey, ...] = ("report", "title", "original", "current", "spent", "rate", "versus")


COLUMNS = ("original", "current", "spent")  # 본예산, 예산현액, 집행액: what a 소계 prints


@dataclass(frozen=True)
class Beside:
    """The line under a 소계 or 계 that prints a report's figures of record: the sum of the
    programs, or (when the report is older than the programs' figures) the report's own figures
    of its date. `differences`: this line − the line above, per column (원; None: not compared)."""

    label: str
    original: int | None
    current: int | None
    spent: int | None
    differences: tuple[int | None, int | None, int | None] = (None, None, None)
    tolerance: int | None = None  # 원: how far rounding alone can take the sum from the printed figures

    def note(self, column: str, unit: str) -> str | None:
        """"반올림 차 +1" (within what rounding explains) or "차이 +12" (more than that)."""
        diff = self.differences[COLUMNS.index(column)]
        if diff is None or diff == 0:
            return None
        kind = "반올림 차" if self.within_rounding(column) else "차이"
        return f"{kind} {signed_amount(diff, unit)}"

    def within_rounding(self, column: str) -> bool:
        diff = self.differences[COLUMNS.index(column)]
        return diff is not None and self.tolerance is not None and abs(diff) <= self.tolerance


@dataclass(frozen=True)
class Row:
    kind: Literal["계", "소계", "사업"]
    label: str
    division: str | None
    original: int | None
    current: int | None
    spent: int | None
    rate: Decimal | None
    plan: Decimal | None
    program_id: str | None = None
    as_of: date | None = None
    of_record: date | None = None  # the 기준일 of the report figures this row prints (None: the sums)
    beside: Beside | None = None

    @property
    def versus(self) -> Decimal | None:
        return versus_plan(self.rate, self.plan)

    @property
    def program_sums(self) -> tuple[int | None, int | None, int | None]:
        """The sum of the programs (본예산, 예산현액, 집행액), whichever line shows it."""
        if self.of_record is not None:
            b = self.beside
            return (b.original, b.current, b.spent) if b is not None else (None, None, None)
        return self.original, self.current, self.spent


@dataclass
class Block:
    division: str
    subtotal: Row
    rows: list[Row] = field(default_factory=list)


@dataclass
class ReportTable:
    fiscal_year: int
    as_of: date | None
    total: Row
    blocks: list[Block]

    def all_rows(self) -> list[Row]:
        """계 first, then each 과's 소계 and its 세부사업, as the report prints them."""
        out = [self.total]
        for b in self.blocks:
            out += [b.subtotal, *b.rows]
        return out


def of_record_text(table: ReportTable) -> str | None:
    """Which report dates the printed 소계/계 of the table come from ("2025-01-31 기준")."""
    days = sorted({r.of_record for r in (table.total, *(b.subtotal for b in table.blocks)) if r.of_record})
    return ", ".join(f"{d:%Y-%m-%d} 기준" for d in days) or None


def rounding_allowance(reported: Reported, programs: int) -> int | None:
    """How far the sum of `programs` rows may be from a printed 소계 by rounding alone: half the
    printed unit for each row and for the 소계 itself (None when the unit is not known)."""
    factor = UNIT_FACTORS.get(reported.unit or "")
    return None if factor is None else (programs + 1) * factor // 2


def _figures_row(kind: Literal["계", "소계"], label: str, f: Figures, latest: date | None = None) -> Row:
    """A 소계 or the 계. Where a report states the figures of record and no program's figures are
    newer than them (`latest`: the newest program figures in the row), the row prints the
    report's figures as printed and the sum of the programs beside; otherwise the sum, with the
    older report's figures beside."""
    sums = Row(kind, label, f.division, f.original, f.current, f.spent, f.rate, f.plan_rate)
    r = f.reported
    if r is None:
        return sums
    if latest is not None and r.as_of < latest:
        return replace(sums, beside=Beside(f"보고서 ({r.as_of:%Y-%m-%d} 기준)", r.original, r.current, r.spent))
    shown = [printed if printed is not None else summed
             for printed, summed in ((r.original, f.original), (r.current, f.current), (r.spent, f.spent))]
    rate = r.rate if r.current is not None and r.spent is not None else f.rate
    beside = None
    if f.programs:
        def diff(printed: int | None, summed: int) -> int | None:
            return None if printed is None else summed - printed

        beside = Beside("세부사업 합", f.original, f.current, f.spent,
                        (diff(r.original, f.original), diff(r.current, f.current), diff(r.spent, f.spent)),
                        rounding_allowance(r, f.programs))
    return Row(kind, label, f.division, shown[0], shown[1], shown[2], rate, f.plan_rate, of_record=r.as_of,
               beside=beside)


def _program_row(p: BudgetProgram) -> Row:
    current = p.current_budget
    if current is None and p.original is not None:
        current = p.original + (p.carried_over or 0) + (p.supplementary or 0)
    return Row("사업", p.title or p.program_id, p.division, p.original, current, p.spent, p.rate, p.plan_rate,
               program_id=p.program_id, as_of=p.as_of)


def _sort_value(row: Row, key: SortKey) -> tuple[bool, Decimal | int | str]:
    value: Decimal | int | str | None = {
        "title": row.label, "original": row.original, "current": row.current, "spent": row.spent,
        "rate": row.rate, "versus": row.versus,
    }.get(key)
    return (value is None, value if value is not None else 0)


def report_table(summary: BudgetSummary, programs: Iterable[BudgetProgram], sort: SortKey = "report",
                 descending: bool = False, division: str | None = None) -> ReportTable:
    """The 예산현황 table: 계, then per 과 its 소계 and the 세부사업 of record under it.

    소계 and 계 are what the budget service says, not sums made here: the report's figures of
    record where it states them for the date (with the view's sum of the programs beside), else
    the view's rollup. Parts and unlinked rows are not 세부사업 of the table (they would count
    twice)."""
    by_division: dict[str, list[Row]] = {}
    for p in programs:
        if p.scope != "record" or p.original is None:
            continue
        by_division.setdefault(p.division or "", []).append(_program_row(p))

    def latest(rows: Iterable[Row]) -> date | None:
        """The newest program figures the rollup holds (those on or before the table's date)."""
        days = [r.as_of for r in rows if r.as_of is not None and (summary.as_of is None or r.as_of <= summary.as_of)]
        return max(days, default=None)
    blocks = []
    for f in summary.divisions:
        name = f.division or "소속 미상"
        if division and name != division:
            continue
        rows = by_division.get(f.division or "", [])
        if sort != "report":
            rows = sorted(rows, key=lambda r: _sort_value(r, sort), reverse=descending)
            if descending:  # empty values last either way
                rows = [r for r in rows if _sort_value(r, sort)[0] is False] + \
                       [r for r in rows if _sort_value(r, sort)[0] is True]
        blocks.append(Block(name, _figures_row("소계", "소계", f, latest(rows)), rows))
    if sort in ("original", "current", "spent", "rate", "versus"):
        blocks.sort(key=lambda b: _sort_value(b.subtotal, sort), reverse=descending)
    everything = [r for rows in by_division.values() for r in rows]
    return ReportTable(summary.fiscal_year, summary.as_of, _figures_row("계", "계", summary.total, latest(everything)),
                       blocks)


# ---------------------------------------------------------------- alerts

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
SEVERITY_LABELS = SEVERITY_TITLES  # the same words as the mails
STATE_LABELS = {"active": "처리 대기", "acknowledged": "확인됨", "suppressed": "알림 꺼짐"}
RULE_LABELS = RULE_TITLES


def _addressed_to(identity: Identity, alert: Alert) -> bool:
    if identity.email:
        return any((r.receiver or "").lower() == identity.email.lower() for r in alert.recipients)
    return any(r.name == identity.name for r in alert.recipients)


def may_see(identity: Identity, alert: Alert) -> bool:
    """Operators and auditors see every alert; staff the alerts of their 과 or addressed to them."""
    if identity.sees_everything:
        return True
    if alert.division is not None and alert.division in identity.divisions:
        return True
    return _addressed_to(identity, alert)


def mine(identity: Identity, alert: Alert) -> bool:
    """오늘's list: a 팀장 or 과장 answers for the whole 과, a 담당 for what was sent to them."""
    if identity.answers_for_division or identity.sees_everything:
        return may_see(identity, alert)
    return _addressed_to(identity, alert)


def needs_action(alert: Alert) -> bool:
    return alert.status == "firing" and alert.acked_at is None and alert.state not in ("suppressed", "acknowledged")


def by_urgency(alerts: Iterable[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9),
                                         -(a.received_at.timestamp() if a.received_at else 0), a.fingerprint))


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None  # firing / resolved
    severity: str | None = None
    division: str | None = None
    acked: Literal["yes", "no"] | None = None
    q: str | None = None

    def admits(self, a: Alert) -> bool:
        if self.status and a.status != self.status:
            return False
        if self.severity and a.severity != self.severity:
            return False
        if self.division and a.division != self.division:
            return False
        if self.acked == "yes" and a.acked_at is None:
            return False
        if self.acked == "no" and a.acked_at is not None:
            return False
        return not (self.q and self.q not in a.summary and self.q not in (a.program_id or ""))


SILENCE_PERIODS: dict[str, timedelta] = {"1일": timedelta(days=1), "3일": timedelta(days=3),
                                         "7일": timedelta(days=7), "14일": timedelta(days=14),
                                         "30일": timedelta(days=30)}


def silence_matchers(alert: Alert) -> list[dict[str, str]]:
    """Silence exactly this alert's rule for its program, within its 과 (notify lets staff silence
    only what a `과 =` matcher confines to their own 과)."""
    out = [{"name": "program", "value": alert.labels.get("program") or alert.program_id or "", "op": "="}]
    if alert.rule:
        out.append({"name": "rule", "value": alert.rule, "op": "="})
    if alert.labels.get("과"):
        out.append({"name": "과", "value": alert.labels["과"], "op": "="})
    return [m for m in out if m["value"]]


# ---------------------------------------------------------------- the spending chart


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    plan: str  # SVG polyline points
    actual: str
    actual_dots: list[tuple[float, float, str]]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    today_x: float | None


def _day_fraction(day: date, year: int) -> float:
    days = 366 if calendar.isleap(year) else 365
    return min(max((day - date(year, 1, 1)).days / (days - 1), 0.0), 1.0)


def spending_chart(detail: BudgetProgramDetail, year: int, today: date | None = None, width: int = 640,
                   height: int = 260) -> Chart:
    """Cumulative 집행률 against the plan over the year: the plan is the published (or default)
    monthly curve, reached at each month's end; the actual is every snapshot's rate."""
    left, top, right, bottom = 48, 12, 12, 30
    pw, ph = width - left - right, height - top - bottom
    top_rate = max([Decimal(100)] + [p.cumulative_rate for p in detail.plan.points]
                   + [h.rate for h in detail.history if h.rate is not None])

    def x(day: date) -> float:
        return round(left + _day_fraction(day, year) * pw, 1)

    def y(rate: Decimal) -> float:
        return round(top + ph - float(rate / top_rate) * ph, 1)

    plan_pts = [(x(date(year, 1, 1)), y(Decimal(0)))]
    for p in sorted(detail.plan.points, key=lambda p: p.month):
        end = date(year, p.month, calendar.monthrange(year, p.month)[1])
        plan_pts.append((x(end), y(p.cumulative_rate)))
    actual = [(x(h.as_of), y(h.rate), f"{h.as_of:%m-%d} {h.rate:.1f}%")
              for h in sorted(detail.history, key=lambda h: h.as_of) if h.rate is not None and h.as_of.year == year]
    y_ticks = [(y(Decimal(v)), f"{v}%") for v in range(0, int(top_rate) + 1, 25)]
    x_ticks = [(x(date(year, m, 1)), f"{m}월") for m in range(1, 13)]
    return Chart(width, height, left, top, pw, ph,
                 " ".join(f"{a},{b}" for a, b in plan_pts),
                 " ".join(f"{a},{b}" for a, b, _ in actual), actual, y_ticks, x_ticks,
                 x(today) if today and today.year == year else None)


# ---------------------------------------------------------------- milestones


@dataclass(frozen=True)
class Move:
    old: str
    new: str
    change: str | None
    when: datetime | None
    source: str


def window_text(start: date | None, end: date | None, text: str | None = None) -> str:
    if start and end:
        return f"{start:%Y-%m-%d} ~ {end:%Y-%m-%d}" if start != end else f"{start:%Y-%m-%d}"
    if end:
        return f"~ {end:%Y-%m-%d}"
    if start:
        return f"{start:%Y-%m-%d} ~"
    return text or "미정"


def source_text(ref: object) -> str:
    document = getattr(ref, "document", None)
    if not document:
        return "출처 미상"
    line = getattr(ref, "line", None)
    section = getattr(ref, "section", None)
    out = str(document)
    if section:
        out += f" · {section}"
    if line:
        out += f" {line}행"
    return out


def moves(m: Milestone) -> list[Move]:
    """Every change of the window, old → new, with the report that said so."""
    out = []
    for before, after in zip(m.history, m.history[1:], strict=False):
        old = window_text(before.window_start, before.window_end, before.window_text)
        new = window_text(after.window_start, after.window_end, after.window_text)
        if old != new:
            out.append(Move(old, new, after.change, after.occurred_at, source_text(after.source_ref)))
    return out


def moved(milestones: Sequence[Milestone]) -> list[Milestone]:
    return [m for m in milestones if moves(m)]
