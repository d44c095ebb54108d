"""Korean schedule date expressions: parse_when, find_when, normalize."""

from __future__ import annotations

import calendar
import random
from datetime import date

import pytest

from services.ingest.importer.dates import (
    RECURRENCES,
    ParsedWhen,
    Window,
    find_when,
    normalize,
    parse_when,
)

REF = 2025
D = date
OPEN = None


def W(start: date | None, end: date | None) -> Window:
    return Window(start, end)


def month(y: int, m: int) -> Window:
    return Window(D(y, m, 1), D(y, m, calendar.monthrange(y, m)[1]))


def day(y: int, m: int, d: int) -> Window:
    return Window(D(y, m, d), D(y, m, d))


def half(y: int, n: int) -> Window:
    return Window(D(y, 1, 1), D(y, 6, 30)) if n == 1 else Window(D(y, 7, 1), D(y, 12, 31))


def days(y: int, m: int, first: int, last: int) -> Window:
    return Window(D(y, m, first), D(y, m, last))


def quarter(y: int, n: int) -> Window:
    return Window(D(y, 3 * n - 2, 1), D(y, 3 * n, calendar.monthrange(y, 3 * n)[1]))


def year(y: int) -> Window:
    return Window(D(y, 1, 1), D(y, 12, 31))


# --------------------------------------------------------------------------------------------
# parse_when: one case per form, exact windows and flags (ref_year 2025)
# --------------------------------------------------------------------------------------------

