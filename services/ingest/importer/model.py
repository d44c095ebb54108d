"""What the report parser extracts, before it becomes contract events.

Plain dataclasses, no I/O. Every fact keeps the line it came from (1-based) so the import
report and staff can trace it back to the document. Money is integer 원 (already converted
from the table's unit); rates are Decimal percentages as printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.ingest.importer.dates import ParsedWhen


@dataclass(frozen=True)
class Issue:
    """A line the parser could not use, or a fact it doubts: shown to staff as file:line why."""

    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True)
class Contact:
    role: str  # "과장" | "팀장" | "담당" | other title as printed (e.g. "주무관")
    name: str
    phone: str | None  # normalised, e.g. "02-2133-5210"; None when not printed
    division: str | None  # 과 named in the title, e.g. 경제정책과 (from 경제정책과장)
    team: str | None  # 팀 named in the title, e.g. 혁신기술팀 (from 혁신기술팀장)
    line: int


@dataclass(frozen=True)
class BudgetRow:
    """One row of a budget table (per-program 예산 집행 현황, summary 예산현황, fund tables)."""

    name: str  # program / row name with letter-spacing and wraps undone
    line: int
    division: str | None = None  # 과 the row belongs to, where the table says
    kind: str = "row"  # "row" | "subtotal" (소계) | "total" (계/합계)
    original: int | None = None  # 본예산 (a)
    carried_over: int | None = None  # 이월 등 (b)
    current: int | None = None  # 예산현액 (A = a + b)
    committed: int | None = None  # 원인행위액
    committed_rate: Decimal | None = None  # as printed, %
    spent: int | None = None  # 지출액
    spent_rate: Decimal | None = None  # as printed, %
    previous_final: int | None = None  # 전년 최종예산
    extra: dict[str, int] = field(default_factory=dict)  # other numeric columns by header


@dataclass(frozen=True)
class Reconciliation:
    """A subtotal/total row checked against the rows it covers."""

    table_line: int
    row_line: int
    label: str  # e.g. "경제정책과 소계", "계"
    column: str  # e.g. "본예산"
    printed: int  # 원
    computed: int  # 원
    tolerance: int  # 원, from per-row rounding in the table unit
    ok: bool
    cause: str | None = None  # likely cause when not ok


@dataclass(frozen=True)
class BudgetTable:
    kind: str  # "execution" (예산 집행 현황) | "summary" (예산현황) | "fund" | "supplementary" (추경)
    line: int  # line of the table heading
    unit: str  # "원" | "천원" | "백만원" | "억원"
    as_of: date | None  # ’25.1.31. 기준
    fiscal_year: int | None
    rows: list[BudgetRow] = field(default_factory=list)
    reconciliations: list[Reconciliation] = field(default_factory=list)


@dataclass(frozen=True)
class SupplementaryRow:
    """A row of a 추경 table: 기정예산 + 증가액 = 추경예산(안)."""

    name: str
    line: int
    proposed: int | None  # 추경예산(안)
    before: int | None  # 기정예산
    increase: int | None  # 증가액 (negative for △)
    division: str | None = None
    reason: str | None = None
    sub_items: list[SupplementaryRow] = field(default_factory=list)


@dataclass(frozen=True)
class Milestone:
    text: str  # the activity, without the date expression
    when_text: str  # the date expression as printed
    when: ParsedWhen
    line: int
    stage: str | None = None  # 완료 / 진행중 / 추진 예정 where the document marks it


@dataclass(frozen=True)
class Target:
    activity: str
    period_text: str
    period: ParsedWhen | None
    value: Decimal | None
    unit: str | None  # 회, 건, 개사, 명, 개소, 개 과제, 억원 ...
    line: int


@dataclass(frozen=True)
class InlineAmount:
    """A money statement in prose, e.g. `소요예산 : 1,375백만원`."""

    label: str
    amount: int  # 원
    line: int


@dataclass
class Section:
    """A numbered program section of a report (heading + its blocks)."""

    number: str | None  # "2" / "Ⅱ-1" as printed, if any
    title: str
    line: int
    office: str | None = None  # 실
    division: str | None = None  # 과
    team: str | None = None
    contacts: list[Contact] = field(default_factory=list)
    purpose: str | None = None
    method: str | None = None  # 직접 / 대행(기관)
    period_text: str | None = None
    inline_amounts: list[InlineAmount] = field(default_factory=list)
    tables: list[BudgetTable] = field(default_factory=list)
    milestones: list[Milestone] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


@dataclass
class ActionItem:
    """An audit finding (감사 지적사항, 건의사항) and its answer: work with deadlines of its own.

    The follow-up dates (향후계획, 조치계획, 추진내용 및 향후 추진계획) are its milestones, so a
    follow-up past its date is overdue like any program milestone."""

    title: str  # the finding as printed, wraps joined
    line: int  # first line of the finding
    end: int  # last line of its answer, inclusive
    divisions: list[str] = field(default_factory=list)  # 과 named in the tag, owner first
    category: str | None = None  # 시정·처리 요구사항 / 건의사항 / 기타사항, as the heading above says
    status: str | None = None  # 추진상황 as printed: 추진완료 / 추진중 / 검토중
    milestones: list[Milestone] = field(default_factory=list)


@dataclass(frozen=True)
class DivisionExecution:
    """A 과-level row of an execution table (예산현액, 원인행위액, 지출액 and rates by division):
    a fact of record about the division as of the table's date, not about one program."""

    division: str
    line: int
    as_of: date | None
    unit: str  # the unit the table announced
    current: int | None  # 예산현액, 원
    committed: int | None  # 원인행위액, 원
    committed_rate: Decimal | None  # %, as printed
    spent: int | None  # 지출액, 원
    spent_rate: Decimal | None  # %, as printed
    kind: str = "row"  # "row" | "total" (계/합계)


@dataclass(frozen=True)
class NationalRow:
    """A row of a national plan's budget table (two programs per printed line): one program with its
    amounts in 원 (printed in 억원)."""

    name: str
    line: int
    amounts: tuple[int, ...]  # 원, in column order as printed
    headers: tuple[str, ...] = ()
    parent: str | None = None  # the 세부사업 a `(내역사업)` row belongs to
    kind: str = "row"  # "row" | "total" (계)


@dataclass
class ParsedReport:
    path: str
    kind: str  # "business_report" (업무보고) | "supplementary_budget" (추경) | "press_release" | "plan" | "unknown"
    office: str | None
    reference_year: int | None
    title: str | None = None
    as_of_dates: list[date] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    tables: list[BudgetTable] = field(default_factory=list)  # tables outside any section (summary)
    supplementary: list[SupplementaryRow] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    issue_date: date | None = None  # the date printed on the document (a press release's, a plan's)
    action_items: list[ActionItem] = field(default_factory=list)  # audit findings and follow-ups
    division_execution: list[DivisionExecution] = field(default_factory=list)  # 과-level execution rows
    national_rows: list[NationalRow] = field(default_factory=list)  # a national plan's program table
