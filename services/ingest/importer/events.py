"""ParsedReport -> contract envelopes (the mapping), with everything staff must see about it.

Programs of record: the rows of a business report's 예산현황 table are the 세부사업 of record.
Each becomes one `budget.line_set` (scope=record, its 과, its account, effective_date = the
table's 기준일) and one `budget.execution_snapshot` of the printed 집행액 (committed unknown).
A section's execution table (천원) is linked to those rows (`linking.py`): a row that IS the
세부사업 (same name, an alias, or the same 본예산 and 예산현액 within the rounding) gives the
record's exact figures and, when its 지출액 agrees with the 예산현황 within rounding, the exact
snapshot (원인행위액 too) - never a second line. Rows below a 세부사업 (a sub-item, an event
paid from an 출연금, rows that together make it) are scope=part lines with the parent's id;
rows nothing claims are scope=unlinked and listed for the alias table. A fund's operation table
(기금) is account=기금 and, not being a row of the 세출 예산현황, scope=unlinked: never in the
세출 total, reported per account. Accounts: 일반회계 unless a 특별회계/기금 heading in the table
or the row's name says otherwise. A 추경's amendments take effect on the document's date
(`_document_date`), so an as-of view before it does not show them.

Division facts: a 과-level execution table (예산현액, 원인행위액, 지출액 by 과, no program rows)
is about divisions, not programs. Each 과 row becomes one `budget.division_snapshot` (key
`division:<office>/<division>`, as of the table's 기준일); the budget service shows it in the
division view beside the sum of that 과's programs. Its 계 row is not published (it is the sum
of the rows; the import report shows it). A 예산현황's printed 소계 and 계 are facts of record
too: each 소계 a `budget.division_snapshot` of its 과 (본예산, 예산현액, 집행액 as printed, in the
table's unit), the 계 one of the 실 (division null, key `division:<office>/`). The view prints
them as the report does, with the sum of the programs (which differs by rounding) beside.

The national table (a national plan's 세부사업/(내역사업) table, two programs per printed line,
in 억원): those are the national government's programs, not Seoul's 세출. Each row becomes a
`program.registered` (kind `program` for a 세부사업, kind `part` with its 세부사업 as parent
for a (내역사업)) and a `budget.line_set` in 원 (본예산 = original, 추경 = supplementary, 정부안 =
예산현액), office `NATIONAL_OFFICE`, no division, scope `unlinked` for every row: the printed
계 adds the 내역사업 to the 세부사업 (they are lines of their own, not parts of the parent's
amount), and no national line may ever enter a Seoul 세출 total or the 과/실 rollups. No
snapshots (the table prints no execution) and no milestones (the plan's 향후 계획 stays with the
plan's own program). The import report lists them under the national table, not among the
unassigned programs; the programs review queue shows them without a 과 until staff name the
Seoul 과 that follows each (alias file).

Event ids are deterministic: uuid5 over the event type, the entity (program, milestone, target,
as_of, amendment) and the payload without `source_ref`. Importing the same report twice gives
the same ids (ingest answers duplicates); a newer report with the same fact gives the same id
too, so only changed facts are published again. The line a fact came from is in `source_ref`
but not in the id, or every edit above a table would republish everything below it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts import (
    BudgetAmended,
    BudgetAmendedEvent,
    BudgetLineSet,
    BudgetLineSetEvent,
    DivisionSnapshot,
    DivisionSnapshotEvent,
    Envelope,
    ExecutionSnapshot,
    ExecutionSnapshotEvent,
    MilestoneSet,
    MilestoneSetEvent,
    ProgramRegistered,
    ProgramRegisteredEvent,
    TargetSet,
    TargetSetEvent,
    deterministic_id,
)
from contracts.budget import division_key
from contracts.money import UNIT_FACTORS
from contracts.programs import ContactInfo, SourceRef
from services.ingest.importer.contacts import _edit_distance
from services.ingest.importer.identity import ProgramRegistry, Unmatched, display_key, make_program_id
from services.ingest.importer.linking import Amounts, close, half_unit, sub_item_of, subsets_summing_to, words
from services.ingest.importer.model import (
    ActionItem,
    BudgetRow,
    BudgetTable,
    DivisionExecution,
    Issue,
    Milestone,
    NationalRow,
    ParsedReport,
    Reconciliation,
    Section,
    SupplementaryRow,
)
from services.ingest.importer.text import compact, normalize_line, normalize_name

KST = timezone(timedelta(hours=9))
ROLES = ("과장", "팀장", "담당")
# Titles that are not one of the three contract roles, mapped to the nearest one.
ROLE_NEAREST = {"주무관": "담당", "담당자": "담당", "실무자": "담당", "사무관": "담당", "연구관": "담당",
                "연구사": "담당", "부장": "팀장", "실장": "과장", "국장": "과장", "단장": "과장",
                "담당관": "과장", "센터장": "과장", "본부장": "과장", "관장": "과장"}
RECURRENCE_MAP = {"monthly": "monthly", "quarterly": "quarterly", "half-yearly": "half_yearly",
                  "yearly": "yearly", "ongoing": "ongoing", "adhoc": "ongoing"}
STAGE_STATUS = {"완료": "done", "진행중": "in_progress", "추진 예정": "planned", "추진예정": "planned"}
UNIT_TOLERANCE = {"원": 1, "천원": 1_000, "백만원": 1_000_000, "억원": 100_000_000}
MAX_ID = 200
# Section titles that are report furniture, not a program.
NO_RECORD = "예산현황의 어느 세부사업과도 이름·별칭·금액으로 연결되지 않음"
#: The office national programs are registered under: never one of Seoul's 실, so no 실/과
#: rollup or routing takes them for Seoul's.
NATIONAL_OFFICE = "국가(관계부처 합동)"
NATIONAL_SECTION = "국가 계획 예산표"
DIVISION_SECTION = "과별 집행 현황"
GENERIC_TITLES = {"향후계획", "향후추진계획", "추진계획", "기타사항", "건의사항", "향후추진일정"}

AnyEnvelope = Envelope[Any]


@dataclass(frozen=True)
class Inconsistency:
    """A printed row whose parts do not add up; what was published instead."""

    line: int
    program_id: str
    text: str


@dataclass(frozen=True)
class Link:
    """A detail row that is its 세부사업 of record (`how`: name, alias, amount, sum of rows)."""

    line: int
    section: str
    name: str
    record_id: str
    record_name: str
    how: str


@dataclass(frozen=True)
class Child:
    """A detail row below a 세부사업 of record: published as a part, never added to a total."""

    line: int
    section: str
    name: str
    program_id: str
    parent_id: str
    parent_name: str
    how: str  # alias | sub-item | funded-through | amount-differs | sum | earlier


@dataclass(frozen=True)
class UnlinkedRow:
    """A detail row no 세부사업 of record claims: held out of totals until an alias links it."""

    line: int
    section: str
    name: str
    program_id: str
    division: str | None
    account: str
    original: int | None
    current: int | None
    reason: str


@dataclass(frozen=True)
class ExecutionChoice:
    """A detail table's 집행액 that differs from the 예산현황's beyond rounding: the record's is published."""

    line: int
    program_id: str
    name: str
    detail_spent: int | None
    record_spent: int | None


