"""Programs tables: the register, milestones with every window they ever had and their
occurrences, targets with their progress history, and the state of every alert emitted."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.common.db import InboxBase, OutboxBase, pending_index, utcnow
from services.programs.domain import MilestoneState, TargetState

Moment = sa.DateTime(timezone=True)


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
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Moment)
    # False while only milestones or targets of the program are known (title = id until it registers).
    registered: bool = Field(default=True, sa_column_kwargs={"server_default": sa.text("true")})
    period_start: date | None = None
    period_end: date | None = None
    budget_program_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON,
                                          sa_column_kwargs={"server_default": "[]"})
    status: str = Field(default="no_schedule", max_length=20, index=True,
                        sa_column_kwargs={"server_default": "no_schedule"})
    # occurred_at of the registration applied: an older one arriving later does not overwrite it
    registered_at: datetime | None = Field(default=None, sa_type=Moment)
    # program (a 세부사업) / part (below parent_program_id: shown on its page) / action_item (an
    # audit finding and its follow-ups: work with deadlines, not a budget line)
    kind: str = Field(default="program", max_length=20, index=True, sa_column_kwargs={"server_default": "program"})
    parent_program_id: str | None = Field(default=None, max_length=200, index=True)


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
    overdue_level: str = Field(default="ok", max_length=10)  # worst over its occurrences
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Moment)
    actual_start: date | None = None
    review_reason: str | None = None
    note: str | None = None  # why it changed, as the publisher said (e.g. dropped from a newer report)
    # the sender said the text could not be read (kept apart from our own reasons)
    review_flagged: bool = Field(default=False, sa_column_kwargs={"server_default": sa.text("false")})
    anchor_year: int | None = None
    baseline_end: date | None = None  # the first planned end: slips are measured from it
    as_of: datetime | None = Field(default=None, sa_type=Moment)  # occurred_at of the state applied

    def state(self) -> MilestoneState:
        return MilestoneState(self.program_id, self.milestone_id, self.title, self.window_start,
                              self.window_end, self.status, self.overdue_level, self.recurrence,
                              self.actual_end, self.anchor_year)


class MilestoneWindow(SQLModel, table=True):
    """Every planned window a milestone had, with the event (and report) that set it."""

    __tablename__ = "programs_milestone_window"
    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=200, index=True)
    milestone_id: str = Field(max_length=200)
    window_start: date | None = None
    window_end: date | None = None
    window_text: str | None = None
    event_id: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=Moment)
    occurred_at: datetime | None = Field(default=None, sa_type=Moment)
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    # initial | later | earlier | open_ended | changed | older_report
    change: str = Field(default="initial", max_length=20, sa_column_kwargs={"server_default": "initial"})
    applied: bool = Field(default=True, sa_column_kwargs={"server_default": sa.text("true")})  # False: older report


class Occurrence(SQLModel, table=True):
    """One period a milestone must be met in (one row for a one-off milestone, key "")."""

    __tablename__ = "programs_occurrence"
    program_id: str = Field(primary_key=True, max_length=200)
    milestone_id: str = Field(primary_key=True, max_length=200)
    key: str = Field(primary_key=True, max_length=20)
    window_start: date | None = None
    window_end: date | None = Field(default=None, index=True)
    done: bool = False
    active: bool = True  # False once the milestone's window no longer covers this period
    overdue_level: str = Field(default="ok", max_length=10)


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
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    level: str = Field(default="ok", max_length=10, sa_column_kwargs={"server_default": "ok"})
    as_of: datetime | None = Field(default=None, sa_type=Moment)
    status: str = Field(default="active", max_length=10, sa_column_kwargs={"server_default": "active"})
    note: str | None = None

    def state(self, fallback: tuple[date | None, date | None] = (None, None)) -> TargetState:
        return TargetState(self.target_value, self.period_start or fallback[0], self.period_end or fallback[1],
                           self.progress_value, self.progress_as_of)


class TargetProgress(SQLModel, table=True):
    """Every progress report of a target (a target.set carrying progress_value)."""

    __tablename__ = "programs_target_progress"
    __table_args__ = (sa.UniqueConstraint("program_id", "target_id", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=200, index=True)
    target_id: str = Field(max_length=200)
    value: Decimal = Field(sa_type=sa.Numeric(18, 2))
    as_of: date | None = None
    event_id: str = Field(max_length=36)
    occurred_at: datetime | None = Field(default=None, sa_type=Moment)
    source_ref: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class ProgramsAlert(SQLModel, table=True):
    """The last state emitted per alert fingerprint: the checks compare against it, so the same
    decision is never emitted twice, and `episode` counts firings so a re-fire gets a new id."""

    __tablename__ = "programs_alert"
    fingerprint: str = Field(primary_key=True, max_length=64)
    rule: str = Field(max_length=40)
    program_id: str = Field(max_length=200, index=True)
    milestone_id: str | None = Field(default=None, max_length=200)
    occurrence: str | None = Field(default=None, max_length=20)
    target_id: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=10, index=True)  # firing | resolved
    severity: str = Field(max_length=10)
    stage: int | None = None  # D-n of the last deadline reminder
    ref_end: date | None = None  # the window end the alert was about
    episode: int = 0
    summary: str
    figures: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    last_event_id: str = Field(max_length=36)
    starts_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


class CheckClock(SQLModel, table=True):
    """The latest date the checks judged: time only moves forward, so a replay of days already
    checked (or a clock set back) cannot resolve what a later day found."""

    __tablename__ = "programs_check_clock"
    name: str = Field(primary_key=True, max_length=20)
    checked_through: date


class ProgramsInbox(InboxBase, table=True):
    __tablename__ = "programs_inbox"


class ProgramsOutbox(OutboxBase, table=True):
    __tablename__ = "programs_outbox"
    __table_args__ = (pending_index("programs_outbox"),)
