"""Programs rules, pure: when a milestone is late, when a schedule moved, how bad it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Level = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class ScheduleConfig:
    grace_days: int = 0  # days after the window's end before a milestone counts as late
    critical_after_days: int = 30  # late by this many days (after grace) is critical


@dataclass(frozen=True)
class MilestoneState:
    program_id: str
    milestone_id: str
    title: str
    window_start: date | None
    window_end: date | None
    status: str  # planned | in_progress | done | cancelled
    overdue_level: Level = "ok"


def days_late(m: MilestoneState, today: date, cfg: ScheduleConfig) -> int:
    """Days past the window's end plus grace; 0 when not late (or open-ended, done, cancelled)."""
    if m.window_end is None or m.status in ("done", "cancelled"):
        return 0
    return max(0, (today - (m.window_end + timedelta(days=cfg.grace_days))).days)


def overdue_level(m: MilestoneState, today: date, cfg: ScheduleConfig) -> Level:
    late = days_late(m, today, cfg)
    if late <= 0:
        return "ok"
    return "critical" if late >= cfg.critical_after_days else "warning"


Change = Literal["fire", "resolve"]


def overdue_change(m: MilestoneState, today: date, cfg: ScheduleConfig) -> tuple[Level, Change | None]:
    """The new overdue level and whether an alert changes (fire on a new or higher level,
    resolve when it is no longer late: done, cancelled or moved later)."""
    level = overdue_level(m, today, cfg)
    if level == m.overdue_level:
        return level, None
    if level == "ok":
        return level, "resolve"
    return level, "fire"


def moved_later(old_end: date | None, new_end: date | None) -> bool:
    """A slip: the end moved later, or a dated milestone became open-ended."""
    if old_end is None:
        return False
    return new_end is None or new_end > old_end


def overdue_summary(title: str, milestone: str, end: date, late: int) -> str:
    return f"{title}: '{milestone}' 일정({end} 종료)이 {late}일 지났으나 완료되지 않았습니다"


def moved_summary(title: str, milestone: str, old_end: date, new_end: date | None) -> str:
    new = f"{new_end}" if new_end else "미정(종료일 없음)"
    return f"{title}: '{milestone}' 종료일이 {old_end}에서 {new}(으)로 늦춰졌습니다"
