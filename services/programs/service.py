"""Programs use cases: apply a batch of program events; run the time-driven checks; replay.

Both paths end in `_reconcile`: for every occurrence and target of a program it asks the domain
what each alert should be today and compares that with the last state emitted (programs_alert),
emitting only the difference. Alert event ids are (fingerprint, status, severity, seq), seq
counting the emissions of that fingerprint, so the same history replayed — into this database
or a fresh one — yields the same ids and notify drops what it has already seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from contracts import AnyEvent, MilestoneSetEvent, ProgramRegisteredEvent, TargetSetEvent
from contracts.alerts import Alert, fingerprint
from contracts.programs import SourceRef
from services.common.alerting import alert_row
from services.common.db import Database, seen_event_ids, utcnow
from services.common.logging import event_context
from services.common.settings import Settings
from services.programs import domain
from services.programs.store import (
    CheckClock,
    Milestone,
    MilestoneWindow,
    Occurrence,
    Program,
    ProgramsAlert,
    ProgramsInbox,
    ProgramsOutbox,
    Target,
    TargetProgress,
)

Clock = Callable[[], date]
#: Serialises the batch path and the periodic check across instances on PostgreSQL, so two
#: transactions never decide the same alert transition at once.
ADVISORY_LOCK = 0x70726F67


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    stale: int = 0
    alerts: int = 0
    by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, status) -> count


@dataclass(frozen=True)
class Config:
    schedule: domain.ScheduleConfig
    topic_prefix: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> Config:
        return cls(domain.ScheduleConfig(
            grace_days=s.overdue_grace_days,
            warning_after_days=s.overdue_warning_after_days,
            critical_after_days=s.overdue_critical_after_days,
            moved_critical_days=s.moved_critical_days,
            reminder_days=tuple(sorted({d for d in s.deadline_reminder_days if d >= 0}, reverse=True)),
            target_tolerance=s.target_tolerance_pp,
            target_critical_gap=s.target_critical_gap_pp,
        ), s.topic_prefix)


def clock_from_settings(s: Settings) -> Clock:
    if s.clock:
        frozen = date.fromisoformat(s.clock)
        return lambda: frozen
    return lambda: datetime.now(UTC).date()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.exec(sa.text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=ADVISORY_LOCK))  # type: ignore[call-overload]


# --- the batch path ------------------------------------------------------------------------------


def apply_batch(db: Database, cfg: Config, events: list[AnyEvent], today: date) -> BatchResult:
    with db.unit_of_work() as session:
        _lock(session)
        return _apply(session, cfg, events, today)


def _effective_day(session: Session, today: date, advance: bool) -> date | None:
    """`today`, or the latest day already judged when the clock is behind it (None for a
    check that would go back in time: it has nothing to add)."""
    row = session.get(CheckClock, "checks", populate_existing=True)  # another writer may have moved it
    if row is not None and today < row.checked_through:
        return None if advance else row.checked_through
    if advance:
        row = row or CheckClock(name="checks", checked_through=today)
        row.checked_through = today
        session.add(row)
    return today


def _apply(session: Session, cfg: Config, events: list[AnyEvent], today: date) -> BatchResult:
    result = BatchResult()
    seen = seen_event_ids(session, ProgramsInbox, [str(e.event_id) for e in events])
    day = _effective_day(session, today, advance=False) or today
    # Every row the batch's programs have, loaded once (5 queries for the batch instead of 5 per
    # event) and kept current as the events change them: the same objects the session tracks.
    data = _load(session, sorted({e.key for e in events if str(e.event_id) not in seen
                                  and isinstance(e, PROGRAM_EVENTS)}))
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event_id)
        with event_context(event_id, event.key, event.event_type):
            _apply_one(session, cfg, data, event, day, result)
    return result


PROGRAM_EVENTS = (ProgramRegisteredEvent, MilestoneSetEvent, TargetSetEvent)


def _apply_one(session: Session, cfg: Config, data: _Loaded, event: AnyEvent, day: date,
               result: BatchResult) -> None:
    if isinstance(event, ProgramRegisteredEvent):
        _register(session, data, event, result)
    elif isinstance(event, MilestoneSetEvent):
        _set_milestone(session, cfg, data, event, result)
    elif isinstance(event, TargetSetEvent):
        _set_target(session, data, event, result)
    else:
        result.ignored += 1
        return
    session.add(ProgramsInbox(event_id=str(event.event_id)))
    result.applied += 1
    # Decided after every event, not once per batch: how the stream was cut into batches
    # must not change which alerts are emitted (a replay must give the same event ids).
    _reconcile(session, cfg, day, [event.key], result, data)


def _ref(ref: SourceRef | None) -> dict[str, Any] | None:
    return ref.model_dump(mode="json") if ref else None


def _placeholder(session: Session, data: _Loaded, program_id: str, year: int) -> Program:
    """Milestones may overtake their program's registration (another producer, another order)."""
    row = data.programs.get(program_id)
    if row is None:
        row = data.programs[program_id] = Program(program_id=program_id, fiscal_year=year, title=program_id,
                                                  registered=False)
        session.add(row)
    return row


