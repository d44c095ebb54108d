"""Parse a whole report: sections, contacts, blocks, tables, milestones, targets, issues."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path

from services.ingest.importer import tables as table_parser
from services.ingest.importer.audit import find_action_items
from services.ingest.importer.contacts import (
    ContactBlock,
    division_typo_issues,
    is_contact_line,
    parse_contact_lines,
)
from services.ingest.importer.model import BudgetTable, DivisionExecution, Issue, ParsedReport, Section
from services.ingest.importer.schedules import is_stage_legend, parse_flow_chart, parse_schedule
from services.ingest.importer.sections import (
    DocFacts,
    RawSection,
    detect_facts,
    infer_division,
    parse_overview,
    split_sections,
    toc_divisions,
)
from services.ingest.importer.targets import parse_targets
from services.ingest.importer.text import compact


def parse_report(path: str | Path) -> ParsedReport:
    """Read a UTF-8 text extraction (a BOM is tolerated) and parse it.

    Raises OSError / UnicodeDecodeError only when the file cannot be read at all.
    """
    text = Path(path).read_bytes().decode("utf-8-sig")
    return parse_text(text, str(path))


def parse_text(text: str, path: str = "<text>") -> ParsedReport:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    facts = detect_facts(lines)
    report = ParsedReport(path=path, kind=facts.kind, office=facts.office,
                          reference_year=facts.reference_year, title=facts.title,
                          as_of_dates=list(facts.as_of_dates), issue_date=facts.issue_date)
    raws = split_sections(lines)
    if not raws and facts.kind == "press_release":
        raws = _press_release_section(lines, facts)
    report.action_items, audit_issues = find_action_items(lines, facts.reference_year)
    report.issues.extend(audit_issues)
    # An audit finding's follow-ups are the finding's milestones, not the enclosing section's.
    answered = {no for item in report.action_items for no in range(item.line, item.end + 1)}
    for raw in raws:
        _fill_section(raw, lines, facts, report.issues, answered)
        if raw.section.office is None:
            raw.section.office = facts.office
        report.sections.append(raw.section)
    _attach_tables(lines, facts, raws, report)
    _division_execution(report)
    report.national_rows, national_issues = table_parser.parse_national_tables(list(lines))
    report.issues.extend(national_issues)
    _context_divisions(lines, raws, report)
    _check_divisions(report)
    report.issues.sort(key=lambda i: i.line)
    return report


def _fill_section(raw: RawSection, lines: Sequence[str], facts: DocFacts, issues: list[Issue],
                  answered: Collection[int] = ()) -> None:
    sec = raw.section
    year = facts.reference_year
    if raw.contacts is not None:
        issues.extend(raw.contacts.issues)
    for block in raw.blocks:
        if block.line in answered:
            continue
        if block.kind == "overview":
            found, _ = parse_overview(lines, block)
            sec.purpose = sec.purpose or found.get("purpose")
            sec.method = sec.method or found.get("method")
            sec.period_text = sec.period_text or found.get("period")
        elif block.kind == "schedule":
            milestones, found_issues = parse_schedule(lines, block.line + 1, block.end, year)
            sec.milestones.extend(milestones)
            issues.extend(found_issues)
        elif block.kind == "targets":
            targets, found_issues = parse_targets(lines, block.line + 1, block.end, year)
            sec.targets.extend(targets)
            issues.extend(found_issues)
    as_of = facts.issue_date or (max(facts.as_of_dates) if facts.as_of_dates else None)
    for no in range(raw.start, raw.end + 1):
        if is_stage_legend(lines[no - 1]):
            milestones, found_issues = parse_flow_chart(lines, no, raw.end, year, as_of)
            sec.milestones.extend(milestones)
            issues.extend(found_issues)
    sec.inline_amounts.extend(table_parser.find_inline_amounts(list(lines), raw.start, raw.end))


def _press_release_section(lines: Sequence[str], facts: DocFacts) -> list[RawSection]:
    """A press release is about one program: its headline is the section, its 담당 lines the contacts."""
    picked = [(no, line) for no, line in enumerate(lines[:40], 1) if line.strip() and is_contact_line(line)]
    block: ContactBlock | None = parse_contact_lines(picked) if picked else None
    title = facts.title or ""
    line = next((no for no, text in enumerate(lines, 1) if title and title in " ".join(text.split())), 1)
    sec = Section(number=None, title=title, line=line)
    if block is not None:
        sec.contacts = list(block.contacts)
        sec.office, sec.division, sec.team = block.office, block.division, block.team
    raw = RawSection(sec, line, len(lines), contacts=block)
    return [raw]


def _owner(raws: Sequence[RawSection], line: int) -> RawSection | None:
    for raw in raws:
        if raw.start <= line <= raw.end:
            return raw
    return None


def _attach_tables(lines: Sequence[str], facts: DocFacts, raws: Sequence[RawSection],
                   report: ParsedReport) -> None:
    """Tables inside a section belong to it; the rest (summary 예산현황) to the document."""
    found_tables, supplementary, issues = table_parser.parse_tables(list(lines), facts.reference_year)
    report.supplementary.extend(supplementary)
    report.issues.extend(issues)
    for table in found_tables:
        owner = _owner(raws, table.line)
        target: list[BudgetTable] = owner.section.tables if owner is not None else report.tables
        target.append(table)


_DIVISION_ROW = re.compile(r"^[가-힣A-Za-z0-9]{2,14}(?:과|담당관)$")


def _by_division(table: BudgetTable) -> bool:
    rows = [r for r in table.rows if r.kind == "row"]
    return bool(rows) and all(_DIVISION_ROW.match(compact(r.name)) for r in rows) and any(
        r.current is not None or r.committed is not None or r.spent is not None for r in rows)


def _division_execution(report: ParsedReport) -> None:
    """A table whose rows are 과 (예산현액, 원인행위액, 지출액 by division) holds facts about the
    divisions as of its date, not programs: moved out of the tables into `division_execution`."""
    holders = [report.tables] + [s.tables for s in report.sections]
    for tables in holders:
        for table in [t for t in tables if _by_division(t)]:
            tables.remove(table)
            for r in table.rows:
                if r.kind == "subtotal":
                    continue
                report.division_execution.append(DivisionExecution(
                    division=compact(r.name) if r.kind == "row" else "계", line=r.line, as_of=table.as_of,
                    unit=table.unit, current=r.current, committed=r.committed, committed_rate=r.committed_rate,
                    spent=r.spent, spent_rate=r.spent_rate, kind="row" if r.kind == "row" else "total"))


def _context_divisions(lines: Sequence[str], raws: Sequence[RawSection], report: ParsedReport) -> None:
    """A section whose heading names no division (no contacts, no divider) takes it from the
    document: a 담당 line, the table of contents, the chapter heading, a budget row of the same
    program. Where nothing names one it stays None (published as unassigned, for review)."""
    toc = toc_divisions(lines)
    rows = [(r.name, r.division) for t in report.tables for r in t.rows if r.kind == "row" and r.division]
    rows += [(r.name, r.division) for r in report.supplementary if r.division]
    rows += [(x.name, x.division) for r in report.supplementary for x in r.sub_items if x.division]
    for raw in raws:
        sec = raw.section
        if sec.division is not None or not (sec.milestones or sec.targets):
            continue  # named, or nothing to publish for it
        division, source = infer_division(lines, raw.start, raw.end, sec.title, toc, rows)
        if division is not None:
            sec.division = division
            report.issues.append(Issue(sec.line, f"division {division} taken from the {source}", sec.title))


def _check_divisions(report: ParsedReport) -> None:
    contacts = [c for s in report.sections for c in s.contacts]
    known = [c.division for c in contacts if c.division]
    known += [r.division for t in report.tables for r in t.rows if r.division]
    report.issues.extend(division_typo_issues(contacts, known))
