"""Program register, milestones and targets (topic family `programs`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from contracts.envelope import Envelope, Payload

ProgramId = str
Role = Literal["과장", "팀장", "담당"]
#: program: a 세부사업 (or a section that describes one). part: below a 세부사업 (sub-item, event,
#: 공사비): shown on its parent's page. action_item: work with deadlines that is not a budget
#: line, e.g. an audit finding (감사 지적사항) and its follow-up (조치계획).
ProgramKind = Literal["program", "part", "action_item"]


class SourceRef(Payload):
    """Where a fact came from, so staff can trace it (document, section, line)."""

    document: str
    section: str | None = None
    line: int | None = Field(default=None, ge=1)


class ContactInfo(Payload):
    role: Role
    name: str = Field(min_length=1)
    phone: str | None = Field(default=None, pattern=r"^0\d{1,2}-\d{3,4}-\d{4}$")
    email: str | None = None
    division: str | None = None
    team: str | None = None


class ProgramRegistered(Payload):
    """A program (세부사업) registered or updated: the latest event for an id wins."""

    program_id: ProgramId = Field(min_length=1, max_length=200)
    fiscal_year: int = Field(ge=2000, le=2100)
    title: str = Field(min_length=1)
    office: str | None = Field(default=None, description="실")
    division: str | None = Field(default=None, description="과")
    team: str | None = Field(default=None, description="팀")
    contacts: list[ContactInfo] = Field(default_factory=list)
    purpose: str | None = None
    method: str | None = Field(default=None, description="직접 / 대행")
    agency: str | None = Field(default=None, description="대행 기관")
    period_text: str | None = None
    source_ref: SourceRef | None = None
    period_start: date | None = Field(default=None, description="사업기간 start, when it could be read")
    period_end: date | None = Field(default=None, description="사업기간 end, when it could be read")
    budget_program_ids: list[ProgramId] = Field(
        default_factory=list, description="linked budget lines (budget service program ids)"
    )
    kind: ProgramKind = Field(default="program", description="program / part / action_item")
    parent_program_id: ProgramId | None = Field(
        default=None, max_length=200, description="the program this part or action item belongs to")


MilestoneStatus = Literal["planned", "in_progress", "done", "cancelled"]
Recurrence = Literal["monthly", "quarterly", "half_yearly", "yearly", "ongoing"]


class MilestoneSet(Payload):
    """A milestone created or updated. A window may be open on either side; `window_text`
    keeps the printed expression, and `needs_review` marks text that could not be read."""

    program_id: ProgramId = Field(min_length=1, max_length=200)
    milestone_id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1)
    window_start: date | None = None
    window_end: date | None = None
    window_text: str | None = None
    recurrence: Recurrence | None = None
    status: MilestoneStatus = "planned"
    actual_end: date | None = Field(
        default=None, description="finished on; for a recurring milestone, completed through this date"
    )
    needs_review: bool = False
    source_ref: SourceRef | None = None
    actual_start: date | None = None
    note: str | None = Field(default=None, max_length=1000, description="why it changed, e.g. why cancelled")

    @model_validator(mode="after")
    def _window_in_order(self) -> MilestoneSet:
        if self.window_start and self.window_end and self.window_start > self.window_end:
            raise ValueError("window_start is after window_end")
        return self


TargetStatus = Literal["active", "dropped"]


class TargetSet(Payload):
    """A 추진목표 target, with progress when known."""

    program_id: ProgramId = Field(min_length=1, max_length=200)
    target_id: str = Field(min_length=1, max_length=200)
    activity: str = Field(min_length=1)
    period_start: date | None = None
    period_end: date | None = None
    target_value: Decimal = Field(ge=0)
    unit: str = Field(min_length=1, description="회, 건, 개사, 명, 개소 …")
    progress_value: Decimal | None = Field(default=None, ge=0)
    progress_as_of: date | None = None
    source_ref: SourceRef | None = None
    status: TargetStatus = Field(default="active", description="dropped: no longer a target of the program")
    note: str | None = Field(default=None, max_length=1000)


class ProgramRegisteredEvent(Envelope[ProgramRegistered]):
    event_type: Literal["program.registered"] = "program.registered"


class MilestoneSetEvent(Envelope[MilestoneSet]):
    event_type: Literal["milestone.set"] = "milestone.set"


class TargetSetEvent(Envelope[TargetSet]):
    event_type: Literal["target.set"] = "target.set"