def _register(session: Session, data: _Loaded, event: ProgramRegisteredEvent, result: BatchResult) -> None:
    p = event.payload
    row = data.programs.get(p.program_id)
    if row is not None and row.registered_at is not None and event.occurred_at < _aware(row.registered_at):
        result.stale += 1  # an older report's register entry: the newer one stands
        return
    if row is None:
        row = data.programs[p.program_id] = Program(program_id=p.program_id, fiscal_year=p.fiscal_year,
                                                    title=p.title)
    row.fiscal_year, row.title, row.office, row.division, row.team = (p.fiscal_year, p.title, p.office,
                                                                      p.division, p.team)
    row.contacts = [c.model_dump(mode="json") for c in p.contacts]
    row.purpose, row.method, row.agency, row.period_text = p.purpose, p.method, p.agency, p.period_text
    row.period_start, row.period_end = p.period_start, p.period_end
    row.budget_program_ids = list(p.budget_program_ids)
    row.kind, row.parent_program_id = p.kind, p.parent_program_id
    row.source_ref = _ref(p.source_ref)
    row.registered, row.registered_at, row.updated_at = True, event.occurred_at, utcnow()
    session.add(row)


def _change(old_end: date | None, new_end: date | None) -> str:
    if domain.moved_later(old_end, new_end):
        return "open_ended" if new_end is None else "later"
    if old_end is not None and new_end is not None and new_end < old_end:
        return "earlier"
    return "changed"


def _set_milestone(session: Session, cfg: Config, data: _Loaded, event: MilestoneSetEvent,
                   result: BatchResult) -> None:
    p = event.payload
    program = _placeholder(session, data, p.program_id, (p.window_start or p.window_end or event.occurred_at).year)
    row = data.milestone(p.program_id, p.milestone_id)
    window = (p.window_start, p.window_end)
    history: dict[str, Any] = dict(program_id=p.program_id, milestone_id=p.milestone_id, window_start=p.window_start,
                   window_end=p.window_end, window_text=p.window_text, event_id=str(event.event_id),
                   occurred_at=event.occurred_at, source_ref=_ref(p.source_ref))
    if row is not None and row.as_of is not None and event.occurred_at < _aware(row.as_of):
        _older_report(session, cfg, data, program, row, event, history, result)
        return
    if row is None:
        row = Milestone(program_id=p.program_id, milestone_id=p.milestone_id, title=p.title,
                        baseline_end=p.window_end)
        data.add_milestone(row)
        session.add(MilestoneWindow(**history, change="initial"))
    elif (row.window_start, row.window_end) != window:
        if domain.moved_later(row.window_end, p.window_end) and p.status not in domain.CLOSED:
            _fire_moved(session, cfg, data, program, row, p.window_start, p.window_end, p.window_text,
                        event.occurred_at, _ref(p.source_ref), result)
        session.add(MilestoneWindow(**history, change=_change(row.window_end, p.window_end)))
    row.title, row.window_start, row.window_end, row.window_text = p.title, p.window_start, p.window_end, p.window_text
    row.recurrence, row.status, row.actual_start, row.actual_end = (p.recurrence, p.status, p.actual_start,
                                                                    p.actual_end)
    row.review_flagged = p.needs_review
    row.note = p.note or row.note
    if row.baseline_end is None:
        row.baseline_end = p.window_end  # the first dated plan is what slips are measured from
    row.source_ref = _ref(p.source_ref)
    row.as_of, row.updated_at = event.occurred_at, utcnow()
    session.add(row)


