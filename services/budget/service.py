"""The budget use case: apply a batch of budget events in one unit of work.

Runs synchronously (in a worker thread): load the programs the batch touches in one query,
let the domain decide, write view + history + alert outbox + inbox ids, commit once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from typing import Any

from sqlmodel import Session

from contracts import (
    AnyEvent,
    BudgetAmendedEvent,
    BudgetLineSetEvent,
    ExecutionPlanSetEvent,
    ExecutionSnapshotEvent,
)
from contracts.alerts import Alert, fingerprint
from services.budget import domain
from services.budget.store import (
    BudgetAmendment,
    BudgetInbox,
    BudgetOutbox,
    BudgetPlan,
    BudgetProgram,
    BudgetSnapshot,
    load_plans,
    load_programs,
)
from services.common.alerting import alert_row
from services.common.db import Database, seen_event_ids
from services.common.settings import Settings

BUDGET_EVENTS = (BudgetLineSetEvent, BudgetAmendedEvent, ExecutionSnapshotEvent, ExecutionPlanSetEvent)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    ignored: int = 0
    alerts: int = 0
    unknown_programs: int = 0


@dataclass(frozen=True)
class Config:
    plan: domain.PlanConfig
    slip: domain.SlipConfig
    topic_prefix: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> Config:
        return cls(
            domain.PlanConfig(midyear_rate=s.plan_midyear_rate),
            domain.SlipConfig(warning_gap=s.slip_warning_gap, critical_gap=s.slip_critical_gap,
                              min_budget=s.slip_min_budget),
            s.topic_prefix,
        )


def apply_batch(db: Database, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    with db.unit_of_work() as session:
        return _apply(session, cfg, events)


def _apply(session: Session, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    result = BatchResult()
    seen = seen_event_ids(session, BudgetInbox, [str(e.event_id) for e in events])
    fresh: list[AnyEvent] = []
    for e in events:
        if str(e.event_id) in seen or not isinstance(e, BUDGET_EVENTS):
            result.duplicates += str(e.event_id) in seen
            result.ignored += not isinstance(e, BUDGET_EVENTS)
            continue
        seen.add(str(e.event_id))
        fresh.append(e)
    keys = [(e.payload.program_id, e.payload.fiscal_year) for e in fresh]  # type: ignore[union-attr]
    views = load_programs(session, keys)
    plans = load_plans(session, keys)
    touched: set[tuple[str, int]] = set()

    for event in fresh:
        p = event.payload
        key = (p.program_id, p.fiscal_year)  # type: ignore[union-attr]
        row = views.get(key)
        if row is None:
            # Unknown programs are kept: the view fills in when their budget line arrives.
            row = views[key] = BudgetProgram(program_id=key[0], fiscal_year=key[1])
            session.add(row)
        b = row.to_domain()
        if isinstance(event, BudgetLineSetEvent):
            lp = event.payload
            b = replace(b, title=lp.title or b.title, office=lp.office or b.office,
                        division=lp.division or b.division, original=lp.original,
                        carried_over=lp.carried_over, supplementary=lp.supplementary)
            row.category = lp.category or row.category
        elif isinstance(event, BudgetAmendedEvent):
            ap = event.payload
            session.add(BudgetAmendment(program_id=ap.program_id, fiscal_year=ap.fiscal_year,
                                        amendment_id=ap.amendment_id, before=ap.before, change=ap.change,
                                        after=ap.after, reason=ap.reason, effective_date=ap.effective_date))
            b = replace(b, supplementary=b.supplementary + ap.change)
        elif isinstance(event, ExecutionSnapshotEvent):
            sp = event.payload
            decision = domain.snapshot_decision(b.as_of, b.revision, sp.as_of, sp.revision)
            if decision != "apply":
                result.stale += 1
                session.add(BudgetInbox(event_id=str(event.event_id)))
                continue
            session.add(BudgetSnapshot(program_id=sp.program_id, fiscal_year=sp.fiscal_year, as_of=sp.as_of,
                                       revision=sp.revision, committed=sp.committed, spent=sp.spent,
                                       event_id=str(event.event_id)))
            b = replace(b, committed=sp.committed, spent=sp.spent, as_of=sp.as_of, revision=sp.revision)
        elif isinstance(event, ExecutionPlanSetEvent):
            points = [[pt.month, str(pt.cumulative_rate)] for pt in event.payload.points]
            plan_row = session.get(BudgetPlan, key)
            if plan_row is None:
                session.add(BudgetPlan(program_id=key[0], fiscal_year=key[1], points=points))
            else:
                plan_row.points = points
            plans[key] = [(int(m), domain.Decimal(v)) for m, v in points]
        row.update_from(b)
        if row.original is None:
            result.unknown_programs += 1
        session.add(BudgetInbox(event_id=str(event.event_id)))
        touched.add(key)
        result.applied += 1

    # Alerts are decided once per program per batch, on its final state (coalescing).
    for key in touched:
        row = views[key]
        evaluation = domain.evaluate_slip(row.to_domain(), cfg.plan, cfg.slip, plans.get(key))
        row.plan_rate = evaluation.plan
        if evaluation.change is not None:
            row.level = evaluation.budget.level
            session.add(_slip_alert(evaluation, cfg.topic_prefix))
            result.alerts += 1
    return result


def _slip_alert(e: domain.SlipEvaluation, prefix: str) -> BudgetOutbox:
    b = e.budget
    labels = {"fiscal_year": str(b.fiscal_year), "program_id": b.program_id, "rule": "execution_slipped"}
    fp = fingerprint("execution_slipped", labels)
    status = "resolved" if e.change == "resolve" else "firing"
    severity = "info" if status == "resolved" else b.level
    assert b.as_of is not None
    at = datetime.combine(b.as_of, time(0), tzinfo=UTC)
    figures: dict[str, Any] = {
        "rate": b.rate, "plan": e.plan, "gap": e.gap, "current_budget": b.current_budget,
        "spent": b.spent, "committed": b.committed, "as_of": b.as_of.isoformat(),
    }
    alert = Alert(
        fingerprint=fp, rule="execution_slipped", status=status, severity=severity,  # type: ignore[arg-type]
        program_id=b.program_id, program_title=b.title, fiscal_year=b.fiscal_year, office=b.office,
        division=b.division, labels={**labels, "severity": severity, **({"division": b.division} if b.division else {})},
        summary=domain.slip_summary(e), figures=figures, starts_at=at,
        ends_at=at if status == "resolved" else None, generator="budget",
    )
    return alert_row(BudgetOutbox, alert, at, prefix, b.as_of, b.revision)
