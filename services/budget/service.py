"""The budget use case: apply a batch of budget events in one unit of work.

Runs synchronously (in a worker thread): load everything the batch touches in a few bulk
queries, walk the events in order through the pure rules (in memory), then write each touched
program's view once, the new snapshot points, alert outbox rows and inbox ids in bulk, and
commit once. Rules are evaluated after every applied event rather than once per batch, so the
alerts (and their ids) never depend on where batch boundaries fell: a restart or a replay
with other batch sizes emits exactly the same alerts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

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
    BudgetAlert,
    BudgetAmendment,
    BudgetInbox,
    BudgetOutbox,
    BudgetPlan,
    BudgetProgram,
    BudgetSnapshot,
    execution_as_of,
    load_amendments,
    load_history,
    load_plan_rows,
    load_plans,
    load_states,
    plan_of,
    view_values,
)
from services.common.alerting import alert_values
from services.common.db import Database, seen_event_ids, utcnow
from services.common.settings import Settings

BUDGET_EVENTS = (BudgetLineSetEvent, BudgetAmendedEvent, ExecutionSnapshotEvent, ExecutionPlanSetEvent)
Key = tuple[str, int]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0  # same event id seen before, or the same (as_of, revision) again
    snapshot_duplicates: int = 0  # of which execution snapshots
    stale: int = 0  # a snapshot older than the one held
    corrections: int = 0  # a higher revision for the as-of date held
    snapshots: int = 0  # snapshots applied (corrections included)
    ignored: int = 0  # not a budget event
    alerts: int = 0
    unknown_programs: int = 0  # touched programs that still have no budget line
    alerts_by: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (rule, severity, status)
    touched: set[Key] = field(default_factory=set)


@dataclass(frozen=True)
class Config:
    plan: domain.PlanConfig
    slip: domain.SlipConfig
    topic_prefix: str = ""
    year_end: domain.YearEndConfig = field(default_factory=domain.YearEndConfig)

    @property
    def rules(self) -> domain.RuleConfig:
        return domain.RuleConfig(self.plan, self.slip, self.year_end)

    @classmethod
    def from_settings(cls, s: Settings) -> Config:
        return cls(
            domain.PlanConfig(midyear_rate=s.plan_midyear_rate, midyear=domain.month_day(s.plan_midyear_date),
                              excluded=frozenset(s.plan_excluded_categories)),
            domain.SlipConfig(warning_gap=s.slip_warning_gap, critical_gap=s.slip_critical_gap,
                              min_budget=s.slip_min_budget),
            s.topic_prefix,
            domain.YearEndConfig(start=domain.month_day(s.year_end_risk_from), warning_rate=s.year_end_risk_rate,
                                 critical_rate=s.year_end_critical_rate, window_days=s.year_end_window_days),
        )


def apply_batch(db: Database, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    with db.unit_of_work() as session:
        return _apply(session, cfg, events)


def _key(event: AnyEvent) -> Key:
    p = event.payload
    return (p.program_id, int(p.fiscal_year))  # type: ignore[union-attr,arg-type]


@dataclass
class _Batch:
    """In-memory state of the programs a batch touches."""

    session: Session
    cfg: Config
    held: dict[Key, int]  # programs already in the view, with their snapshot counts
    state: dict[Key, domain.ProgramBudget]
    plans: dict[Key, list[tuple[int, Decimal]]]
    history: dict[Key, dict[date, tuple[int, int]]]
    last: dict[Key, domain.Evaluation] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)  # rows for bulk inserts
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshot_counts: Counter[Key] = field(default_factory=Counter)


def _apply(session: Session, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    result = BatchResult()
    ids = {id(e): str(e.event_id) for e in events}  # str(UUID) is not free at thousands per batch
    seen = seen_event_ids(session, BudgetInbox, list(ids.values()))
    fresh: list[AnyEvent] = []
    for e in events:
        if not isinstance(e, BUDGET_EVENTS):
            result.ignored += 1
            continue
        if ids[id(e)] in seen:
            result.duplicates += 1
            result.snapshot_duplicates += isinstance(e, ExecutionSnapshotEvent)
            continue
        seen.add(ids[id(e)])
        fresh.append(e)
    if not fresh:
        return result

    keys = {_key(e) for e in fresh}
    loaded = load_states(session, keys)
    plan_rows = load_plan_rows(session, {_key(e) for e in fresh if isinstance(e, ExecutionPlanSetEvent)} | keys)
    amendments = load_amendments(
        session, {_key(e) for e in fresh if isinstance(e, BudgetAmendedEvent | BudgetLineSetEvent)})
    state = {k: b for k, (b, _) in loaded.items()}
    batch = _Batch(session, cfg, {k: n for k, (_, n) in loaded.items()}, state,
                   {k: plan_of(r) for k, r in plan_rows.items()}, _load_history(session, cfg, fresh, state))
    now = utcnow()

    for event in fresh:
        key = _key(event)
        b = state.get(key) or domain.ProgramBudget(program_id=key[0], fiscal_year=key[1])
        if isinstance(event, BudgetLineSetEvent):
            lp = event.payload
            # A budget line states 본예산 and 이월 as of its publication: they replace the parts. Its
            # 추경 replaces the recorded amendments only when it states one; a report printed without
            # a 추경 column (0) must not erase the 추경 already on record.
            recorded = sum(a.change for (pid, fy, _), a in amendments.items() if (pid, fy) == key)
            b = replace(b, title=lp.title or b.title, office=lp.office or b.office,
                        division=lp.division or b.division, category=lp.category or b.category,
                        original=lp.original, carried_over=lp.carried_over,
                        supplementary=lp.supplementary or recorded)
        elif isinstance(event, BudgetAmendedEvent):
            ap = event.payload
            held = amendments.get((*key, ap.amendment_id))
            delta = ap.change - (held.change if held else 0)  # a re-sent amendment corrects, never adds twice
            if held is None:
                held = amendments[(*key, ap.amendment_id)] = BudgetAmendment(
                    program_id=key[0], fiscal_year=key[1], amendment_id=ap.amendment_id,
                    before=ap.before, change=ap.change, after=ap.after)
                session.add(held)
            held.before, held.change, held.after = ap.before, ap.change, ap.after
            held.reason, held.effective_date = ap.reason, ap.effective_date
            held.event_id, held.recorded_at = ids[id(event)], now
            b = replace(b, supplementary=b.supplementary + delta)
        elif isinstance(event, ExecutionSnapshotEvent):
            sp = event.payload
            decision = domain.snapshot_decision(b.as_of, b.revision, sp.as_of, sp.revision)
            if decision != "apply":
                result.stale += decision == "stale"
                result.duplicates += decision == "same"
                result.snapshot_duplicates += decision == "same"
                continue
            if b.as_of == sp.as_of:
                result.corrections += 1
            result.snapshots += 1
            batch.snapshots.append({"program_id": key[0], "fiscal_year": key[1], "as_of": sp.as_of,
                                    "revision": sp.revision, "committed": sp.committed, "spent": sp.spent,
                                    "event_id": ids[id(event)]})
            batch.snapshot_counts[key] += 1
            batch.history.setdefault(key, {})[sp.as_of] = (sp.revision, sp.spent)
            b = replace(b, committed=sp.committed, spent=sp.spent, as_of=sp.as_of, revision=sp.revision)
        elif isinstance(event, ExecutionPlanSetEvent):
            points = [[pt.month, str(pt.cumulative_rate)] for pt in event.payload.points]
            plan_row = plan_rows.get(key)
            if plan_row is None:
                plan_row = plan_rows[key] = BudgetPlan(program_id=key[0], fiscal_year=key[1], points=points)
                session.add(plan_row)
            else:
                plan_row.points = points
            batch.plans[key] = plan_of(plan_row)
        state[key] = _evaluate(batch, key, b, ids[id(event)], result)
        result.touched.add(key)
        result.applied += 1

    _write(batch, result, [ids[id(e)] for e in fresh], now)
    return result


def _load_history(session: Session, cfg: Config, events: list[AnyEvent],
                  state: dict[Key, domain.ProgramBudget]) -> dict[Key, dict[date, tuple[int, int]]]:
    """Recent snapshot points of the programs whose year-end projection will be evaluated (as-of
    on or after the year-end start date), bounded to the projection's look-back window."""
    dates: dict[Key, list[date]] = {}
    for e in events:
        key = _key(e)
        held = state[key].as_of if key in state else None
        as_of = e.payload.as_of if isinstance(e, ExecutionSnapshotEvent) else held
        if as_of is not None:
            dates.setdefault(key, []).append(as_of)
    start = cfg.year_end.start
    needed = {k: d for k, d in dates.items() if max(d) >= domain.in_year(k[1], start)}
    if not needed:
        return {}
    lookback = timedelta(days=cfg.year_end.window_days + 46)
    since = min(min(d) for d in needed.values()) - lookback
    until = max(max(d) for d in needed.values())
    return load_history(session, needed.keys(), since, until)