# (text, windows, recurrence, continuing, approximate)
FORMS: list[tuple[str, tuple[Window, ...], str | None, bool, bool]] = [
    # months
    ("’25.3월", (month(2025, 3),), None, False, True),
    ("’25. 3.", (month(2025, 3),), None, False, True),
    ("’24.5", (month(2024, 5),), None, False, True),
    ("’24.9", (month(2024, 9),), None, False, True),
    ("’25.5 개관", (month(2025, 5),), None, False, True),
    ("’27.5. 준공", (month(2027, 5),), None, False, True),
    ("12월", (month(2025, 12),), None, False, True),
    ("’25.3월 완료", (month(2025, 3),), None, False, True),
    ("’25. 3월 개관 예정)", (month(2025, 3),), None, False, True),
    ("’25. 3월 중(잠정)", (month(2025, 3),), None, False, True),
    ("25. 3월", (month(2025, 3),), None, False, True),  # apostrophe lost in extraction
    ("2025. 3월", (month(2025, 3),), None, False, True),
    # parts of a month
    ("’25. 7월 초", (days(2025, 7, 1, 10),), None, False, True),
    ("’25. 7월 초순", (days(2025, 7, 1, 10),), None, False, True),
    ("’25. 7월 중순", (days(2025, 7, 11, 20),), None, False, True),
    ("’25. 7월 하순", (days(2025, 7, 21, 31),), None, False, True),
    ("’25. 7월 말", (days(2025, 7, 21, 31),), None, False, True),
    ("’25. 9월말", (days(2025, 9, 21, 30),), None, False, True),
    ("’25. 2월 말", (days(2025, 2, 21, 28),), None, False, True),
    ("’24. 2월 말경", (days(2024, 2, 21, 29),), None, False, True),
    ("4월중", (month(2025, 4),), None, False, True),
    ("’25. 2월 중", (month(2025, 2),), None, False, True),
    ("’25. 3월경", (month(2025, 3),), None, False, True),
    ("4월4주", (days(2025, 4, 22, 28),), None, False, True),
    ("3월 둘째 주", (days(2025, 3, 8, 14),), None, False, True),
    ("’25.4월5주", (days(2025, 4, 29, 30),), None, False, True),
    # days
    ("’25.8.27", (day(2025, 8, 27),), None, False, False),
    ("’25.1.31. 기준", (day(2025, 1, 31),), None, False, False),
    ("’25. 1 .31.", (day(2025, 1, 31),), None, False, False),
    ("’24.2.29", (day(2024, 2, 29),), None, False, False),
    ("2025. 3. 15.", (day(2025, 3, 15),), None, False, False),
    ("2025년 3월 15일", (day(2025, 3, 15),), None, False, False),
    ("2025-03-15", (day(2025, 3, 15),), None, False, False),
    ("3월 15일(금)", (day(2025, 3, 15),), None, False, False),
    ("’25. 1. 23.(목)", (day(2025, 1, 23),), None, False, False),
    ("’25. 9. 30.(화) 14:00~18:00", (day(2025, 9, 30),), None, False, False),
    ("’25.3.15경", (day(2025, 3, 15),), None, False, True),
    ("3.24~4.8", (W(D(2025, 3, 24), D(2025, 4, 8)),), None, False, False),
    # day ranges
    ("’25.7.14~7.28", (days(2025, 7, 14, 28),), None, False, False),
    ("’25. 8.28. ~ 30.", (days(2025, 8, 28, 30),), None, False, False),
    ("’25.8.28.~8.30.", (days(2025, 8, 28, 30),), None, False, False),
    ("’21.12.29~’22.2.8", (W(D(2021, 12, 29), D(2022, 2, 8)),), None, False, False),
    ("’25. 9. 30.(화) ~ 10. 2.(목)", (W(D(2025, 9, 30), D(2025, 10, 2)),), None, False, False),
    ("’25. 9. 30.~ 10. 2.", (W(D(2025, 9, 30), D(2025, 10, 2)),), None, False, False),
    ("'25.3.1~'28.2.29", (W(D(2025, 3, 1), D(2028, 2, 29)),), None, False, False),
    ("’25.8.30~2", (W(D(2025, 8, 30), D(2025, 9, 2)),), None, False, False),  # day rolls the month
    ("’25.12.29~1.5", (W(D(2025, 12, 29), D(2026, 1, 5)),), None, False, False),  # and the year
    ("8월 28~30일", (days(2025, 8, 28, 30),), None, False, False),
    ("’23.1.1.~3.31.(90일)", (W(D(2023, 1, 1), D(2023, 3, 31)),), None, False, False),
    # month ranges
    ("’25.4~5월", (W(D(2025, 4, 1), D(2025, 5, 31)),), None, False, True),
    ("’25. 4∼11월", (W(D(2025, 4, 1), D(2025, 11, 30)),), None, False, True),
    ("2~4월", (W(D(2025, 2, 1), D(2025, 4, 30)),), None, False, True),
    ("4월~10월", (W(D(2025, 4, 1), D(2025, 10, 31)),), None, False, True),
    ("1-12월", (year(2025),), None, False, True),
    ("’25.9월~11월", (W(D(2025, 9, 1), D(2025, 11, 30)),), None, False, True),
    ("’25. 3월 ~ ’26. 2월", (W(D(2025, 3, 1), D(2026, 2, 28)),), None, False, True),
    ("’25. 8.~26.7.", (W(D(2025, 8, 1), D(2026, 7, 31)),), None, False, True),
    ("’25. 11월~2월", (W(D(2025, 11, 1), D(2026, 2, 28)),), None, False, True),  # rolls into 2026
    ("’24.12 ~ ’25.10", (W(D(2024, 12, 1), D(2025, 10, 31)),), None, False, True),
    ("’25.10~’26.3월", (W(D(2025, 10, 1), D(2026, 3, 31)),), None, False, True),
    ("’23. 1. ~ ’25. 12.(3년)", (W(D(2023, 1, 1), D(2025, 12, 31)),), None, False, True),
    ("’25.3.~4..", (W(D(2025, 3, 1), D(2025, 4, 30)),), None, False, True),
    ("’25.2.~.7.", (W(D(2025, 2, 1), D(2025, 7, 31)),), None, False, True),
    ("’25.1.~ 6.", (half(2025, 1),), None, False, True),
    ("’20.11.~’26.12.", (W(D(2020, 11, 1), D(2026, 12, 31)),), None, False, True),
    ("25년 1~2월 중", (W(D(2025, 1, 1), D(2025, 2, 28)),), None, False, True),
    ("’25.3월 중순~4월 초순", (W(D(2025, 3, 11), D(2025, 4, 10)),), None, False, True),
    ("’25. 3월 ~ 12월(10개월)", (W(D(2025, 3, 1), D(2025, 12, 31)),), None, False, True),
    # open ends and starts
    ("’25.9월~", (W(D(2025, 9, 1), OPEN),), None, True, True),
    ("’25.9월∼", (W(D(2025, 9, 1), OPEN),), None, True, True),
    ("’25. 2월 ~", (W(D(2025, 2, 1), OPEN),), None, True, True),
    ("’26년 1월~", (W(D(2026, 1, 1), OPEN),), None, True, True),
    ("’24.1.~", (W(D(2024, 1, 1), OPEN),), None, True, True),
    ("’24.12.26.~", (W(D(2024, 12, 26), OPEN),), None, True, False),
    ("’25.3월부터", (W(D(2025, 3, 1), OPEN),), None, True, True),
    ("’24.11월 이후", (W(D(2024, 11, 1), OPEN),), None, True, True),
    ("’25.계속", (W(D(2025, 1, 1), OPEN),), None, True, True),
    ("’25. 3. ~ 계속", (W(D(2025, 3, 1), OPEN),), None, True, True),
    ("계속", (W(OPEN, OPEN),), None, True, False),
    ("~ ’25. 6월", (W(OPEN, D(2025, 6, 30)),), None, False, True),
    ("(~5월)", (W(OPEN, D(2025, 5, 31)),), None, False, True),
    ("~’25.12", (W(OPEN, D(2025, 12, 31)),), None, False, True),
    ("~’24.11.", (W(OPEN, D(2024, 11, 30)),), None, False, True),
    ("’25.12월까지", (W(OPEN, D(2025, 12, 31)),), None, False, True),
    ("’25.12월 이내", (W(OPEN, D(2025, 12, 31)),), None, False, True),
    ("12월 말까지", (W(OPEN, D(2025, 12, 31)),), None, False, True),
    ("’30까지", (W(OPEN, D(2030, 12, 31)),), None, False, True),
    ("’26.上까지", (W(OPEN, D(2026, 6, 30)),), None, False, True),
    ("~’26.상", (W(OPEN, D(2026, 6, 30)),), None, False, True),
    # halves and quarters
    ("’25.하반기", (half(2025, 2),), None, False, True),
    ("’25. 상반기", (half(2025, 1),), None, False, True),
    ("상반기", (half(2025, 1),), None, False, True),
    ("하반기", (half(2025, 2),), None, False, True),
    ("’26.上", (half(2026, 1),), None, False, True),
    ("`26.上", (half(2026, 1),), None, False, True),
    ("’25.下", (half(2025, 2),), None, False, True),
    ("’25.下~", (W(D(2025, 7, 1), OPEN),), None, True, True),
    ("’25.上 )", (half(2025, 1),), None, False, True),
    ("'25년 상반기 중", (half(2025, 1),), None, False, True),
    ("’25.상~하반기", (year(2025),), None, False, True),
    ("상~하반기", (year(2025),), None, False, True),
    ("하~상반기", (W(D(2025, 7, 1), D(2026, 6, 30)),), None, False, True),
    ("상·하반기", (half(2025, 1), half(2025, 2)), None, False, True),
    ("2024 하반기", (half(2024, 2),), None, False, True),
    ("내년 상반기", (half(2026, 1),), None, False, True),
    ("’24년 3분기", (W(D(2024, 7, 1), D(2024, 9, 30)),), None, False, True),
    ("’25년 1/4분기", (W(D(2025, 1, 1), D(2025, 3, 31)),), None, False, True),
    ("’25. 3Q", (W(D(2025, 7, 1), D(2025, 9, 30)),), None, False, True),
    ("1분기", (W(D(2025, 1, 1), D(2025, 3, 31)),), None, False, True),
    ("2~4분기", (W(D(2025, 4, 1), D(2025, 12, 31)),), None, False, True),
    ("’24년 2~3분기", (W(D(2024, 4, 1), D(2024, 9, 30)),), None, False, True),
    ("’25.4분기~1분기", (W(D(2025, 10, 1), D(2026, 3, 31)),), None, False, True),
    ("’25년 1·2분기", (quarter(2025, 1), quarter(2025, 2)), None, False, True),
    # years
    ("’17년", (year(2017),), None, False, True),
    ("’25", (year(2025),), None, False, True),
    ("2031년", (year(2031),), None, False, True),
    ("’25년도", (year(2025),), None, False, True),
    ("’99년~", (W(D(1999, 1, 1), OPEN),), None, True, True),  # two-digit years pivot around ref_year
    ("’25년~’30년", (W(D(2025, 1, 1), D(2030, 12, 31)),), None, False, True),
    ("’25~’30", (W(D(2025, 1, 1), D(2030, 12, 31)),), None, False, True),
    ("’25~29", (W(D(2025, 1, 1), D(2029, 12, 31)),), None, False, True),
    ("’25.~’29.", (W(D(2025, 1, 1), D(2029, 12, 31)),), None, False, True),
    ("’25 ~ ’29년 (5개년, 3+2년)", (W(D(2025, 1, 1), D(2029, 12, 31)),), None, False, True),
    ("’23~’24년간", (W(D(2023, 1, 1), D(2024, 12, 31)),), None, False, True),
    ("’23.~’26년까지", (W(D(2023, 1, 1), D(2026, 12, 31)),), None, False, True),
    ("’18~’25.12, 누적", (W(D(2018, 1, 1), D(2025, 12, 31)),), None, False, True),
    ("’25년 초", (W(D(2025, 1, 1), D(2025, 3, 31)),), None, False, True),
    ("’25년 말", (W(D(2025, 10, 1), D(2025, 12, 31)),), None, False, True),
    ("’25년 연말", (W(D(2025, 10, 1), D(2025, 12, 31)),), None, False, True),
    ("연내", (year(2025),), None, False, True),
    ("올해", (year(2025),), None, False, True),
    # lists
    ("’25. 9월 / 11월", (month(2025, 9), month(2025, 11)), None, False, True),
    ("’25. 5월, 9월", (month(2025, 5), month(2025, 9)), None, False, True),
    ("’25. 2, 3월", (month(2025, 2), month(2025, 3)), None, False, True),
    ("’25.2월‧10월", (month(2025, 2), month(2025, 10)), None, False, True),
    ("2, 4, 6, 7, 9, 11월", tuple(month(2025, m) for m in (2, 4, 6, 7, 9, 11)), None, False, True),
    (
        "’24. 9.30. / ’24.11.13.",
        (day(2024, 9, 30), day(2024, 11, 13)),
        None,
        False,
        False,
    ),
    ("’25. 8. 18(월) ~ ’25. 8. 19(화), 온라인 설문", (days(2025, 8, 18, 19),), None, False, False),
    # recurrence
    ("연중", (year(2025),), "ongoing", False, True),
    ("연중지속", (year(2025),), "ongoing", False, True),
    ("연중 상시", (year(2025),), "ongoing", False, True),
    ("연중수시", (year(2025),), "adhoc", False, True),
    ("(연중)", (year(2025),), "ongoing", False, True),
    ("’26년 연중", (year(2026),), "ongoing", False, True),
    ("매월", (), "monthly", False, False),
    ("매월 첫째주", (), "monthly", False, False),
    ("월별", (), "monthly", False, False),
    ("분기별", (), "quarterly", False, False),
    ("분기별 1회", (), "quarterly", False, False),
    ("반기별", (), "half-yearly", False, False),
    ("매년", (), "yearly", False, False),
    ("상시", (), "ongoing", False, False),
    ("수시", (), "adhoc", False, False),
    ("(수시)", (), "adhoc", False, False),
    ("매년 3월", (month(2025, 3),), "yearly", False, True),
    ("’25.3월~ 매월", (W(D(2025, 3, 1), OPEN),), "monthly", True, True),
    ("매월 ’25.3월~", (W(D(2025, 3, 1), OPEN),), "monthly", True, True),
]


