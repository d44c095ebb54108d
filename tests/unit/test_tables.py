"""Budget tables: layouts, quirks, reconciliation; acceptance on the seed documents."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from services.ingest.importer.model import BudgetRow, BudgetTable, Reconciliation
from services.ingest.importer.tables import (
    find_inline_amounts,
    join_name_parts,
    parse_tables,
    undo_letter_spacing,
)
from tests.conftest import SEEDS

IDEO = "\u3000"


def lines_of(text: str) -> list[str]:
    return text.strip("\n").split("\n")


def one_table(text: str) -> BudgetTable:
    tables, _, _ = parse_tables(lines_of(text), 2025)
    assert len(tables) == 1
    return tables[0]


def row_named(table: BudgetTable, name: str) -> BudgetRow:
    matches = [r for r in table.rows if r.name == name]
    assert matches, f"{name!r} not in {[r.name for r in table.rows]}"
    return matches[0]


def failed(table: BudgetTable) -> list[Reconciliation]:
    return [r for r in table.reconciliations if not r.ok]


# ---------------------------------------------------------------- execution tables (천원)

EXECUTION = """
□ 예산 집행 현황                            (단위: 천원, ’25. 1 .31. 기준)

사업명 ’25년 예산 ’24년최종예산
집행액 및 집행률(%)

본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액(집행률) 지출액(집행률)
서울 동행일자리 94,291,059 - 94,291,059 87,904,867 19,777,152
(21,0)

19,773,238
(21.0)

청년취업사관학교

조성 및 운영 44,403,861 100 44,403,961 42,600,339 -
(0.0)

-
(0.0)
서 울 영 화 센 터  건 립 17,215,238 5,273,739 22,488,977 6,218,709 8,089,645(36.0) 7,062,387(31.4)

합 계 155,910,158 5,273,839 161,183,997 136,723,915 27,866,797(17.3) 26,835,625(16.6)



2 다음 사업
경제정책과장 : 홍길동 ☎2133-0000
"""


def test_execution_table_columns_rates_and_wrapped_names() -> None:
    table = one_table(EXECUTION)
    assert (table.kind, table.unit, table.as_of, table.fiscal_year) == (
        "execution",
        "천원",
        date(2025, 1, 31),
        2025,
    )
    assert table.line == 1
    assert [r.name for r in table.rows] == [
        "서울 동행일자리",
        "청년취업사관학교 조성 및 운영",
        "서울영화센터 건립",
        "합계",
    ]
    first = table.rows[0]
    assert (first.original, first.carried_over, first.current, first.previous_final) == (
        94_291_059_000,
        0,
        94_291_059_000,
        87_904_867_000,
    )
    assert (first.committed, first.committed_rate) == (19_777_152_000, Decimal("21.0"))
    assert (first.spent, first.spent_rate) == (19_773_238_000, Decimal("21.0"))
    wrapped = table.rows[1]
    assert wrapped.line == 13  # the first line of the wrapped name
    assert (wrapped.carried_over, wrapped.spent, wrapped.spent_rate) == (100_000, 0, Decimal("0.0"))
    assert table.rows[3].kind == "total"
    assert failed(table) == []
    assert {r.column for r in table.reconciliations} == {
        "본예산",
        "이월 등",
        "예산현액",
        "전년도 최종예산",
        "원인행위액",
        "지출액",
    }


def test_execution_total_that_does_not_add_up_is_kept_and_explained() -> None:
    text = EXECUTION.replace("합 계 155,910,158 5,273,839", "합 계 155,910,158 -")
    table = one_table(text)
    assert table.rows[-1].carried_over == 0  # as printed, never fixed
    (bad,) = failed(table)
    assert (bad.label, bad.column, bad.printed, bad.computed) == ("합계", "이월 등", 0, 5_273_839_000)
    assert bad.cause is not None and "document's own" in bad.cause


def test_short_total_row_reports_column_shift() -> None:
    text = """
□ 예산 집행 현황
(단위: 천원, ’25.1.31. 기준)
사업명 ’25년 예산 ’24년최종예산 집행액 및 집행률(%)
본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액(집행률) 지출액(집행률)
가 사업 600 - 600 1,300 -(0.0) -(0.0)
나 사업 400 - 400 500 -(0.0) -(0.0)
합 계 1,000 1,000 1,800 -(0.0) -(0.0)
"""
    tables, _, issues = parse_tables(lines_of(text), 2025)
    table = tables[0]
    total = table.rows[-1]
    assert (total.original, total.committed, total.spent) == (1_000_000, 0, 0)
    causes = {r.column: r.cause for r in failed(table)}
    assert causes and all(c is not None and c.startswith("column shift") for c in causes.values())
    assert any("5 values for 6 columns" in i.reason for i in issues)


def test_different_column_order_and_million_won_unit() -> None:
    text = """
