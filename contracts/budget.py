"""Budget lines, amendments, execution snapshots and plans (topic family `budget`)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from contracts.envelope import Envelope, Payload
from contracts.limits import ContractDate, Count, FiscalYear, Id, Name, Text, Title
from contracts.money import Unit, Won, WonDelta
from contracts.programs import ProgramId, SourceRef

#: The account (회계) a line is kept in. A 세출 total covers 일반회계 and 특별회계; a 기금's
#: operation is reported separately and never enters that total.
Account = Literal["일반회계", "특별회계", "기금"]
#: record: a 세부사업 of record (counts in totals). part: a part of `parent_program_id` (a 공사비,
#: an event funded through an 출연금, a sub-project): shown on the parent's page, never added to a
#: total. unlinked: a report section that could not be linked to a 세부사업 of record: listed for
#: review and held out of totals until an alias links it.
LineScope = Literal["record", "part", "unlinked"]


class BudgetLineSet(Payload):
    """The budget of a program for a fiscal year: 본예산 + 이월 등 + 추경 = 예산현액.

    `current` may be omitted (it is then the sum); when given with the parts it must equal them.
    The org fields let budget roll up by 과/실 without waiting for the program register."""

    program_id: ProgramId
    fiscal_year: FiscalYear
    title: Title | None = None
    office: Name | None = Field(default=None, description="실")
    division: Name | None = Field(default=None, description="과")
    category: Name | None = Field(default=None, description="e.g. 기본경비, 전출금: may be excluded from plans")
    original: Won = Field(description="본예산 (a)")
    carried_over: Won = Field(default=0, description="이월 등 (b)")
    supplementary: WonDelta = Field(default=0, description="추경 증감")
    current: Won | None = Field(default=None, description="예산현액 (A)")
    previous_final: Won | None = Field(default=None, description="전년 최종예산")
    source_ref: SourceRef | None = None
    account: Account | None = Field(default=None, description="회계: 일반회계 / 특별회계 / 기금")
    scope: LineScope = Field(default="record", description="record (in totals) / part / unlinked (held out)")
    parent_program_id: ProgramId | None = Field(
        default=None, description="for scope=part: the 세부사업 of record this is a part of")
    effective_date: ContractDate | None = Field(
        default=None, description="the date the line states (the report's 기준일); earlier as-of views keep "
                                  "the line before it")

    @model_validator(mode="after")
    def _part_has_a_parent(self) -> BudgetLineSet:
        if (self.scope == "part") != (self.parent_program_id is not None):
            raise ValueError("parent_program_id is required for scope=part and only for it")
        if self.parent_program_id is not None and self.parent_program_id == self.program_id:
            raise ValueError("a line cannot be a part of itself")
        return self

    @model_validator(mode="after")
    def _current_is_the_sum(self) -> BudgetLineSet:
        parts = self.original + self.carried_over + self.supplementary
        if parts < 0:
            raise ValueError("본예산 + 이월 등 + 추경 is negative")
        if self.current is not None and self.current != parts:
            raise ValueError(
                f"예산현액 {self.current:,}원 ≠ 본예산 {self.original:,} + 이월 등 {self.carried_over:,}"
                f" + 추경 {self.supplementary:,} = {parts:,}원"
            )
        return self

    @property
    def current_budget(self) -> int:
        return self.original + self.carried_over + self.supplementary


class BudgetAmended(Payload):
    """A supplementary budget (추경) amendment: 기정예산 + 증감 = 추경예산."""

    program_id: ProgramId
    fiscal_year: FiscalYear
    amendment_id: Id = Field(max_length=100, description="e.g. 2025-1차추경")
    before: Won = Field(description="기정예산")
    change: WonDelta = Field(description="증가액 (negative for 감액)")
    after: Won = Field(description="추경예산")
    reason: Text | None = None
    effective_date: ContractDate | None = None
    source_ref: SourceRef | None = None

    @model_validator(mode="after")
    def _after_is_before_plus_change(self) -> BudgetAmended:
        if self.before + self.change != self.after:
            raise ValueError(
                f"추경예산 {self.after:,}원 ≠ 기정예산 {self.before:,} + 증감 {self.change:,}원"
            )
        return self


class ExecutionSnapshot(Payload):
    """Cumulative execution as of a date. A later `revision` for the same as_of corrects it."""

    program_id: ProgramId
    fiscal_year: FiscalYear
    as_of: ContractDate
    committed: Won | None = Field(
        description="원인행위액, cumulative; null when the source prints only 지출액 (a 예산현황 summary)")
    spent: Won = Field(description="지출액, cumulative")
    revision: Count = Field(default=0, description="0 = first report; higher = correction")
    current_budget: Won | None = Field(default=None, description="예산현액 as printed beside it")
    source_ref: SourceRef | None = None

    @model_validator(mode="after")
    def _as_of_in_year(self) -> ExecutionSnapshot:
        if not (self.fiscal_year - 1 <= self.as_of.year <= self.fiscal_year + 1):
            raise ValueError(f"as_of {self.as_of} is far from fiscal_year {self.fiscal_year}")
        return self


def division_key(office: str | None, division: str | None) -> str:
    """The message key of a division's facts: `division:<office>/<division>` (no program id:
    a 과 is not a program), so one division's snapshots stay in order on one partition; a 실's
    own figures (division None) are `division:<office>/`."""
    return f"division:{office or ''}/{division or ''}"


class DivisionSnapshot(Payload):
    """Figures of record for a whole 과 (or, with `division` None, a whole 실) as of a date, not
    for one program: a report's 과별 집행 현황 row (예산현액, 원인행위액, 지출액 by division), or a
    예산현황 table's printed 소계 (a 과) and 계 (its 실). Shown in the division view beside the sum
    of the programs, never added to it; the latest `revision` of a date wins.

    The printed figures are rounded to the table's `unit`, the programs' figures often are not: the
    sum of the programs may differ from them by rounding, and the report's figures stand."""

    office: Name | None = Field(default=None, description="실")
    division: Name | None = Field(
        default=None, description="과; null: the figures are the 실's own (a table's 계), and `office` names it")
    fiscal_year: FiscalYear
    as_of: ContractDate = Field(description="the table's 기준일")
    original: Won | None = Field(default=None, description="본예산 as printed; null when not printed")
    current: Won | None = Field(default=None, description="예산현액 as printed")
    committed: Won | None = Field(default=None, description="원인행위액, cumulative; null when not printed")
    spent: Won | None = Field(default=None, description="지출액, cumulative; null when not printed")
    unit: Unit | None = Field(default=None, description="the unit the table prints (each figure is rounded to it)")
    revision: Count = Field(default=0, description="0 = first report; higher = correction")
    source_ref: SourceRef | None = None

    @model_validator(mode="after")
    def _as_of_in_year(self) -> DivisionSnapshot:
        if not (self.fiscal_year - 1 <= self.as_of.year <= self.fiscal_year + 1):
            raise ValueError(f"as_of {self.as_of} is far from fiscal_year {self.fiscal_year}")
        if self.division is None and not self.office:
            raise ValueError("a 실's own figures (no division) must name the office")
        if all(v is None for v in (self.original, self.current, self.committed, self.spent)):
            raise ValueError("a division snapshot states at least one of original, current, committed, spent")
        return self


