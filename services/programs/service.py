"""Programs use cases: apply a batch of program events; run the time-driven checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlmodel import Session, col, select

from contracts import AnyEvent, MilestoneSetEvent, ProgramRegisteredEvent, TargetSetEvent
from contracts.alerts import Alert, fingerprint
from services.common.alerting import alert_row
from services.common.db import Database, seen_event_ids
from services.common.settings import Settings
from services.programs import domain
from services.programs.store import (
    Milestone,
    MilestoneWindow,
    Program,
    ProgramsInbox,
    ProgramsOutbox,
    Target,
)

Clock = Callable[[], date]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    alerts: int = 0


@dataclass(frozen=True)
class Config:
    schedule: domain.ScheduleConfig
    topic_prefix: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> Config:
        return cls(domain.ScheduleConfig(grace_days=s.overdue_grace_days), s.topic_prefix)


def clock_from_settings(s: Settings) -> Clock:
    if s.clock:
        frozen = date.fromisoformat(s.clock)
        return lambda: frozen
    return lambda: datetime.now(UTC).date()


def apply_batch(db: Database, cfg: Config, events: list[AnyEvent], today: date) -> BatchResult:
    with db.unit_of_work() as session:
        return _apply(session, cfg, events, today)


def _apply(session: Session, cfg: Config, events: list[AnyEvent], today: date) -> BatchResult:
    result = BatchResult()
    seen = seen_event_ids(session, ProgramsInbox, [str(e.event_id) for e in events])
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event_id)
        if isinstance(event, ProgramRegisteredEvent):
            _register(session, event)
        elif isinstance(event, MilestoneSetEvent):
            result.alerts += _set_milestone(session, cfg, event, today)
        elif isinstance(event, TargetSetEvent):
            _set_target(session, event)
        else:
            result.ignored += 1
            continue
        session.add(ProgramsInbox(event_id=event_id))
        session.flush()
        result.applied += 1
    return result


def _register(session: Session, event: ProgramRegisteredEvent) -> None:
    p = event.payload
    row = session.get(Program, p.program_id) or Program(program_id=p.program_id, fiscal_year=p.fiscal_year,
                                                         title=p.title)
    data = p.model_dump(mode="json", exclude={"program_id"})
    for name, value in data.items():
        setattr(row, name, value)
    session.add(row)


def _set_milestone(session: Session, cfg: Config, event: MilestoneSetEvent, today: date) -> int:
    p = event.payload
    row = session.get(Milestone, (p.program_id, p.milestone_id))
    alerts = 0
    window_changed = row is None or (row.window_start, row.window_end) != (p.window_start, p.window_end)
    if row is not None and window_changed and domain.moved_later(row.window_end, p.window_end):
        assert row.window_end is not None
        session.add(_moved_alert(session, cfg, row, p.window_start, p.window_end, event.occurred_at))
        alerts += 1
    if row is None:
        row = Milestone(program_id=p.program_id, milestone_id=p.milestone_id, title=p.title)
    for name in ("title", "window_start", "window_end", "window_text", "recurrence", "status", "actual_end",
                 "needs_review"):
        setattr(row, name, getattr(p, name))
    row.source_ref = p.source_ref.model_dump() if p.source_ref else None
    session.add(row)
    if window_changed:
        session.add(MilestoneWindow(program_id=p.program_id, milestone_id=p.milestone_id,
                                    window_start=p.window_start, window_end=p.window_end,
                                    window_text=p.window_text, event_id=str(event.event_id)))
    alerts += _check_overdue(session, cfg, row, today)
    return alerts


def _set_target(session: Session, event: TargetSetEvent) -> None:
    p = event.payload
    row = session.get(Target, (p.program_id, p.target_id)) or Target(
        program_id=p.program_id, target_id=p.target_id, activity=p.activity, target_value=p.target_value,
        unit=p.unit)
    for name, value in p.model_dump(exclude={"program_id", "target_id", "source_ref"}).items():
        setattr(row, name, value)
    session.add(row)


def check_all(db: Database, cfg: Config, today: date) -> int:
    """The time-driven pass: every milestone that may have changed level since the last pass."""
    with db.unit_of_work() as session:
        rows = session.exec(select(Milestone).where(
            col(Milestone.window_end).is_not(None),
            (col(Milestone.window_end) < today) | (Milestone.overdue_level != "ok"),
        )).all()
        return sum(_check_overdue(session, cfg, row, today) for row in rows)


def _check_overdue(session: Session, cfg: Config, row: Milestone, today: date) -> int:
    level, change = domain.overdue_change(row.state(), today, cfg.schedule)
    if change is None:
        return 0
    row.overdue_level = level
    session.add(row)
    session.add(_overdue_alert(session, cfg, row, level, change, today))
    return 1


def _program(session: Session, program_id: str) -> Program | None:
    return session.get(Program, program_id)


def _labels(row: Milestone, rule: str) -> dict[str, str]:
    return {"program_id": row.program_id, "milestone_id": row.milestone_id, "rule": rule}


def _alert(session: Session, row: Milestone, rule: str, status: str, severity: str, summary: str,
           figures: dict[str, object], at: datetime) -> Alert:
    program = _program(session, row.program_id)
    labels = _labels(row, rule)
    return Alert(
        fingerprint=fingerprint(rule, labels), rule=rule, status=status, severity=severity,  # type: ignore[arg-type]
        program_id=row.program_id, program_title=program.title if program else None,
        fiscal_year=program.fiscal_year if program else None,
        office=program.office if program else None, division=program.division if program else None,
        labels={**labels, **({"division": program.division} if program and program.division else {})},
        summary=summary, figures={**figures, "milestone": row.title},  # type: ignore[dict-item]
        starts_at=at, ends_at=at if status == "resolved" else None, generator="programs",
    )


def _overdue_alert(session: Session, cfg: Config, row: Milestone, level: str, change: str,
                   today: date) -> ProgramsOutbox:
    at = datetime.combine(today, time(0), tzinfo=UTC)
    late = domain.days_late(row.state(), today, cfg.schedule)
    program = _program(session, row.program_id)
    title = program.title if program else row.program_id
    if change == "resolve":
        summary = f"{title}: '{row.title}' 일정 지연이 해소되었습니다"
        status, severity = "resolved", "info"
    else:
        assert row.window_end is not None
        summary = domain.overdue_summary(title, row.title, row.window_end, late)
        status, severity = "firing", level
    figures = {"window_end": row.window_end.isoformat() if row.window_end else None, "days_late": late}
    alert = _alert(session, row, "milestone_overdue", status, severity, summary, figures, at)
    return alert_row(ProgramsOutbox, alert, at, cfg.topic_prefix, row.window_end, today if change == "fire" else "")


def _moved_alert(session: Session, cfg: Config, row: Milestone, new_start: date | None,
                 new_end: date | None, at: datetime) -> ProgramsOutbox:
    assert row.window_end is not None
    program = _program(session, row.program_id)
    title = program.title if program else row.program_id
    figures = {
        "old_start": row.window_start.isoformat() if row.window_start else None,
        "old_end": row.window_end.isoformat(),
        "new_start": new_start.isoformat() if new_start else None,
        "new_end": new_end.isoformat() if new_end else None,
        "days_moved": (new_end - row.window_end).days if new_end else None,
    }
    alert = _alert(session, row, "schedule_moved", "firing", "warning",
                   domain.moved_summary(title, row.title, row.window_end, new_end), figures, at)
    return alert_row(ProgramsOutbox, alert, at, cfg.topic_prefix, row.window_end, new_end)