def _older_report(session: Session, cfg: Config, data: _Loaded, program: Program, row: Milestone,
                  event: MilestoneSetEvent, history: dict[str, Any], result: BatchResult) -> None:
    """An older report arriving after a newer one: its window joins the history; when it is the
    earliest plan known and ended sooner than today's plan, that is a slip found late."""
    result.stale += 1
    p = event.payload
    earliest = session.exec(select(sa.func.min(MilestoneWindow.occurred_at)).where(
        MilestoneWindow.program_id == p.program_id, MilestoneWindow.milestone_id == p.milestone_id)).one()
    session.add(MilestoneWindow(**history, change="older_report", applied=False))
    if earliest is not None and _aware(earliest) <= event.occurred_at:
        return
    if p.window_end is not None:
        row.baseline_end = p.window_end
    if domain.moved_later(p.window_end, row.window_end) and row.status not in domain.CLOSED:
        old = Milestone(program_id=row.program_id, milestone_id=row.milestone_id, title=row.title,
                        window_start=p.window_start, window_end=p.window_end, baseline_end=p.window_end)
        _fire_moved(session, cfg, data, program, old, row.window_start, row.window_end, row.window_text,
                    event.occurred_at, row.source_ref, result)
    session.add(row)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _set_target(session: Session, data: _Loaded, event: TargetSetEvent, result: BatchResult) -> None:
    p = event.payload
    _placeholder(session, data, p.program_id, (p.period_start or p.period_end or event.occurred_at).year)
    row = data.target(p.program_id, p.target_id)
    if p.progress_value is not None:
        session.add(TargetProgress(program_id=p.program_id, target_id=p.target_id, value=p.progress_value,
                                   as_of=p.progress_as_of or event.occurred_at.date(), event_id=str(event.event_id),
                                   occurred_at=event.occurred_at, source_ref=_ref(p.source_ref)))
    stale = row is not None and row.as_of is not None and event.occurred_at < _aware(row.as_of)
    if row is None:
        row = Target(program_id=p.program_id, target_id=p.target_id, activity=p.activity,
                     target_value=p.target_value, unit=p.unit)
        data.add_target(row)
    if stale:
        result.stale += 1
    else:
        row.activity, row.period_start, row.period_end = p.activity, p.period_start, p.period_end
        row.target_value, row.unit, row.source_ref = p.target_value, p.unit, _ref(p.source_ref)
        row.status, row.note = p.status, p.note
        row.as_of = event.occurred_at
    session.add(row)
    session.flush()
    # The current progress is the latest report by its own date, whatever order reports came in.
    latest = session.exec(select(TargetProgress).where(
        TargetProgress.program_id == p.program_id, TargetProgress.target_id == p.target_id,
    ).order_by(col(TargetProgress.as_of).desc(), col(TargetProgress.occurred_at).desc(),
               col(TargetProgress.id).desc()).limit(1)).first()
    if latest is not None:
        row.progress_value, row.progress_as_of = latest.value, latest.as_of


# --- the time-driven path ------------------------------------------------------------------------


def check_all(db: Database, cfg: Config, today: date) -> BatchResult:
    """The scheduled pass over every program (also what `--as-of` and replays run)."""
    with db.unit_of_work() as session:
        return _check_all(session, cfg, today)


def _check_all(session: Session, cfg: Config, today: date, held: list[_Loaded] | None = None) -> BatchResult:
    result = BatchResult()
    _lock(session)
    if _effective_day(session, today, advance=True) is not None:
        data = _load(session, None, refresh=held is not None)
        if held is not None:
            held[:] = [data]
        _reconcile(session, cfg, today, None, result, data)
    return result


def replay(db: Database, cfg: Config, start: date, end: date) -> BatchResult:
    """Re-run the checks for each day of [start, end], in order, as the clock would have: each
    day commits on its own, and a day already checked emits nothing new.

    One session serves every day: each day still reads every row again (refreshing what another
    writer changed), but into the objects of the day before, which are kept, instead of building
    them anew (that was half the time of a day's checks)."""
    total = BatchResult()
    held: list[_Loaded] = []  # the last day's rows: the session's identity map holds them weakly
    day = start
    with Session(db.engine, expire_on_commit=False) as session:
        while day <= end:
            try:
                r = _check_all(session, cfg, day, held)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            total.alerts += r.alerts
            total.by_rule.update(r.by_rule)
            day += timedelta(days=1)
    return total


