"""Whole-document parsing: synthetic text and acceptance on the seed documents."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.ingest.importer.model import Milestone, ParsedReport, Section
from services.ingest.importer.report import parse_report, parse_text
from services.ingest.importer.text import normalize_name
from tests.conftest import SEEDS

needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason="seed documents not available")

SNIPPET = """\
Ⅰ. 서울시 경제실

1 스마트 산업 육성
경 제 실 첨단산업과장 : 정한섭 ☎2133-8731 첨단산업정책팀장: 안명희 ☎8732 담당:최경화 ☎8733

□ 사업개요
 ㅇ 추진목적 : 산업 육성
 ㅇ 소요예산 : 1,375백만원

□ 추진목표
세부사업명 추진시기 물량
기업 지원 연중 30개사

□ 향후 계획
 ㅇ 참여기업 모집 : ’25.3월
 ㅇ 협약 체결
"""


def _seed(prefix: str) -> Path:
    return next(SEEDS.glob(f"{prefix}_*.txt"))


def _section(report: ParsedReport, title: str) -> Section:
    return next(s for s in report.sections if normalize_name(s.title) == normalize_name(title))


def _window(m: Milestone) -> tuple[date | None, date | None]:
    return m.when.windows[0].start, m.when.windows[-1].end


def test_parse_text_ties_everything_together() -> None:
    report = parse_text(SNIPPET, "mem.txt")
    assert (report.path, report.kind, report.office, report.reference_year) == (
        "mem.txt",
        "unknown",
        "경제실",
        2025,
    )
    [sec] = report.sections
    assert (sec.number, sec.title, sec.office, sec.division, sec.team) == (
        "1",
        "스마트 산업 육성",
        "경제실",
        "첨단산업과",
        "첨단산업정책팀",
    )
    assert sec.purpose == "산업 육성"
    assert [(a.label, a.amount) for a in sec.inline_amounts] == [("소요예산", 1_375_000_000)]
    assert [(t.activity, t.value, t.unit) for t in sec.targets] == [("기업 지원", Decimal(30), "개사")]
    assert [(m.text, m.when_text) for m in sec.milestones] == [
        ("참여기업 모집", "’25.3월"),
        ("협약 체결", ""),
    ]
    assert sec.milestones[1].when.unparsed
    assert [(i.line, i.reason) for i in report.issues] == [(16, "milestone date not readable")]


def test_parse_report_reads_bom_and_fails_only_when_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes("\ufeff".encode() + SNIPPET.encode())
    report = parse_report(path)
    assert report.sections[0].title == "스마트 산업 육성"
    assert report.path == str(path)
    with pytest.raises(OSError):
        parse_report(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(UnicodeDecodeError):
        parse_report(bad)


def test_empty_text_gives_empty_report() -> None:
    report = parse_text("")
    assert (report.kind, report.sections, report.tables, report.issues) == ("unknown", [], [], [])


# ---------------------------------------------------------------- seed acceptance


@needs_seeds
def test_seed_001_sections_and_facts() -> None:
    report = parse_report(_seed("001"))
    assert (report.kind, report.office, report.reference_year) == ("business_report", "경제실", 2025)
    assert date(2025, 1, 31) in report.as_of_dates
    with_contacts = [s for s in report.sections if s.contacts]
    assert len(with_contacts) == 24  # one per program listed in the Ⅵ table of contents (3+3+2+2+2+3+3+3+3)
    assert len(report.sections) == 29  # + the Ⅴ 현안 topic + 4 audit (행정사무감사) sections
    titles = [s.title for s in with_contacts]
    assert len(set(titles)) == len(titles)  # the table of contents did not duplicate any
    assert [s.division for s in with_contacts].count("경제정책과") == 3
    assert [t.kind for t in report.tables] == ["summary"]  # per-program tables went to their sections


@needs_seeds
def test_seed_001_contacts() -> None:
    report = parse_report(_seed("001"))
    rnd = _section(report, "미래성장동력 창출을 위한 서울형 R&D 지원")
    assert [(c.role, c.name, c.phone) for c in rnd.contacts] == [
        ("과장", "이병철", "02-2133-5210"),
        ("팀장", "박지은", "02-2133-5226"),
        ("담당", "김지영", "02-2133-5223"),
    ]
    assert (rnd.division, rnd.team, rnd.method) == ("경제정책과", "혁신기술팀", "대행(서울경제진흥원)")
    robot = _section(report, "서울 로봇산업 전기 마련을 위한 로봇쇼 개최")
    assert [(c.role, c.name, c.phone) for c in robot.contacts] == [
        ("과장", "이병철", "02-2133-5210"),
        ("팀장", "유상선", "02-2133-5230"),
        ("담당", "문소윤", "02-2133-5239"),
    ]
    complex_ = _section(report, "산업단지 성장지원(G밸리, 온수, 강동)")
    assert [(c.name, c.phone) for c in complex_.contacts][-2:] == [
        ("김호진", "02-2133-8593"),
        ("석민정", "02-6734-6904"),
    ]
    fund = _section(report, "2025년 서울 Vision 2030 펀드 인공지능대전환 신설")
    assert fund.division == "창업정첵과"
    assert any("창업정첵과" in i.reason and i.line == fund.contacts[0].line for i in report.issues)


def _schedule_lines(path: Path) -> set[int]:
    """Independent scan: bullets under a schedule heading inside the program part, up to the next □."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    found: set[int] = set()
    inside = False
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if re.match(r"^(Ⅶ|Ⅰ|Ⅱ|Ⅲ|Ⅳ|Ⅴ|Ⅵ)\.", s) or s.startswith("□") or re.match(r"^\d+ \S", s):
            inside = bool(re.match(r"^□\s*(향후|추진\s*일정)", s))
            if s.startswith("Ⅶ."):
                break
            continue
        if inside and (s.startswith("ㅇ") or (s.startswith("-") and re.search(r"’\d\d|\d월", s))):
            found.add(no)
    return found


