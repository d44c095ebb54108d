"""The budget use case: apply a batch of budget events in one unit of work.

Runs synchronously (in a worker thread): load everything the batch touches in a few bulk
queries, walk the events in order through the pure rules (in memory), then write each touched
program's view once, the new snapshot points, alert outbox rows and inbox ids in bulk, and
commit once. Rules are evaluated after every applied event rather than once per batch, so the
alerts (and their ids) never depend on where batch boundaries fell: a restart or a replay
with other batch sizes emits exactly the same alerts.

Each event type has one handler (`HANDLERS`): budget lines (kept per effective date),
amendments, snapshots, plans, the programs topic's milestones (a program's first funding
milestone starts its default plan curve) and division snapshots (a 과's execution of record,
stored beside the programs and judged by no rule). The rules judge each program on its snapshot's date
against the budget in effect on that date.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from contracts import (
    AnyEvent,
    BudgetAmendedEvent,
    BudgetLineSetEvent,
    DivisionSnapshotEvent,
    ExecutionPlanSetEvent,
    ExecutionSnapshotEvent,
    MilestoneSetEvent,
)
from contracts.alerts import Alert, fingerprint
from services.budget import domain
from services.budget.store import (
    BudgetAlert,
    BudgetAmendment,
    BudgetDivisionSnapshot,
    BudgetInbox,
    BudgetLineVersion,
    BudgetMilestone,
    BudgetOutbox,
    BudgetPlan,
    BudgetProgram,
    BudgetSnapshot,
    MilestoneRows,
    Versions,
    keys_of_programs,
    load_amendments,
    load_history,
    load_line_versions,
    load_milestones,
    load_plan_rows,
    load_states,
    plan_of,
    version_of,
    view_values,
)
from services.common.alerting import alert_values
from services.common.db import Database, seen_event_ids, utcnow
from services.common.settings import Settings

Key = tuple[str, int]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0  # same event id seen before, or the same (as_of, revision) again
    snapshot_duplicates: int = 0  # of which execution snapshots
    stale: int = 0  # a snapshot older than the one held
    corrections: int = 0  # a higher revision for the as-of date held
    snapshots: int = 0  # snapshots applied (corrections included)
    ignored: int = 0  # an event budget does not use (program.registered, target.set, alerts)
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
                              excluded=frozenset(s.plan_excluded_categories),
                              funding_keywords=tuple(s.plan_funding_keywords)),
            domain.SlipConfig(warning_gap=s.slip_warning_gap, critical_gap=s.slip_critical_gap,
                              min_budget=s.slip_min_budget, default_from=domain.month_day(s.slip_default_from),
                              default_min_gap_amount=s.slip_default_min_gap_amount),
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
    """In-memory state of the programs a batch touches, and the rows it will write."""

    session: Session
    cfg: Config
    result: BatchResult
    now: datetime
    held: dict[Key, int]  # programs already in the view, with their snapshot counts
    state: dict[Key, domain.ProgramBudget]
    plans: dict[Key, list[tuple[int, Decimal]]]
    plan_rows: dict[Key, BudgetPlan]
    history: dict[Key, dict[date, tuple[int, int]]]
    versions: dict[Key, Versions]
    amendments: dict[Key, dict[str, BudgetAmendment]]
    milestones: MilestoneRows
    keys_by_program: dict[str, set[Key]]  # view keys known so far, for milestone events
    known_versions: set[tuple[str, int, date]] = field(default_factory=set)
    known_milestones: set[tuple[str, str]] = field(default_factory=set)
    version_rows: dict[tuple[str, int, date], dict[str, Any]] = field(default_factory=dict)
    milestone_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    last: dict[Key, domain.Evaluation] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)  # rows for bulk inserts
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshot_counts: Counter[Key] = field(default_factory=Counter)

    def budget(self, key: Key) -> domain.ProgramBudget:
        return self.state.get(key) or domain.ProgramBudget(program_id=key[0], fiscal_year=key[1])

    def amendment_points(self, key: Key) -> list[domain.AmendmentPoint]:
        return [a.point() for a in self.amendments.get(key, {}).values()]


#: A handler applies one event to the batch's state and returns the programs whose rules must
#: be judged again, or None when the event changed nothing (a stale or repeated snapshot).
Handler = Callable[[_Batch, Any, str], Iterable[Key] | None]


def _with_lines(batch: _Batch, key: Key, b: domain.ProgramBudget) -> domain.ProgramBudget:
    """The view's budget: the latest stated line (whatever its date) with every amendment on
    record, and the line's classification (account, scope, parent)."""
    amendments = batch.amendment_points(key)
    versions = batch.versions.get(key)
    if not versions:  # amendments before any line: keep their sum until the line arrives
        return replace(b, supplementary=sum(a.change for a in amendments))
    line, row = versions[max(versions)]
    return replace(b, title=row["title"] or b.title, office=row["office"] or b.office,
                   division=row["division"] or b.division, category=row["category"] or b.category,
                   account=row["account"], scope=row["scope"], parent_program_id=row["parent_program_id"],
                   effective_date=line.effective_date, original=line.original, carried_over=line.carried_over,
                   supplementary=domain.supplementary_on(line, amendments, None))