@pytest.mark.parametrize(("text", "windows", "recurrence", "continuing", "approximate"), FORMS)
def test_parse_when_forms(
    text: str,
    windows: tuple[Window, ...],
    recurrence: str | None,
    continuing: bool,
    approximate: bool,
) -> None:
    got = parse_when(text, REF)
    assert got.unparsed is None, got.unparsed
    assert got.ok
    assert got.text == text
    assert got.windows == windows
    assert got.recurrence == recurrence
    assert got.continuing is continuing
    assert got.approximate is approximate


def test_forms_cover_every_recurrence_value() -> None:
    assert {r for _, _, r, _, _ in FORMS if r} == set(RECURRENCES)


@pytest.mark.parametrize(
    ("text", "ref_year", "expected"),
    [
        ("12월", 2024, month(2024, 12)),
        ("상반기", 2026, half(2026, 1)),
        ("연중", 2023, year(2023)),
        ("’25.3월", 2024, month(2025, 3)),  # an explicit year wins
        ("’99", 2025, year(1999)),
        ("’70", 2025, year(2070)),
        ("내년 초", 2025, W(D(2026, 1, 1), D(2026, 3, 31))),
        ("11월~2월", 2025, W(D(2025, 11, 1), D(2026, 2, 28))),
        ("11월~2월", 2027, W(D(2027, 11, 1), D(2028, 2, 29))),
    ],
)
def test_reference_year(text: str, ref_year: int, expected: Window) -> None:
    assert parse_when(text, ref_year).windows == (expected,)