<세부사업별 집행현황>
(단위: 백만원)
사업명 ’24년최종예산 ’25년 예산 집행액 및 집행률(%)
예산현액 본예산 이월 지출액 원인행위액
가나 사업 90 120 100 20 30(25.0) 40(33.3)
"""
    row = one_table(text).rows[0]
    assert (row.previous_final, row.current, row.original, row.carried_over) == (
        90_000_000,
        120_000_000,
        100_000_000,
        20_000_000,
    )
    assert (row.spent, row.spent_rate, row.committed, row.committed_rate) == (
        30_000_000,
        Decimal("25.0"),
        40_000_000,
        Decimal("33.3"),
    )


def test_unit_caption_after_the_table() -> None:
    text = """
□ 예산 집행 현황

사업명
’25년 예산 ’24년최종예산

집행액 및 집행률(%)
본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액(집행률) 지출액(집행률)

서울창업허브 운영 17,233,628 - 17,233,628 18,195,299 837
(0.0)

837
(0.0)

(단위: 천원, ’25.1.31. 기준)

②②  다음 꼭지
"""
    table = one_table(text)
    assert (table.unit, table.as_of) == ("천원", date(2025, 1, 31))
    assert table.rows[0].spent == 837_000


def test_missing_unit_is_reported_not_silent() -> None:
    text = """
□ 예산 집행 현황
사업명 ’25년 예산 ’24년최종예산 집행액 및 집행률(%)
본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액(집행률) 지출액(집행률)
가 사업 1 - 1 2 -(0.0) -(0.0)
"""
    tables, _, issues = parse_tables(lines_of(text), 2025)
    assert tables[0].unit == "천원"
    assert any("no money unit caption" in i.reason for i in issues)


def test_notes_and_numbers_spread_over_lines() -> None:
    text = """
□ 예산 집행 현황
(단위 : 천원, ’25.1.31. 기준)
사업명 ’25년 예산 ’24년최종예산 집행액 및 집행률(%)
본예산(a) 이월 등(b) 예산현액(A=a+b) 원인행위액(집행률) 지출액(집행률)
투자유치기반조성

(서비스형 외투지역
임대료 지원)

251,721
*국비  75,516시비 176,205

-
251,721

279,371

-(0.0) -(0.0)
"""
    tables, _, issues = parse_tables(lines_of(text), 2025)
    row = tables[0].rows[0]
    assert row.name == "투자유치기반조성(서비스형 외투지역 임대료 지원)"
    assert (row.original, row.carried_over, row.current, row.previous_final) == (
        251_721_000,
        0,
        251_721_000,
        279_371_000,
    )
    assert any(i.reason.startswith("note inside a table") and "국비" in i.text for i in issues)


def test_fund_table() -> None:
    text = """
□ 예산 집행 현황
(단위: 천원, ’25.1.31. 기준)
사  업  명 ’25년 예산 집행액 집행률

서 울  펀 드  조 성
( 중 소 기 업 육 성 기 금  투 자 계 정 )

59,303,000 5,270,000 8.89%
"""
    table = one_table(text)
    assert table.kind == "fund"
    row = table.rows[0]
    assert row.name == "서울 펀드 조성(중소기업육성기금 투자계정)"
    assert (row.original, row.spent, row.spent_rate) == (59_303_000_000, 5_270_000_000, Decimal("8.89"))


# ---------------------------------------------------------------- summary (백만원, divisions)

SUMMARY = f"""
예산현황

(단위 : 백만원, ’25. 1. 31. 기준)
부서 세부사업 2025년도 2024년도최종예산 집행액(C)(지출액 기준) 집행률(C/B)본예산(A) 예산현액(B)

계 1,111 1,121 1,000 101 9.0

경 제 정 책 과

소 계 300 310 290 30 9.7
가 사업 100 110 90 10 9.1
나 사업 200 200 200 20 10.0
다 사업 0.4{IDEO} 0.4{IDEO} - -{IDEO} 0.0

일자리정책과

소 계 411 411 310 41 10.0
라 사업 {IDEO}- {IDEO}- 10 {IDEO}- 0.0



(단위 : 백만원, ’25. 1. 31. 기준)
부서 세부사업 2025년도 2024년도최종예산 집행액(C)(지출액 기준) 집행률(C/B)본예산(A) 예산현액(B)

