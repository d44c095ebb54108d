"""Budget tables and queries. Amounts are integer 원 (BigInteger: budgets exceed 2^31)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from services.budget.domain import AmendmentPoint, Level, LineVersion, MilestonePoint, ProgramBudget
from services.common.db import InboxBase, OutboxBase, pending_index, utcnow

Money = sa.BigInteger


class BudgetProgram(SQLModel, table=True):
    """The latest view of one program in one fiscal year: its latest budget line with every
    recorded amendment, and its latest snapshot. The rule levels, plan rate and gap are those
    judged on the snapshot's as-of date, against the budget in effect on that date."""

    __tablename__ = "budget_program"
    program_id: str = Field(primary_key=True, max_length=200)
    fiscal_year: int = Field(primary_key=True)
    title: str | None = None
    office: str | None = Field(default=None, index=True)
    division: str | None = Field(default=None, index=True)
    category: str | None = None
    original: int | None = Field(default=None, sa_type=Money)
    carried_over: int = Field(default=0, sa_type=Money)
    supplementary: int = Field(default=0, sa_type=Money)
    committed: int | None = Field(default=0, sa_type=Money)  # None: the source printed only 지출액
    spent: int = Field(default=0, sa_type=Money)
    as_of: date | None = None
    revision: int = 0
    level: str = Field(default="ok", max_length=10)
    plan_rate: Decimal | None = Field(default=None, sa_type=sa.Numeric(6, 1))
    #: plan − actual in percentage points, stored so the list can sort by it in SQL
    gap: Decimal | None = Field(default=None, sa_type=sa.Numeric(7, 1))
    over_level: str = Field(default="ok", max_length=10, sa_column_kwargs={"server_default": "ok"})
    year_end_level: str = Field(default="ok", max_length=10, sa_column_kwargs={"server_default": "ok"})
    projected_rate: Decimal | None = Field(default=None, sa_type=sa.Numeric(9, 1))
    snapshots: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    account: str | None = Field(default=None, max_length=20)
    #: record (in totals) / part (of parent_program_id) / unlinked (held out of totals)
    scope: str = Field(default="record", max_length=10, sa_column_kwargs={"server_default": "record"})
    parent_program_id: str | None = Field(default=None, max_length=200, index=True)
    effective_date: date | None = None  # of the latest line

    def to_domain(self) -> ProgramBudget:
        level: Level = self.level  # type: ignore[assignment]
        return ProgramBudget(
            program_id=self.program_id, fiscal_year=self.fiscal_year, title=self.title, office=self.office,
            division=self.division, category=self.category, original=self.original,
            carried_over=self.carried_over, supplementary=self.supplementary, committed=self.committed,
            spent=self.spent, as_of=self.as_of, revision=self.revision, level=level,
            over_level=self.over_level, year_end_level=self.year_end_level,  # type: ignore[arg-type]
            account=self.account, scope=self.scope, parent_program_id=self.parent_program_id,
            effective_date=self.effective_date,
        )


