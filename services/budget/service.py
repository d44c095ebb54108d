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

import weakref
from collections import Counter, OrderedDict
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
    VIEW_FIELDS,
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
    load_plan_rows,
    load_states,
    plan_of,
    version_of,
)
from services.common import bulk
from services.common.alerting import alert_values
from services.common.db import Database, utcnow
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
    reapplied: bool = False  # judged again under its locks: another writer moved what it read


@dataclass(frozen=True)
class Config:
    plan: domain.PlanConfig
    slip: domain.SlipConfig
    topic_prefix: str = ""
    year_end: domain.YearEndConfig = field(default_factory=domain.YearEndConfig)
    cache_programs: int = 200_000  # the StateCache's bound

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
            s.budget_cache_programs,
        )


@dataclass
class _Held:
    """What a batch learnt about one program, kept for the next batches: valid while the view
    row's `updated_at` is the one this process wrote (another writer changes it)."""

    stamp: Any
    state: domain.ProgramBudget
    snapshots: int
    versions: Versions
    amendments: dict[str, BudgetAmendment]  # read only: a key with an amendment event is reloaded
    plan: list[tuple[int, Decimal]] | None
    history: dict[date, int] | None  # 지출액 of every snapshot point since history_since
    history_since: date | None


class StateCache:
    """Program state between batches, so a batch loads only what it has not seen (cold keys, or
    keys another writer changed) instead of six bulk queries for everything it touches. Checked
    per batch against the view rows' stamps, which also covers a rebalance (a partition that
    comes back after another member wrote it is stale by its stamp) and several instances. Any
    failed batch clears it: its in-memory changes were rolled back in the database. Milestones
    are not kept: another member may record one for a program whose view row it never writes.
    Bounded to `max_keys` programs, the least recently written evicted first (a evicted program is
    a miss, loaded from the database when next seen), so its memory is bounded by a setting
    (`budget_cache_programs`), never by the events applied."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self.held: OrderedDict[Key, _Held] = OrderedDict()
        self.max_keys = max_keys

    def clear(self) -> None:
        self.held.clear()

    def put(self, key: Key, entry: _Held) -> None:
        self.held[key] = entry
        self.held.move_to_end(key)
        while len(self.held) > self.max_keys:
            self.held.popitem(last=False)


_caches: weakref.WeakKeyDictionary[Database, StateCache] = weakref.WeakKeyDictionary()


def cache_of(db: Database, max_keys: int | None = None) -> StateCache:
    """The state cache of a database's batches (one per Database, i.e. per service process),
    bounded to `max_keys` programs when given (the configuration's bound)."""
    cache = _caches.get(db)
    if cache is None:
        cache = _caches[db] = StateCache()
    if max_keys is not None:
        cache.max_keys = max_keys
    return cache


#: the first try, then lock first (SQLite) or again (PostgreSQL) while another writer moves what it read
_ATTEMPTS = 4


class _Overtaken(Exception):
    """Another writer committed, while a batch was judged and before it held its locks (SQLite's
    write lock, PostgreSQL's row locks), something the batch read: an inbox id it was about to
    claim, a program's view row, a milestone."""


def apply_batch(db: Database, cfg: Config, events: list[AnyEvent]) -> BatchResult:
    cache = cache_of(db, cfg.cache_programs)
    claim_first = not _lock_late(db, events)
    try:
        for attempt in range(_ATTEMPTS):
            try:
                with db.unit_of_work() as session:
                    result, keep = _apply(session, cfg, events, cache, claim_first=claim_first)
                break
            except _Overtaken:
                if attempt == _ATTEMPTS - 1:
                    raise
                cache.clear()
                claim_first = True
        result.reapplied = attempt > 0
    except BaseException:
        cache.clear()
        raise
    keep()  # after the commit: the cache never holds what the database does not
    return result


def _lock_late(db: Database, events: list[AnyEvent]) -> bool:
    """Whether the batch is computed before it takes the write lock. SQLite has one writer at a
    time, and a transaction holds the lock from its first write to its commit; claiming the
    inbox ids first held it while the whole batch was computed, so a second process of the group
    (other partitions, other programs) waited for the first one's rules as well as its writes,
    and two processes were 1.1–1.2 times one (docs/benchmarks.md). Reading and judging before
    the first write, then checking under the lock that nothing read has moved, lets them judge
    side by side. Batches with milestones or 과 figures (a few per report; they read rows that
    other partitions' programs share) keep the lock from the start. PostgreSQL locks rows, not
    the database: the claim comes first there, and the programs' rows are locked and checked
    before the writes (`_hold_programs`)."""
    return db.engine.dialect.name == "sqlite" and not any(
        e.event_type in _UNKEYED_TYPES for e in events)


def _key(event: AnyEvent) -> Key:
    p = event.payload
    return (p.program_id, int(p.fiscal_year))  # type: ignore[union-attr,arg-type]


def _program(event: AnyEvent) -> str:
    """The program an event names (not for the unkeyed 과-level facts)."""
    return str(event.payload.program_id)  # type: ignore[union-attr]


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
    history: dict[Key, dict[date, int]]  # 지출액 per as-of, for the year-end projection
    versions: dict[Key, Versions]
    amendments: dict[Key, dict[str, BudgetAmendment]]
    milestones: MilestoneRows
    keys_by_program: dict[str, set[Key]]  # view keys known so far, for milestone events
    known_versions: set[tuple[str, int, date]] = field(default_factory=set)  # of those the batch restates
    known_milestones: set[tuple[str, str]] = field(default_factory=set)
    version_rows: dict[tuple[str, int, date], dict[str, Any]] = field(default_factory=dict)
    milestone_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    last: dict[Key, domain.Judgement] = field(default_factory=dict)
    snapshots: list[bulk.Row] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)  # rows for bulk inserts
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshot_counts: Counter[Key] = field(default_factory=Counter)
    #: complete snapshot histories (since a date) the cache keeps, appended by every snapshot
    full_history: dict[Key, tuple[date, dict[date, int]]] = field(default_factory=dict)
    rules: domain.RuleConfig = field(default_factory=domain.RuleConfig)
    loaded: dict[Key, domain.ProgramBudget] = field(default_factory=dict)  # the state before the batch
    #: programs whose line or 추경 events ran in the batch: only theirs can differ from `loaded`
    #: in the line's columns (snapshots and judgements change the others)
    lines_moved: set[Key] = field(default_factory=set)

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
    held = batch.versions.setdefault(key, {})
    if since in held and (*key, since) not in batch.version_rows:
        batch.known_versions.add((*key, since))  # on record before this batch: an update
    held[since] = (version_of(row), row)
    batch.version_rows[(*key, since)] = row
    batch.state[key] = _with_lines(batch, key, batch.budget(key))
    batch.lines_moved.add(key)
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
    batch.lines_moved.add(key)
    return [key]