@dataclass
class _Loaded:
    """The rows of some programs (or all), as the session tracks them; milestones and targets in
    id order. A batch keeps it current as its events add rows, so each event's reconcile reads
    what the database would now hold without asking it."""

    programs: dict[str, Program]
    milestones: dict[str, list[Milestone]]
    occurrences: dict[tuple[str, str], dict[str, Occurrence]]
    targets: dict[str, list[Target]]
    alerts: dict[str, ProgramsAlert]
    alerts_by_program: dict[str, list[ProgramsAlert]] = field(default_factory=dict)

    def milestone(self, program_id: str, milestone_id: str) -> Milestone | None:
        return next((m for m in self.milestones.get(program_id, ()) if m.milestone_id == milestone_id), None)

    def add_milestone(self, row: Milestone) -> None:
        rows = self.milestones.setdefault(row.program_id, [])
        rows.append(row)
        rows.sort(key=lambda m: m.milestone_id)

    def target(self, program_id: str, target_id: str) -> Target | None:
        return next((t for t in self.targets.get(program_id, ()) if t.target_id == target_id), None)

    def add_target(self, row: Target) -> None:
        rows = self.targets.setdefault(row.program_id, [])
        rows.append(row)
        rows.sort(key=lambda t: t.target_id)

    def add_alert(self, row: ProgramsAlert) -> None:
        self.alerts[row.fingerprint] = row
        self.alerts_by_program.setdefault(row.program_id, []).append(row)


def _load(session: Session, program_ids: list[str] | None, refresh: bool = False) -> _Loaded:
    """`refresh`: rows already in the session are overwritten with what the database holds."""
    def where(stmt: Any, table: Any) -> Any:
        stmt = stmt if program_ids is None else stmt.where(col(table.program_id).in_(program_ids))
        return stmt.execution_options(populate_existing=True) if refresh else stmt

    if program_ids is not None and not program_ids:
        return _Loaded({}, {}, {}, {}, {})
    programs = {p.program_id: p for p in session.exec(where(select(Program), Program)).all()}
    milestones: dict[str, list[Milestone]] = {}
    # Sorted here, not by the database: new rows join in the same order, whatever the collation.
    for m in sorted(session.exec(where(select(Milestone), Milestone)).all(), key=lambda m: m.milestone_id):
        milestones.setdefault(m.program_id, []).append(m)
    occurrences: dict[tuple[str, str], dict[str, Occurrence]] = {}
    for o in session.exec(where(select(Occurrence), Occurrence)).all():
        occurrences.setdefault((o.program_id, o.milestone_id), {})[o.key] = o
    targets: dict[str, list[Target]] = {}
    for t in sorted(session.exec(where(select(Target), Target)).all(), key=lambda t: t.target_id):
        targets.setdefault(t.program_id, []).append(t)
    loaded = _Loaded(programs, milestones, occurrences, targets, {})
    for a in session.exec(where(select(ProgramsAlert), ProgramsAlert)).all():
        loaded.add_alert(a)
    return loaded


def _reconcile(session: Session, cfg: Config, today: date, program_ids: list[str] | None,
               result: BatchResult, data: _Loaded | None = None) -> None:
    """Judge these programs (all when None) as of `today`; `data`: their rows, already loaded."""
    if program_ids is not None and not program_ids:
        return
    if data is None:
        data = _load(session, program_ids)
    ids = sorted(set(data.programs) | set(data.milestones) | set(data.targets))
    if program_ids is not None:
        wanted = set(program_ids)
        ids = [pid for pid in ids if pid in wanted]
    at = datetime.combine(today, time(0), tzinfo=UTC)
    for pid in ids:
        program = data.programs.get(pid)
        ctx = _Emitter(session, cfg, program, pid, data, at, result)
        statuses: list[str] = []
        for m in data.milestones.get(pid, []):
            existing = data.occurrences.setdefault((pid, m.milestone_id), {})
            _reconcile_milestone(session, cfg, ctx, m, existing, today)
            statuses.append(m.status)
        for t in data.targets.get(pid, []):
            _reconcile_target(cfg, ctx, t, program, today)  # loaded: the session tracks it
        if program is not None:
            open_rules: dict[str, str] = {}
            for a in data.alerts_by_program.get(pid, []):  # with those emitted just now
                if a.status == "firing":
                    best = open_rules.get(a.rule, "ok")
                    if domain.SEVERITY_RANK[a.severity] > domain.SEVERITY_RANK[best]:
                        open_rules[a.rule] = a.severity
            status = domain.program_status(open_rules, statuses)
            if program.status != status:
                program.status = status