def _evaluate(batch: _Batch, key: Key, b: domain.ProgramBudget, cause: str,
              result: BatchResult) -> domain.ProgramBudget:
    points = batch.history.get(key)
    history = [(d, spent) for d, (_, spent) in points.items()] if points else []
    ev = domain.evaluate(b, batch.cfg.rules, batch.plans.get(key), history)
    batch.last[key] = ev
    for change in ev.changes:
        outbox, log = _alert(ev, change, batch.cfg.topic_prefix, cause, len(batch.alerts))
        batch.outbox.append(outbox)
        batch.alerts.append(log)
        result.alerts += 1
        result.alerts_by[(change.rule, log["severity"], log["status"])] += 1
    return ev.budget


_PROGRAM: sa.Table = BudgetProgram.__table__  # type: ignore[attr-defined]
_SNAPSHOT: sa.Table = BudgetSnapshot.__table__  # type: ignore[attr-defined]
_INBOX: sa.Table = BudgetInbox.__table__  # type: ignore[attr-defined]
_OUTBOX: sa.Table = BudgetOutbox.__table__  # type: ignore[attr-defined]
_ALERT: sa.Table = BudgetAlert.__table__  # type: ignore[attr-defined]
_UPDATE_VIEW = (
    _PROGRAM.update()
    .where(_PROGRAM.c.program_id == sa.bindparam("pk_program_id"),
           _PROGRAM.c.fiscal_year == sa.bindparam("pk_fiscal_year"))
)