class PlanPoint(Payload):
    month: Annotated[int, Strict()] = Field(ge=1, le=12, description="the plan is for the end of this month")
    cumulative_rate: Decimal = Field(ge=0, le=100, max_digits=10, decimal_places=6,
                                     description="planned cumulative 집행률, %")


class ExecutionPlanSet(Payload):
    """A program's monthly execution plan (월별 집행계획); replaces any earlier plan."""

    program_id: ProgramId
    fiscal_year: FiscalYear
    points: list[PlanPoint] = Field(min_length=1, max_length=12)

    @model_validator(mode="after")
    def _non_decreasing(self) -> ExecutionPlanSet:
        months = [p.month for p in self.points]
        if len(set(months)) != len(months):
            raise ValueError("a month appears twice in the plan")
        ordered = sorted(self.points, key=lambda p: p.month)
        if any(a.cumulative_rate > b.cumulative_rate for a, b in itertools.pairwise(ordered)):
            raise ValueError("a cumulative plan cannot decrease")
        return self


class BudgetLineSetEvent(Envelope[BudgetLineSet]):
    event_type: Literal["budget.line_set"] = "budget.line_set"


class BudgetAmendedEvent(Envelope[BudgetAmended]):
    event_type: Literal["budget.amended"] = "budget.amended"


class ExecutionSnapshotEvent(Envelope[ExecutionSnapshot]):
    event_type: Literal["budget.execution_snapshot"] = "budget.execution_snapshot"


class ExecutionPlanSetEvent(Envelope[ExecutionPlanSet]):
    event_type: Literal["budget.plan_set"] = "budget.plan_set"


class DivisionSnapshotEvent(Envelope[DivisionSnapshot]):
    event_type: Literal["budget.division_snapshot"] = "budget.division_snapshot"

    @model_validator(mode="after")
    def _key_is_the_division(self) -> DivisionSnapshotEvent:
        want = division_key(self.payload.office, self.payload.division)
        if self.key != want:
            raise ValueError(f"key {self.key!r} must be {want!r} (division:<office>/<division>, "
                             "division:<office>/ for the 실)")
        return self