def _reconcile_milestone(session: Session, cfg: Config, ctx: _Emitter, m: Milestone,
                         existing: dict[str, Occurrence], today: date) -> None:
    # Every milestone is judged every day, and most days change nothing: attributes are written
    # only when their value changes (an ORM attribute write costs far more than a read; an equal
    # value would not be written to the database anyway), and only new rows are added to the
    # session (the loaded ones are tracked already).
    program = ctx.program
    if program is not None and program.registered and m.anchor_year != program.fiscal_year:
        m.anchor_year = program.fiscal_year
    state = m.state()
    review = domain.needs_review(state, m.review_flagged)
    _assign(m, needs_review=review is not None, review_reason=review)
    wanted = {o.key: o for o in domain.occurrences(state)}
    for key, occ in wanted.items():
        row = existing.get(key)
        if row is None:
            row = existing[key] = Occurrence(program_id=m.program_id, milestone_id=m.milestone_id, key=key,
                                             window_start=occ.start, window_end=occ.end, active=True)
            session.add(row)
        else:
            _assign(row, window_start=occ.start, window_end=occ.end, active=True)
    for key, row in existing.items():
        if key not in wanted and row.active:
            row.active = False
    worst = "ok"
    for key in sorted(existing):
        row = existing[key]
        occ = domain.Occurrence(key, row.window_start, row.window_end)
        done = domain.occurrence_done(state, occ)
        settled = done or not row.active
        late = domain.days_late(row.window_end, settled, today, cfg.schedule)
        _assign(row, done=done, overdue_level=domain.overdue_severity(late, cfg.schedule))
        if domain.SEVERITY_RANK[row.overdue_level] > domain.SEVERITY_RANK[worst]:
            worst = row.overdue_level
        ctx.overdue(m, row, late, today)
        ctx.deadline(m, row, settled, today)
    if m.overdue_level != worst:
        m.overdue_level = worst
    ctx.moved_settled(m)