def _write(batch: _Batch, result: BatchResult, event_ids: list[str], now: datetime) -> None:
    """One bulk UPDATE (executemany by primary key) and one bulk INSERT for the touched programs."""
    session = batch.session
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for key in sorted(result.touched):
        b = batch.state[key]
        values = view_values(b)
        ev = batch.last.get(key)
        values.update(plan_rate=ev.plan if ev else None, gap=ev.gap if ev else None,
                      projected_rate=ev.projected if ev else None, updated_at=now,
                      snapshots=batch.held.get(key, 0) + batch.snapshot_counts[key])
        # Unknown programs are kept: the view fills in when their budget line arrives.
        (updates if key in batch.held else inserts).append(values)
        if b.original is None:
            result.unknown_programs += 1
    session.flush()  # amendments and plans added as objects
    # Core executemany, not the ORM's bulk layer: the same statements, a third of the CPU.
    conn = session.connection()
    if updates:
        conn.execute(_UPDATE_VIEW, [{"pk_program_id": v["program_id"], "pk_fiscal_year": v["fiscal_year"], **v}
                                    for v in updates])
    if inserts:
        conn.execute(_PROGRAM.insert(), inserts)
    if batch.snapshots:
        conn.execute(_SNAPSHOT.insert(), batch.snapshots)
    conn.execute(_INBOX.insert(), [{"event_id": i, "processed_at": now} for i in event_ids])
    if batch.outbox:
        conn.execute(_OUTBOX.insert(), batch.outbox)
        conn.execute(_ALERT.insert(), batch.alerts)