def _on_snapshot(batch: _Batch, event: ExecutionSnapshotEvent, event_id: str) -> list[Key] | None:
    sp = event.payload
    key = (sp.program_id, int(sp.fiscal_year))
    b = batch.state.get(key) or batch.budget(key)
    result = batch.result
    as_of, spent = sp.as_of, sp.spent
    held_as_of = b.as_of
    # The usual case first (a later day than the one held); the rule itself decides the rest.
    if held_as_of is not None and as_of <= held_as_of:
        decision = domain.snapshot_decision(held_as_of, b.revision, as_of, sp.revision)
        if decision != "apply":
            result.stale += decision == "stale"
            result.duplicates += decision == "same"
            result.snapshot_duplicates += decision == "same"
            return None
        if held_as_of == as_of:
            result.corrections += 1
    result.snapshots += 1
    batch.snapshots.append((key[0], key[1], as_of, sp.revision, sp.committed, spent, event_id))
    counts = batch.snapshot_counts
    counts[key] = counts.get(key, 0) + 1
    day = _day(as_of)  # one date object per day for the held points
    points = batch.history.get(key)
    if points is None:
        points = batch.history[key] = {}
    points[day] = spent
    full = batch.full_history.get(key)
    if full is not None:
        full[1][day] = spent
    batch.state[key] = domain.with_execution(b, sp.committed, spent, as_of, sp.revision)
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
_MILESTONE_SET = "milestone.set"
_EXECUTION_SNAPSHOT = "budget.execution_snapshot"
_DIVISION_SNAPSHOT = "budget.division_snapshot"
#: Events that carry no program key to load or judge: milestones (they name a program of any
#: year: their keys come from the view) and facts about a whole 과.
_UNKEYED_TYPES = frozenset({_MILESTONE_SET, _DIVISION_SNAPSHOT})


