"""Programs rules, pure: occurrences of a milestone, when one is late, when a schedule moved,
when a deadline nears, whether a target is behind, and how bad each is.

Every rule is a function of (state, today, config): the service reconciles what these say an
alert should be with what it last emitted, so a check repeated on the same day changes nothing.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Level = Literal["ok", "info", "warning", "critical"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"ok": 0, "info": 1, "warning": 2, "critical": 3}
CLOSED = ("done", "cancelled")
#: Recurrences that repeat per period; `ongoing` (연중) is one window over its period.
PERIODIC = ("monthly", "quarterly", "half_yearly", "yearly")
MAX_OCCURRENCES = 240  # 20 years of months: more is a data error, not a schedule


@dataclass(frozen=True)
class ScheduleConfig:
    grace_days: int = 0  # days after the window's end before a milestone counts as late
    warning_after_days: int = 1  # late by fewer days than this is info
    critical_after_days: int = 30  # late by this many days (after grace) is critical
    moved_critical_days: int = 30  # slipped this far past the first planned end is critical
    reminder_days: tuple[int, ...] = (7, 1)  # D-n reminders, once each
    target_tolerance: Decimal = Decimal("10")  # %p behind the elapsed share still on track
    target_critical_gap: Decimal = Decimal("30")


# --- milestones and their occurrences ------------------------------------------------------------


@dataclass(frozen=True)
class MilestoneState:
    program_id: str
    milestone_id: str
    title: str
    window_start: date | None
    window_end: date | None
    status: str  # planned | in_progress | done | cancelled
    overdue_level: str = "ok"
    recurrence: str | None = None
    actual_end: date | None = None
    anchor_year: int | None = None  # the program's fiscal year: bounds a recurrence without dates


@dataclass(frozen=True)
class Occurrence:
    """One period a milestone must be met in; `key` is "" for a one-off milestone, else the
    period (`2025-03`, `2025-Q2`, `2025-H1`, `2025`)."""

    key: str
    start: date | None
    end: date | None


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _periods(recurrence: str, start: date, end: date) -> list[tuple[str, date, date]]:
    """Calendar periods of the recurrence that overlap [start, end], clipped to it."""
    months = {"monthly": 1, "quarterly": 3, "half_yearly": 6, "yearly": 12}[recurrence]
    y, m = start.year, ((start.month - 1) // months) * months + 1
    out: list[tuple[str, date, date]] = []
    while date(y, m, 1) <= end and len(out) < MAX_OCCURRENCES:
        last_m = m + months - 1
        p_start, p_end = date(y, m, 1), _month_end(y, last_m)
        idx = (m - 1) // months + 1
        key = {"monthly": f"{y}-{m:02d}", "quarterly": f"{y}-Q{idx}", "half_yearly": f"{y}-H{idx}",
               "yearly": f"{y}"}[recurrence]
        out.append((key, max(p_start, start), min(p_end, end)))
        m += months
        if m > 12:
            y, m = y + 1, m - 12
    return out


def occurrences(m: MilestoneState) -> list[Occurrence]:
    """A one-off milestone is one occurrence; 매월/분기별/반기별/매년 give one per period within
    the window (a missing side is the anchor year's edge); 연중 without dates spans the year."""
    if m.recurrence not in PERIODIC:
        if m.recurrence == "ongoing" and m.window_start is None and m.window_end is None and m.anchor_year:
            return [Occurrence("", date(m.anchor_year, 1, 1), date(m.anchor_year, 12, 31))]
        return [Occurrence("", m.window_start, m.window_end)]
    year = m.anchor_year or (m.window_start or m.window_end or date.min).year
    if year <= 1:
        return []  # nothing bounds it: the service flags it for review
    start = m.window_start or date((m.window_end.year if m.window_end else year), 1, 1)
    end = m.window_end or date(max(year, start.year), 12, 31)
    if end < start:
        return []
    return [Occurrence(k, s, e) for k, s, e in _periods(m.recurrence or "", start, end)]


def occurrence_done(m: MilestoneState, occ: Occurrence) -> bool:
    """Done or cancelled as a whole, or — `actual_end` being "completed through" — an
    occurrence that began on or before the reported actual end."""
    if m.status in CLOSED:
        return True
    if m.actual_end is None:
        return False
    return occ.start is None or occ.start <= m.actual_end


def needs_review(m: MilestoneState, flagged: bool) -> str | None:
    """Why staff must look at a milestone before the service can judge it; None when it can."""
    if flagged:
        return "원문 일정 표현을 해석하지 못했습니다"
    if m.recurrence in PERIODIC and not occurrences(m):
        return "반복 일정의 기간을 알 수 없습니다"
    if m.window_start is None and m.window_end is None and m.recurrence is None:
        return "일정(기간)이 없습니다"
    return None


# --- overdue -------------------------------------------------------------------------------------


def days_late(end: date | None, done: bool, today: date, cfg: ScheduleConfig) -> int:
    """Days past the window's end plus grace; 0 when not late (or open-ended, or done)."""
    if end is None or done:
        return 0
    return max(0, (today - (end + timedelta(days=cfg.grace_days))).days)


def overdue_severity(late: int, cfg: ScheduleConfig) -> Level:
    """Grows with days late: info, then warning, then critical."""
    if late <= 0:
        return "ok"
    if late >= cfg.critical_after_days:
        return "critical"
    return "warning" if late >= cfg.warning_after_days else "info"


# Kept for callers of the first version: the level of a one-off milestone.
def overdue_level(m: MilestoneState, today: date, cfg: ScheduleConfig) -> Level:
    return overdue_severity(days_late(m.window_end, m.status in CLOSED, today, cfg), cfg)


# --- schedule moved ------------------------------------------------------------------------------


def moved_later(old_end: date | None, new_end: date | None) -> bool:
    """A slip: the end moved later, or a dated milestone became open-ended."""
    if old_end is None:
        return False
    return new_end is None or new_end > old_end


def slipped_days(baseline_end: date | None, end: date | None) -> int | None:
    """Days the current end lies past the first planned end; None when open-ended now."""
    if baseline_end is None:
        return 0
    if end is None:
        return None
    return max(0, (end - baseline_end).days)


def moved_severity(baseline_end: date | None, end: date | None, cfg: ScheduleConfig) -> Severity:
    """Severity by the total slip since the first plan; no end any more counts as critical."""
    days = slipped_days(baseline_end, end)
    return "critical" if days is None or days >= cfg.moved_critical_days else "warning"


# --- deadline approaching ------------------------------------------------------------------------


def reminder_stage(end: date | None, done: bool, today: date, cfg: ScheduleConfig) -> int | None:
    """The D-n reminder due today: the smallest configured n with days left <= n; None when no
    reminder is due (no end, done, already past, or further away than the first reminder)."""
    if end is None or done or not cfg.reminder_days:
        return None
    left = (end - today).days
    if left < 0:
        return None
    due = [n for n in cfg.reminder_days if left <= n]
    return min(due) if due else None


def reminder_severity(stage: int, cfg: ScheduleConfig) -> Severity:
    """The last reminder is a warning (팀장 hears it), earlier ones are info."""
    return "warning" if stage == min(cfg.reminder_days) else "info"


# --- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetState:
    target_value: Decimal
    period_start: date | None
    period_end: date | None
    progress_value: Decimal | None
    progress_as_of: date | None


@dataclass(frozen=True)
class TargetEvaluation:
    level: Level
    achieved: Decimal | None = None  # % of the target reached
    expected: Decimal | None = None  # % of the period elapsed
    gap: Decimal | None = None  # expected - achieved, %p
    reasons: list[str] = field(default_factory=list)


def _pct(num: Decimal, den: Decimal) -> Decimal:
    return (num * 100 / den).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def elapsed_share(start: date, end: date, today: date) -> Decimal:
    """% of [start, end] (inclusive days) elapsed by the end of `today`, 0..100."""
    if today < start:
        return Decimal(0)
    if today >= end:
        return Decimal(100)
    return _pct(Decimal((today - start).days + 1), Decimal((end - start).days + 1))


def evaluate_target(t: TargetState, today: date, cfg: ScheduleConfig) -> TargetEvaluation:
    """Behind when progress trails the elapsed share of the period by more than the tolerance.
    Targets without a period or without any progress report are not judged (nothing to compare)."""
    if t.progress_value is None or t.period_start is None or t.period_end is None or t.target_value <= 0:
        return TargetEvaluation("ok")
    achieved = _pct(t.progress_value, t.target_value)
    expected = elapsed_share(t.period_start, t.period_end, today)
    gap = expected - achieved
    if achieved >= 100 or gap <= cfg.target_tolerance:
        level: Level = "ok"
    else:
        level = "critical" if gap >= cfg.target_critical_gap else "warning"
    return TargetEvaluation(level, achieved, expected, gap)


# --- program status ------------------------------------------------------------------------------

ProgramStatus = Literal["late", "at_risk", "on_track", "done", "no_schedule"]


def program_status(open_rules: dict[str, str], milestone_statuses: list[str]) -> ProgramStatus:
    """late: a milestone is overdue; at_risk: a slip, a target behind or a final deadline
    reminder is open; done: every milestone done or cancelled."""
    if "milestone_overdue" in open_rules:
        return "late"
    if ("schedule_moved" in open_rules or "target_behind" in open_rules
            or SEVERITY_RANK.get(open_rules.get("deadline_approaching", "ok"), 0) >= SEVERITY_RANK["warning"]):
        return "at_risk"
    if not milestone_statuses:
        return "no_schedule"
    if all(s in CLOSED for s in milestone_statuses):
        return "done"
    return "on_track"


# --- Korean summaries ----------------------------------------------------------------------------


def _period(key: str) -> str:
    return f" ({key})" if key else ""


def overdue_summary(title: str, milestone: str, end: date, late: int, occurrence: str = "") -> str:
    return f"{title}: '{milestone}'{_period(occurrence)} 일정({end} 종료)이 {late}일 지났으나 완료되지 않았습니다"


def overdue_resolved_summary(title: str, milestone: str, occurrence: str, why: str) -> str:
    return f"{title}: '{milestone}'{_period(occurrence)} 일정 지연이 해소되었습니다({why})"


def moved_summary(title: str, milestone: str, old_end: date, new_end: date | None) -> str:
    new = f"{new_end}" if new_end else "미정(종료일 없음)"
    return f"{title}: '{milestone}' 종료일이 {old_end}에서 {new}(으)로 늦춰졌습니다"


def deadline_summary(title: str, milestone: str, end: date, left: int, occurrence: str = "") -> str:
    when = "오늘" if left == 0 else f"{left}일 후"
    return f"{title}: '{milestone}'{_period(occurrence)} 종료일({end})이 {when}입니다(D-{left})"


def number(value: Decimal) -> str:
    """40.00 -> 40, 2.50 -> 2.5, with thousands separators."""
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def target_summary(title: str, activity: str, e: TargetEvaluation, unit: str, value: Decimal,
                   progress: Decimal) -> str:
    return (f"{title}: '{activity}' 목표 {number(value)}{unit} 중 {number(progress)}{unit}({e.achieved}%) 달성으로 "
            f"기간 경과율 {e.expected}%보다 {e.gap}%p 뒤처져 있습니다")
