"""Alerts the budget and programs services emit, and notify consumes (topic `alerts`)."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from contracts.envelope import Envelope, Payload
from contracts.limits import LINE_PATTERN, TITLE_MAX, ContractDateTime, FiscalYear, Text
from contracts.programs import ProgramId

Rule = Literal[
    "execution_slipped",
    "over_execution",
    "year_end_risk",
    "milestone_overdue",
    "schedule_moved",
    "deadline_approaching",
    "target_behind",
]
Severity = Literal["info", "warning", "critical"]
AlertStatus = Literal["firing", "resolved"]

#: Korean names of the rules, as staff read them in subjects and pages.
RULE_TITLES: dict[str, str] = {
    "execution_slipped": "집행 부진",
    "over_execution": "초과 집행",
    "year_end_risk": "불용 위험",
    "milestone_overdue": "일정 지연",
    "schedule_moved": "일정 변경",
    "deadline_approaching": "마감 임박",
    "target_behind": "목표 미달",
}
SEVERITY_TITLES: dict[str, str] = {"info": "참고", "warning": "주의", "critical": "심각"}


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """Rule + labels identify one alert across its firing and resolved events."""
    text = rule + "|" + "|".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Label and figure names are identifiers; their texts are single lines (ids, names, titles, dates).
LabelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
LabelText = Annotated[str, Field(max_length=TITLE_MAX, pattern=LINE_PATTERN)]
#: Figures are derived by the services (amounts, rates that may run far past 100 %), so numbers
#: are not bounded here; text is.
Figure = int | Decimal | LabelText | None


class Alert(Payload):
    """One alert state change. `figures` carry the numbers notify renders: rates and gaps as
    Decimal percentages, amounts as integer 원, dates as ISO strings."""

    fingerprint: str = Field(min_length=1, max_length=64)
    rule: Rule
    status: AlertStatus
    severity: Severity
    program_id: ProgramId
    program_title: LabelText | None = None
    fiscal_year: FiscalYear | None = None
    office: LabelText | None = None
    division: LabelText | None = None
    labels: dict[LabelName, LabelText] = Field(default_factory=dict, max_length=30)
    summary: Text = Field(min_length=1, description="one Korean sentence for staff")
    figures: dict[LabelName, Figure] = Field(default_factory=dict, max_length=50)
    starts_at: ContractDateTime
    ends_at: ContractDateTime | None = None
    generator: Literal["budget", "programs"]


class AlertEvent(Envelope[Alert]):
    event_type: Literal["alert"] = "alert"