def _apply(session: Session, cfg: Config, events: list[AnyEvent], cache: StateCache,
           claim_first: bool = True) -> tuple[BatchResult, Callable[[], None]]:
    result = BatchResult()
    conn = session.connection()
    now = utcnow()
    ids = {id(e): str(e.event_id) for e in events}  # str(UUID) is not free at thousands per batch
    # The inbox claims the batch's event ids in one statement (ON CONFLICT DO NOTHING RETURNING)
    # instead of a read, then an insert at the end: the ids it returns are the events not
    # applied before. Same transaction: a failed batch leaves no claim behind.
    inbox = _statements_for(conn.dialect)[3]
    if claim_first:
        new = {r[0] for r in inbox.insert_new(conn, [(ids[id(e)], now) for e in events
                                                     if e.event_type in HANDLERS])}
    else:
        # Claimed before the first write (see _lock_late), not read now: events are new but
        # on a redelivery, and the claim tells (a redelivered batch is applied again).
        new = {ids[id(e)] for e in events if e.event_type in HANDLERS}
    fresh: list[AnyEvent] = []
    for e in events:
        if e.event_type not in HANDLERS:
            result.ignored += 1
            continue
        if ids[id(e)] not in new:
            result.duplicates += 1
            result.snapshot_duplicates += e.event_type == "budget.execution_snapshot"
            continue
        new.discard(ids[id(e)])  # the same id again later in the batch is a duplicate
        fresh.append(e)
    if not fresh:
        return result, lambda: None

    # By event type, not isinstance: a pydantic model's isinstance goes through its metaclass's
    # ABC check, which is measurable at thousands of events per batch.
    scheduled = {_program(e) for e in fresh if e.event_type == _MILESTONE_SET}
    postgres = conn.dialect.name == "postgresql"
    if postgres and scheduled:  # before their view keys are read: see _hold_programs
        _lock_programs(conn, scheduled)
    held_keys = keys_of_programs(session, scheduled) if scheduled else set()
    keys = {_key(e) for e in fresh if e.event_type not in _UNKEYED_TYPES} | held_keys
    # Cached programs whose view row is still the one this process wrote; amendments and plans
    # are ORM rows of this session, so a key with such an event is loaded again.
    reload = {_key(e) for e in fresh if e.event_type in ("budget.amended", "budget.plan_set")}
    programs = {k[0] for k in keys} | scheduled  # read now, and checked again before the writes
    stamps = {(pid, fy): stamp for pid, fy, stamp in bulk.select_in(conn, _STAMP_SQL, programs)}
    hits = {k: h for k in keys if (h := cache.held.get(k)) is not None and k not in reload
            and stamps.get(k, _MISSING) == h.stamp}
    misses = keys - hits.keys()
    loaded = load_states(session, misses) if misses else {}
    plan_rows = load_plan_rows(session, misses) if misses else {}
    state: dict[Key, domain.ProgramBudget] = {}
    counts: dict[Key, int] = {}
    plans: dict[Key, list[tuple[int, Decimal]]] = {}
    versions: dict[Key, Versions] = {}
    amendments: dict[Key, dict[str, BudgetAmendment]] = {}
    for k, h in hits.items():  # one pass over the cache hits (most keys of a batch)
        state[k], counts[k], versions[k], amendments[k] = h.state, h.snapshots, h.versions, h.amendments
        if h.plan is not None:
            plans[k] = h.plan
    for k, (b, n) in loaded.items():
        state[k], counts[k] = b, n
    plans.update((k, plan_of(r)) for k, r in plan_rows.items())
    if misses:
        versions.update(load_line_versions(session, misses))
    for (pid, fy, aid), a in (load_amendments(session, misses) if misses else {}).items():
        amendments.setdefault((pid, fy), {})[aid] = a
    milestones: MilestoneRows = {}  # always read: see StateCache
    milestone_rows = sorted(bulk.select_in_table(conn, _MILESTONE, _MILESTONE_COLUMNS, "program_id", programs),
                            key=_by_milestone)
    for pid, mid, *point in milestone_rows:
        milestones.setdefault(pid, {})[mid] = domain.MilestonePoint(*point)
    by_program: dict[str, set[Key]] = {}
    for k in held_keys:
        by_program.setdefault(k[0], set()).add(k)
    batch = _Batch(session, cfg, result, now, counts, state, plans, plan_rows, {}, versions, amendments,
                   milestones, by_program,
                   known_milestones={(pid, mid) for pid, m in milestones.items() for mid in m},
                   rules=cfg.rules, loaded=dict(state))
    _load_history(batch, fresh, hits)

    for event in fresh:
        cause = ids[id(event)]
        touched = HANDLERS[event.event_type](batch, event, cause)
        if touched is None:
            continue
        for key in touched:
            state[key] = _evaluate(batch, key, state.get(key) or batch.budget(key), cause)
            result.touched.add(key)
            program_keys = by_program.get(key[0])
            if program_keys is None:
                program_keys = by_program[key[0]] = set()
            program_keys.add(key)
        result.applied += 1

    if postgres:
        _hold_programs(conn, {k[0] for k in keys if k not in stamps} - scheduled, programs, stamps, milestone_rows)
    elif not claim_first:
        # The write lock from here to the commit. Under it, what the batch read must still be
        # what is stored: its inbox ids unclaimed (else some were applied before: a redelivery,
        # or another writer meanwhile), its programs' view rows (every write of a program's
        # state stamps its row) and their milestones (recorded without a view row when the
        # program has none yet). Else it is applied again, lock first.
        claimed = {r[0] for r in inbox.insert_new(conn, [(ids[id(e)], now) for e in fresh])}
        if len(claimed) != len(fresh) or _moved(conn, programs, stamps, milestone_rows):
            raise _Overtaken
    stamp = _write(batch)

    def keep() -> None:
        # New entries, never changed in place: a batch that read an entry keeps what it read.
        snapshot_counts, full_history = batch.snapshot_counts, batch.full_history
        for key in result.touched:
            full = full_history.get(key)
            cache.put(key, _Held(stamp, state[key], counts.get(key, 0) + snapshot_counts.get(key, 0),
                                 versions.get(key, {}), amendments.get(key, {}), plans.get(key),
                                 full[1] if full else None, full[0] if full else None))
    return result, keep