@dataclass(frozen=True)
class RecordFigures:
    """One 소계 or the 계 of a 예산현황 table as printed, with the rounding it allows."""

    label: str  # "경제정책과 소계" / "계"
    division: str | None  # None for the 계
    original: int | None
    current: int | None
    spent: int | None
    tolerance: int  # 원
    line: int | None = None  # where the 소계 / 계 is printed


@dataclass
class RecordTable:
    """What a 예산현황 table says and what this import published for its rows of record."""

    line: int
    as_of: date | None
    fiscal_year: int
    office: str | None
    unit: str
    printed: list[RecordFigures] = field(default_factory=list)
    record_ids: dict[str, str | None] = field(default_factory=dict)  # program id -> division

    def published(self, envelopes: Sequence[AnyEnvelope]) -> dict[str | None, tuple[int, int, int]]:
        """(본예산, 예산현액, 집행액) per division and for the whole table (key None), from the record
        lines and snapshots this table's rows published."""
        lines: dict[str, Any] = {}
        spent: dict[str, int] = {}
        for e in envelopes:
            if e.key not in self.record_ids:
                continue
            if e.event_type == "budget.line_set":
                lines[e.key] = e.payload
            elif e.event_type == "budget.execution_snapshot" and e.payload.as_of == self.as_of:
                spent[e.key] = e.payload.spent
        out: dict[str | None, tuple[int, int, int]] = {}
        for pid, payload in lines.items():
            for key in (self.record_ids[pid], None):
                o, c, s = out.get(key, (0, 0, 0))
                out[key] = (o + payload.original, c + payload.current_budget, s + spent.get(pid, 0))
        return out

    def checks(self, envelopes: Sequence[AnyEnvelope]) -> list[tuple[RecordFigures, str, int, int, bool]]:
        """(printed row, column, printed, published, ok) for every 소계 and the 계."""
        got = self.published(envelopes)
        out: list[tuple[RecordFigures, str, int, int, bool]] = []
        for fig in self.printed:
            mine = got.get(fig.division, (0, 0, 0))
            for column, printed, value in (("본예산", fig.original, mine[0]), ("예산현액", fig.current, mine[1]),
                                           ("집행액", fig.spent, mine[2])):
                if printed is not None:
                    out.append((fig, column, printed, value, abs(printed - value) <= fig.tolerance))
        return out


@dataclass
class DocumentResult:
    """Everything one document produced: envelopes to publish and what the report must say."""

    path: str
    name: str
    kind: str = "unknown"
    reference_year: int | None = None
    envelopes: list[AnyEnvelope] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    reconciliations: list[tuple[str, Reconciliation]] = field(default_factory=list)  # (table label, check)
    inconsistencies: list[Inconsistency] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    error: str | None = None  # the file could not be read at all
    document_date: date | None = None  # the date the document states for itself (see _document_date)
    links: list[Link] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    unlinked: list[UnlinkedRow] = field(default_factory=list)
    execution_choices: list[ExecutionChoice] = field(default_factory=list)
    record_tables: list[RecordTable] = field(default_factory=list)
    # Shown in the import report beside what they published: 과-level execution rows (division
    # snapshots) and a national plan's program table.
    division_execution: list[DivisionExecution] = field(default_factory=list)
    national_rows: list[NationalRow] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(e.event_type for e in self.envelopes)

    def accounts(self) -> dict[str, dict[str, int]]:
        """Per account and scope: lines, 본예산 and 예산현액 of the budget lines this document publishes."""
        out: dict[str, dict[str, int]] = {}
        for e in self.envelopes:
            if e.event_type != "budget.line_set":
                continue
            p = e.payload
            row = out.setdefault(f"{p.account or '미상'}/{p.scope}", {"lines": 0, "original": 0, "current": 0})
            row["lines"] += 1
            row["original"] += p.original
            row["current"] += p.current_budget
        return dict(sorted(out.items()))


def _content_id(event_type: str, key: str, entity: str, payload: Any) -> Any:
    data = payload.model_dump(mode="json", exclude={"source_ref"})
    return deterministic_id("report-importer", event_type, key, entity, json.dumps(data, sort_keys=True,
                                                                                   ensure_ascii=False))


def _bounded(text: str) -> str:
    if len(text) <= MAX_ID:
        return text
    tail = str(deterministic_id(text))[:8]
    return f"{text[:MAX_ID - 9]}~{tail}"


def _month_end(year: int, month: int) -> date:
    return date(year, 12, 31) if month == 12 else date(year, month + 1, 1) - timedelta(days=1)


_SUPPLEMENTARY_MONTH = re.compile(
    r"(?:’(\d{2})|(20\d{2})\s*년)\s*\.?\s*(\d{1,2})\s*월\s*(?:제\s*\d\s*회\s*)?(?:추가\s*경정|추경)")
_ACCOUNT_HEADING = re.compile(r"^[<〈\[【(]?\s*((?:\S{0,20})특별회계|일반회계|기금)\s*[>〉\]】)]?$")


def _document_date(report: ParsedReport, text: str) -> date | None:
    """The date a document states for itself: its issue date, else the latest 기준일 it prints,
    else, for a 추경 plan, the end of the month its 추가경정예산 is said to be of (`’25.6월
    추가경정예산` -> 2025-06-30: by then it is in force; earlier we cannot tell)."""
    if report.issue_date is not None:
        return report.issue_date
    if report.as_of_dates:
        return max(report.as_of_dates)
    if report.kind == "supplementary_budget":
        m = _SUPPLEMENTARY_MONTH.search(normalize_line(text))
        if m and 1 <= int(m.group(3)) <= 12:
            year = int(m.group(2)) if m.group(2) else 2000 + int(m.group(1))
            return _month_end(year, int(m.group(3)))
    return None


@dataclass
class _Record:
    """A row of a 예산현황 table: a 세부사업 of record."""

    pid: str
    row: BudgetRow
    table: BudgetTable
    division: str
    account: str
    key: str  # normalised name
    same: list[_Detail] = field(default_factory=list)  # detail rows that are this 세부사업
    summed: list[_Detail] = field(default_factory=list)  # detail rows that together are it


@dataclass
class _Detail:
    """A row of a section's execution (or fund) table and what it became."""

    sec: Section
    table: BudgetTable
    row: BudgetRow
    division: str | None
    role: str = "unlinked"  # same | part | unlinked
    record: _Record | None = None
    parent_id: str | None = None
    parent_name: str | None = None
    how: str = ""
    pid: str = ""
    reason: str = ""


