"""The budget API's bodies, as `/openapi.json` documents them.

Amounts are integer 원; rates are strings ("10.3", `Decimal`: a JSON float would blur 0.1
steps). `display` is there only with `?unit=천원|백만원|억원`: each amount of the item rendered in
that unit, as the reports print it.

Field order is the JSON's key order, which clients and CSV exports have always seen: the
figures of a 실 or a 과 come after its name. Mixins are listed last among the bases because
pydantic orders fields from the last base to the first, then the class's own."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.api_types import IsoDateTime

Rate = Decimal | None


class Display(BaseModel):
    """The item's amounts in the asked unit, as printed strings ("1,234"), beside the unit."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str] = Field(init=False)

    unit: str


def _display() -> Any:
    return Field(default=None, exclude_if=lambda v: v is None, description="only with `?unit=`")


# ------------------------------------------------------------------ summary


class Figures(BaseModel):
    """Sums over programs of record (budget lines in effect, latest snapshots)."""

    programs: int
    original: int
    carried_over: int
    supplementary: int
    current: int
    committed: int = Field(description="of the programs whose 원인행위액 is known")
    committed_unknown: int = Field(description="programs that reported only 지출액")
    spent: int
    balance: int
    rate: Rate = Field(description="집행률 %, spent / current")
    commit_rate: Rate = Field(description="원인행위 기준 집행률 %; empty while any committed is unknown")
    plan_rate: Rate = Field(description="planned rate %, budget-weighted over programs with a plan")
    gap: Rate = Field(description="plan − actual %p over the planned programs (positive = behind)")


class Reported(BaseModel):
    """The figures a report prints for a whole 과 or 실 (과별 집행 현황, 예산현황's 소계 or 계)."""

    as_of: date
    original: int | None
    current: int | None
    committed: int | None
    spent: int | None
    rate: Rate
    unit: str | None = Field(description="the unit the report printed: its figures are rounded to it")
    revision: int | None
    source_ref: dict[str, Any] | None


class _Reconciled(BaseModel):
    reported: Reported | None = Field(description="never added to a total")
    difference: dict[str, int | None] | None = Field(
        description="reported − the sum of its programs, per column (original, current, committed, spent)")


class _Office(BaseModel):
    office: str | None


class _Division(BaseModel):
    division: str | None


class DivisionFigures(_Reconciled, Figures, _Division):
    display: Display | None = _display()


class DivisionRow(_Reconciled, Figures, _Division, _Office):
    display: Display | None = _display()


class OfficeFigures(_Reconciled, Figures, _Office):
    divisions: list[DivisionFigures]
    display: Display | None = _display()


class TotalFigures(_Reconciled, Figures):
    display: Display | None = _display()


class AccountFigures(Figures):
    display: Display | None = _display()


class HeldOut(BaseModel):
    programs: int
    current: int
    spent: int


class HeldOutTotals(BaseModel):
    """What the totals leave out: parts (shown on their parent) and unlinked lines (for review)."""

    part: HeldOut
    unlinked: HeldOut


class Summary(BaseModel):
    fiscal_year: int
    as_of: date | None
    unit: Literal["원"]
    account: str | None
    offices: list[OfficeFigures]
    divisions: list[DivisionRow]
    total: TotalFigures
    accounts: dict[str, AccountFigures] = Field(description="every account, 기금 included, beside the 세출 total")
    held_out: HeldOutTotals
    unbudgeted_programs: int = Field(description="programs that report execution without a budget line")
    note: str


# ------------------------------------------------------------------ programs


class ProgramFields(BaseModel):
    program_id: str
    fiscal_year: int
    title: str | None
    office: str | None
    division: str | None
    category: str | None
    account: str | None
    scope: str = Field(description="record (in totals), part (of parent_program_id), unlinked (held out)")
    parent_program_id: str | None
    effective_date: date | None
    original: int | None
    carried_over: int | None
    supplementary: int | None
    current_budget: int | None
    committed: int | None = Field(description="None: the source printed only 지출액")
    spent: int | None
    balance: int | None
    rate: Rate
    commit_rate: Rate
    plan_rate: Rate
    gap: Rate
    projected_rate: Rate
    as_of: date | None
    revision: int
    snapshots: int
    level: str
    over_level: str
    year_end_level: str
    budget_known: bool


class ProgramItem(ProgramFields):
    display: Display | None = _display()


class ProgramPage(BaseModel):
    items: list[ProgramItem]
    total: int
    offset: int
    limit: int
    sort: str


class HeldOutPage(BaseModel):
    items: list[ProgramItem]
    total: int
    offset: int
    limit: int


class LineVersion(BaseModel):
    effective_date: date | None
    original: int
    carried_over: int
    supplementary: int
    account: str | None
    scope: str
    parent_program_id: str | None
    recorded_at: IsoDateTime
    source_ref: dict[str, Any] | None
    display: Display | None = _display()


class HistoryPoint(BaseModel):
    as_of: date
    revision: int
    committed: int | None
    spent: int
    current_budget: int | None = Field(description="the budget in effect on the snapshot's date")
    rate: Rate
    commit_rate: Rate
    plan_rate: Rate
    gap: Rate
    display: Display | None = _display()


class Amendment(BaseModel):
    amendment_id: str
    before: int
    change: int
    after: int
    reason: str | None
    effective_date: date | None
    effective_from: date
    in_effect: bool
    recorded_at: IsoDateTime | None
    display: Display | None = _display()


class PlanPoint(BaseModel):
    month: int
    cumulative_rate: Decimal
    planned_amount: int | None


class PublishedPoint(BaseModel):
    month: int
    cumulative_rate: Decimal


class Plan(BaseModel):
    """The planned cumulative rate at each month's end: the program's own monthly plan, or the
    default curve."""

    source: Literal["monthly", "default"]
    basis: str
    basis_text: str
    funding_start: date | None
    points: list[PlanPoint]
    published: list[PublishedPoint] | None


class NoPlan(BaseModel):
    """Programs the plan does not judge (excluded categories, parts, unlinked lines)."""

    source: Literal["excluded"]
    basis_text: None
    points: list[PlanPoint]


class BudgetAlert(BaseModel):
    event_id: str
    rule: str
    status: str
    severity: str
    as_of: date | None
    summary: str
    figures: dict[str, Any]


class ProgramDetail(ProgramFields):
    """One program (its latest fiscal year, or `fiscal_year`), as it stands or as of a date."""

    source_ref: dict[str, Any] | None = Field(description="the report line of the budget line shown")
    view_as_of: date | None
    parts: list[ProgramItem]
    lines: list[LineVersion]
    history: list[HistoryPoint]
    amendments: list[Amendment]
    plan: Plan | NoPlan = Field(discriminator="source")
    alerts: list[BudgetAlert]
    display: Display | None = _display()


class UnknownProgram(BaseModel):
    program_id: str
    fiscal_year: int
    as_of: date | None
    committed: int | None
    spent: int
    snapshots: int
    updated_at: datetime


class UnknownProgramPage(BaseModel):
    items: list[UnknownProgram]
    total: int
    offset: int
    limit: int