def test_list_items_inherit_the_year_of_the_item_before() -> None:
    got = parse_when("’24.11월, 12월", REF)
    assert got.windows == (month(2024, 11), month(2024, 12))


def test_reference_year_out_of_range_is_unparsed() -> None:
    got = parse_when("’25.3월", 1800)
    assert not got.ok
    assert got.unparsed is not None and "1800" in got.unparsed


# --------------------------------------------------------------------------------------------
# Derived properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("’25. 9월 / 11월", D(2025, 9, 1), D(2025, 11, 30)),
        ("’24. 9.30. / ’24.11.13.", D(2024, 9, 30), D(2024, 11, 13)),
        ("’25.9월~", D(2025, 9, 1), None),
        ("~ ’25. 6월", None, D(2025, 6, 30)),
        ("계속", None, None),
        ("매월", None, None),
        ("’25.2.30", None, None),
    ],
)
def test_start_and_end(text: str, start: date | None, end: date | None) -> None:
    got = parse_when(text, REF)
    assert (got.start, got.end) == (start, end)


def test_ok_follows_unparsed() -> None:
    assert ParsedWhen("x", (), unparsed="no date").ok is False
    assert ParsedWhen("매월", (), recurrence="monthly").ok is True


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("’25. 3월", "'25.3월"),
        ("‘25.3월", "'25.3월"),
        ("`25.3월", "'25.3월"),
        ("'25.3월", "'25.3월"),
        ("’25.9월∼", "'25.9월~"),
        ("’25.9월〜", "'25.9월~"),
        ("’25.9월～", "'25.9월~"),
        ("１-１２월", "1~12월"),
        ("’２５．３월", "'25.3월"),
        ("’25.\u30003월", "'25.3월"),
        ("’25.\u00a03월\u3000초", "'25.3월 초"),
        ("  ’25.  3월  ~  ’26.  2월 ", "'25.3월~'26.2월"),
        ("’25. 1 .31. 기준", "'25.1.31.기준"),
        ("’25.3.~4..", "'25.3~4"),
        ("’25.2.~.7.", "'25.2~7"),
        ("’25. 3.", "'25.3"),
        ("’25.~’29.", "'25~'29"),
        ("’25.3.1–’25.5.31", "'25.3.1~'25.5.31"),
        ("’25. 4 - 5월", "'25.4~5월"),
        ("’25년 1/4분기", "'25년 1분기"),
        ("2025-03-15", "2025.03.15"),
        ("’25.2월‧10월", "'25.2월·10월"),
        ("’25. 9월 / 11월", "'25.9월/11월"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "variant",
    [
        "’25.9월~",
        "'25.9월~",
        "‘25.9월~",
        "`25.9월~",
        "’25.9월∼",
        "’25.9월〜",
        "’25.9월～",
        "’25. 9월 ~",
        "’25 .9 월~",
        "’２５.９월~",
        "’25.\u30009월\u3000~",
        "(’25.9월~)",
        "’25.9월~ 추진",
    ],
)
def test_spelling_variants_parse_alike(variant: str) -> None:
    got = parse_when(variant, REF)
    assert got.windows == (W(D(2025, 9, 1), OPEN),)
    assert got.continuing