def _alert(ev: domain.Evaluation, change: domain.RuleChange, prefix: str, cause: str,
           seq: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The alert's outbox row and history row, as column values for the batch's bulk inserts."""
    b = ev.budget
    assert b.as_of is not None  # every rule needs an as-of date to fire
    key_labels = {"fiscal_year": str(b.fiscal_year), "program_id": b.program_id, "rule": change.rule}
    fp = fingerprint(change.rule, key_labels)
    status = "resolved" if change.change == "resolve" else "firing"
    severity = "info" if status == "resolved" else change.level
    labels = {**key_labels, "severity": severity,
              **({"office": b.office} if b.office else {}), **({"division": b.division} if b.division else {})}
    at = datetime.combine(b.as_of, time(0), tzinfo=UTC)
    current = b.current_budget
    figures: dict[str, Any] = {
        "rate": b.rate, "commit_rate": b.commit_rate, "plan": ev.plan, "gap": ev.gap,
        "original": b.original, "carried_over": b.carried_over, "supplementary": b.supplementary,
        "current_budget": current, "committed": b.committed, "spent": b.spent, "balance": b.balance,
        "as_of": b.as_of.isoformat(),
    }
    if change.rule == "over_execution" and current is not None:
        figures["over_amount"] = max(b.spent, b.committed) - current
    if change.rule == "year_end_risk":
        figures["projected_rate"] = ev.projected
    alert = Alert(
        fingerprint=fp, rule=change.rule, status=status, severity=severity,
        program_id=b.program_id, program_title=b.title, fiscal_year=b.fiscal_year, office=b.office,
        division=b.division, labels=labels, summary=change.summary, figures=figures, starts_at=at,
        ends_at=at if status == "resolved" else None, generator="budget",
    )
    # The causing event's id is part of the alert id: deterministic on replay, and two decisions
    # at the same as-of (a snapshot, then an amendment) never collide.
    row = alert_values(alert, at, prefix, b.as_of, b.revision, cause)
    log = {"event_id": row["event_id"], "program_id": b.program_id, "fiscal_year": b.fiscal_year,
           "rule": change.rule, "status": status, "severity": severity, "fingerprint": fp, "as_of": b.as_of,
           "summary": change.summary, "figures": _jsonable(figures), "seq": seq, "created_at": row["created_at"]}
    return row, log


def _jsonable(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in figures.items()}


# ---------------------------------------------------------------- read side


def budgeted_programs(session: Session, fiscal_year: int) -> list[BudgetProgram]:
    return list(session.exec(select(BudgetProgram).where(
        BudgetProgram.fiscal_year == fiscal_year, col(BudgetProgram.original).is_not(None)
    ).order_by(col(BudgetProgram.program_id))).all())


def latest_fiscal_year(session: Session) -> int | None:
    year: int | None = session.exec(select(sa.func.max(BudgetProgram.fiscal_year))).one()
    return year


def rollup_lines(session: Session, cfg: Config, fiscal_year: int, as_of: date | None) -> list[domain.Line]:
    """Each budgeted program as a rollup line: its current view, or with `as_of`, its latest
    snapshot on or before that date (0 when it has none yet) against the plan of that date.
    The budget figures are the current ones (amendments are not back-dated)."""
    programs = budgeted_programs(session, fiscal_year)
    executed = execution_as_of(session, fiscal_year, as_of) if as_of is not None else {}
    plans = load_plans(session, [(p.program_id, p.fiscal_year) for p in programs]) if as_of is not None else {}
    lines = []
    for p in programs:
        committed, spent, plan = p.committed, p.spent, p.plan_rate
        if as_of is not None:
            _, committed, spent = executed.get(p.program_id, (as_of, 0, 0))
            excluded = cfg.plan.excludes(p.category, p.title)
            plan = None if excluded else domain.plan_rate(as_of, fiscal_year, cfg.plan,
                                                          plans.get((p.program_id, fiscal_year)))
        lines.append(domain.Line(p.office, p.division, p.original or 0, p.carried_over, p.supplementary,
                                 committed, spent, plan))
    return lines