def _on_line(batch: _Batch, event: BudgetLineSetEvent, event_id: str) -> list[Key]:
    key = _key(event)
    lp = event.payload
    since = lp.effective_date or domain.FROM_THE_START
    row = {"program_id": key[0], "fiscal_year": key[1], "since": since, "effective_date": lp.effective_date,
           "title": lp.title, "office": lp.office, "division": lp.division, "category": lp.category,
           "account": lp.account, "scope": lp.scope, "parent_program_id": lp.parent_program_id,
           "original": lp.original, "carried_over": lp.carried_over, "supplementary": lp.supplementary,
           "event_id": event_id, "recorded_at": batch.now,
           "source_ref": lp.source_ref.model_dump(mode="json") if lp.source_ref else None}
    # The same program, year and date again replaces that version (a corrected report).
    batch.versions.setdefault(key, {})[since] = (version_of(row), row)
    batch.version_rows[(*key, since)] = row
    batch.state[key] = _with_lines(batch, key, batch.budget(key))
    return [key]


def _on_amended(batch: _Batch, event: BudgetAmendedEvent, event_id: str) -> list[Key]:
    key = _key(event)
    ap = event.payload
    by_id = batch.amendments.setdefault(key, {})
    held = by_id.get(ap.amendment_id)
    if held is None:  # a re-sent amendment corrects the one on record, never adds twice
        held = by_id[ap.amendment_id] = BudgetAmendment(
            program_id=key[0], fiscal_year=key[1], amendment_id=ap.amendment_id,
            before=ap.before, change=ap.change, after=ap.after)
        batch.session.add(held)
    held.before, held.change, held.after = ap.before, ap.change, ap.after
    held.reason, held.effective_date = ap.reason, ap.effective_date
    held.event_id, held.recorded_at = event_id, batch.now
    held.occurred_on = event.occurred_at.date()
    batch.state[key] = _with_lines(batch, key, batch.budget(key))
    return [key]


def _on_snapshot(batch: _Batch, event: ExecutionSnapshotEvent, event_id: str) -> list[Key] | None:
    key = _key(event)
    sp = event.payload
    b = batch.budget(key)
    result = batch.result
    decision = domain.snapshot_decision(b.as_of, b.revision, sp.as_of, sp.revision)
    if decision != "apply":
        result.stale += decision == "stale"
        result.duplicates += decision == "same"
        result.snapshot_duplicates += decision == "same"
        return None
    if b.as_of == sp.as_of:
        result.corrections += 1
    result.snapshots += 1
    batch.snapshots.append({"program_id": key[0], "fiscal_year": key[1], "as_of": sp.as_of,
                            "revision": sp.revision, "committed": sp.committed, "spent": sp.spent,
                            "event_id": event_id})
    batch.snapshot_counts[key] += 1
    batch.history.setdefault(key, {})[sp.as_of] = (sp.revision, sp.spent)
    batch.state[key] = replace(b, committed=sp.committed, spent=sp.spent, as_of=sp.as_of, revision=sp.revision)
    return [key]


