"""The programs API's bodies, as `/openapi.json` documents them.

Field order is the JSON's key order. Target figures (values, achieved %, expected %, gap %p)
are strings ("12.50", `Decimal`), as this API has always sent them. Mixins are listed last among the bases
because pydantic orders fields from the last base to the first, then the class's own."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

SourceRef = dict[str, Any] | None


class ProgramListItem(BaseModel):
    program_id: str
    fiscal_year: int
    title: str
    office: str | None
    division: str | None
    team: str | None
    status: str = Field(description="late | at_risk | on_track | done | no_schedule")
    registered: bool
    kind: str = Field(description="program | part | action_item")
    parent_program_id: str | None
    milestones: int
    overdue: int
    needs_review: int
    open_alerts: int


class ProgramList(BaseModel):
    as_of: date = Field(description="today, on the service's clock")
    total: int
    offset: int
    limit: int
    items: list[ProgramListItem]


class _Occurrence(BaseModel):
    program_id: str
    program_title: str
    division: str | None
    office: str | None
    milestone_id: str
    title: str
    occurrence: str | None = Field(description="the period of a recurring milestone; null for a one-off")
    window_start: date | None
    window_end: date
    window_text: str | None
    status: str
    overdue_level: str


class _Late(BaseModel):
    days_late: int


class _Left(BaseModel):
    days_left: int


class _SourceRef(BaseModel):
    source_ref: SourceRef


class OverdueItem(_SourceRef, _Late, _Occurrence):
    pass


class UpcomingItem(_SourceRef, _Left, _Occurrence):
    pass


class Overdue(BaseModel):
    as_of: date
    items: list[OverdueItem]


class Upcoming(BaseModel):
    as_of: date
    days: int
    items: list[UpcomingItem]


class ReviewItem(BaseModel):
    """A milestone whose schedule could not be judged, or (milestone_id null) a program without a 과."""

    program_id: str
    program_title: str
    division: str | None
    milestone_id: str | None
    title: str
    window_text: str | None
    reason: str | None
    source_ref: SourceRef


class Review(BaseModel):
    items: list[ReviewItem]


class ProgramOut(BaseModel):
    program_id: str
    fiscal_year: int
    title: str
    office: str | None
    division: str | None
    team: str | None
    status: str
    registered: bool
    contacts: list[dict[str, Any]]
    purpose: str | None
    method: str | None
    agency: str | None
    period_text: str | None
    period_start: date | None
    period_end: date | None
    budget_program_ids: list[str]
    source_ref: SourceRef
    kind: str
    parent_program_id: str | None


class OccurrenceOut(BaseModel):
    key: str | None
    window_start: date | None
    window_end: date | None
    done: bool
    overdue_level: str


class WindowChange(BaseModel):
    """A window the milestone had, and the event (and report) that set it."""

    window_start: date | None
    window_end: date | None
    window_text: str | None
    change: str = Field(description="initial | later | earlier | open_ended | changed | older_report")
    applied: bool = Field(description="false: from a report older than the one applied")
    occurred_at: datetime | None
    source_ref: SourceRef
    event_id: str


class MilestoneOut(BaseModel):
    program_id: str
    milestone_id: str
    title: str
    window_start: date | None
    window_end: date | None
    window_text: str | None
    recurrence: str | None
    status: str
    actual_end: date | None
    needs_review: bool
    overdue_level: str
    source_ref: SourceRef
    updated_at: datetime
    actual_start: date | None
    review_reason: str | None
    note: str | None
    baseline_end: date | None
    occurrences: list[OccurrenceOut]
    history: list[WindowChange]


class ProgressOut(BaseModel):
    value: Decimal
    as_of: date | None
    source_ref: SourceRef


class TargetOut(BaseModel):
    program_id: str
    target_id: str
    activity: str
    period_start: date | None
    period_end: date | None
    target_value: Decimal
    unit: str
    progress_value: Decimal | None
    progress_as_of: date | None
    source_ref: SourceRef
    level: str
    status: str
    note: str | None
    achieved: Decimal | None = Field(description="% of the target reached")
    expected: Decimal | None = Field(description="% of the period elapsed")
    gap: Decimal | None = Field(description="expected − achieved, %p")
    progress: list[ProgressOut]


class AlertOut(BaseModel):
    fingerprint: str
    rule: str
    severity: str
    status: str
    milestone_id: str | None
    occurrence: str | None
    target_id: str | None
    summary: str
    figures: dict[str, Any]
    starts_at: datetime
    updated_at: datetime


class PartOut(BaseModel):
    program_id: str
    title: str
    division: str | None
    status: str
    source_ref: SourceRef
    kind: str


class ProgramDetail(BaseModel):
    as_of: date
    program: ProgramOut
    milestones: list[MilestoneOut]
    targets: list[TargetOut]
    alerts: list[AlertOut] = Field(description="open (firing) alerts")
    parts: list[PartOut]