@pytest.mark.parametrize("variant", ["1-12월", "1~12월", "1∼12월", "1 ~ 12월", "１～１２월", "1–12월"])
def test_hyphen_and_tildes_mean_a_range(variant: str) -> None:
    assert parse_when(variant, REF).windows == (year(2025),)


# --------------------------------------------------------------------------------------------
# Unparsed: a reason, never a guess, never an exception
# --------------------------------------------------------------------------------------------

UNREADABLE = [
    "",
    "   ",
    "’25.2.30",
    "’25.2.29",
    "’25.4.31",
    "’25.12.32",
    "13월",
    "0월",
    "’25.0월",
    "’25.32.1",
    "1999.13",
    "’25.2월5주",
    "abc",
    "해당 없음",
    "~",
    "~계속",
    "3",
    "1,000",
    "2133-5210",
    "하",
    "’25~’24",
    "’25.3월~’25.2월",
    "’25.3.15~3.10",
    "’25.3월 말~3월 초",
    "’25.3월~4월~5월",
    "’25.3개월",
    "’25년 3",
    "’25년 3,300명 양성",
    "’25년 60억원",
    "’25. 3월 → ’25. 5월 (변경)",
    "’25.3 매월 4",
    "매월 분기별",
    "11.12월",
    "’25.1분기~3",
    "’25.8.27 말",
    "’25. 하반기 초",
    "’25.3월 상반기",
    "’25.3월 계속과제",
    "약 ’25.3월",
    "’25.3월 15",
    "5분기",
    "’25.3월(’25.4월 연기)",
    "연 2회",
    "’25~5",
    "8/’25",
]