def _on_plan(batch: _Batch, event: ExecutionPlanSetEvent, event_id: str) -> list[Key]:
    key = _key(event)
    points = [[pt.month, str(pt.cumulative_rate)] for pt in event.payload.points]
    plan_row = batch.plan_rows.get(key)
    if plan_row is None:
        plan_row = batch.plan_rows[key] = BudgetPlan(program_id=key[0], fiscal_year=key[1], points=points)
        batch.session.add(plan_row)
    else:
        plan_row.points = points
    batch.plans[key] = plan_of(plan_row)
    batch.state.setdefault(key, batch.budget(key))
    return [key]


def _on_milestone(batch: _Batch, event: MilestoneSetEvent, event_id: str) -> list[Key]:
    """A program's schedule moved: its plan curve may start elsewhere, so every fiscal year the
    view holds for it is judged again."""
    mp = event.payload
    end = mp.window_end if mp.recurrence else (mp.actual_end or mp.window_end)
    point = domain.MilestonePoint(mp.title, mp.actual_start or mp.window_start, end, mp.status, mp.needs_review)
    batch.milestones.setdefault(mp.program_id, {})[mp.milestone_id] = point
    batch.milestone_rows[(mp.program_id, mp.milestone_id)] = {
        "program_id": mp.program_id, "milestone_id": mp.milestone_id, "title": mp.title, "start": point.start,
        "end": point.end, "status": mp.status, "needs_review": mp.needs_review, "event_id": event_id,
        "updated_at": batch.now}
    return sorted(batch.keys_by_program.get(mp.program_id, ()))


def _on_division_snapshot(batch: _Batch, event: DivisionSnapshotEvent, event_id: str) -> list[Key] | None:
    """A 과's (or, division None, a 실's) figures of record on a date: stored beside the
    programs, judged by no rule (the rules judge programs), so no program is evaluated again. A
    lower revision than the one held for the date is stale; a higher one replaces it. Two facts
    of the same revision and date (a 예산현황 소계 with 본예산/예산현액/집행액 and a 과별 집행 현황
    row with 원인행위액, say) complete each other: each column a fact states is kept."""
    p = event.payload
    pk = (p.office or "", p.division or "", p.fiscal_year, p.as_of)
    # Rows this batch already touched, so a second event for the same date sees the first.
    pending: dict[Any, BudgetDivisionSnapshot] = batch.session.info.setdefault("division_snapshots", {})
    row = pending.get(pk) or batch.session.get(BudgetDivisionSnapshot, pk)
    if row is not None and row.revision > p.revision:
        batch.result.stale += 1
        return None
    merge = row is not None and row.revision == p.revision
    if row is None:
        row = BudgetDivisionSnapshot(office=pk[0], division=pk[1], fiscal_year=p.fiscal_year, as_of=p.as_of,
                                     event_id=event_id)
        batch.session.add(row)
    stated = {"original": p.original, "current": p.current, "committed": p.committed, "spent": p.spent,
              "unit": p.unit, "source_ref": p.source_ref.model_dump(mode="json") if p.source_ref else None}
    for name, value in stated.items():
        if value is not None or not merge:
            setattr(row, name, value)
    row.revision, row.event_id, row.recorded_at = p.revision, event_id, batch.now
    pending[pk] = row
    return []


HANDLERS: dict[str, Handler] = {
    "budget.line_set": _on_line,
    "budget.amended": _on_amended,
    "budget.execution_snapshot": _on_snapshot,
    "budget.plan_set": _on_plan,
    "milestone.set": _on_milestone,
    "budget.division_snapshot": _on_division_snapshot,
}
#: Events about a 과, not a program: they carry no program key to load or judge.
_UNKEYED = (MilestoneSetEvent, DivisionSnapshotEvent)


