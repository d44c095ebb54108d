"""Programs tables: the register, milestones with every window they ever had, targets."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.common.db import InboxBase, OutboxBase, utcnow
from services.programs.domain import Level, MilestoneState


class Program(SQLModel, table=True):
    __tablename__ = "programs_program"
    program_id: str = Field(primary_key=True, max_length=200)
    fiscal_year: int
    title: str
    office: str | None = Field(default=None, index=True)
    division: str | None = Field(default=None, index=True)
    team: str | None = None
    contacts: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    purpose: str | None = None
    method: str | None = None
    agency: str | None = None
    period_text: str | None = None
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Milestone(SQLModel, table=True):
    __tablename__ = "programs_milestone"
    program_id: str = Field(primary_key=True, max_length=200)
    milestone_id: str = Field(primary_key=True, max_length=200)
    title: str
    window_start: date | None = None
    window_end: date | None = Field(default=None, index=True)
    window_text: str | None = None
    recurrence: str | None = None
    status: str = Field(default="planned", max_length=20)
    actual_end: date | None = None
    needs_review: bool = False
    overdue_level: str = Field(default="ok", max_length=10)
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))

    def state(self) -> MilestoneState:
        level: Level = self.overdue_level  # type: ignore[assignment]
        return MilestoneState(self.program_id, self.milestone_id, self.title, self.window_start,
                              self.window_end, self.status, level)


class MilestoneWindow(SQLModel, table=True):
    """Every planned window a milestone had, with the event that set it."""

    __tablename__ = "programs_milestone_window"
    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=200, index=True)
    milestone_id: str = Field(max_length=200)
    window_start: date | None = None
    window_end: date | None = None
    window_text: str | None = None
    event_id: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Target(SQLModel, table=True):
    __tablename__ = "programs_target"
    program_id: str = Field(primary_key=True, max_length=200)
    target_id: str = Field(primary_key=True, max_length=200)
    activity: str
    period_start: date | None = None
    period_end: date | None = None
    target_value: Decimal = Field(sa_type=sa.Numeric(18, 2))
    unit: str = Field(max_length=20)
    progress_value: Decimal | None = Field(default=None, sa_type=sa.Numeric(18, 2))
    progress_as_of: date | None = None


class ProgramsInbox(InboxBase, table=True):
    __tablename__ = "programs_inbox"


class ProgramsOutbox(OutboxBase, table=True):
    __tablename__ = "programs_outbox"