@pytest.mark.parametrize("text", UNREADABLE)
def test_unreadable_is_unparsed_with_a_reason(text: str) -> None:
    got = parse_when(text, REF)
    assert not got.ok
    assert isinstance(got.unparsed, str) and got.unparsed
    assert got.windows == ()
    assert (got.recurrence, got.continuing, got.approximate) == (None, False, False)
    assert got.text == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("’25.2.30", "2025-02-30"),
        ("’25.4.31", "2025-04-31"),
        ("13월", "13"),
        ("’25.32.1", "32"),
        ("’25~’24", "before"),
        ("", "empty"),
    ],
)
def test_reason_names_the_problem(text: str, fragment: str) -> None:
    reason = parse_when(text, REF).unparsed
    assert reason is not None and fragment in reason


def _check_invariants(got: ParsedWhen) -> None:
    assert got.ok == (got.unparsed is None)
    if not got.ok:
        assert got.windows == () and got.recurrence is None
        assert not got.continuing and not got.approximate
        return
    assert got.windows or got.recurrence, "an ok result carries a window or a recurrence"
    assert got.recurrence is None or got.recurrence in RECURRENCES
    assert got.continuing == any(w.end is None for w in got.windows)
    for w in got.windows:
        if w.start is not None and w.end is not None:
            assert w.start <= w.end


def test_fuzz_never_raises_and_keeps_invariants() -> None:
    pieces = [
        *"0123456789''’‘`~∼〜～-./,·() ",
        *"년월일분기반상하上下초중말순경주첫째",
        "’25", "2025", "13월", "31", "99", "연중", "수시", "매월", "분기별", "상반기", "계속",
        "까지", "부터", "이후", "※", "(화)", " : ", "내년", "연말", "억원", "14:00", "개관", "\u3000", "１",
    ]  # fmt: skip
    rng = random.Random(20250101)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        got = parse_when(text, rng.choice((1999, 2025, 2099)))
        _check_invariants(got)
        found = find_when(text, REF)
        if found is not None:
            expr, parsed = found
            assert expr and expr in text
            _check_invariants(parsed)


def test_junk_and_invalid_dates_are_unparsed_without_exceptions() -> None:
    junk = [*UNREADABLE, "’25.2.30~3.1", "’25.13.1", "’25.6.31", "’23.2.29", "’25.99월", "’25.3.1.1"]
    junk += ["(" * 20, ")" * 20, "~" * 20, "." * 20, "’" * 20, "월" * 20, "9" * 40, "’25." * 10]
    junk += ["\x00", "\n", "🙂", "null", "None", "’25.3월" * 3]
    for text in junk:
        got = parse_when(text, REF)
        assert not got.ok, text
        assert got.unparsed, text
        find_when(text, REF)  # must not raise either