class _Builder:
    def __init__(self, report: ParsedReport, registry: ProgramRegistry, source: str, text: str) -> None:
        self.rep = report
        self.reg = registry
        self.source = source
        self.doc = Path(report.path).name
        self.text = text
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if text else []
        self.fy: int = report.reference_year or 0
        self.out = DocumentResult(report.path, self.doc, report.kind, report.reference_year)
        self.out.issues.extend(report.issues)
        self.date = _document_date(report, text)
        self.out.document_date = self.date
        stamp = self.date or date(self.fy or 2000, 1, 1)
        self.out.division_execution = list(report.division_execution)
        self.out.national_rows = list(report.national_rows)
        self.occurred_at = datetime.combine(stamp, time(9, 0), KST).astimezone(UTC)
        self.later_document = False
        self.summary_tables = [t for t in report.tables if t.kind == "summary"]
        self.known_divisions = Counter(
            r.division for t in self.summary_tables for r in t.rows if r.division
        ) + Counter(r.division for r in report.supplementary if r.division)
        self.records: list[_Record] = []
        self.details: list[_Detail] = []
        self.seen_ids: Counter[str] = Counter()

    # ------------------------------------------------------------------ helpers
    def issue(self, line: int, reason: str, text: str = "") -> None:
        self.out.issues.append(Issue(line, reason, text))

    @contextmanager
    def refused(self, line: int, text: str | None) -> Iterator[None]:
        """Figures the contract refuses (a negative 지출액 from a damaged table, a name too long) make
        that one fact an issue on its line, never an exception that loses the whole document."""
        try:
            yield
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3])
            self.issue(line, f"not published: the contract refuses it ({why})", text or "")

    def ref(self, section: str | None, line: int | None) -> SourceRef:
        return SourceRef(document=self.doc, section=section, line=line if line and line >= 1 else None)

    def emit(self, model: type[AnyEnvelope], key: str, entity: str, payload: Any) -> None:
        event_type: str = model.model_fields["event_type"].default
        event_id = _content_id(event_type, key, entity, payload)
        if event_id in self.seen_ids:  # the same fact printed twice in one document
            return
        self.seen_ids[event_id] += 1
        self.out.envelopes.append(model(event_id=event_id, event_type=event_type, occurred_at=self.occurred_at,
                                        source=self.source, key=key, payload=payload))

    def division(self, printed: str | None) -> str | None:
        """The division as printed, unless it is one letter away from one the budget tables use."""
        if printed is None or not self.known_divisions or printed in self.known_divisions:
            return printed
        close_ = [d for d in self.known_divisions if len(d) == len(printed) and _edit_distance(d, printed) == 1]
        return close_[0] if len(close_) == 1 else printed

    def resolve(self, name: str, division: str | None, line: int, original: int | None = None,
                tolerance: int = 0) -> str:
        match = self.reg.resolve(name, division, self.doc, original, tolerance, org=self.rep.office)
        if match.how == "new" and self.later_document and match.program_id not in self.reg.programs:
            self.out.unmatched.append(Unmatched(self.doc, line, name, division, match.program_id))
        self.reg.remember(match.program_id, name, division, self.doc, original)
        return match.program_id

    # ------------------------------------------------------------------ programs
    def contacts(self, sec: Section) -> list[ContactInfo]:
        found: list[ContactInfo] = []
        for c in sec.contacts:
            role = c.role if c.role in ROLES else ROLE_NEAREST.get(c.role)
            if role is None:
                self.issue(c.line, f"contact title {c.role} is not 과장/팀장/담당; skipped", c.name)
                continue
            phone = c.phone if c.phone and re.fullmatch(r"0\d{1,2}-\d{3,4}-\d{4}", c.phone) else None
            if c.phone and phone is None:
                self.issue(c.line, f"phone {c.phone} of {c.name} is not a full number; left out", c.name)
            info = ContactInfo(role=role, name=c.name, phone=phone,
                               division=self.division(c.division), team=c.team)
            if info not in found:
                found.append(info)
        return found

    def register(self, pid: str, title: str, sec: Section, division: str | None, parent: str | None = None) -> None:
        method, agency = sec.method, None
        if method:
            m = re.match(r"^\s*대행\s*[(（](.+)[)）]\s*$", method)
            if m:
                method, agency = "대행", m.group(1).strip()
        with self.refused(sec.line, title):
            payload = ProgramRegistered(
                program_id=pid, fiscal_year=self.fy, title=title, office=sec.office or self.rep.office,
                division=division, team=sec.team, contacts=self.contacts(sec), purpose=sec.purpose or None,
                method=method or None, agency=agency, period_text=sec.period_text or None,
                source_ref=self.ref(sec.title, sec.line), kind="part" if parent else "program",
                parent_program_id=parent)
            self.emit(ProgramRegisteredEvent, pid, "program", payload)

    def register_record(self, rec: _Record) -> None:
        """A 세부사업 of record no section describes: registered from its 예산현황 row."""
        with self.refused(rec.row.line, rec.row.name):
            payload = ProgramRegistered(program_id=rec.pid, fiscal_year=self.fy, title=rec.row.name,
                                        office=self.rep.office, division=rec.division,
                                        source_ref=self.ref("예산현황", rec.row.line))
            self.emit(ProgramRegisteredEvent, rec.pid, "program", payload)

    # ------------------------------------------------------------------ budget
    def line_set(self, pid: str, title: str, figures: tuple[int | None, int | None, int | None], *,
                 table: BudgetTable, line: int, division: str | None, section: str | None, account: str,
                 scope: str, parent: str | None = None, previous_final: int | None = None) -> None:
        """One budget.line_set: `figures` is (본예산, 이월 등, 예산현액) as printed (None = blank)."""
        original, carried, current = figures
        if original is None:
            self.issue(line, "budget row without 본예산; no budget line published", title)
            return
        if carried is None and current is not None and table.kind == "summary":
            # The summary prints 본예산 and 예산현액 only: the difference is 이월 등.
            carried = current - original if current >= original else None
        carried = carried or 0
        if current is not None and current != original + carried:
            self.out.inconsistencies.append(Inconsistency(
                line, pid,
                f"{title}: 예산현액 {current:,}원 ≠ 본예산 {original:,} + 이월 등 {carried:,}원; "
                "parts published, 예산현액 left empty"))
            current = None
        name = normalize_name(title)
        category = ("기본경비" if "기본경비" in name else "전출금" if "전출" in name else
                    "반환금" if "반환" in name else "기금" if table.kind == "fund" else None)
        with self.refused(line, title):
            payload = BudgetLineSet(
                program_id=pid, fiscal_year=self.fy, title=title, office=self.rep.office, division=division,
                category=category, original=original, carried_over=carried, current=current,
                previous_final=previous_final, source_ref=self.ref(section, line), account=account,
                scope=scope, parent_program_id=parent, effective_date=table.as_of or self.date)
            self.emit(BudgetLineSetEvent, pid, f"line/{self.fy}", payload)

    def snapshot(self, pid: str, as_of: date | None, committed: int | None, spent: int | None,
                 current: int | None, section: str | None, line: int, name: str) -> None:
        if as_of is None or spent is None:
            return
        if not (self.fy - 1 <= as_of.year <= self.fy + 1):
            self.issue(line, f"as_of {as_of} is far from fiscal year {self.fy}; no snapshot", name)
            return
        with self.refused(line, name):
            snap = ExecutionSnapshot(program_id=pid, fiscal_year=self.fy, as_of=as_of, committed=committed,
                                     spent=spent, revision=0, current_budget=current,
                                     source_ref=self.ref(section, line))
            self.emit(ExecutionSnapshotEvent, pid, f"snapshot/{as_of.isoformat()}/0", snap)

    def detail_budget(self, d: _Detail, account: str, scope: str, parent: str | None = None) -> None:
        r = d.row
        self.line_set(d.pid, r.name, (r.original, r.carried_over, r.current), table=d.table, line=r.line,
                      division=d.division, section=d.sec.title, account=account, scope=scope, parent=parent,
                      previous_final=r.previous_final)
        if d.table.kind == "execution" and r.committed is not None:
            self.snapshot(d.pid, d.table.as_of, r.committed, r.spent, r.current, d.sec.title, r.line, r.name)

    # ------------------------------------------------------------------ records and links
    def account_of(self, table: BudgetTable, row: BudgetRow) -> str:
        """일반회계 unless the table says otherwise: a 특별회계 / 기금 group heading above the row
        (within the table) or the account in the row's own name."""
        if table.kind == "fund":
            return "기금"
        if "특별회계" in normalize_name(row.name):
            return "특별회계"
        account = "일반회계"
        for text in self.lines[table.line:row.line - 1]:
            m = _ACCOUNT_HEADING.match(compact(normalize_line(text)))
            if m:
                found = m.group(1)
                account = "특별회계" if found.endswith("특별회계") else found
        return account

    def read_records(self) -> None:
        for t in self.summary_tables:
            self.out.reconciliations += [("예산현황", rc) for rc in t.reconciliations]
            tol = UNIT_TOLERANCE.get(t.unit, 1)
            table = RecordTable(t.line, t.as_of, self.fy, self.rep.office, t.unit)
            counts: Counter[str | None] = Counter()
            for r in t.rows:
                if r.kind != "row":
                    continue
                div = self.division(r.division)
                counts[div] += 1
                counts[None] += 1
                if div is None:
                    self.issue(r.line, "summary row without a division; not published", r.name)
                    continue
                pid = self.resolve(r.name, div, r.line, r.original, tol)
                account = self.account_of(t, r)
                self.reg.remember(pid, r.name, div, self.doc, r.original, scope="record", account=account)
                self.records.append(_Record(pid, r, t, div, account, normalize_name(r.name)))
                table.record_ids[pid] = div
            for r in t.rows:
                if r.kind in ("subtotal", "total"):
                    div = self.division(r.division) if r.kind == "subtotal" else None
                    label = f"{div} 소계" if div else "계"
                    n = counts.get(div, 0)
                    table.printed.append(RecordFigures(label, div, r.original, r.current, r.spent,
                                                       -(-n // 2) * tol, r.line))
            self.out.record_tables.append(table)

    def record_figures(self, table: RecordTable) -> None:
        """The printed 소계 and 계 of a 예산현황 table as facts of record: each 소계 a division
        snapshot of its 과, the 계 one of the 실 (no division). They are what the report says, in
        its unit; the sum of the programs may differ from them by rounding (some programs carry
        exact 천원 figures from their detail tables), and the view shows both. The 과 of a 소계 is
        the one the reconciliation uses (`read_records`), also where it is printed before the
        division's heading."""
        if table.as_of is None or not table.printed:
            return  # a table without 기준일 states no date the figures hold on
        if not (self.fy - 1 <= table.as_of.year <= self.fy + 1):
            return  # read_records' rows already carry that issue
        unit = table.unit if table.unit in UNIT_FACTORS else None
        for fig in table.printed:
            if fig.division is None and not table.office:
                self.issue(fig.line or table.line, "계 of a 예산현황 whose 실 is unknown; not published as the "
                                                   "실's figures", fig.label)
                continue
            if fig.original is None and fig.current is None and fig.spent is None:
                continue
            with self.refused(fig.line or table.line, fig.label):
                payload = DivisionSnapshot(office=table.office, division=fig.division, fiscal_year=self.fy,
                                           as_of=table.as_of, original=fig.original, current=fig.current,
                                           spent=fig.spent, unit=unit, source_ref=self.ref("예산현황", fig.line))
                key = division_key(table.office, fig.division)
                self.emit(DivisionSnapshotEvent, key, f"division/{table.as_of.isoformat()}/0", payload)

    def agrees(self, d: _Detail, rec: _Record) -> bool:
        half = half_unit(UNIT_TOLERANCE.get(rec.table.unit, 1))
        r = d.row
        same_current = rec.row.current is None or close(r.current, rec.row.current, half)
        return close(r.original, rec.row.original, half) and same_current

    def link_same(self, d: _Detail, rec: _Record, how: str) -> None:
        if rec.same:  # printed twice: the first table stands; this one is a part of it
            self.link_part(d, rec, "printed-again")
            return
        d.role, d.record, d.how, d.pid = "same", rec, how, rec.pid
        rec.same.append(d)

    def link_part(self, d: _Detail, rec: _Record | None, how: str, parent_id: str | None = None,
                  parent_name: str | None = None) -> None:
        d.role, d.record, d.how = "part", rec, how
        d.parent_id = rec.pid if rec else parent_id
        d.parent_name = rec.row.name if rec else parent_name
        d.pid = _bounded(f"{d.parent_id}/{display_key(d.row.name) or 'part'}")

    def link_by_name(self, d: _Detail) -> None:
        """Aliases, the exact name, and names that put the row below a record; amounts come later."""
        name, div = d.row.name, d.division
        if d.table.kind == "fund":
            exact = [rec for rec in self.records if rec.key == normalize_name(name) and rec.account == "기금"]
            if len(exact) == 1:
                self.link_same(d, exact[0], "name")
            else:
                d.reason = "기금 운용 사업: 세출 예산현황에 없는 기금 (세출 합계 밖, 기금 합계로 따로 보고)"
            return
        by_pid = {rec.pid: rec for rec in self.records}
        parent = self.reg.alias_parent(name, div)
        if parent is not None:
            known = self.reg.programs.get(parent)
            self.link_part(d, by_pid.get(parent), "alias", parent, known.title if known else parent)
            return
        alias = self.reg.alias_of(name, div)
        if alias is not None and alias in by_pid:
            self.link_same(d, by_pid[alias], "alias")
            return
        key = normalize_name(name)
        local = [rec for rec in self.records if rec.division == div] if div else list(self.records)
        exact = [rec for rec in local if rec.key == key] or [rec for rec in self.records if rec.key == key]
        if len(exact) == 1:
            if self.agrees(d, exact[0]):
                self.link_same(d, exact[0], "name")
            else:
                self.link_part(d, exact[0], "amount-differs")
            return
        below = [(rec, how) for rec in local for how in [sub_item_of(name, rec.key)] if how]
        if len(below) == 1:
            rec, how = below[0]
            if how == "sub-item" and self.agrees(d, rec) and not rec.same:
                self.link_same(d, rec, "name")
            else:
                self.link_part(d, rec, how)

    def link_by_amount(self, d: _Detail) -> None:
        local = [rec for rec in self.records if rec.division == d.division and not rec.same]
        found = [rec for rec in local if self.agrees(d, rec)]
        if len(found) == 1:
            self.link_same(d, found[0], "amount")
        elif len(found) > 1:
            d.reason = "본예산이 같은 세부사업이 여럿: " + ", ".join(rec.row.name for rec in found)

    def link_sums(self) -> None:
        """Rows that together are one 세부사업 (or complete the one a row names): parts of it."""
        claims: dict[int, list[_Record]] = {}
        chosen: dict[str, tuple[_Record, tuple[int, ...]]] = {}
        for rec in self.records:
            if rec.same or rec.row.original is None:
                continue
            anchors = [d for d in self.details if d.record is rec and d.how == "amount-differs"]
            pool = [d for d in self.details if d.role == "unlinked" and d.division == rec.division
                    and d.table.kind == "execution" and d.row.original is not None]
            if not anchors:  # without a row naming the record, every row must share a telling word
                pool = [d for d in pool if words(d.row.name) & words(rec.row.name)]
            original = rec.row.original - sum(d.row.original or 0 for d in anchors)
            current = (rec.row.current - sum(d.row.current or 0 for d in anchors)
                       if rec.row.current is not None and all(d.row.current is not None for d in anchors) else None)
            if not pool or original <= 0:
                continue
            half = half_unit(UNIT_TOLERANCE.get(rec.table.unit, 1))
            cands = [Amounts(i, d.row.original or 0, d.row.current) for i, d in enumerate(pool)]
            found = subsets_summing_to(cands, original, current, half, 1 if anchors else 2)
            if len(found) != 1:
                continue
            picked = tuple(id(pool[i]) for i in found[0])
            chosen[rec.pid] = (rec, picked)
            for ident in picked:
                claims.setdefault(ident, []).append(rec)
        by_ident = {id(d): d for d in self.details}
        for rec, picked in chosen.values():
            if any(len(claims[i]) > 1 for i in picked):
                continue  # two records could be made of the same row: ambiguous, left for a person
            for ident in picked:
                self.link_part(by_ident[ident], rec, "sum")
            rec.summed = [d for d in self.details if d.record is rec and d.role == "part"
                          and d.how in ("sum", "amount-differs")]

    def link_without_summary(self, d: _Detail) -> None:
        """A document with no 예산현황: rows are matched to programs earlier documents recorded."""
        r = d.row
        match = self.reg.resolve(r.name, d.division, self.doc, r.original, UNIT_TOLERANCE.get(d.table.unit, 1),
                                 org=self.rep.office)
        known = self.reg.programs.get(match.program_id) if match.how != "new" else None
        if known is not None and known.scope == "record":
            d.role, d.how, d.pid = "same", match.how, known.program_id
            return
        part = self.reg.part_named(r.name, d.division)
        if part is not None and part.parent:
            parent = self.reg.programs.get(part.parent)
            d.role, d.how, d.pid = "part", "earlier", part.program_id
            d.parent_id, d.parent_name = part.parent, parent.title if parent else part.parent
            return
        d.pid = known.program_id if known is not None else match.program_id
        d.reason = d.reason or "예산현황에 연결할 세부사업이 없음"

    # ------------------------------------------------------------------ publishing records and rows
    def publish_record(self, rec: _Record) -> None:
        r, t = rec.row, rec.table
        half = half_unit(UNIT_TOLERANCE.get(t.unit, 1))
        figures: tuple[int | None, int | None, int | None] = (r.original, r.carried_over, r.current)
        source, line = "예산현황", r.line
        exact: tuple[int | None, int | None, date | None, int] | None = None  # committed, spent, as_of, line
        if rec.same:
            d = rec.same[0]
            figures = (d.row.original, d.row.carried_over, d.row.current)
            source, line = d.sec.title, d.row.line
            if d.table.kind == "execution" and d.row.spent is not None:
                exact = (d.row.committed, d.row.spent, d.table.as_of, d.row.line)
        elif rec.summed:
            parts = [d.row for d in rec.summed]
            figures = (sum(p.original or 0 for p in parts), sum(p.carried_over or 0 for p in parts),
                       sum(p.current or 0 for p in parts) if all(p.current is not None for p in parts) else None)
            if all(p.spent is not None for p in parts) and len({d.table.as_of for d in rec.summed}) == 1:
                committed = (sum(p.committed or 0 for p in parts)
                             if all(p.committed is not None for p in parts) else None)
                exact = (committed, sum(p.spent or 0 for p in parts), rec.summed[0].table.as_of, r.line)
        self.line_set(rec.pid, r.name, figures, table=t, line=line, division=rec.division, section=source,
                      account=rec.account, scope="record", previous_final=r.previous_final)
        current = figures[2]
        if exact is not None and exact[2] == t.as_of and (r.spent is None or close(exact[1], r.spent, half)):
            self.snapshot(rec.pid, t.as_of, exact[0], exact[1], current, source, exact[3], r.name)
            return
        if exact is not None and exact[2] == t.as_of:
            self.out.execution_choices.append(ExecutionChoice(exact[3], rec.pid, r.name, exact[1], r.spent))
        # The 예산현황's own 집행액 (지출액 기준): no 원인행위액 is printed there.
        self.snapshot(rec.pid, t.as_of, None, r.spent, r.current, "예산현황", r.line, r.name)
        if exact is not None and exact[2] != t.as_of:  # a detail table of another 기준일 adds its own point
            self.snapshot(rec.pid, exact[2], exact[0], exact[1], current, source, exact[3], r.name)

    def publish_detail(self, d: _Detail) -> None:
        title = d.record.row.name if d.role == "same" and d.record else d.row.name
        if d.role == "same":
            self.register(d.pid, title, d.sec, d.record.division if d.record else d.division)
            self.reg.remember(d.pid, d.row.name, d.record.division if d.record else d.division, self.doc,
                              d.row.original)
            if d.record is None:  # no 예산현황 in this document: the row is the line of record
                known = self.reg.programs.get(d.pid)
                self.detail_budget(d, known.account if known and known.account else "일반회계", "record")
            else:
                self.out.links.append(Link(d.row.line, d.sec.title, d.row.name, d.pid, d.record.row.name, d.how))
            return
        account = "기금" if d.table.kind == "fund" else "일반회계"
        if d.role == "part" and d.parent_id:
            known_parent = self.reg.programs.get(d.parent_id)
            account = d.record.account if d.record else (known_parent.account if known_parent and
                                                         known_parent.account else account)
            self.register(d.pid, d.row.name, d.sec, d.division, parent=d.parent_id)
            self.reg.remember(d.pid, d.row.name, d.division, self.doc, d.row.original, scope="part",
                              parent=d.parent_id)
            self.detail_budget(d, account, "part", d.parent_id)
            self.out.children.append(Child(d.row.line, d.sec.title, d.row.name, d.pid, d.parent_id,
                                           d.parent_name or d.parent_id, d.how))
            return
        if not d.pid:
            d.pid = make_program_id(d.division or self.rep.office, d.row.name)
        self.register(d.pid, d.row.name, d.sec, d.division)
        self.reg.remember(d.pid, d.row.name, d.division, self.doc, d.row.original, scope="unlinked",
                          account=account)
        self.detail_budget(d, account, "unlinked")
        self.out.unlinked.append(UnlinkedRow(d.row.line, d.sec.title, d.row.name, d.pid, d.division, account,
                                             d.row.original, d.row.current,
                                             d.reason or NO_RECORD))

    def amendment_id(self) -> str:
        m = re.search(r"제\s*(\d)\s*회\s*추가\s*경정|(\d)\s*차\s*추(?:가\s*)?경", self.text)
        n = (m.group(1) or m.group(2)) if m else None
        return f"{self.fy}-{n}차추경" if n else f"{self.fy}-추경"

    def amended(self, row: SupplementaryRow) -> None:
        if row.before is None or row.increase is None:
            self.issue(row.line, "추경 row without 기정예산 or 증가액; not published", row.name)
            return
        after = row.before + row.increase
        if row.proposed is not None and row.proposed != after:
            self.issue(row.line, f"추경예산(안) {row.proposed:,}원 ≠ 기정예산 {row.before:,} + 증가액 "
                                 f"{row.increase:,}원; published the sum", row.name)
        division = self.division(row.division)
        pid = self.resolve(row.name, division, row.line, row.before, UNIT_TOLERANCE["백만원"])
        reason = row.reason or "; ".join(
            f"{s.name} {s.increase:,}원" if s.increase is not None else s.name for s in row.sub_items) or None
        if self.date is None:
            self.issue(row.line, "추경 document states no date; the amendment has no effective date", row.name)
        with self.refused(row.line, row.name):
            payload = BudgetAmended(program_id=pid, fiscal_year=self.fy, amendment_id=self.amendment_id(),
                                    before=row.before, change=row.increase, after=after, reason=reason,
                                    effective_date=self.date, source_ref=self.ref(None, row.line))
            self.emit(BudgetAmendedEvent, pid, f"amended/{payload.amendment_id}", payload)

    # ------------------------------------------------------------------ schedule and targets
    def milestone(self, pid: str, m: Milestone, sec: Section, used: Counter[str]) -> None:
        title = m.text.strip() or m.when_text.strip()
        if not title:
            return
        base = _bounded(display_key(title) or "milestone")
        used[base] += 1
        mid = base if used[base] == 1 else _bounded(f"{base}#{used[base]}")
        windows = m.when.windows
        start = windows[0].start if windows else None
        end = windows[-1].end if windows else None
        review = bool(m.when.unparsed) or (not windows and m.when.recurrence is None)
        if start and end and start > end:
            start, end, review = None, None, True
        recurrence = RECURRENCE_MAP.get(m.when.recurrence) if m.when.recurrence else None
        status = STAGE_STATUS.get(m.stage or "", "planned")
        with self.refused(m.line, title):
            payload = MilestoneSet(program_id=pid, milestone_id=mid, title=title, window_start=start,
                                   window_end=end, window_text=m.when_text or None,
                                   recurrence=recurrence, status=status,
                                   needs_review=review, source_ref=self.ref(sec.title, m.line))
            self.emit(MilestoneSetEvent, pid, f"milestone/{mid}", payload)

    def targets(self, pid: str, sec: Section, used: Counter[str]) -> None:
        for t in sec.targets:
            if t.value is None or not t.unit:
                continue  # the parser already reported `target without a number`
            base = _bounded(f"{display_key(t.activity) or 'target'}|{t.unit}")
            used[base] += 1
            tid = base if used[base] == 1 else _bounded(f"{base}#{used[base]}")
            windows = t.period.windows if t.period else ()
            with self.refused(t.line, t.activity):
                payload = TargetSet(program_id=pid, target_id=tid, activity=t.activity, target_value=t.value,
                                    unit=t.unit, period_start=windows[0].start if windows else None,
                                    period_end=windows[-1].end if windows else None,
                                    source_ref=self.ref(sec.title, t.line))
                self.emit(TargetSetEvent, pid, f"target/{tid}", payload)

    # ------------------------------------------------------------------ the document
    def is_program_section(self, sec: Section, rows: Sequence[tuple[BudgetTable, BudgetRow]]) -> bool:
        if rows:
            return True
        if normalize_name(sec.title) in GENERIC_TITLES:
            return False
        has_facts = bool(sec.milestones or sec.targets)
        if sec.division or sec.contacts or not has_facts:
            return has_facts
        # No owner named: a plan's task, or an office-wide section with a real schedule; annexes
        # (audit answers) carry prose that only looks like schedule lines, mostly unreadable.
        readable = sum(1 for m in sec.milestones if m.when.windows or m.when.recurrence)
        return (readable * 3 >= len(sec.milestones) * 2 and readable > 0) or bool(sec.targets)

    def attribute(self, line: int, text: str, programs: Sequence[tuple[BudgetTable, BudgetRow, str]]) -> str:
        """Which 세부사업 of a multi-program section a schedule line or target belongs to."""
        key = normalize_name(text)
        named = [pid for _, row, pid in programs if normalize_name(row.name) and normalize_name(row.name) in key]
        if len(set(named)) == 1:
            return named[0]
        after = sorted({t.line for t, _, _ in programs if t.line > line})
        table_line = after[0] if after else max(t.line for t, _, _ in programs)
        in_table = [(row, pid) for t, row, pid in programs if t.line == table_line]
        return max(in_table, key=lambda rp: rp[0].original or 0)[1]

    def build(self) -> DocumentResult:
        if not self.rep.reference_year:
            self.issue(1, "no reference year found in the document; nothing published")
            return self.out
        self.later_document = self.reg.start_document(self.doc)
        # 1. The 예산현황 rows: the 세부사업 of record.
        self.read_records()
        # 2. Every row of a section's execution (or fund) table, linked to its record.
        pending: list[tuple[Section, list[_Detail], str | None]] = []
        for sec in self.rep.sections:
            div = self.division(sec.division)
            rows = [(t, r) for t in sec.tables if t.kind in ("execution", "fund") for r in t.rows if r.kind == "row"]
            for t in sec.tables:
                self.out.reconciliations += [(f"{sec.title} 집행 현황", rc) for rc in t.reconciliations]
            if not self.is_program_section(sec, rows):
                self.unowned_section(sec)  # see "sections nobody owns" below
                continue
            found = [_Detail(sec, t, r, div) for t, r in rows]
            self.details += found
            pending.append((sec, found, div))
        if self.records:
            for d in self.details:
                self.link_by_name(d)
            for d in self.details:
                if d.role == "unlinked" and d.table.kind == "execution":
                    self.link_by_amount(d)
            self.link_sums()
        else:
            for d in self.details:
                if d.table.kind == "execution":
                    self.link_without_summary(d)
                else:
                    d.reason = "기금 운용 사업: 세출 예산현황에 없는 기금 (세출 합계 밖, 기금 합계로 따로 보고)"
        for rec in self.records:
            self.publish_record(rec)
        described = {d.record.pid for d in self.details if d.role == "same" and d.record}
        for rec in self.records:
            if rec.pid not in described:
                self.register_record(rec)
        for d in self.details:
            self.publish_detail(d)
        # 3. 추경 rows.
        for s in self.rep.supplementary:
            self.amended(s)
        # 4. Programs described by a section without a budget table; schedules and targets.
        for sec, details, div in pending:
            programs_for = [(d.table, d.row, d.pid) for d in details]
            pid = ""
            if not programs_for:
                pid = self.resolve(sec.title, div, sec.line)
                self.register(pid, sec.title, sec, div)
            used_m: Counter[str] = Counter()
            used_t: Counter[str] = Counter()
            for m in sec.milestones:
                target_pid = self.attribute(m.line, m.text, programs_for) if programs_for else pid
                self.milestone(target_pid, m, sec, used_m)
            if programs_for:
                by_pid: dict[str, Section] = {}
                for tg in sec.targets:
                    p = self.attribute(tg.line, tg.activity, programs_for)
                    by_pid.setdefault(p, Section(sec.number, sec.title, sec.line)).targets.append(tg)
                for p, part in by_pid.items():
                    self.targets(p, part, used_t)
            else:
                self.targets(pid, sec, used_t)
        # 5. Audit findings and their follow-ups (see "action items" below).
        for item in self.rep.action_items:
            self.action_item(item)
        # 6. Tables at another level: the 예산현황's 소계/계, 과-level execution, a national plan's table.
        for table in self.out.record_tables:
            self.record_figures(table)
        for x in self.rep.division_execution:
            self.division_snapshot(x)
        self.national_table()
        self.flag_unassigned()
        self.out.issues.sort(key=lambda i: i.line)
        return self.out

    # ------------------------------------------------------------------ sections nobody owns
    # A section without contacts, budget table or named division still describes work with dates:
    # its heading names the program; the division comes from the document (the parser's context,
    # the summary table, the alias file) or stays None — published as unassigned for review, never
    # dropped.
    def context_division(self, title: str, printed: str | None) -> str | None:
        if printed:
            return self.division(printed)
        key = normalize_name(title)
        owners = {rec.division for rec in self.records if rec.key == key}
        if len(owners) == 1:
            return next(iter(owners))
        aliased = {a.division for a in self.reg.aliases if key in a.names and a.division}
        return next(iter(aliased)) if len(aliased) == 1 else None

    def unowned_section(self, sec: Section) -> None:
        dated = [m for m in sec.milestones if m.when.windows or m.when.recurrence]
        if not dated and not sec.targets:
            return
        title = sec.title
        if normalize_name(title) in GENERIC_TITLES or not normalize_name(title):
            title = self.rep.title or title  # `Ⅲ. 향후 계획` of a plan: the plan is the program
        div = self.context_division(title, sec.division)
        pid = self.resolve(title, div, sec.line)
        self.register(pid, title, sec, div)
        used_m: Counter[str] = Counter()
        for m in sec.milestones:
            self.milestone(pid, m, sec, used_m)
        self.targets(pid, sec, Counter())

    def flag_unassigned(self) -> None:
        """Every program published without a division is listed for review: the programs service
        shows it in its review queue; staff assign it (alias file) rather than lose it."""
        for e in self.out.envelopes:
            if e.event_type == "program.registered" and e.payload.division is None \
                    and e.payload.office != NATIONAL_OFFICE:
                line = e.payload.source_ref.line if e.payload.source_ref else None
                self.issue(line or 0, "program without a division (no contacts, 담당 line, table of contents or "
                                      "summary row names one); published as unassigned for review",
                           e.payload.title)

    # ------------------------------------------------------------------ action items
    def action_item(self, item: ActionItem) -> None:
        """An audit finding as a program of kind `action_item`; its dated follow-ups are milestones."""
        if not item.milestones:
            return  # answered without a dated follow-up: nothing the schedule watch could judge
        div = self.division(item.divisions[0]) if item.divisions else None
        key = display_key(item.title)
        name = f"감사:{key[:40]}~{str(deterministic_id(normalize_name(item.title)))[:8]}"
        pid = make_program_id(div or self.rep.office, name)
        title = _action_title(item)
        payload = ProgramRegistered(
            program_id=pid, fiscal_year=self.fy, title=title, office=self.rep.office, division=div,
            purpose=item.title, kind="action_item",
            period_text=" / ".join(x for x in (item.category, item.status) if x) or None,
            source_ref=self.ref(item.category, item.line))
        self.emit(ProgramRegisteredEvent, pid, "program", payload)
        as_of = max(self.rep.as_of_dates) if self.rep.as_of_dates else None
        done = bool(item.status and "완료" in item.status)
        sec = Section(None, item.category or "감사 처리결과", item.line)
        used: Counter[str] = Counter()
        for m in item.milestones:
            end = m.when.end
            stage = "완료" if done and as_of is not None and end is not None and end <= as_of else m.stage
            self.milestone(pid, replace(m, stage=stage), sec, used)


    # ------------------------------------------------------------------ tables at another level
    def division_snapshot(self, x: DivisionExecution) -> None:
        """A 과 row of a 과-level execution table: the division's execution of record on its date."""
        if x.kind != "row":
            return  # the 계: the sum of the rows, shown in the import report
        if x.as_of is None:
            self.issue(x.line, "division execution row without a 기준일; no division snapshot", x.division)
            return
        if not (self.fy - 1 <= x.as_of.year <= self.fy + 1):
            self.issue(x.line, f"as_of {x.as_of} is far from fiscal year {self.fy}; no division snapshot",
                       x.division)
            return
        if x.current is None and x.committed is None and x.spent is None:
            return
        division = self.division(x.division) or x.division
        with self.refused(x.line, x.division):
            payload = DivisionSnapshot(office=self.rep.office, division=division, fiscal_year=self.fy, as_of=x.as_of,
                                       current=x.current, committed=x.committed, spent=x.spent,
                                       unit=x.unit if x.unit in UNIT_FACTORS else None,
                                       source_ref=self.ref(DIVISION_SECTION, x.line))
            key = division_key(self.rep.office, division)
            self.emit(DivisionSnapshotEvent, key, f"division/{x.as_of.isoformat()}/0", payload)

    def national_table(self) -> None:
        """A national plan's program table: programs and budget lines of another government, held
        out of every Seoul total (see the module docstring)."""
        rows = [r for r in self.rep.national_rows if r.kind == "row"]
        ids = {r.name: make_program_id(NATIONAL_OFFICE, r.name) for r in rows if r.parent is None}
        for r in rows:
            pid = make_program_id(NATIONAL_OFFICE, r.name)
            parent = ids.get(r.parent) if r.parent else None
            if parent == pid:
                parent = None
            ref = self.ref(NATIONAL_SECTION, r.line)
            self.emit(ProgramRegisteredEvent, pid, "program", ProgramRegistered(
                program_id=pid, fiscal_year=self.fy, title=r.name, office=NATIONAL_OFFICE,
                purpose=self.rep.title or None, source_ref=ref, kind="part" if parent else "program",
                parent_program_id=parent))
            figures = dict(zip(r.headers, r.amounts, strict=False))
            original, supplementary = figures.get("본예산"), figures.get("추경")
            current = figures.get("정부안")
            if original is None or supplementary is None:
                self.issue(r.line, "national row without 본예산 and 추경; no budget line", r.name)
                continue
            if current is not None and current != original + supplementary:
                self.issue(r.line, f"정부안 {current:,}원 ≠ 본예산 {original:,} + 추경 {supplementary:,}원; "
                                   "published the parts", r.name)
                current = None
            with self.refused(r.line, r.name):
                payload = BudgetLineSet(
                    program_id=pid, fiscal_year=self.fy, title=r.name, office=NATIONAL_OFFICE, division=None,
                    category="국가 예산", original=original, supplementary=supplementary, current=current,
                    source_ref=ref, scope="unlinked", effective_date=self.date)
                self.emit(BudgetLineSetEvent, pid, f"line/{self.fy}", payload)


def _action_title(item: ActionItem) -> str:
    """A name staff recognise in a mail subject: the finding's printed topic ("(동대문 상권 관련)
    현재 …" or "파트너스하우스 관련 - …") as "감사 지적사항: 동대문 상권 관련", else its first
    words; the whole finding stays the program's purpose."""
    kind = "건의사항" if item.category and "건의" in item.category else "감사 지적사항"
    text = " ".join(item.title.split())
    topic = re.match(r"[(（]([^()（）]{2,60})[)）]", text) or re.match(r"(.{2,50}?)\s+[-–]\s", text)
    if topic:
        return f"{kind}: {topic.group(1).strip()}"
    return f"{kind}: {text if len(text) <= 60 else text[:59].rsplit(' ', 1)[0] + '…'}"


def map_report(report: ParsedReport, registry: ProgramRegistry, source: str = "report-importer",
               text: str = "") -> DocumentResult:
    """All envelopes one parsed report yields, in a stable order, with the report's notes."""
    return _Builder(report, registry, source, text).build()


@dataclass(frozen=True)
class _Listed:
    """How one kind of listed fact (milestones, targets) is closed when a newer report drops it."""

    event_type: str
    event: type[MilestoneSetEvent] | type[TargetSetEvent]
    id_field: str
    closed: str  # the status that says "no longer listed"
    what: str  # 일정 / 목표, for the note staff read
    label: str  # for the import report


_MILESTONES = _Listed("milestone.set", MilestoneSetEvent, "milestone_id", "cancelled", "일정", "milestone")
_TARGETS = _Listed("target.set", TargetSetEvent, "target_id", "dropped", "목표", "target")


def _no_longer_listed(previous: Sequence[AnyEnvelope], newer: DocumentResult, kind: _Listed) -> list[AnyEnvelope]:
    """Facts of `kind` a newer business report no longer lists for a program whose list it prints,
    published again (same id) with the closed status and a note; the import report lists each.
    A program whose list the newer report does not print keeps its facts (a 추경 plan lists few)."""
    mine = [e for e in newer.envelopes if e.event_type == kind.event_type]
    now = {(e.key, getattr(e.payload, kind.id_field)) for e in mine}
    printed = {e.key for e in mine}
    out: list[AnyEnvelope] = []
    for e in previous:
        if e.event_type != kind.event_type or e.key not in printed:
            continue
        p = e.payload
        fact_id = getattr(p, kind.id_field)
        if (e.key, fact_id) in now or getattr(p, "status", None) == kind.closed:
            continue
        note = f"{newer.name}에 더 이상 나오지 않음 (최신 업무보고에서 빠진 {kind.what})"
        payload = p.model_copy(update={"status": kind.closed, "source_ref": SourceRef(document=newer.name),
                                       "note": note})
        event_id = _content_id(kind.event_type, e.key, f"{kind.label}/{fact_id}", payload)
        out.append(kind.event(event_id=event_id, occurred_at=e.occurred_at, source=e.source, key=e.key,
                              payload=payload))
        title = getattr(p, "title", None) or getattr(p, "activity", "")
        newer.issues.append(Issue(0, f"{kind.label} no longer in this report; published as {kind.closed}: "
                                     f"{e.key} {title}", getattr(p, "window_text", None) or ""))
    newer.envelopes.extend(out)
    return out


def cancelled_milestones(previous: Sequence[AnyEnvelope], newer: DocumentResult) -> list[AnyEnvelope]:
    """Milestones a newer business report no longer lists: `milestone.set` status=cancelled, so the
    programs service stops watching them."""
    return _no_longer_listed(previous, newer, _MILESTONES)


def dropped_targets(previous: Sequence[AnyEnvelope], newer: DocumentResult) -> list[AnyEnvelope]:
    """Targets a newer business report no longer lists: `target.set` status=dropped, so the
    programs service stops judging them."""
    return _no_longer_listed(previous, newer, _TARGETS)
