"""Budget tables and queries. Amounts are integer 원 (BigInteger: budgets exceed 2^31)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from services.budget.domain import Level, ProgramBudget
from services.common.db import InboxBase, OutboxBase, utcnow

Money = sa.BigInteger


class BudgetProgram(SQLModel, table=True):
    """The current view of one program in one fiscal year."""

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
    committed: int = Field(default=0, sa_type=Money)
    spent: int = Field(default=0, sa_type=Money)
    as_of: date | None = None
    revision: int = 0
    level: str = Field(default="ok", max_length=10)
    plan_rate: Decimal | None = Field(default=None, sa_type=sa.Numeric(6, 1))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))

    def to_domain(self) -> ProgramBudget:
        level: Level = self.level  # type: ignore[assignment]
        return ProgramBudget(
            program_id=self.program_id, fiscal_year=self.fiscal_year, title=self.title, office=self.office,
            division=self.division, original=self.original, carried_over=self.carried_over,
            supplementary=self.supplementary, committed=self.committed, spent=self.spent,
            as_of=self.as_of, revision=self.revision, level=level,
        )

    def update_from(self, b: ProgramBudget) -> None:
        for name in ("title", "office", "division", "original", "carried_over", "supplementary",
                     "committed", "spent", "as_of", "revision", "level"):
            setattr(self, name, getattr(b, name))
        self.updated_at = utcnow()


class BudgetSnapshot(SQLModel, table=True):
    """Every applied snapshot: the time series of cumulative execution."""

    __tablename__ = "budget_snapshot"
    __table_args__ = (sa.UniqueConstraint("program_id", "fiscal_year", "as_of", "revision"),)
    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=200, index=True)
    fiscal_year: int
    as_of: date
    revision: int = 0
    committed: int = Field(sa_type=Money)
    spent: int = Field(sa_type=Money)
    event_id: str = Field(max_length=36)


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


class BudgetPlan(SQLModel, table=True):
    __tablename__ = "budget_plan"
    program_id: str = Field(primary_key=True, max_length=200)
    fiscal_year: int = Field(primary_key=True)
    points: list[list[Any]] = Field(default_factory=list, sa_type=sa.JSON)


class BudgetInbox(InboxBase, table=True):
    __tablename__ = "budget_inbox"


class BudgetOutbox(OutboxBase, table=True):
    __tablename__ = "budget_outbox"


def load_programs(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], BudgetProgram]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = session.exec(
        select(BudgetProgram).where(sa.tuple_(col(BudgetProgram.program_id), col(BudgetProgram.fiscal_year)).in_(keys))
    ).all()
    return {(r.program_id, r.fiscal_year): r for r in rows}


def load_plans(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[tuple[int, Decimal]]]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = session.exec(
        select(BudgetPlan).where(sa.tuple_(col(BudgetPlan.program_id), col(BudgetPlan.fiscal_year)).in_(keys))
    ).all()
    return {(r.program_id, r.fiscal_year): [(int(m), Decimal(str(v))) for m, v in r.points] for r in rows}


def rollup(session: Session, fiscal_year: int, by: str) -> list[dict[str, Any]]:
    """Sums per division (과) or office (실): the numbers a summary table prints."""
    group = col(BudgetProgram.division) if by == "division" else col(BudgetProgram.office)
    cols = [
        sa.func.count().label("programs"),
        sa.func.coalesce(sa.func.sum(BudgetProgram.original), 0).label("original"),
        sa.func.sum(BudgetProgram.carried_over).label("carried_over"),
        sa.func.sum(BudgetProgram.supplementary).label("supplementary"),
        sa.func.sum(BudgetProgram.committed).label("committed"),
        sa.func.sum(BudgetProgram.spent).label("spent"),
    ]
    stmt = (
        select(group, *cols)  # type: ignore[call-overload]
        .where(BudgetProgram.fiscal_year == fiscal_year)
        .group_by(group)
        .order_by(group)
    )
    out = []
    for row in session.exec(stmt).all():
        data = dict(row._mapping)
        name = data.pop(group.key)
        data = {k: int(v or 0) for k, v in data.items()}
        data["current"] = data["original"] + data["carried_over"] + data["supplementary"]
        out.append({by: name, **data})
    return out