# --------------------------------------------------------------------------------------------
# find_when
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expr", "windows"),
    [
        ("ㅇ 서류심사, 현장실사 등 선정평가                        : ’25. 4~5월", "’25. 4~5월",
         (W(D(2025, 4, 1), D(2025, 5, 31)),)),
        ("ㅇ 市 벤처펀드 운용사 최종 선정자 발표  : ’25. 9월 초", "’25. 9월 초",
         (days(2025, 9, 1, 10),)),
        # the date after the colon wins over the ’25년 in the title
        ("ㅇ ’25년 市 벤처펀드 운용사 최종 선정자 발표  : ’25. 9월 초", "’25. 9월 초",
         (days(2025, 9, 1, 10),)),
        ("ㅇ 신규 조성 캠퍼스 순차 개관                         : ’25.9월∼", "’25.9월∼",
         (W(D(2025, 9, 1), OPEN),)),
        ("ㅇ 청년취업사관학교 교육생 모집 및 과정 운영        : ’25.계속", "’25.계속",
         (W(D(2025, 1, 1), OPEN),)),
        ("ㅇ 인재 양성, GPU 지원, 글로벌 진출 프로그램 등 운영 : ~ ’25.12월", "~ ’25.12월",
         (W(OPEN, D(2025, 12, 31)),)),
        ("ㅇ 국내외 게임마켓 서울관 참가 지원 : ’25. 9월 / 11월", "’25. 9월 / 11월",
         (month(2025, 9), month(2025, 11))),
        ("ㅇ 추진 기간 : ’25. 8. 18(월) ~ ’25. 8. 19(화), 온라인 설문", "’25. 8. 18(월) ~ ’25. 8. 19(화)",
         (days(2025, 8, 18, 19),)),
        ("ㅇ 일    자 : ’25. 9. 30.(화) ~ 10. 2.(목)", "’25. 9. 30.(화) ~ 10. 2.(목)",
         (W(D(2025, 9, 30), D(2025, 10, 2)),)),
        ("- 공사기간 : ’20. 1. ~ ’25. 9.  ※ ’25. 11월 개관 예정", "’20. 1. ~ ’25. 9.",
         (W(D(2020, 1, 1), D(2025, 9, 30)),)),
        ("ㅇ 사업 기간 :　’25.7월 ~ ’25.12월", "’25.7월 ~ ’25.12월", (half(2025, 2),)),
        ("ㅇ 행사계획수립 : 25년 1~2월 중", "25년 1~2월 중", (W(D(2025, 1, 1), D(2025, 2, 28)),)),
        # first of several
        ("- 교총회관(’17년), 하이브랜드빌딩(’19년), 희경빌딩(’20년)으로 공간 확보", "’17년",
         (year(2017),)),
        ("ㅇ TF 운영 등 통합운영 기반 조성('25.3월), 통합본부 운영('25.4월~)", "'25.3월", (month(2025, 3),)),
        ("- 서면 심사(’25.8.7) 및 현장실사(~’25.8.22)로 7개 사 선정", "’25.8.7",
         (day(2025, 8, 7),)),
        # inside parentheses
        ("ㅇ (2단계) 서울 AI 허브(메인 센터) 등 공공 앵커시설 조성(’24.5 개관)", "’24.5", (month(2024, 5),)),
        ("* 공모(~5월) → 평가‧심사(~8월) → SPC 설립(~10월)", "~5월", (W(OPEN, D(2025, 5, 31)),)),
        ("ㅇ 서울 AI 허브 GDC(강남데이터센터) 개관(’25.12.)", "’25.12.", (month(2025, 12),)),
        ("조기 가동, 슈퍼컴 6호기 서비스 추진(`26.上)", "`26.上", (half(2026, 1),)),
        ("- 임･직원 모집 공고 및 채용(’25.상~하반기)", "’25.상~하반기", (year(2025),)),
        ("ㅇ 민관협력 규제 철폐 네트워크 구축 (’25.2월말)", "’25.2월말", (days(2025, 2, 21, 28),)),
        ("- 국가전략기술에 AI 추가(`25.3월, 法)", "`25.3월", (month(2025, 3),)),
        ("- 인테리어 공사를 위한 업체 선정 및 설비 공사 추진 중(’25.2.~.7.)", "’25.2.~.7.",
         (W(D(2025, 2, 1), D(2025, 7, 31)),)),
        # tables and prose
        ("규제발굴 기업 현장간담회 2~4월 4회", "2~4월", (W(D(2025, 2, 1), D(2025, 4, 30)),)),
        ("서울 뷰티위크 개최 ’25.8.28.~8.30. 참여기업 100개사", "’25.8.28.~8.30.",
         (days(2025, 8, 28, 30),)),
        ("서울영화센터 운영 1-12월 9월 시범운영, 11월 정식 개관", "1-12월", (year(2025),)),
        ("12월 말까지 연구용역", "12월 말까지", (W(OPEN, D(2025, 12, 31)),)),
        ("ㅇ 2024 하반기 서울경제진흥원 지도·점검(’24.12월)", "2024 하반기", (half(2024, 2),)),
        ("ㅇ 추경 예산안 국회 제출(4월4주)", "4월4주", (days(2025, 4, 22, 28),)),
        ("이 보도자료는 3월 6일 오전 11:15부터 보도할 수 있습니다.", "3월 6일", (day(2025, 3, 6),)),
        # a number glued to the next word belongs to it, not to the date
        ("‣  AI 등 이공계 석사 장학금 신설·확대 추진(’25년 6억 원)", "’25년", (year(2025),)),
        ("▪ AI 더빙 현지화 지원(’25 시범) : ’25년 6억원", "’25년", (year(2025),)),
        ("- 교내창업 단계별 확대(’24년 10% → ’25년 30%)", "’24년", (year(2024),)),
        ("* ’25년 4월, 4개 대학을 선정하여 지원", "’25년 4월", (month(2025, 4),)),
    ],
)  # fmt: skip
def test_find_when(line: str, expr: str, windows: tuple[Window, ...]) -> None:
    found = find_when(line, REF)
    assert found is not None
    text, parsed = found
    assert text == expr
    assert parsed.ok, parsed.unparsed
    assert parsed.windows == windows