def _assign(row: Any, **values: Any) -> None:
    """Set the attributes whose value differs (reads are cheap, ORM writes are not)."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def _reconcile_target(cfg: Config, ctx: _Emitter, t: Target, program: Program | None, today: date) -> None:
    fallback: tuple[date | None, date | None] = (None, None)
    if program is not None:
        year = program.fiscal_year
        fallback = (program.period_start or date(year, 1, 1), program.period_end or date(year, 12, 31))
    # A dropped target is no longer judged: an open target_behind alert is resolved.
    evaluation = (domain.TargetEvaluation("ok") if t.status == "dropped"
                  else domain.evaluate_target(t.state(fallback), today, cfg.schedule))
    if t.level != evaluation.level:
        t.level = evaluation.level
    ctx.target(t, evaluation)


# --- alert transitions ---------------------------------------------------------------------------


class _Emitter:
    """Compares what an alert should be with what was last emitted for it, and emits the change."""

    def __init__(self, session: Session, cfg: Config, program: Program | None, program_id: str,
                 data: _Loaded, at: datetime, result: BatchResult) -> None:
        self.session, self.cfg, self.program, self.program_id = session, cfg, program, program_id
        self.data, self.alerts, self.at, self.result = data, data.alerts, at, result

    @property
    def title(self) -> str:
        return self.program.title if self.program else self.program_id

    def _labels(self, rule: str, **parts: str | None) -> dict[str, str]:
        return {"program_id": self.program_id, "rule": rule, **{k: v for k, v in parts.items() if v}}

    def current(self, rule: str, labels: dict[str, str]) -> ProgramsAlert | None:
        return self.alerts.get(fingerprint(rule, labels))

    def emit(self, rule: str, labels: dict[str, str], status: str, severity: str, summary: str,
             figures: dict[str, Any], *, at: datetime | None = None, milestone: Milestone | None = None,
             target_id: str | None = None, stage: int | None = None, ref_end: date | None = None) -> None:
        at = at or self.at
        fp = fingerprint(rule, labels)
        row = self.alerts.get(fp)
        if row is None:
            row = ProgramsAlert(
                fingerprint=fp, rule=rule, program_id=self.program_id, status=status, severity=severity,
                milestone_id=milestone.milestone_id if milestone else None, occurrence=labels.get("occurrence"),
                target_id=target_id, summary=summary, last_event_id="", starts_at=at, updated_at=at, episode=0)
            self.data.add_alert(row)
        elif status == "firing" and row.status == "resolved":
            row.starts_at = at
        row.episode += 1  # seq of emissions of this fingerprint: part of the event id
        row.status, row.summary, row.figures, row.updated_at = status, summary, _jsonable(figures), at
        if status == "firing":
            row.severity, row.stage, row.ref_end = severity, stage, ref_end
        p = self.program
        alert = Alert(
            fingerprint=fp, rule=rule, status=status, severity=severity,
            program_id=self.program_id, program_title=p.title if p and p.registered else None,
            fiscal_year=p.fiscal_year if p and p.registered else None,
            office=p.office if p else None, division=p.division if p else None,
            labels={**labels, **({"division": p.division} if p and p.division else {})},
            summary=summary, figures={**figures, **({"milestone": milestone.title} if milestone else {})},
            starts_at=_aware(row.starts_at),
            ends_at=at if status == "resolved" else None, generator="programs",
        )
        outbox = alert_row(ProgramsOutbox, alert, at, self.cfg.topic_prefix, row.episode)
        row.last_event_id = outbox.event_id
        self.session.add(row)
        self.session.add(outbox)
        self.result.alerts += 1
        self.result.by_rule[(rule, status)] += 1

    def resolve(self, rule: str, labels: dict[str, str], summary: str, figures: dict[str, Any],
                milestone: Milestone | None = None, target_id: str | None = None) -> None:
        self.emit(rule, labels, "resolved", "info", summary, figures, milestone=milestone, target_id=target_id)

    # milestone overdue ------------------------------------------------------------------
    def overdue(self, m: Milestone, o: Occurrence, late: int, today: date) -> None:
        labels = self._labels("milestone_overdue", milestone_id=m.milestone_id, occurrence=o.key)
        cur = self.current("milestone_overdue", labels)
        figures: dict[str, Any] = {"window_start": _iso(o.window_start), "window_end": _iso(o.window_end),
                                   "days_late": late, "occurrence": o.key or None, "as_of": today.isoformat()}
        if o.overdue_level != "ok":
            assert o.window_end is not None
            changed = cur is None or cur.status == "resolved" or cur.severity != o.overdue_level
            if changed or (cur is not None and cur.ref_end != o.window_end):
                self.emit("milestone_overdue", labels, "firing", o.overdue_level,
                          domain.overdue_summary(self.title, m.title, o.window_end, late, o.key), figures,
                          milestone=m, ref_end=o.window_end)
        elif cur is not None and cur.status == "firing":
            why = ("완료" if m.status == "done" or o.done else "취소" if m.status == "cancelled"
                   else "일정 변경" if o.active else "일정에서 제외")
            self.resolve("milestone_overdue", labels,
                         domain.overdue_resolved_summary(self.title, m.title, o.key, why),
                         {**figures, "actual_end": _iso(m.actual_end)}, milestone=m)

    # deadline approaching ---------------------------------------------------------------
    def deadline(self, m: Milestone, o: Occurrence, settled: bool, today: date) -> None:
        cfg = self.cfg.schedule
        labels = self._labels("deadline_approaching", milestone_id=m.milestone_id, occurrence=o.key)
        cur = self.current("deadline_approaching", labels)
        stage = domain.reminder_stage(o.window_end, settled, today, cfg)
        if stage is not None:
            assert o.window_end is not None
            fresh = cur is None or cur.status == "resolved" or cur.ref_end != o.window_end
            if fresh or (cur is not None and cur.stage is not None and stage < cur.stage):
                left = (o.window_end - today).days
                self.emit("deadline_approaching", labels, "firing", domain.reminder_severity(stage, cfg),
                          domain.deadline_summary(self.title, m.title, o.window_end, left, o.key),
                          {"window_end": o.window_end.isoformat(), "days_left": left, "reminder": f"D-{stage}",
                           "occurrence": o.key or None}, milestone=m, stage=stage, ref_end=o.window_end)
            return
        if cur is None or cur.status != "firing":
            return
        horizon = max(cfg.reminder_days, default=0)
        gone = o.window_end is None or (o.window_end - today).days > horizon
        # A passed deadline stays open beside the overdue alert; both close when the work is done.
        if settled or gone:
            why = "완료" if o.done else "취소" if m.status == "cancelled" else "일정 변경"
            self.resolve("deadline_approaching", labels,
                         f"{self.title}: '{m.title}'{domain._period(o.key)} 마감 임박 알림을 닫습니다({why})",
                         {"window_end": _iso(o.window_end), "occurrence": o.key or None}, milestone=m)

    # schedule moved ---------------------------------------------------------------------
    def moved_settled(self, m: Milestone) -> None:
        labels = self._labels("schedule_moved", milestone_id=m.milestone_id)
        cur = self.current("schedule_moved", labels)
        if cur is None or cur.status != "firing":
            return
        if m.status in domain.CLOSED or not domain.moved_later(m.baseline_end, m.window_end):
            why = "완료" if m.status == "done" else "취소" if m.status == "cancelled" else "원래 일정으로 복귀"
            self.resolve("schedule_moved", labels, f"{self.title}: '{m.title}' 일정 변경 알림을 닫습니다({why})",
                         {"baseline_end": _iso(m.baseline_end), "window_end": _iso(m.window_end)}, milestone=m)

    # target behind ----------------------------------------------------------------------
    def target(self, t: Target, e: domain.TargetEvaluation) -> None:
        labels = self._labels("target_behind", target_id=t.target_id)
        cur = self.current("target_behind", labels)
        figures: dict[str, Any] = {
            "activity": t.activity, "target_value": t.target_value, "unit": t.unit,
            "progress_value": t.progress_value, "progress_as_of": _iso(t.progress_as_of),
            "achieved": e.achieved, "expected": e.expected, "gap": e.gap,
        }
        if e.level != "ok":
            if cur is None or cur.status == "resolved" or cur.severity != e.level:
                assert t.progress_value is not None
                self.emit("target_behind", labels, "firing", e.level,
                          domain.target_summary(self.title, t.activity, e, t.unit, t.target_value, t.progress_value),
                          figures, target_id=t.target_id)
        elif cur is not None and cur.status == "firing" and t.status == "dropped":
            self.resolve("target_behind", labels, f"{self.title}: '{t.activity}' 목표가 빠져 미달 알림을 닫습니다",
                         figures, target_id=t.target_id)
        elif cur is not None and cur.status == "firing":
            self.resolve("target_behind", labels,
                         f"{self.title}: '{t.activity}' 목표 달성이 기간 경과에 따라잡았습니다"
                         f"({e.achieved}% 달성, 경과율 {e.expected}%)" if e.achieved is not None else
                         f"{self.title}: '{t.activity}' 목표 미달 알림을 닫습니다", figures, target_id=t.target_id)


def _fire_moved(session: Session, cfg: Config, data: _Loaded, program: Program, old: Milestone,
                new_start: date | None, new_end: date | None, new_text: str | None, at: datetime,
                source_ref: dict[str, Any] | None, result: BatchResult) -> None:
    """A slip found by an event: always news, whatever the schedule's state (one per move)."""
    assert old.window_end is not None
    ctx = _Emitter(session, cfg, program, old.program_id, data, at, result)
    labels = ctx._labels("schedule_moved", milestone_id=old.milestone_id)
    severity = domain.moved_severity(old.baseline_end or old.window_end, new_end, cfg.schedule)
    figures: dict[str, Any] = {
        "old_start": _iso(old.window_start), "old_end": old.window_end.isoformat(),
        "new_start": _iso(new_start), "new_end": _iso(new_end), "new_text": new_text,
        "days_moved": (new_end - old.window_end).days if new_end else None,
        "baseline_end": _iso(old.baseline_end or old.window_end),
        "days_slipped": domain.slipped_days(old.baseline_end or old.window_end, new_end),
        "source_document": (source_ref or {}).get("document"), "source_section": (source_ref or {}).get("section"),
    }
    ctx.emit("schedule_moved", labels, "firing", severity,
             domain.moved_summary(ctx.title, old.title, old.window_end, new_end), figures, at=at, milestone=old,
             ref_end=new_end)


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _jsonable(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if not isinstance(v, str | int | type(None)) else v) for k, v in figures.items()}


def open_alerts(session: Session, program_ids: Iterable[str]) -> list[ProgramsAlert]:
    return list(session.exec(select(ProgramsAlert).where(
        col(ProgramsAlert.program_id).in_(list(program_ids)), ProgramsAlert.status == "firing",
    ).order_by(col(ProgramsAlert.starts_at))).all())
