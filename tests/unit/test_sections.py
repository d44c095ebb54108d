"""Section splitting, blocks, document facts, schedules and targets on synthetic snippets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.ingest.importer.dates import ParsedWhen
from services.ingest.importer.schedules import infer_stage, is_stage_legend, parse_flow_chart, parse_schedule
from services.ingest.importer.sections import block_heading, detect_facts, parse_overview, split_sections
from services.ingest.importer.targets import parse_targets

REPORT = """\
Ⅵ. 부서별 주요 업무보고

1.  경제정책과
 규제철폐를 통한 기업의 글로벌 경쟁력 촉진
 미래성장동력 창출을 위한 서울형 R&D 지원

 1. 경제정책과

1 규제철폐를 통한 기업의 글로벌 경쟁력 촉진
경제정책과장 : 이병철☎2133-5210  기업지원팀장 : 이정순☎5255  담당 : 이은서☎5258

□ 사업개요

 ㅇ 추진목적 : 불합리한 규제 철폐로 기업 성장기반 강화
 ㅇ 소요예산 : 1,375백만원 (서울경제진흥원 대행, 서울기업지원센터 운영)

□ 추진목표

주요내용 추진시기 추진목표
규제발굴 기업 현장간담회 2~4월 4회
 규제전문가 심화 컨설팅 1~12월 40건

□ 향후 추진 일정

 ㅇ 기업 현장소통 간담회 추진                      : ’25.2월~4월
   - 신산업, 청년기업 등 간담회 추진
 ㅇ 민생규제 철폐 시민토론회 개최                    : ’25.3월

2 미래성장동력 창출을 위한 서울형 R&D 지원
경제정책과장 :  이병철☎2133-5210 혁신기술팀장 :  박지은☎5226 담당 :  김지영☎5223

□ 사업개요

 ㅇ 추진목적 : 기술개발 지원
 ㅇ 추진방법 : 대행(서울경제진흥원)    ※ 협약 기간: ’23. 1. ~ ’25. 12.(3년)

□ 향후 추진 일정

 ㅇ 과제 최종 선정                                       : ’25. 7월 초

 2. 일자리정책과

1 청년취업사관학교 조성·운영
일자리정책과장 : 조혜정 ☎2133-5445 일자리정책팀장 : 김형근☎5447

□ 사업개요
 ㅇ 사업기간 : ’25.1월~12월

