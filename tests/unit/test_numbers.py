"""Korean table numbers, units, captions and money in prose."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.ingest.importer.numbers import (
    find_money,
    join_spaced_digits,
    parse_as_of,
    parse_cell,
    parse_money,
    parse_number,
    parse_rate,
    parse_unit_caption,
    split_trailing_cells,
    to_won,
)

IDEO = "\u3000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", Decimal(1234)),
        ("41,106,204", Decimal(41106204)),
        ("0.1", Decimal("0.1")),
        ("-", Decimal(0)),
        ("－", Decimal(0)),
        ("‐", Decimal(0)),
        (f"-{IDEO}", Decimal(0)),
        (f"{IDEO}-", Decimal(0)),
        ("△9", Decimal(-9)),
        ("▲1,500", Decimal(-1500)),
        ("-9", Decimal(-9)),
        ("341)", Decimal(34)),
        ("1,2341)", Decimal(1234)),
        ("4 1 , 1 0 6", Decimal(41106)),
        ("abc", None),
        ("", None),
        ("1)", None),
    ],
)
def test_parse_number(text: str, expected: Decimal | None) -> None:
    assert parse_number(text) == expected


def test_footnote_digit_is_split_off() -> None:
    cell = parse_cell("182)")
    assert cell is not None
    assert (cell.value, cell.footnote) == (Decimal(18), 2)


def test_rate_glued_to_amount() -> None:
    cell = parse_cell("3,032,947(14.2)")
    assert cell is not None
    assert (cell.value, cell.rate) == (Decimal(3032947), Decimal("14.2"))


def test_dash_with_glued_rate_is_zero() -> None:
    cell = parse_cell("-(0.0)")
    assert cell is not None
    assert (cell.value, cell.rate) == (Decimal(0), Decimal("0.0"))


def test_rate_alone_is_rate_only_cell() -> None:
    cell = parse_cell("(0.0)")
    assert cell is not None
    assert cell.rate_only and cell.rate == Decimal("0.0")


def test_comma_used_as_decimal_point_in_rate() -> None:
    cell = parse_cell("(21,0)")
    assert cell is not None
    assert cell.rate == Decimal("21.0")
    assert parse_rate("(9,35)") == Decimal("9.35")


def test_percent_cell() -> None:
    cell = parse_cell("8.89%")
    assert cell is not None
    assert cell.value == Decimal("8.89") and cell.percent


def test_irregular_grouping_is_kept_but_flagged() -> None:
    cell = parse_cell("1,51362(9.6)")
    assert cell is not None
    assert cell.value == Decimal(151362) and cell.irregular


def test_split_trailing_cells_keeps_name_spacing() -> None:
    text, cells = split_trailing_cells(
        "서 울 영 화 센 터  건 립 17,215,238 5,273,739 22,488,977 - 8,089,645(36.0)"
    )
    assert text == "서 울 영 화 센 터  건 립"
    assert [c.value for c in cells] == [
        Decimal(17215238),
        Decimal(5273739),
        Decimal(22488977),
        Decimal(0),
        Decimal(8089645),
    ]
    assert cells[-1].rate == Decimal("36.0")


def test_split_trailing_cells_with_ideographic_space_dashes() -> None:
    text, cells = split_trailing_cells(f"캠퍼스타운 성과평가(이월) -{IDEO} 85 - {IDEO}- 0.0")
    assert text == "캠퍼스타운 성과평가(이월)"
    assert [c.value for c in cells] == [0, 85, 0, 0, 0]


def test_split_trailing_cells_footnotes_and_negatives() -> None:
    text, cells = split_trailing_cells("경 제 정 책 과 30 341)   4 28 △2")
    assert text == "경 제 정 책 과"
    assert [c.value for c in cells] == [30, 34, 4, 28, -2]
    assert cells[1].footnote == 1


def test_letter_spaced_numbers_joined_only_with_commas() -> None:
    assert join_spaced_digits("합계 4 1 , 1 0 6 -") == "합계 41,106 -"
    assert join_spaced_digits("1 1 - 2 2") == "1 1 - 2 2"


@pytest.mark.parametrize(
    ("value", "unit", "won"),
    [
        (1, "원", 1),
        (41106204, "천원", 41_106_204_000),
        (Decimal("0.1"), "백만원", 100_000),
        (668901, "백만원", 668_901_000_000),
        (Decimal("14.5"), "억원", 1_450_000_000),
        (Decimal("1.8"), "조원", 1_800_000_000_000),
        (-9, "천원", -9_000),
    ],
)
def test_to_won(value: Decimal | int, unit: str, won: int) -> None:
    assert to_won(value, unit) == won


def test_to_won_rejects_floats_and_unknown_units() -> None:
    with pytest.raises(TypeError):
        to_won(1.5, "천원")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        to_won(1, "달러")


@pytest.mark.parametrize(
    ("caption", "unit", "as_of"),
    [
        ("(단위: 천원, ’25.1.31. 기준)", "천원", date(2025, 1, 31)),
        ("(단위: 천원, ’25. 1 .31. 기준)", "천원", date(2025, 1, 31)),
        ("(단위 : 백만원, ’25. 1. 31. 기준)", "백만원", date(2025, 1, 31)),
        ("(단위: 천원, ’25.1.31.기준)", "천원", date(2025, 1, 31)),
        ("(’24. 12. 19. 기준, 단위: 억원)", "억원", date(2024, 12, 19)),
        ("(단위:억원)", "억원", None),
        ("□ 예산 집행 현황    (단위 : 천원, 2025. 6. 30. 기준)", "천원", date(2025, 6, 30)),
    ],
)
def test_parse_unit_caption(caption: str, unit: str, as_of: date | None) -> None:
    parsed = parse_unit_caption(caption)
    assert parsed is not None
    assert (parsed.unit, parsed.as_of) == (unit, as_of)


def test_caption_absent_or_invalid_date() -> None:
    assert parse_unit_caption("캠퍼스타운 사업(단위형) 1,200,000") is None
    assert parse_as_of("’25.13.40. 기준") is None


@pytest.mark.parametrize(
    ("text", "won"),
    [
        ("ㅇ 소요예산 : 41,106백만원", 41_106_000_000),
        ("1,375백만원", 1_375_000_000),
        ("펀드 5천억 규모", 500_000_000_000),
        ("27억원", 2_700_000_000),
        ("소요 예산 : 14.5억 원(추경예산)", 1_450_000_000),
        ("2,000백만 원", 2_000_000_000),
        ("2조 6,245억원 조성", 2_624_500_000_000),
        ("500원", 500),
        ("3,000천원", 3_000_000),
        ("△5억원", -500_000_000),
    ],
)
def test_money_in_prose(text: str, won: int) -> None:
    assert parse_money(text) == won


def test_not_money() -> None:
    assert find_money("시설 4.8만㎡, 교육생 3,300명, 3만 명") == []
    assert find_money("’25. 3월 ~ 12월") == []
    assert find_money("행정규제기본법(제5조의2), 조례 제71조") == []
    assert find_money("(’23년 미국 672억$ →한국 13억$)") == []


def test_several_amounts_in_one_line() -> None:
    found = find_money("소요 예산 : 45,364백만원 (추경예산 960백만 원 포함)")
    assert [m.won for m in found] == [45_364_000_000, 960_000_000]