@needs_seeds
def test_seed_001_every_schedule_line_is_a_milestone() -> None:
    path = _seed("001")
    report = parse_report(path)
    audit_start = next(s.line for s in report.sections if "행정사무감사" in s.title)
    milestones = [m for s in report.sections if s.line < audit_start for m in s.milestones]
    expected = _schedule_lines(path)
    # group headings (undated `ㅇ` whose dated sub-items are the milestones) are the only lines left out
    assert {m.line for m in milestones} == expected - {2956}
    assert all(not m.when.unparsed for m in milestones)
    by_text = {m.text: m for m in milestones}
    assert _window(by_text["서류심사, 현장실사 등 선정평가"]) == (date(2025, 4, 1), date(2025, 5, 31))
    assert _window(by_text["과제 최종 선정"]) == (date(2025, 7, 1), date(2025, 7, 10))
    assert _window(by_text["제1회 서울 로봇쇼 행사 개최"]) == (date(2025, 9, 30), date(2025, 10, 2))
    assert _window(by_text["민생규제 철폐 시민토론회 개최"]) == (date(2025, 3, 1), date(2025, 3, 31))
    assert _window(by_text["시범운영"]) == (date(2025, 9, 1), date(2025, 10, 31))
    assert by_text["’25년 서울 매력일자리 사업 추진"].when.windows[0].end is None  # `’25. 3월 ~`
    rnd = _section(report, "미래성장동력 창출을 위한 서울형 R&D 지원")
    assert [(m.text, m.when_text) for m in rnd.milestones] == [
        ("서울형 R&D 지원사업 공고", "’25. 3월"),
        ("서류심사, 현장실사 등 선정평가", "’25. 4~5월"),
        ("과제 최종 선정", "’25. 7월 초"),
    ]


@needs_seeds
def test_seed_001_targets() -> None:
    report = parse_report(_seed("001"))
    first = _section(report, "규제철폐를 통한 기업의 글로벌 경쟁력 촉진")
    assert [(t.activity, t.period_text, t.value, t.unit) for t in first.targets] == [
        ("규제발굴 기업 현장간담회", "2~4월", Decimal(4), "회"),
        ("규제전문가 심화 컨설팅", "1~12월", Decimal(40), "건"),
        ("규제샌드박스 실증지원", "2~12월", Decimal(10), "개사"),
    ]
    assert first.targets[1].period is not None
    assert first.targets[1].period.windows[0].start == date(2025, 1, 1)
    beauty = _section(report, "서울 뷰티산업 경쟁력 강화 및 활성화 지원")
    assert (beauty.targets[0].activity, beauty.targets[0].value, beauty.targets[0].unit) == (
        "서울뷰티허브 운영",
        Decimal(1000),
        "개사",
    )


@needs_seeds
def test_seed_000_children_and_supplementary() -> None:
    report = parse_report(_seed("000"))
    assert (report.kind, report.office, report.reference_year) == ("supplementary_budget", "경제실", 2025)
    assert [s.number for s in report.sections] == ["1", "2", "2-1", "2-2", "2-3", "2-4", "2-5", "3"]
    fund = report.sections[3]
    assert (fund.division, fund.period_text) == ("첨단산업과", "’25년~’26년(2년간)")
    assert [(m.text, m.when_text) for m in fund.milestones] == [
        ("’25년 市 벤처펀드 운용사 최종 선정자 발표", "’25. 9월 초"),
        ("’25년도 선정 市 벤처펀드 조합결성 및 투자개시", "’25.9월~"),
    ]
    assert sum(len(s.milestones) for s in report.sections) == 11


@needs_seeds
def test_seed_002_press_release_contacts() -> None:
    report = parse_report(_seed("002"))
    assert report.kind == "press_release"
    [sec] = report.sections
    assert (sec.office, sec.division) == ("경제실", "경제정책과")
    assert [(c.role, c.name, c.phone) for c in sec.contacts][:3] == [
        ("과장", "이병철", "02-2133-5210"),
        ("팀장", "박지은", "02-2133-5226"),
        ("담당", "김지영", "02-2133-5223"),
    ]


@needs_seeds
def test_seed_004_stages_and_plan() -> None:
    report = parse_report(_seed("004"))
    assert (report.kind, report.office, report.reference_year) == ("plan", None, 2025)
    staged = [m for s in report.sections for m in s.milestones if m.stage]
    assert [(m.text, m.stage) for m in staged][:6] == [
        ("사업 공고", "완료"),
        ("사업 설명회", "완료"),
        ("서면 질답", "진행중"),
        ("평가위 구성", "진행중"),
        ("사업계획 접수", "추진 예정"),
        ("기술·정책 평가", "추진 예정"),
    ]
    assert {m.stage for m in staged[4:]} == {"추진 예정"}
    plan = next(s for s in report.sections if s.title == "향후 계획")
    assert [(m.text, m.when_text) for m in plan.milestones] == [
        ("추경 예산안 국회 제출", "4월4주"),
        ("｢국가인공지능위원회｣를 중심으로 이행 점검 추진", "반기별"),
    ]
    assert all(s.division is None for s in report.sections)  # no contacts printed: nothing invented