@pytest.mark.parametrize(
    ("line", "expr", "recurrence"),
    [
        ("ㅇ 기업의 경영·창업 활동 제한하는 모든 규제 발굴·철폐 추진(연중)", "연중", "ongoing"),
        ("ㅇ 창업허브 성수 특화 프로그램 운영                       : 연중수시", "연중수시", "adhoc"),
        ("ㅇ SBA 고유사업 전반에 대한 관리감독 철저 : 연중지속", "연중지속", "ongoing"),
        ("ㅇ 규제철폐 정기 점검회의 운영(경제실장 주재, 매월)", "매월", "monthly"),
        ("ㅇ 경제실-SBA 직원제안 규제철폐 아이디어 발굴(분기별)", "분기별", "quarterly"),
        ("ㅇ 매출채권보험 지원실적 및 보완사항 점검(수시)", "수시", "adhoc"),
        ("ㅇ 온라인 플랫폼을 통한 기업·시민 참여형 규제 발굴(상시)", "상시", "ongoing"),
        ("서울 동행일자리 연중 취업 취약계층 11,500명 지원", "연중", "ongoing"),
    ],
)
def test_find_when_recurrence(line: str, expr: str, recurrence: str) -> None:
    found = find_when(line, REF)
    assert found is not None
    assert found[0] == expr
    assert found[1].recurrence == recurrence


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Ⅵ. 부서별 주요 업무보고",
        "ㅇ 서울 동행일자리 사업 : 12,980명 지원(市 1,452명, 區 11,228명, 투‧출기관 300명)",
        "경제정책과장 : 이병철☎2133-5210  혁신기술팀장 : 박지은☎5226  담당 : 김지영☎5223",
        "‘2025 메이커페어 서울’ 개최",
        "ㅇ 기존 사업 계속 지원 및 수시점검 강화",  # 계속/수시 as ordinary words
        "  - 계속과제 6개 개발 및 실증 지원",
        "운영 지원 21,327,731 104,400 21,432,131 20,186,392 3,032,947(14.2) 3,032,947(14.2)",
        "ㅇ 사업 목적 : AI 혁신 기술개발 기업에 집중 투자, 미래산업 경쟁력 강화",
        "- 위치/규모 : 서초구 양재동 224번지/연면적 3,813㎡ (기부채납동 지상 3~5층)",
        "설립 30년 이상 된 기업 대상, 최대 6개월 지원",
    ],
)
def test_find_when_none(line: str) -> None:
    assert find_when(line, REF) is None


def test_find_when_weak_word_alone_after_colon() -> None:
    assert find_when("ㅇ 시범 사업 운영 : 계속", REF) == ("계속", parse_when("계속", REF))


@pytest.mark.parametrize(
    ("line", "expr"),
    [
        ("ㅇ 행사 개최 : ’25.2.30", "’25.2.30"),
        ("ㅇ 개최 : ’25.3월~’25.2월", "’25.3월~’25.2월"),  # not the open range ’25.3월~
        ("ㅇ 개최 : ’25.3월 ~ ’25.2월 예정", "’25.3월 ~ ’25.2월"),
        ("ㅇ 개최 : ’25.13월", "’25.13월"),
    ],
)
def test_find_when_reports_an_unreadable_date_instead_of_a_fragment(line: str, expr: str) -> None:
    found = find_when(line, REF)
    assert found is not None
    text, parsed = found
    assert text == expr
    assert not parsed.ok and parsed.unparsed


def test_find_when_letter_spaced_month() -> None:
    found = find_when("ㅇ 행사 개최 : 9 월", REF)
    assert found is not None
    assert found[0] == "9 월"
    assert found[1].windows == (month(2025, 9),)


def test_find_when_uses_ref_year() -> None:
    found = find_when("ㅇ 특화캠퍼스 운영 : 4월 ~", 2026)
    assert found is not None
    assert found[1].windows == (W(D(2026, 4, 1), OPEN),)