_MISSING = object()
_MILESTONE_COLUMNS = ("program_id", "milestone_id", "title", "start", "end", "status", "needs_review")
_STAMP_SQL = "SELECT program_id, fiscal_year, updated_at FROM budget_program WHERE program_id IN ({})"


def _by_milestone(row: bulk.Row) -> tuple[str, str]:
    return row[0], row[1]  # (program_id, milestone_id): the primary key


def _moved(conn: sa.Connection, programs: set[str], stamps: dict[Key, Any], milestone_rows: list[bulk.Row],
           sql: str = _STAMP_SQL) -> bool:
    """Whether the programs' view stamps or milestones are no longer what the batch read."""
    return ({(pid, fy): stamp for pid, fy, stamp in bulk.select_in(conn, sql, programs)} != stamps
            or sorted(bulk.select_in_table(conn, _MILESTONE, _MILESTONE_COLUMNS, "program_id", programs),
                      key=_by_milestone) != milestone_rows)


_STAMP_FOR_UPDATE_SQL = _STAMP_SQL + " ORDER BY program_id, fiscal_year FOR UPDATE"
_LOCK_PROGRAMS_SQL = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':budget:' || p, 0))"
                             " FROM unnest(CAST(:programs AS text[])) AS p")


def _lock_programs(conn: sa.Connection, programs: set[str]) -> None:
    # unnest keeps the array's order: every batch takes these locks in program order.
    conn.execute(_LOCK_PROGRAMS_SQL, {"programs": sorted(programs)})