def _apply(session: Session, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    result = BatchResult()
    ids = {id(e): str(e.event_id) for e in events}  # str(UUID) is not free at thousands per batch
    seen = seen_event_ids(session, BudgetInbox, list(ids.values()))
    fresh: list[AnyEvent] = []
    for e in events:
        if e.event_type not in HANDLERS:
            result.ignored += 1
            continue
        if ids[id(e)] in seen:
            result.duplicates += 1
            result.snapshot_duplicates += e.event_type == "budget.execution_snapshot"
            continue
        seen.add(ids[id(e)])
        fresh.append(e)
    if not fresh:
        return result

    scheduled = {e.payload.program_id for e in fresh if isinstance(e, MilestoneSetEvent)}
    held_keys = keys_of_programs(session, scheduled) if scheduled else set()
    keys = {_key(e) for e in fresh if not isinstance(e, _UNKEYED)} | held_keys
    loaded = load_states(session, keys)
    plan_rows = load_plan_rows(session, keys)
    state = {k: b for k, (b, _) in loaded.items()}
    versions = load_line_versions(session, keys)
    milestones = load_milestones(session, {k[0] for k in keys} | scheduled)
    amendments: dict[Key, dict[str, BudgetAmendment]] = {}
    for (pid, fy, aid), a in load_amendments(session, keys).items():
        amendments.setdefault((pid, fy), {})[aid] = a
    by_program: dict[str, set[Key]] = {}
    for k in held_keys:
        by_program.setdefault(k[0], set()).add(k)
    batch = _Batch(session, cfg, result, utcnow(), {k: n for k, (_, n) in loaded.items()}, state,
                   {k: plan_of(r) for k, r in plan_rows.items()}, plan_rows,
                   _load_history(session, cfg, fresh, state), versions, amendments, milestones, by_program,
                   known_versions={(*k, since) for k, v in versions.items() for since in v},
                   known_milestones={(pid, mid) for pid, m in milestones.items() for mid in m})

    for event in fresh:
        cause = ids[id(event)]
        touched = HANDLERS[event.event_type](batch, event, cause)
        if touched is None:
            continue
        for key in touched:
            state[key] = _evaluate(batch, key, batch.budget(key), cause)
            result.touched.add(key)
            by_program.setdefault(key[0], set()).add(key)
        result.applied += 1

    _write(batch, [ids[id(e)] for e in fresh])
    return result


def _load_history(session: Session, cfg: Config, events: list[AnyEvent],
                  state: dict[Key, domain.ProgramBudget]) -> dict[Key, dict[date, tuple[int, int]]]:
    """Recent snapshot points of the programs whose year-end projection will be evaluated (as-of
    on or after the year-end start date), bounded to the projection's look-back window."""
    dates: dict[Key, list[date]] = {}
    for e in events:
        if isinstance(e, DivisionSnapshotEvent):
            continue
        is_milestone = isinstance(e, MilestoneSetEvent)
        for key in [k for k in state if k[0] == e.payload.program_id] if is_milestone else [_key(e)]:
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


def _on_its_date(batch: _Batch, key: Key, b: domain.ProgramBudget) -> domain.ProgramBudget:
    """The program as the rules judge it: its snapshot against the budget in effect on the
    snapshot's date (a 추경 effective later is not yet part of it); no line in effect then,
    no budget to judge against."""
    versions = batch.versions.get(key)
    if b.as_of is None or not versions:
        return b
    lines = [v for v, _ in versions.values()]
    figures = domain.budget_on(lines, batch.amendment_points(key), b.as_of)
    if figures is None:
        return replace(b, original=None)
    line = domain.version_on(lines, b.as_of)
    original, carried_over, supplementary = figures
    return replace(b, original=original, carried_over=carried_over, supplementary=supplementary,
                   effective_date=line.effective_date if line else None)


def _evaluate(batch: _Batch, key: Key, b: domain.ProgramBudget, cause: str) -> domain.ProgramBudget:
    points = batch.history.get(key)
    history = [(d, spent) for d, (_, spent) in points.items()] if points else []
    start = domain.funding_start(batch.milestones.get(key[0], {}).values(), key[1], batch.cfg.plan)
    ev = domain.evaluate(_on_its_date(batch, key, b), batch.cfg.rules, batch.plans.get(key), history, start)
    batch.last[key] = ev
    result = batch.result
    for change in ev.changes:
        outbox, log = _alert(ev, change, batch.cfg.topic_prefix, cause, len(batch.alerts))
        batch.outbox.append(outbox)
        batch.alerts.append(log)
        result.alerts += 1
        result.alerts_by[(change.rule, log["severity"], log["status"])] += 1
    judged = ev.budget
    if (judged.level, judged.over_level, judged.year_end_level) == (b.level, b.over_level, b.year_end_level):
        return b
    return replace(b, level=judged.level, over_level=judged.over_level, year_end_level=judged.year_end_level)


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


_PROGRAM = _table(BudgetProgram)
_SNAPSHOT = _table(BudgetSnapshot)
_INBOX = _table(BudgetInbox)
_OUTBOX = _table(BudgetOutbox)
_ALERT = _table(BudgetAlert)
_VERSION = _table(BudgetLineVersion)
_MILESTONE = _table(BudgetMilestone)


def _update_by_pk(table: sa.Table) -> Any:
    """UPDATE … WHERE primary key = :pk_<column>, for executemany."""
    return table.update().where(sa.and_(*(c == sa.bindparam(f"pk_{c.name}") for c in table.primary_key.columns)))


_UPDATE_VIEW = _update_by_pk(_PROGRAM)
_UPDATE_VERSION = _update_by_pk(_VERSION)
_UPDATE_MILESTONE = _update_by_pk(_MILESTONE)


def _upsert(conn: sa.Connection, table: sa.Table, update: Any, rows: Iterable[tuple[bool, dict[str, Any]]]) -> None:
    """Rows known to exist are updated by primary key, the others inserted: both in bulk."""
    pk = [c.name for c in table.primary_key.columns]
    updates, inserts = [], []
    for exists, values in rows:
        if exists:
            updates.append({**{f"pk_{k}": values[k] for k in pk}, **values})
        else:
            inserts.append(values)
    if updates:
        conn.execute(update, updates)
    if inserts:
        conn.execute(table.insert(), inserts)


def _write(batch: _Batch, event_ids: list[str]) -> None:
    """Bulk UPDATEs (executemany by primary key) and bulk INSERTs for the touched programs,
    their line versions and milestones; new snapshots, alerts and inbox ids."""
    session, result, now = batch.session, batch.result, batch.now
    views: list[tuple[bool, dict[str, Any]]] = []
    for key in sorted(result.touched):
        b = batch.state[key]
        values = view_values(b)
        ev = batch.last.get(key)
        values.update(plan_rate=ev.plan if ev else None, gap=ev.gap if ev else None,
                      projected_rate=ev.projected if ev else None, updated_at=now,
                      snapshots=batch.held.get(key, 0) + batch.snapshot_counts[key])
        # Unknown programs are kept: the view fills in when their budget line arrives.
        views.append((key in batch.held, values))
        if b.original is None:
            result.unknown_programs += 1
    session.flush()  # amendments and plans added as objects
    # Core executemany, not the ORM's bulk layer: the same statements, a third of the CPU.
    conn = session.connection()
    _upsert(conn, _PROGRAM, _UPDATE_VIEW, views)
    _upsert(conn, _VERSION, _UPDATE_VERSION,
            [(k in batch.known_versions, row) for k, row in sorted(batch.version_rows.items())])
    _upsert(conn, _MILESTONE, _UPDATE_MILESTONE,
            [(k in batch.known_milestones, row) for k, row in sorted(batch.milestone_rows.items())])
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
    figures = domain.alert_figures(ev, change.rule)
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
