"""Program register, milestones and targets (topic family `programs`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.envelope import Envelope, Payload
from contracts.limits import (
    CONTACTS_MAX,
    LIST_MAX,
    ContractDate,
    Count,
    Email,
    FiscalYear,
    Flag,
    Id,
    Name,
    Note,
    Quantity,
    ShortText,
    Text,
    Title,
)

ProgramId = Id
Role = Literal["과장", "팀장", "담당"]
#: program: a 세부사업 (or a section that describes one). part: below a 세부사업 (sub-item, event,
#: 공사비): shown on its parent's page. action_item: work with deadlines that is not a budget
#: line, e.g. an audit finding (감사 지적사항) and its follow-up (조치계획).
ProgramKind = Literal["program", "part", "action_item"]


class SourceRef(Payload):
    """Where a fact came from, so staff can trace it (document, section, line)."""

    document: Title
    section: ShortText | None = None
    line: Annotated[Count, Field(ge=1)] | None = None


class ContactInfo(Payload):
    role: Role
    name: Name
    phone: str | None = Field(default=None, max_length=13, pattern=r"^0\d{1,2}-\d{3,4}-\d{4}$")
    email: Email | None = Field(default=None, description="which domains are accepted is ingest's policy")
    division: Name | None = None
    team: Name | None = None


class ProgramRegistered(Payload):
    """A program (세부사업) registered or updated: the latest event for an id wins."""

    program_id: ProgramId
    fiscal_year: FiscalYear
    title: Title
    office: Name | None = Field(default=None, description="실")
    division: Name | None = Field(default=None, description="과")
    team: Name | None = Field(default=None, description="팀")
    contacts: list[ContactInfo] = Field(default_factory=list, max_length=CONTACTS_MAX)
    purpose: Text | None = None
    method: ShortText | None = Field(default=None, description="직접 / 대행")
    agency: ShortText | None = Field(default=None, description="대행 기관")
    period_text: ShortText | None = None
    source_ref: SourceRef | None = None
    period_start: ContractDate | None = Field(default=None, description="사업기간 start, when it could be read")
    period_end: ContractDate | None = Field(default=None, description="사업기간 end, when it could be read")
    budget_program_ids: list[ProgramId] = Field(
        default_factory=list, max_length=LIST_MAX, description="linked budget lines (budget service program ids)"
    )
    kind: ProgramKind = Field(default="program", description="program / part / action_item")
    parent_program_id: ProgramId | None = Field(
        default=None, description="the program this part or action item belongs to")


MilestoneStatus = Literal["planned", "in_progress", "done", "cancelled"]
Recurrence = Literal["monthly", "quarterly", "half_yearly", "yearly", "ongoing"]


class MilestoneSet(Payload):
    """A milestone created or updated. A window may be open on either side; `window_text`
    keeps the printed expression, and `needs_review` marks text that could not be read."""

    program_id: ProgramId
    milestone_id: Id
    title: Title
    window_start: ContractDate | None = None
    window_end: ContractDate | None = None
    window_text: ShortText | None = None
    recurrence: Recurrence | None = None
    status: MilestoneStatus = "planned"
    actual_end: ContractDate | None = Field(
        default=None, description="finished on; for a recurring milestone, completed through this date"
    )
    needs_review: Flag = False
    source_ref: SourceRef | None = None
    actual_start: ContractDate | None = None
    note: Note | None = Field(default=None, description="why it changed, e.g. why cancelled")

    @model_validator(mode="after")
    def _window_in_order(self) -> MilestoneSet:
        if self.window_start and self.window_end and self.window_start > self.window_end:
            raise ValueError("window_start is after window_end")
        return self


TargetStatus = Literal["active", "dropped"]


class TargetSet(Payload):
    """A 추진목표 target, with progress when known."""

    program_id: ProgramId
    target_id: Id
    activity: Title
    period_start: ContractDate | None = None
    period_end: ContractDate | None = None
    target_value: Quantity
    unit: Name = Field(description="회, 건, 개사, 명, 개소 …")
    progress_value: Quantity | None = None
    progress_as_of: ContractDate | None = None
    source_ref: SourceRef | None = None
    status: TargetStatus = Field(default="active", description="dropped: no longer a target of the program")
    note: Note | None = None


class ProgramRegisteredEvent(Envelope[ProgramRegistered]):
    event_type: Literal["program.registered"] = "program.registered"


class MilestoneSetEvent(Envelope[MilestoneSet]):
    event_type: Literal["milestone.set"] = "milestone.set"


class TargetSetEvent(Envelope[TargetSet]):
    event_type: Literal["target.set"] = "target.set"