def _hold_programs(conn: sa.Connection, new: set[str], programs: set[str], stamps: dict[Key, Any],
                   milestone_rows: list[bulk.Row]) -> None:
    """PostgreSQL: the programs' view rows locked (in key order) until the commit, and what the
    batch read of them checked, else it is judged again. Two processes of the group each hold
    their partitions, but a program's milestones come on the programs topic, whose partition
    another process may hold: without this, the later of two batches judging one program at once
    would overwrite the other's judgement. A program not yet in the view has no row to lock: a
    lock on its id (taken here, and by a milestone batch before it reads the view's keys) makes
    the two take turns, so either the milestone's batch sees the new view row, or this one sees
    the milestone."""
    if new:
        _lock_programs(conn, new)
    if programs and _moved(conn, programs, stamps, milestone_rows, _STAMP_FOR_UPDATE_SQL):
        raise _Overtaken


def _load_history(batch: _Batch, events: list[AnyEvent], hits: dict[Key, _Held]) -> None:
    """Recent snapshot points of the programs whose year-end projection will be evaluated (as-of
    on or after the year-end start date), back to the projection's look-back window: from the
    cache when it holds them since then, else from the database."""
    state = batch.state
    start = batch.cfg.year_end.start
    # Per program, the earliest as-of a judgement will look back from, and whether any reaches
    # the year-end start date (only those need their history).
    earliest: dict[Key, date] = {}
    reach: set[Key] = set()
    starts: dict[int, date] = {}

    def judged_on(key: Key, as_of: date) -> None:
        low = earliest.get(key)
        if low is None or as_of < low:
            earliest[key] = as_of
        year_start = starts.get(key[1])
        if year_start is None:
            year_start = starts[key[1]] = domain.in_year(key[1], start)
        if as_of >= year_start:
            reach.add(key)

    for e in events:
        kind = e.event_type
        if kind == _EXECUTION_SNAPSHOT:
            p = e.payload
            judged_on((p.program_id, int(p.fiscal_year)), p.as_of)  # type: ignore[union-attr,arg-type]
            continue
        if kind == _DIVISION_SNAPSHOT:
            continue
        for key in [k for k in state if k[0] == _program(e)] if kind == _MILESTONE_SET else [_key(e)]:
            held = state[key].as_of if key in state else None
            if held is not None:
                judged_on(key, held)
    needed = {k: earliest[k] for k in reach}
    for key, h in hits.items():  # keep appending to what the cache holds, needed now or not
        if h.history is not None and h.history_since is not None:
            batch.full_history[key] = (h.history_since, h.history)
    if not needed:
        return
    lookback = timedelta(days=batch.cfg.year_end.window_days + 46)
    load: dict[Key, date] = {}
    for key, first in needed.items():
        since = first - lookback
        full = batch.full_history.get(key)
        if full is not None and full[0] <= since:
            if full[0] < since - _PRUNE_AFTER:  # points before `since` never serve as an anchor again
                points = full[1]
                for day in [day for day in points if day < since]:
                    del points[day]
                full = batch.full_history[key] = (since, points)
            batch.history[key] = full[1]
        else:
            load[key] = since
    if load:
        # Everything from `since` on (not only up to the batch's dates): the cache then holds a
        # program's complete history since that day, which a batch of only stale snapshots
        # would otherwise cut short. The extra points are never an anchor here: a judged as-of
        # is never older than a program's stored points.
        since = min(load.values())
        histories = load_history(batch.session, load.keys(), since, date.max)
        for key in load:
            points = {_day(d): spent for d, (_, spent) in histories.get(key, {}).items()}
            batch.history[key] = points
            batch.full_history[key] = (since, points)