class BudgetSnapshot(SQLModel, table=True):
    """Every applied snapshot: the time series of cumulative execution."""

    __tablename__ = "budget_snapshot"
    __table_args__ = (
        sa.UniqueConstraint("program_id", "fiscal_year", "as_of", "revision"),
        sa.Index("ix_budget_snapshot_year_as_of", "fiscal_year", "as_of"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: the unique constraint's index starts with it (one B-tree fewer to
    # update per applied snapshot).
    program_id: str = Field(max_length=200)
    fiscal_year: int
    as_of: date
    revision: int = 0
    committed: int | None = Field(sa_type=Money)
    spent: int = Field(sa_type=Money)
    event_id: str = Field(max_length=36)


class BudgetLineVersion(SQLModel, table=True):
    """Every budget line as stated on its effective date (the report's 기준일), so a view as of
    a date shows the line then in effect. A line without a date counts from the start
    (`since` = 0001-01-01); the same program, year and date again replaces that version."""

    __tablename__ = "budget_line_version"
    program_id: str = Field(primary_key=True, max_length=200)
    fiscal_year: int = Field(primary_key=True)
    since: date = Field(primary_key=True)
    effective_date: date | None = None
    title: str | None = None
    office: str | None = None
    division: str | None = None
    category: str | None = None
    account: str | None = Field(default=None, max_length=20)
    scope: str = Field(default="record", max_length=10)
    parent_program_id: str | None = Field(default=None, max_length=200)
    original: int = Field(sa_type=Money)
    carried_over: int = Field(default=0, sa_type=Money)
    supplementary: int = Field(default=0, sa_type=Money)
    event_id: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    #: the report line the version came from ({document, section, line}), for the program page
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class BudgetDivisionSnapshot(SQLModel, table=True):
    """A 과's (or a 실's) figures of record as of a date (a report's 과별 집행 현황 row, a
    예산현황's 소계 or 계), kept apart from the programs: shown beside the sum of the programs,
    never added to it. One row per division and date: the highest revision stated for it."""

    __tablename__ = "budget_division_snapshot"
    office: str = Field(primary_key=True, max_length=100)  # "" when the report names no 실
    division: str = Field(primary_key=True, max_length=100)  # "" for the 실's own figures (its 계)
    fiscal_year: int = Field(primary_key=True)
    as_of: date = Field(primary_key=True)
    revision: int = 0
    original: int | None = Field(default=None, sa_type=Money)  # 본예산 as printed
    current: int | None = Field(default=None, sa_type=Money)
    committed: int | None = Field(default=None, sa_type=Money)
    spent: int | None = Field(default=None, sa_type=Money)
    unit: str | None = Field(default=None, max_length=10)  # the unit printed: each figure is rounded to it
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    event_id: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class BudgetMilestone(SQLModel, table=True):
    """The programs' milestones as budget needs them: when a program's money can start to move
    (its first 공모/선정/협약/계약/교부/지급). Keyed like the programs service keeps them."""

    __tablename__ = "budget_milestone"
    program_id: str = Field(primary_key=True, max_length=200)
    milestone_id: str = Field(primary_key=True, max_length=200)
    title: str
    start: date | None = None  # actual start when known, else the planned window start
    end: date | None = None
    status: str = Field(default="planned", max_length=20)
    needs_review: bool = False
    event_id: str = Field(max_length=36)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class BudgetAmendment(SQLModel, table=True):
    __tablename__ = "budget_amendment"
    __table_args__ = (sa.UniqueConstraint("program_id", "fiscal_year", "amendment_id"),)
    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=200, index=True)
    fiscal_year: int
    amendment_id: str = Field(max_length=100)
    before: int = Field(sa_type=Money)
    change: int = Field(sa_type=Money)
    after: int = Field(sa_type=Money)
    reason: str | None = None
    effective_date: date | None = None
    event_id: str | None = Field(default=None, max_length=36)
    recorded_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    #: the date the amendment's event says it happened: its effective date when it states none
    occurred_on: date | None = None

    @property
    def effective(self) -> date:
        """From when the amendment counts: its effective date, else the day its event says it
        happened (deterministic on replay), else the day it was recorded."""
        if self.effective_date is not None:
            return self.effective_date
        if self.occurred_on is not None:
            return self.occurred_on
        return (self.recorded_at or utcnow()).date()

    def point(self) -> AmendmentPoint:
        return AmendmentPoint(self.amendment_id, self.effective, self.change)


class BudgetPlan(SQLModel, table=True):
    __tablename__ = "budget_plan"
    program_id: str = Field(primary_key=True, max_length=200)
    fiscal_year: int = Field(primary_key=True)
    points: list[list[Any]] = Field(default_factory=list, sa_type=sa.JSON)


class BudgetAlert(SQLModel, table=True):
    """Every alert state change budget emitted (the outbox keeps bytes; this keeps columns)."""

    __tablename__ = "budget_alert"
    event_id: str = Field(primary_key=True, max_length=36)
    program_id: str = Field(max_length=200, index=True)
    fiscal_year: int
    rule: str = Field(max_length=40)
    status: str = Field(max_length=10)
    severity: str = Field(max_length=10)
    fingerprint: str = Field(max_length=64)
    as_of: date | None = None
    summary: str
    figures: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    seq: int = 0  # order of emission within a batch, for a stable history
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class BudgetInbox(InboxBase, table=True):
    __tablename__ = "budget_inbox"


class BudgetOutbox(OutboxBase, table=True):
    __tablename__ = "budget_outbox"
    __table_args__ = (pending_index("budget_outbox"),)


_CHUNK = 400  # keys per IN (...) so SQLite's bound-parameter limit is never reached


def _chunks(keys: Iterable[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    unique = sorted(set(keys))
    for start in range(0, len(unique), _CHUNK):
        yield unique[start:start + _CHUNK]


def _key_in(pid: Any, year: Any, keys: list[tuple[str, int]]) -> Any:
    return sa.tuple_(pid, year).in_(keys)


def _level(value: str) -> Level:
    return value if value in ("ok", "warning", "critical") else "ok"  # type: ignore[return-value]


def load_states(session: Session, keys: Iterable[tuple[str, int]]
                ) -> dict[tuple[str, int], tuple[ProgramBudget, int]]:
    """The held view of each program as (domain numbers, snapshot count), read without ORM
    objects: a batch touches thousands of programs and writes them back in bulk."""
    t = BudgetProgram.__table__  # type: ignore[attr-defined]
    out: dict[tuple[str, int], tuple[ProgramBudget, int]] = {}
    for chunk in _chunks(keys):
        for r in session.execute(sa.select(t).where(_key_in(t.c.program_id, t.c.fiscal_year, chunk))).mappings():
            b = ProgramBudget(
                program_id=r["program_id"], fiscal_year=r["fiscal_year"], title=r["title"], office=r["office"],
                division=r["division"], category=r["category"], original=r["original"],
                carried_over=r["carried_over"], supplementary=r["supplementary"], committed=r["committed"],
                spent=r["spent"], as_of=r["as_of"], revision=r["revision"], level=_level(r["level"]),
                over_level=_level(r["over_level"]), year_end_level=_level(r["year_end_level"]),
                account=r["account"], scope=r["scope"] or "record", parent_program_id=r["parent_program_id"],
                effective_date=r["effective_date"])
            out[(r["program_id"], r["fiscal_year"])] = (b, r["snapshots"] or 0)
    return out


VIEW_FIELDS = ("title", "office", "division", "category", "original", "carried_over", "supplementary",
               "committed", "spent", "as_of", "revision", "level", "over_level", "year_end_level", "account",
               "scope", "parent_program_id", "effective_date")


def plan_of(row: BudgetPlan) -> list[tuple[int, Decimal]]:
    return [(int(m), Decimal(str(v))) for m, v in row.points]


def load_plans(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[tuple[int, Decimal]]]:
    out: dict[tuple[str, int], list[tuple[int, Decimal]]] = {}
    for chunk in _chunks(keys):
        rows = session.exec(select(BudgetPlan).where(
            _key_in(col(BudgetPlan.program_id), col(BudgetPlan.fiscal_year), chunk))).all()
        out.update({(r.program_id, r.fiscal_year): plan_of(r) for r in rows})
    return out


def load_plan_rows(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], BudgetPlan]:
    out: dict[tuple[str, int], BudgetPlan] = {}
    for chunk in _chunks(keys):
        rows = session.exec(select(BudgetPlan).where(
            _key_in(col(BudgetPlan.program_id), col(BudgetPlan.fiscal_year), chunk))).all()
        out.update({(r.program_id, r.fiscal_year): r for r in rows})
    return out


def load_amendments(session: Session, keys: Iterable[tuple[str, int]]
                    ) -> dict[tuple[str, int, str], BudgetAmendment]:
    out: dict[tuple[str, int, str], BudgetAmendment] = {}
    for chunk in _chunks(keys):
        rows = session.exec(select(BudgetAmendment).where(
            _key_in(col(BudgetAmendment.program_id), col(BudgetAmendment.fiscal_year), chunk))).all()
        out.update({(r.program_id, r.fiscal_year, r.amendment_id): r for r in rows})
    return out


Versions = dict[date, tuple[LineVersion, dict[str, Any]]]


def version_of(row: dict[str, Any]) -> LineVersion:
    return LineVersion(row["since"], row["original"], row["carried_over"], row["supplementary"])


def load_line_versions(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Versions]:
    """{key: {since: (version, row values)}}: every stated line of the programs."""
    t = BudgetLineVersion.__table__  # type: ignore[attr-defined]
    out: dict[tuple[str, int], Versions] = {}
    for chunk in _chunks(keys):
        for r in session.execute(sa.select(t).where(_key_in(t.c.program_id, t.c.fiscal_year, chunk))).mappings():
            row = dict(r)
            out.setdefault((row["program_id"], row["fiscal_year"]), {})[row["since"]] = (version_of(row), row)
    return out


def line_versions_of_year(session: Session, fiscal_year: int) -> dict[str, list[LineVersion]]:
    t = BudgetLineVersion.__table__  # type: ignore[attr-defined]
    out: dict[str, list[LineVersion]] = {}
    for r in session.execute(sa.select(t).where(t.c.fiscal_year == fiscal_year)).mappings():
        out.setdefault(r["program_id"], []).append(version_of(dict(r)))
    return out


def line_versions_of(session: Session, program_id: str, fiscal_year: int) -> list[BudgetLineVersion]:
    return list(session.exec(select(BudgetLineVersion).where(
        BudgetLineVersion.program_id == program_id, BudgetLineVersion.fiscal_year == fiscal_year
    ).order_by(col(BudgetLineVersion.since))).all())


def amendments_of_year(session: Session, fiscal_year: int) -> dict[str, list[AmendmentPoint]]:
    out: dict[str, list[AmendmentPoint]] = {}
    for a in session.exec(select(BudgetAmendment).where(BudgetAmendment.fiscal_year == fiscal_year)).all():
        out.setdefault(a.program_id, []).append(a.point())
    return out


MilestoneRows = dict[str, dict[str, MilestonePoint]]


def milestone_point(r: Any) -> MilestonePoint:
    return MilestonePoint(r["title"], r["start"], r["end"], r["status"], bool(r["needs_review"]))


def load_milestones(session: Session, program_ids: Iterable[str]) -> MilestoneRows:
    """{program_id: {milestone_id: point}}."""
    t = BudgetMilestone.__table__  # type: ignore[attr-defined]
    out: MilestoneRows = {}
    ids = sorted(set(program_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for r in session.execute(sa.select(t).where(t.c.program_id.in_(chunk))).mappings():
            out.setdefault(r["program_id"], {})[r["milestone_id"]] = milestone_point(r)
    return out


def keys_of_programs(session: Session, program_ids: Iterable[str]) -> set[tuple[str, int]]:
    """The (program, fiscal year) keys the view holds for these programs."""
    ids = sorted(set(program_ids))
    out: set[tuple[str, int]] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        out.update((pid, int(fy)) for pid, fy in session.execute(
            sa.select(col(BudgetProgram.program_id), col(BudgetProgram.fiscal_year))
            .where(col(BudgetProgram.program_id).in_(chunk))).all())
    return out


def load_history(session: Session, keys: Iterable[tuple[str, int]], since: date, until: date
                 ) -> dict[tuple[str, int], dict[date, tuple[int, int]]]:
    """{key: {as_of: (revision, spent)}} with the highest revision per as_of, in [since, until]."""
    out: dict[tuple[str, int], dict[date, tuple[int, int]]] = {}
    for chunk in _chunks(keys):
        rows = session.execute(
            sa.select(col(BudgetSnapshot.program_id), col(BudgetSnapshot.fiscal_year), col(BudgetSnapshot.as_of),
                      col(BudgetSnapshot.revision), col(BudgetSnapshot.spent))
            .where(_key_in(col(BudgetSnapshot.program_id), col(BudgetSnapshot.fiscal_year), chunk))
            .where(col(BudgetSnapshot.as_of) >= since, col(BudgetSnapshot.as_of) <= until)
        ).all()
        for pid, year, as_of, revision, spent in rows:
            points = out.setdefault((pid, year), {})
            if as_of not in points or points[as_of][0] < revision:
                points[as_of] = (revision, spent)
    return out


def series(session: Session, program_id: str, fiscal_year: int) -> list[BudgetSnapshot]:
    """The program's time series: one point per as-of date, the latest revision of each."""
    rows = session.exec(select(BudgetSnapshot).where(
        BudgetSnapshot.program_id == program_id, BudgetSnapshot.fiscal_year == fiscal_year
    ).order_by(col(BudgetSnapshot.as_of), col(BudgetSnapshot.revision))).all()
    latest: dict[date, BudgetSnapshot] = {}
    for r in rows:
        latest[r.as_of] = r
    return list(latest.values())


def execution_as_of(session: Session, fiscal_year: int, as_of: date) -> dict[str, tuple[date, int | None, int]]:
    """{program_id: (as_of, committed, spent)} from each program's latest snapshot on or before
    `as_of` (the highest revision of that date)."""
    ranked = (
        sa.select(
            col(BudgetSnapshot.program_id), col(BudgetSnapshot.as_of), col(BudgetSnapshot.committed),
            col(BudgetSnapshot.spent),
            sa.func.row_number().over(
                partition_by=col(BudgetSnapshot.program_id),
                order_by=(col(BudgetSnapshot.as_of).desc(), col(BudgetSnapshot.revision).desc()),
            ).label("rn"),
        )
        .where(col(BudgetSnapshot.fiscal_year) == fiscal_year, col(BudgetSnapshot.as_of) <= as_of)
        .subquery()
    )
    rows = session.execute(sa.select(ranked.c.program_id, ranked.c.as_of, ranked.c.committed, ranked.c.spent)
                           .where(ranked.c.rn == 1)).all()
    return {r[0]: (r[1], None if r[2] is None else int(r[2]), int(r[3])) for r in rows}


def division_snapshots_as_of(session: Session, fiscal_year: int, as_of: date | None
                             ) -> dict[tuple[str | None, str | None], BudgetDivisionSnapshot]:
    """{(office, division): the division's latest snapshot on or before `as_of` (any date without)};
    division None: the 실's own figures."""
    stmt = select(BudgetDivisionSnapshot).where(BudgetDivisionSnapshot.fiscal_year == fiscal_year)
    if as_of is not None:
        stmt = stmt.where(col(BudgetDivisionSnapshot.as_of) <= as_of)
    out: dict[tuple[str | None, str | None], BudgetDivisionSnapshot] = {}
    for r in session.exec(stmt.order_by(col(BudgetDivisionSnapshot.as_of))).all():
        out[(r.office or None, r.division or None)] = r  # ordered by date: the latest stays
    return out
