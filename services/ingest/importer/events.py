"""ParsedReport -> contract envelopes (the mapping), with everything staff must see about it.

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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from contracts import (
    BudgetAmended,
    BudgetAmendedEvent,
    BudgetLineSet,
    BudgetLineSetEvent,
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
from contracts.programs import ContactInfo, SourceRef
from services.ingest.importer.contacts import _edit_distance
from services.ingest.importer.identity import ProgramRegistry, Unmatched, display_key, make_program_id
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
from services.ingest.importer.text import normalize_name

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
GENERIC_TITLES = {"향후계획", "향후추진계획", "추진계획", "기타사항", "건의사항", "향후추진일정"}

AnyEnvelope = Envelope[Any]


@dataclass(frozen=True)
class Inconsistency:
    """A printed row whose parts do not add up; what was published instead."""

    line: int
    program_id: str
    text: str


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
    # Parsed facts no contract carries yet (shown in the import report): 과-level execution rows
    # and a national plan's program table.
    division_execution: list[DivisionExecution] = field(default_factory=list)
    national_rows: list[NationalRow] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(e.event_type for e in self.envelopes)


def _content_id(event_type: str, key: str, entity: str, payload: Any) -> Any:
    data = payload.model_dump(mode="json", exclude={"source_ref"})
    return deterministic_id("report-importer", event_type, key, entity, json.dumps(data, sort_keys=True,
                                                                                   ensure_ascii=False))


def _bounded(text: str) -> str:
    if len(text) <= MAX_ID:
        return text
    tail = str(deterministic_id(text))[:8]
    return f"{text[:MAX_ID - 9]}~{tail}"


class _Builder:
    def __init__(self, report: ParsedReport, registry: ProgramRegistry, source: str, text: str) -> None:
        self.rep = report
        self.reg = registry
        self.source = source
        self.doc = Path(report.path).name
        self.text = text
        self.fy: int = report.reference_year or 0
        self.out = DocumentResult(report.path, self.doc, report.kind, report.reference_year)
        self.out.issues.extend(report.issues)
        self.out.division_execution = list(report.division_execution)
        self.out.national_rows = list(report.national_rows)
        stamp = max(report.as_of_dates) if report.as_of_dates else date(self.fy or 2000, 1, 1)
        self.occurred_at = datetime.combine(stamp, time(9, 0), KST).astimezone(UTC)
        self.later_document = False
        self.summary_tables = [t for t in report.tables if t.kind == "summary"]
        self.known_divisions = Counter(
            r.division for t in self.summary_tables for r in t.rows if r.division
        ) + Counter(r.division for r in report.supplementary if r.division)
        self.owner_by_name: dict[str, set[str]] = {}
        for t in self.summary_tables:
            for r in t.rows:
                if r.kind == "row" and r.division:
                    self.owner_by_name.setdefault(normalize_name(r.name), set()).add(r.division)
        self.covered: dict[str, tuple[int, int | None]] = {}  # program id -> (line, 본예산) from execution tables
        self.seen_ids: Counter[str] = Counter()

    # ------------------------------------------------------------------ helpers
    def issue(self, line: int, reason: str, text: str = "") -> None:
        self.out.issues.append(Issue(line, reason, text))

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
        close = [d for d in self.known_divisions if len(d) == len(printed) and _edit_distance(d, printed) == 1]
        return close[0] if len(close) == 1 else printed

    def owner(self, name: str, fallback: str | None) -> str | None:
        owners = self.owner_by_name.get(normalize_name(name), set())
        return next(iter(owners)) if len(owners) == 1 else fallback

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

    def register(self, pid: str, title: str, sec: Section, division: str | None) -> None:
        method, agency = sec.method, None
        if method:
            m = re.match(r"^\s*대행\s*[(（](.+)[)）]\s*$", method)
            if m:
                method, agency = "대행", m.group(1).strip()
        payload = ProgramRegistered(
            program_id=pid, fiscal_year=self.fy, title=title, office=sec.office or self.rep.office,
            division=division, team=sec.team, contacts=self.contacts(sec), purpose=sec.purpose or None,
            method=method or None, agency=agency, period_text=sec.period_text or None,
            source_ref=self.ref(sec.title, sec.line))
        self.emit(ProgramRegisteredEvent, pid, "program", payload)

    # ------------------------------------------------------------------ budget
    def line_set(self, pid: str, row: BudgetRow, table: BudgetTable, division: str | None,
                 section: str | None) -> None:
        if row.original is None:
            self.issue(row.line, "budget row without 본예산; no budget line published", row.name)
            return
        carried = row.carried_over
        current = row.current
        if carried is None and current is not None and table.kind == "summary":
            # The summary prints 본예산 and 예산현액 only: the difference is 이월 등.
            carried = current - row.original if current >= row.original else None
        carried = carried or 0
        if current is not None and current != row.original + carried:
            self.out.inconsistencies.append(Inconsistency(
                row.line, pid,
                f"{row.name}: 예산현액 {current:,}원 ≠ 본예산 {row.original:,} + 이월 등 {carried:,}원; "
                "parts published, 예산현액 left empty"))
            current = None
        name = normalize_name(row.name)
        category = ("기본경비" if "기본경비" in name else "전출금" if "전출" in name else
                    "반환금" if "반환" in name else "기금" if table.kind == "fund" else None)
        payload = BudgetLineSet(
            program_id=pid, fiscal_year=self.fy, title=row.name, office=self.rep.office, division=division,
            category=category, original=row.original, carried_over=carried, current=current,
            previous_final=row.previous_final, source_ref=self.ref(section, row.line))
        self.emit(BudgetLineSetEvent, pid, f"line/{self.fy}", payload)
        if table.kind == "execution" and table.as_of and row.committed is not None and row.spent is not None:
            if not (self.fy - 1 <= table.as_of.year <= self.fy + 1):
                self.issue(row.line, f"as_of {table.as_of} is far from fiscal year {self.fy}; no snapshot",
                           row.name)
                return
            snap = ExecutionSnapshot(
                program_id=pid, fiscal_year=self.fy, as_of=table.as_of, committed=row.committed,
                spent=row.spent, revision=0, current_budget=current, source_ref=self.ref(section, row.line))
            self.emit(ExecutionSnapshotEvent, pid, f"snapshot/{table.as_of.isoformat()}/0", snap)

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
        payload = BudgetAmended(program_id=pid, fiscal_year=self.fy, amendment_id=self.amendment_id(),
                                before=row.before, change=row.increase, after=after, reason=reason,
                                source_ref=self.ref(None, row.line))
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
        pending: list[tuple[Section, list[tuple[BudgetTable, BudgetRow, str]], str | None]] = []
        # 1. 세부사업 with an execution (or fund) table in a section.
        for sec in self.rep.sections:
            div = self.division(sec.division)
            rows = [(t, r) for t in sec.tables if t.kind in ("execution", "fund") for r in t.rows if r.kind == "row"]
            for t in sec.tables:
                self.out.reconciliations += [(f"{sec.title} 집행 현황", rc) for rc in t.reconciliations]
            if not self.is_program_section(sec, rows):
                self.unowned_section(sec)  # see "sections nobody owns" below
                continue
            programs: list[tuple[BudgetTable, BudgetRow, str]] = []
            for t, r in rows:
                owner = self.owner(r.name, div)
                pid = self.resolve(r.name, owner, r.line, r.original, UNIT_TOLERANCE.get(t.unit, 1))
                programs.append((t, r, pid))
                self.covered[pid] = (r.line, r.original)
                self.register(pid, r.name, sec, owner)
                self.line_set(pid, r, t, owner, sec.title)
            pending.append((sec, programs, div))
        # 2. The summary 예산현황: lines for programs no execution table covered.
        for t in self.summary_tables:
            self.out.reconciliations += [("예산현황", rc) for rc in t.reconciliations]
            tol = UNIT_TOLERANCE.get(t.unit, 1)
            for r in t.rows:
                if r.kind != "row":
                    continue
                div = self.division(r.division)
                pid = self.resolve(r.name, div, r.line, r.original, tol)
                if pid in self.covered:
                    line, original = self.covered[pid]
                    if original is not None and r.original is not None and abs(original - r.original) > tol:
                        self.issue(r.line, f"예산현황 본예산 {r.original:,}원 differs from the execution table "
                                           f"(line {line}) {original:,}원; the execution table was published",
                                   r.name)
                    continue
                if div is None:
                    self.issue(r.line, "summary row without a division; not published", r.name)
                    continue
                self.line_set(pid, r, t, div, "예산현황")
        # 3. 추경 rows.
        for s in self.rep.supplementary:
            self.amended(s)
        # 4. Programs described by a section without a budget table; schedules and targets.
        for sec, programs, div in pending:
            if not programs:
                pid = self.resolve(sec.title, div, sec.line)
                self.register(pid, sec.title, sec, div)
                programs_for: list[tuple[BudgetTable, BudgetRow, str]] = []
            else:
                programs_for = programs
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
        owners = self.owner_by_name.get(normalize_name(title), set())
        if len(owners) == 1:
            return next(iter(owners))
        key = normalize_name(title)
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
            if e.event_type == "program.registered" and e.payload.division is None:
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
        title = item.title if len(item.title) <= 120 else item.title[:119] + "…"
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