#: Held points older than the look-back window are dropped once they span this much more: the
#: cache then holds at most window_days + 46 + 30 days of points per program (amortised: one
#: pass over a program's points per 30 days of its snapshots), bounded by programs, not events.
_PRUNE_AFTER = timedelta(days=30)
_DAYS: dict[date, date] = {}


def _day(d: date) -> date:
    """One date object per calendar day for the held points (they are up to programs × window
    days; a date object each would be a third of their size)."""
    if len(_DAYS) > 10_000:  # a few hundred days a year; bounded all the same
        _DAYS.clear()
    return _DAYS.setdefault(d, d)


def _on_its_date(batch: _Batch, key: Key, b: domain.ProgramBudget) -> domain.ProgramBudget:
    """The program as the rules judge it: its snapshot against the budget in effect on the
    snapshot's date (a 추경 effective later is not yet part of it); no line in effect then,
    no budget to judge against."""
    versions = batch.versions.get(key)
    if b.as_of is None or not versions:
        return b
    if len(versions) == 1 and not batch.amendments.get(key):
        (only, _), = versions.values()  # one line, no 추경: the view's figures, once in effect
        if only.since <= b.as_of and (b.original, b.carried_over, b.supplementary, b.effective_date) == (
                only.original, only.carried_over, only.supplementary, only.effective_date):
            return b
    line = domain.version_on([v for v, _ in versions.values()], b.as_of)
    if line is None:
        return b if b.original is None else replace(b, original=None)
    supplementary = domain.supplementary_on(line, batch.amendment_points(key), b.as_of)
    if (b.original, b.carried_over, b.supplementary, b.effective_date) == (
            line.original, line.carried_over, supplementary, line.effective_date):
        return b  # the usual case: the view's line is the one in effect
    return replace(b, original=line.original, carried_over=line.carried_over, supplementary=supplementary,
                   effective_date=line.effective_date)


def _evaluate(batch: _Batch, key: Key, b: domain.ProgramBudget, cause: str) -> domain.ProgramBudget:
    points = batch.history.get(key)
    history: list[tuple[date, int]] = []
    # Only the point just applied (the usual case before the year-end history is loaded): it is
    # never an anchor, which lies `window_days` before the as-of date, so no list is built.
    if points and not (len(points) == 1 and b.as_of in points and batch.cfg.year_end.window_days > 0):
        history = list(points.items())
    milestones = batch.milestones.get(key[0])
    start = domain.funding_start(milestones.values(), key[1], batch.cfg.plan) if milestones else None
    judged = _on_its_date(batch, key, b)
    plan = batch.plans.get(key)
    verdict = domain.judge(judged, batch.rules, plan, history, start)
    if verdict[0] == b.level and verdict[1] == b.over_level and verdict[2] == b.year_end_level:
        batch.last[key] = verdict  # no change of state: no alert, nothing else to build
        return b
    ev = domain.evaluate(judged, batch.rules, plan, history, start)
    judged = ev.budget
    batch.last[key] = domain.Judgement(judged.level, judged.over_level, judged.year_end_level, ev.plan, ev.gap,
                                       ev.projected)
    result = batch.result
    for change in ev.changes:
        outbox, log = _alert(ev, change, batch.cfg.topic_prefix, cause, len(batch.alerts))
        batch.outbox.append(outbox)
        batch.alerts.append(log)
        result.alerts += 1
        result.alerts_by[(change.rule, log["severity"], log["status"])] += 1
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

_VIEW_COLUMNS = ("program_id", "fiscal_year", *VIEW_FIELDS, "plan_rate", "gap", "projected_rate", "updated_at",
                 "snapshots")
#: What snapshots and judgements change; a program whose line, 추경 and classification did not
#: move in the batch is updated in these columns only (its indexed office/division untouched).
_EXECUTION_COLUMNS = ("program_id", "fiscal_year", "committed", "spent", "as_of", "revision", "level", "over_level",
                      "year_end_level", "plan_rate", "gap", "projected_rate", "updated_at", "snapshots")