마 사업 411 411 300 41 10.0

소 계 400 400 400 30 7.5

창업정책과

바 사업 150 150 200 20 13.3
사 사업 250 250 200 10 4.0

  ※ 시립과학관 예산 제외

Ⅲ. 경제상황
"""


def test_summary_divisions_subtotals_and_page_breaks() -> None:
    table = one_table(SUMMARY)
    assert (table.kind, table.unit, table.fiscal_year) == ("summary", "백만원", 2025)
    assert [(r.kind, r.division) for r in table.rows if r.kind != "row"] == [
        ("total", None),
        ("subtotal", "경제정책과"),
        ("subtotal", "일자리정책과"),
        ("subtotal", "창업정책과"),
    ]
    ra = row_named(table, "라 사업")
    ma = row_named(table, "마 사업")
    assert (ra.division, ma.division) == ("일자리정책과", "일자리정책과")  # carried over the page break
    assert (ma.original, ma.current, ma.previous_final, ma.spent, ma.spent_rate) == (
        411_000_000,
        411_000_000,
        300_000_000,
        41_000_000,
        Decimal("10.0"),
    )
    assert row_named(table, "다 사업").original == 400_000  # 0.4 백만원
    assert row_named(table, "바 사업").division == "창업정책과"


def test_summary_reconciliation_within_rounding() -> None:
    table = one_table(SUMMARY)
    by_label = {(r.label, r.column): r for r in table.reconciliations}
    ok = by_label[("경제정책과 소계", "본예산")]
    assert (ok.printed, ok.computed, ok.tolerance, ok.ok) == (300_000_000, 300_400_000, 2_000_000, True)
    assert by_label[("계", "본예산")].ok  # 300 + 411 + 400 = 1,111
    assert by_label[("창업정책과 소계", "본예산")].ok  # subtotal printed before its division label
    assert by_label[("경제정책과 소계", "예산현액")].ok  # 310 vs 110 + 200 + 0.4: within 2 units
    assert by_label[("창업정책과 소계", "지출액")].ok  # 30 vs 20 + 10
    assert not failed(table)


def test_summary_inconsistent_subtotal_reports_cause() -> None:
    text = SUMMARY.replace("소 계 300 310 290 30 9.7", "소 계 300 310 250 30 9.7")
    table = one_table(text)
    (bad,) = [r for r in failed(table) if r.label == "경제정책과 소계"]
    assert (bad.column, bad.printed, bad.computed) == ("전년도 최종예산", 250_000_000, 290_000_000)
    assert bad.cause is not None and "document's own" in bad.cause


def test_summary_missing_row_is_named_as_cause() -> None:
    text = SUMMARY.replace("나 사업 200 200 200 20 10.0\n", "")
    table = one_table(text)
    causes = {r.cause for r in failed(table) if r.label == "경제정책과 소계"}
    assert causes and all(c is not None and c.startswith("a row is missing") for c in causes)


def test_summary_note_is_reported() -> None:
    _, _, issues = parse_tables(lines_of(SUMMARY), 2025)
    assert any("시립과학관" in i.text for i in issues)


# ---------------------------------------------------------------- 추경 (supplementary)

SUPPLEMENTARY = """
 <추가경정예산 사업 세부내역>

(단위: 백만원)
부서명 사업명 추경예산(안) 기정예산 증가액

경 제 실 1,200 1,250 △50

일 자 리
정 책 과

청년 사업
조성 및 운영

‣ 수요 증가에
대응하여 확대

  (총 3,300명)
500 400 100

창 업
정 책 과

축소 사업
운영
‣ 사업 조정 300 450 △150

가나AI 혁신지구
육성

소계 400 400 -
‣ 하위 항목 하나                         50
‣ 하위 항목 둘                         △50