Ⅶ. 기타
"""


def _lines(text: str) -> list[str]:
    return text.split("\n")


def test_numbered_sections_with_toc_not_duplicated() -> None:
    raws = split_sections(_lines(REPORT))
    assert [(r.section.number, r.section.title) for r in raws] == [
        ("1", "규제철폐를 통한 기업의 글로벌 경쟁력 촉진"),
        ("2", "미래성장동력 창출을 위한 서울형 R&D 지원"),
        ("1", "청년취업사관학교 조성·운영"),
    ]
    assert [r.section.division for r in raws] == ["경제정책과", "경제정책과", "일자리정책과"]
    assert raws[1].section.team == "혁신기술팀"
    assert [b.kind for b in raws[0].blocks] == ["overview", "targets", "schedule"]


def test_toc_without_dots_is_not_a_section() -> None:
    text = "\n".join(
        [
            "목차",
            "1 첫번째 사업 추진",
            "2 두번째 사업 추진",
            "",
            "1 첫번째 사업 추진",
            "□ 사업개요",
            " ㅇ 추진목적 : 가",
            "2 두번째 사업 추진",
            "□ 향후 계획",
            " ㅇ 공고 : ’25.3월",
        ]
    )
    raws = split_sections(_lines(text))
    assert [(r.section.number, r.start) for r in raws] == [("1", 5), ("2", 8)]


def test_table_rows_are_not_headings_and_children_nest() -> None:
    text = "\n".join(
        [
            "2 AI 산업 육성 관련 추경 사업 추진계획",
            "경 제 실 첨단산업과장 : 정한섭 ☎2133-8731 첨단산업정책팀장:안명희 ☎8732 담당:최경화 ☎8733",
            "2 바이오·의료 의료기기, 의약품 등 바이오 기술 30 60",
            "",
            "1 청년 취업사관학교 AI 인재 양성",
            "",
            " 사업개요",
            " ㅇ 사업 목적 : 인재 양성",
            " 향후 계획",
            " ㅇ 과정 운영        : ’25.계속",
        ]
    )
    raws = split_sections(_lines(text))
    assert [(r.section.number, r.section.title) for r in raws] == [
        ("2", "AI 산업 육성 관련 추경 사업 추진계획"),
        ("2-1", "청년 취업사관학교 AI 인재 양성"),
    ]
    child = raws[1].section
    assert (child.office, child.division, child.contacts) == ("경제실", "첨단산업과", [])
    assert [b.kind for b in raws[1].blocks] == ["overview", "schedule"]


def test_roman_part_with_own_blocks_becomes_a_section() -> None:
    text = "\n".join(
        [
            "Ⅴ. 주요 현안보고",
            "",
            "글로벌 AI 혁신 선도 도시, 서울 추진 계획",
            "",
            "□ 추진 배경",
            "ㅇ 배경",
            "□ 향후 계획",
            " ㅇ 세부 실행 계획 수립 : ’25. 3월",
            "Ⅵ. 다음",
        ]
    )
    raws = split_sections(_lines(text))
    assert [(r.section.number, r.section.title) for r in raws] == [
        ("Ⅴ", "글로벌 AI 혁신 선도 도시, 서울 추진 계획")
    ]
    plan = "\n".join(["Ⅲ. 향후 계획", "", "ㅇ 추경 예산안 국회 제출(4월4주)", "", " 참고  개요", "표"])
    raws = split_sections(_lines(plan))
    assert [(r.section.title, [(b.kind, b.line, b.end) for b in r.blocks]) for r in raws] == [
        ("향후 계획", [("schedule", 1, 4), ("reference", 5, 6)])
    ]


def test_task_headings_with_strategy() -> None:
    text = "\n".join(
        [
            "전략1  AI컴퓨팅 인프라 확충",
            "",
            "핵심과제1  국가 AI컴퓨팅 인프라 확충 마스터플랜 가동 ",
            "ㅇ 내용",
            "핵심과제2  민간 투자 촉진     과기정통부",
            "ㅇ 내용",
        ]
    )
    raws = split_sections(_lines(text))
    assert [(r.section.number, r.section.title) for r in raws] == [
        ("전략1 핵심과제1", "국가 AI컴퓨팅 인프라 확충 마스터플랜 가동"),
        ("전략1 핵심과제2", "민간 투자 촉진"),
    ]


def test_block_headings() -> None:
    assert block_heading("□ 향후 추진 일정  ") == ("schedule", "향후 추진 일정", None)
    assert block_heading(" 향후 계획") == ("schedule", "향후 계획", None)
    assert block_heading("□ 향후일정") == ("schedule", "향후일정", None)
    assert block_heading("□ 추진실적(2024년)") == ("results", "추진실적(2024년)", None)
    assert block_heading("□ 추진목표 : ’25년 市 890억원 출자") == (
        "targets",
        "추진목표",
        "’25년 市 890억원 출자",
    )
    assert block_heading("□ 예산 집행 현황                            (단위: 천원)")[0] == "execution"  # type: ignore[index]
    assert block_heading("□ 서울시는 인공지능(AI)을 필두로 한 글로벌 기술 대전환에 대응하고") is None
    assert block_heading(" ㅇ 향후 계획을 수립하여 추진") is None


def test_overview_fields() -> None:
    raws = split_sections(_lines(REPORT))
    lines = _lines(REPORT)
    first = parse_overview(lines, raws[0].blocks[0])[0]
    assert first == {"purpose": "불합리한 규제 철폐로 기업 성장기반 강화", "method": "대행(서울경제진흥원)"}
    second = parse_overview(lines, raws[1].blocks[0])[0]
    assert second == {
        "purpose": "기술개발 지원",
        "method": "대행(서울경제진흥원)",
        "period": "’23. 1. ~ ’25. 12.(3년)",
    }
    third = parse_overview(lines, raws[2].blocks[0])[0]
    assert third == {"period": "’25.1월~12월"}


def test_document_facts() -> None:
    facts = detect_facts(
        _lines("‘국가 AI역량 강화방안’\n\n후속조치\n\n2025. 4. 15.\n\n관 계 부 처 합 동\n\nⅠ  추진 배경")
    )
    assert (facts.kind, facts.title, facts.issue_date, facts.reference_year, facts.office) == (
        "plan",
        "‘국가 AI역량 강화방안’ 후속조치",
        date(2025, 4, 15),
        2025,
        None,
    )
    report = detect_facts(
        _lines("Ⅰ. 일반현황\n인력현황 (’25. 1. 31. 기준)\nⅥ. 부서별 주요 업무보고\n경제실장 주재")
    )
    assert (report.kind, report.as_of_dates, report.reference_year, report.office) == (
        "business_report",
        [date(2025, 1, 31)],
        2025,
        "경제실",
    )
    press = detect_facts(
        _lines(
            " 2025. 3. 7.(금) 조간용\n\n 보도자료\n"
            "담당부서 : 경제실 경제정책과 경제정책과장 이병철 2133-5210\n"
            "서울시, 신성장산업 R&D 투자 확대… 글로벌 AI 혁신도시로 거듭난다\n- 부제"
        )
    )
    assert (press.kind, press.office, press.title) == (
        "press_release",
        "경제실",
        "서울시, 신성장산업 R&D 투자 확대… 글로벌 AI 혁신도시로 거듭난다",
    )
    supp = detect_facts(
        _lines("Ⅰ. 서울시 경제실\n1. AI 산업 육성 관련 추경 사업 추진계획\n’25.6월 ’25.7월 ’24.1월")
    )
    assert (supp.kind, supp.office, supp.reference_year) == ("supplementary_budget", "경제실", 2025)


# ---------------------------------------------------------------- schedules


def _window(when: ParsedWhen | None) -> tuple[date | None, date | None]:
    assert when is not None and when.windows, when
    return when.windows[0].start, when.windows[-1].end


def test_schedule_lines_and_windows() -> None:
    lines = _lines(REPORT)
    raws = split_sections(lines)
    block = raws[0].blocks[2]
    milestones, issues = parse_schedule(lines, block.line + 1, block.end, 2025)
    assert [(m.text, m.when_text) for m in milestones] == [
        ("기업 현장소통 간담회 추진", "’25.2월~4월"),
        ("민생규제 철폐 시민토론회 개최", "’25.3월"),
    ]
    assert _window(milestones[0].when) == (date(2025, 2, 1), date(2025, 4, 30))
    assert _window(milestones[1].when) == (date(2025, 3, 1), date(2025, 3, 31))
    assert issues == []


def test_schedule_parenthesised_dates_sub_items_and_undated_lines() -> None:
    text = [
        "ㅇ 서울영화센터 준공(’25.8월), 시범운영(’25.9~10월), 정식 개관(’25.11월) ",
        "ㅇ 도시제조업 작업환경개선 추진 ",
        "  - 지원대상 선정 및 보조금 교부 : ’25. 5월",
        "ㅇ 투자 홍보 추진       : 연중",
        "  - 박람회 서울관 참가(’25.3월, 프랑스)",
        "  - 현지 금융업 라이선스 컨설팅",
        "ㅇ 근거조례 제정 추진",
        "ㅇ 사업 공고 : ’25.3월 (완료)",
    ]
    milestones, issues = parse_schedule(text, 1, len(text), 2025)
    assert [(m.line, m.text, m.when_text) for m in milestones] == [
        (1, "서울영화센터 준공", "’25.8월"),
        (1, "시범운영", "’25.9~10월"),
        (1, "정식 개관", "’25.11월"),
        (3, "지원대상 선정 및 보조금 교부", "’25. 5월"),
        (4, "투자 홍보 추진", "연중"),
        (5, "박람회 서울관 참가 (프랑스)", "’25.3월"),
        (7, "근거조례 제정 추진", ""),
        (8, "사업 공고", "’25.3월"),
    ]
    assert milestones[-1].stage == "완료"
    assert milestones[6].when.unparsed  # kept, flagged
    assert [(i.line, i.reason) for i in issues] == [
        (2, "group heading; its dated sub-items are the milestones"),  # listed, so no line goes unexplained
        (7, "milestone date not readable"),
    ]


def test_flow_chart_stages_are_inferred_from_document_date() -> None:
    lines = [
        "완료 진행중 추진 예정",
        "사업",
        "공고",
        "(’25.1월)",
        "",
        "è",
        "서면",
        "질답",
        "(’25.3~5월)",
        "è",
        "사업 착수",
        "(’25.11월)",
        "",
        "< 본 사업 추진 일정(안) >",
    ]
    assert is_stage_legend(lines[0])
    milestones, issues = parse_flow_chart(lines, 1, len(lines), 2025, date(2025, 4, 15))
    assert [(m.text, m.when_text, m.stage) for m in milestones] == [
        ("사업 공고", "’25.1월", "완료"),
        ("서면 질답", "’25.3~5월", "진행중"),
        ("사업 착수", "’25.11월", "추진 예정"),
    ]
    assert len(issues) == 3
    assert infer_stage(milestones[0].when, None) is None


# ---------------------------------------------------------------- targets


def test_targets_rows_units_and_wrapped_cells() -> None:
    text = [
        "주요내용 추진시기 추진목표",
        "규제발굴 기업 현장간담회 2~4월 4회",
        " 규제전문가 심화 컨설팅 1~12월 40건",
        "규제샌드박스 실증지원 2~12월 10개사",
        "서울 로봇쇼 연중",
        "관람객 40,000명 ",
        "서울뷰티허브 운영 ’25.2.~12. 뷰티기업 1,000개사 지원",
        "연구 과제 지원 상반기 5개 과제",
        "펀드 조성 6-10월 市 150억원 출자",
        "서울창조산업허브 조성 1-12월 ’25년 목표 공정률 27%",
        "계획 수립 ’25.1.~12. · 계획 수립",
    ]
    targets, issues = parse_targets(text, 1, len(text), 2025)
    got = [(t.activity, t.period_text, t.value, t.unit) for t in targets]
    assert got == [
        ("규제발굴 기업 현장간담회", "2~4월", Decimal(4), "회"),
        ("규제전문가 심화 컨설팅", "1~12월", Decimal(40), "건"),
        ("규제샌드박스 실증지원", "2~12월", Decimal(10), "개사"),
        ("서울 로봇쇼 (관람객)", "연중", Decimal(40000), "명"),
        ("서울뷰티허브 운영", "’25.2.~12.", Decimal(1000), "개사"),
        ("연구 과제 지원", "상반기", Decimal(5), "개 과제"),
        ("펀드 조성", "6-10월", Decimal(150), "억원"),
        ("서울창조산업허브 조성", "1-12월", Decimal(27), "%"),
        ("계획 수립", "’25.1.~12.", None, None),
    ]
    assert _window(targets[1].period) == (date(2025, 1, 1), date(2025, 12, 31))
    assert [i.line for i in issues] == [11]