_LINE_FIELDS = ("title", "office", "division", "category", "original", "carried_over", "supplementary", "account",
                "scope", "parent_program_id", "effective_date")
_SNAPSHOT_COLUMNS = ("program_id", "fiscal_year", "as_of", "revision", "committed", "spent", "event_id")
_INBOX_COLUMNS = ("event_id", "processed_at")
_statements: dict[tuple[str, str], tuple[bulk.Statements, ...]] = {}


def _statements_for(dialect: sa.Dialect) -> tuple[bulk.Statements, ...]:
    key = (dialect.name, dialect.paramstyle)
    if key not in _statements:
        _statements[key] = (bulk.Statements(_PROGRAM, _VIEW_COLUMNS, dialect),
                            bulk.Statements(_PROGRAM, _EXECUTION_COLUMNS, dialect),
                            bulk.Statements(_SNAPSHOT, _SNAPSHOT_COLUMNS, dialect),
                            bulk.Statements(_INBOX, _INBOX_COLUMNS, dialect))
    return _statements[key]


def _update_by_pk(table: sa.Table) -> Any:
    """UPDATE … WHERE primary key = :pk_<column>, for executemany."""
    return table.update().where(sa.and_(*(c == sa.bindparam(f"pk_{c.name}") for c in table.primary_key.columns)))


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


def _write(batch: _Batch) -> Any:
    """Bulk UPDATEs (executemany by primary key) and bulk INSERTs for the touched programs,
    their line versions and milestones; new snapshots and alerts (the inbox ids were claimed
    first, see `_apply`). The hot tables (view, snapshots) go through plain DB-API with prebuilt
    tuples (COPY on PostgreSQL); the rare ones through Core. Returns the view rows' stamp as stored (see StateCache)."""
    session, result, now = batch.session, batch.result, batch.now
    updates: list[bulk.Row] = []
    executions: list[bulk.Row] = []
    inserts: list[bulk.Row] = []
    for key in sorted(result.touched):
        b = batch.state[key]
        ev = batch.last.get(key)
        plan, gap, projected = (ev.plan, ev.gap, ev.projected) if ev else (None, None, None)
        count = batch.held.get(key, 0) + batch.snapshot_counts[key]
        before = batch.loaded.get(key)
        if before is not None and key in batch.held and (key not in batch.lines_moved or all(
                getattr(before, f) == getattr(b, f) for f in _LINE_FIELDS)):
            executions.append((b.program_id, b.fiscal_year, b.committed, b.spent, b.as_of, b.revision, b.level,
                               b.over_level, b.year_end_level, plan, gap, projected, now, count))
        else:
            row = (b.program_id, b.fiscal_year, b.title, b.office, b.division, b.category, b.original,
                   b.carried_over, b.supplementary, b.committed, b.spent, b.as_of, b.revision, b.level,
                   b.over_level, b.year_end_level, b.account, b.scope, b.parent_program_id, b.effective_date,
                   plan, gap, projected, now, count)
            # Unknown programs are kept: the view fills in when their budget line arrives.
            (updates if key in batch.held else inserts).append(row)
        if b.original is None:
            result.unknown_programs += 1
    session.flush()  # amendments and plans added as objects
    conn = session.connection()
    view, execution, snapshots, _ = _statements_for(conn.dialect)
    execution.update(conn, executions)
    view.update(conn, updates)
    view.insert(conn, inserts)
    _upsert(conn, _VERSION, _UPDATE_VERSION,
            [(k in batch.known_versions, row) for k, row in sorted(batch.version_rows.items())])
    _upsert(conn, _MILESTONE, _UPDATE_MILESTONE,
            [(k in batch.known_milestones, row) for k, row in sorted(batch.milestone_rows.items())])
    snapshots.insert(conn, batch.snapshots)
    if batch.outbox:
        conn.execute(_OUTBOX.insert(), batch.outbox)
        conn.execute(_ALERT.insert(), batch.alerts)
    return view.bind([(None,) * (len(_VIEW_COLUMNS) - 2) + (now, None)])[0][-2]


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
