"""Programs metrics: what was consumed and emitted, and the state a 과장 would ask about."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from sqlmodel import col, func, select

from services.common.db import Database
from services.common.metrics import REGISTRY
from services.programs.service import BatchResult
from services.programs.store import Occurrence, Program

EVENTS = Counter("execwatch_programs_events_total", "program events by outcome", ["outcome"], registry=REGISTRY)
ALERTS = Counter("execwatch_programs_alerts_total", "alert state changes emitted, by rule and status",
                 ["rule", "status"], registry=REGISTRY)
OVERDUE = Gauge("execwatch_programs_overdue_milestones", "milestone occurrences past their window and not done",
                ["division"], registry=REGISTRY)
AT_RISK = Gauge("execwatch_programs_at_risk", "programs late or at risk", ["division"], registry=REGISTRY)
UNKNOWN_DIVISION = "(미상)"


def record(result: BatchResult) -> None:
    for outcome in ("applied", "duplicates", "ignored", "stale"):
        EVENTS.labels(outcome=outcome).inc(getattr(result, outcome))
    for (rule, status), n in result.by_rule.items():
        ALERTS.labels(rule=rule, status=status).inc(n)


def division_counts(db: Database) -> dict[str, tuple[int, int]]:
    """division -> (overdue milestone occurrences, programs late or at risk); every known division."""
    with db.read() as s:
        divisions = {d or UNKNOWN_DIVISION: (0, 0) for d in s.exec(select(Program.division).distinct()).all()}
        overdue = s.exec(
            select(Program.division, func.count())
            .join(Occurrence, col(Occurrence.program_id) == col(Program.program_id))
            .where(col(Occurrence.active), Occurrence.overdue_level != "ok")
            .group_by(col(Program.division))
        ).all()
        risky = s.exec(
            select(Program.division, func.count())
            .where(col(Program.status).in_(["late", "at_risk"]))
            .group_by(col(Program.division))
        ).all()
    for d, n in overdue:
        key = d or UNKNOWN_DIVISION
        divisions[key] = (n, divisions.get(key, (0, 0))[1])
    for d, n in risky:
        key = d or UNKNOWN_DIVISION
        divisions[key] = (divisions.get(key, (0, 0))[0], n)
    return divisions


def refresh(db: Database) -> None:
    counts = division_counts(db)
    OVERDUE.clear()
    AT_RISK.clear()
    for division, (overdue, risky) in counts.items():
        OVERDUE.labels(division=division).set(overdue)
        AT_RISK.labels(division=division).set(risky)