1 다음 꼭지
"""


def test_supplementary_rows_with_negatives_and_sub_items() -> None:
    tables, rows, issues = parse_tables(lines_of(SUPPLEMENTARY), 2025)
    (table,) = tables
    assert table.kind == "supplementary"
    assert table.rows[0].kind == "total" and table.rows[0].name == "경제실"
    assert [(r.name, r.division, r.proposed, r.before, r.increase) for r in rows] == [
        ("청년 사업 조성 및 운영", "일자리정책과", 500_000_000, 400_000_000, 100_000_000),
        ("축소 사업 운영", "창업정책과", 300_000_000, 450_000_000, -150_000_000),
        ("가나AI 혁신지구 육성", "창업정책과", 400_000_000, 400_000_000, 0),
    ]
    assert rows[0].reason == "수요 증가에 대응하여 확대 (총 3,300명)"
    assert [(s.name, s.increase) for s in rows[2].sub_items] == [
        ("하위 항목 하나", 50_000_000),
        ("하위 항목 둘", -50_000_000),
    ]
    assert all(r.ok for r in table.reconciliations)
    assert not [i for i in issues if "≠" in i.reason]


def test_supplementary_identity_failure_is_an_issue() -> None:
    text = SUPPLEMENTARY.replace("500 400 100", "500 400 90")
    _, _, issues = parse_tables(lines_of(text), 2025)
    assert any("기정예산 + 증가액 ≠ 추경예산(안)" in i.reason for i in issues)


# ---------------------------------------------------------------- names, junk, inline amounts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("경 제 정 책 과", "경제정책과"),
        ("서 울 영 화 센 터  건 립", "서울영화센터 건립"),
        ("캠 퍼스 타 운  성 과 평 가", "캠퍼스타운 성과평가"),
        ("서울 동행일자리", "서울 동행일자리"),
        ("AI 및 XR 지원", "AI 및 XR 지원"),
    ],
)
def test_undo_letter_spacing(text: str, expected: str) -> None:
    assert undo_letter_spacing(text) == expected


def test_join_name_parts() -> None:
    assert join_name_parts(["청년취업사관학교 ", "조성 및 운영"]) == "청년취업사관학교 조성 및 운영"
    assert join_name_parts(["홍릉 일대 ", "도시재생뉴딜사업 지원", "(R&D지원센터 공사비)"]) == (
        "홍릉 일대 도시재생뉴딜사업 지원(R&D지원센터 공사비)"
    )


@pytest.mark.parametrize(
    "junk",
    [
        [],
        [""],
        ["사업명"],
        ["사업명 본예산 예산현액", "", "(단위: 천원)", "%%%% ((( )))", "1,2,3,,,", "△△△ - - -"],
        ["부서 세부사업 2025년도 본예산(A) 예산현액(B)", "계 1 2 3 4 5 6 7 8 9", "(0.0)", "‣ 1"],
        ["사업명 추경예산(안) 기정예산 증가액", "소계", "소계 - - -", "‣ x 1", "(1,2) (3,4)"],
        ["\u3000" * 5, "□ 예산 집행 현황", "사업명 본예산 이월 예산현액", "x" * 5000 + " 1"],
    ],
)
def test_junk_never_raises(junk: list[str]) -> None:
    tables, rows, issues = parse_tables(junk, None)
    assert isinstance(tables, list) and isinstance(rows, list) and isinstance(issues, list)
    assert find_inline_amounts(junk, -5, 10**6) is not None


def test_find_inline_amounts_labels() -> None:
    lines = [
        "□ 사업개요",
        " ㅇ 소요예산 : 41,106백만원",
        " ㅇ 소요 예산 : 45,364백만원 (추경예산 960백만 원 포함)",
        "   - 캠퍼스타운 사업비 : 21,220백만원 (창업형 20,020/단위형 1,200)",
        " ㅇ 조성 규모 : 300억원 출자 약정, 5,000억 규모로 조성",
        " ㅇ 교육생 3,300명",
    ]
    found = find_inline_amounts(lines, 2, 6)
    assert [(a.label, a.amount, a.line) for a in found] == [
        ("소요예산", 41_106_000_000, 2),
        ("소요 예산", 45_364_000_000, 3),
        ("추경예산", 960_000_000, 3),
        ("캠퍼스타운 사업비", 21_220_000_000, 4),
        ("조성 규모", 30_000_000_000, 5),
        ("", 500_000_000_000, 5),
    ]
    assert find_inline_amounts(lines, 3, 3)[0].line == 3


# ---------------------------------------------------------------- seed acceptance


def seed_lines(prefix: str) -> list[str]:
    if not SEEDS.is_dir():
        pytest.skip("seed documents not available")
    paths = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not paths:
        pytest.skip(f"seed {prefix} not available")
    return paths[0].read_text(encoding="utf-8").split("\n")


def test_seed_001_summary_reconciles_except_where_document_is_inconsistent() -> None:
    tables, _, _ = parse_tables(seed_lines("001"), 2025)
    (summary,) = [t for t in tables if t.kind == "summary"]
    assert (summary.unit, summary.as_of) == ("백만원", date(2025, 1, 31))
    subtotal_labels = {r.label for r in summary.reconciliations if r.label.endswith("소계")}
    assert subtotal_labels == {
        f"{d} 소계"
        for d in (
            "경제정책과",
            "일자리정책과",
            "창업정책과",
            "대학협력과",
            "금융투자과",
            "창조산업과",
            "뷰티패션산업과",
            "첨단산업과",
            "산업입지과",
        )
    }
    total = [r for r in summary.reconciliations if r.label == "계"]
    assert len(total) == 4 and all(r.ok for r in total)  # 본예산, 예산현액, 전년도 최종예산, 지출액
    (bad,) = failed(summary)
    # The document itself: 금융투자과's ’24 final budget rows add up to 26,357.1, the 소계 says 26,302.
    assert (bad.label, bad.column, bad.printed, bad.computed) == (
        "금융투자과 소계",
        "전년도 최종예산",
        26_302_000_000,
        26_357_100_000,
    )
    assert bad.cause is not None and "document's own" in bad.cause
    row = row_named(summary, "서울형 R&D 지원")
    assert (row.division, row.original, row.current, row.spent) == (
        "경제정책과",
        41_106_000_000,
        41_106_000_000,
        1_000_000,
    )


def test_seed_001_every_execution_table_is_parsed() -> None:
    lines = seed_lines("001")
    headings = [i + 1 for i, line in enumerate(lines) if re.match(r"^\s*□\s*예산\s*집행\s*현황", line)]
    tables, _, _ = parse_tables(lines, 2025)
    by_line = {t.line: t for t in tables}
    assert len(headings) == 27
    for heading in headings:
        table = by_line.get(heading)
        assert table is not None, f"no table for heading at line {heading}"
        assert table.kind in {"execution", "fund"}
        assert any(
            r.original is not None and (r.current is not None or table.kind == "fund") for r in table.rows
        )


def test_seed_001_spot_checks() -> None:
    tables, _, issues = parse_tables(seed_lines("001"), 2025)
    rows = {r.name: r for t in tables if t.kind == "execution" for r in t.rows if r.kind == "row"}
    rnd = rows["서울형 R&D 지원"]
    assert (rnd.original, rnd.carried_over, rnd.current, rnd.previous_final, rnd.spent, rnd.spent_rate) == (
        41_106_204_000,
        0,
        41_106_204_000,
        36_758_802_000,
        0,
        Decimal("0.0"),
    )
    job = rows["서울 동행일자리"]
    assert (job.committed, job.committed_rate, job.spent) == (19_777_152_000, Decimal("21.0"), 19_773_238_000)
    school = rows["서울특별시 기술교육원 운영 지원"]
    assert (school.carried_over, school.current, school.spent_rate) == (
        104_400_000,
        21_432_131_000,
        Decimal("14.2"),
    )
    film = rows["서울영화센터 건립"]
    assert (film.original, film.carried_over, film.committed) == (
        17_215_238_000,
        5_273_739_000,
        8_089_645_000,
    )
    assert rows["투자유치기반조성(서비스형 외투지역 임대료 지원)"].previous_final == 279_371_000
    fund = next(t for t in tables if t.kind == "fund")
    assert (fund.rows[0].original, fund.rows[0].spent) == (59_303_000_000, 5_270_000_000)
    assert any("irregular digit grouping" in i.reason for i in issues)  # `1,51362(9.6)` as printed


def test_seed_001_execution_totals_that_fail_are_explained() -> None:
    tables, _, _ = parse_tables(seed_lines("001"), 2025)
    failures = [r for t in tables if t.kind == "execution" for r in failed(t)]
    causes = {(r.column, (r.cause or "").split(":")[0]) for r in failures}
    # 합계 printing `-` for 이월 등 although a row carries 39,770 (document), and a 합계 row that
    # lost its 이월 등 cell (column shift).
    assert causes == {
        ("이월 등", "the document's own subtotal differs from its rows"),
        ("이월 등", "column shift"),
        ("예산현액", "column shift"),
    }


def test_seed_000_supplementary_rows() -> None:
    tables, rows, _ = parse_tables(seed_lines("000"), 2025)
    (table,) = [t for t in tables if t.kind == "supplementary"]
    assert table.unit == "백만원"
    assert len(rows) == 4
    for row in rows:
        assert row.before is not None and row.increase is not None
        assert row.before + row.increase == row.proposed
    assert {r.division for r in rows} == {"일자리정책과", "창업정책과", "첨단산업과"}
    last = rows[-1]
    assert last.increase == 2_600_000_000
    assert sum(s.increase or 0 for s in last.sub_items) == last.increase
    assert table.rows[0].kind == "total" and all(r.ok for r in table.reconciliations)
