"""Contacts under program headings, and the text helpers they rely on."""

from __future__ import annotations

from services.ingest.importer.contacts import (
    division_typo_issues,
    find_contact_block,
    is_contact_line,
    normalize_phone,
    parse_contact_lines,
)
from services.ingest.importer.model import Contact
from services.ingest.importer.text import collapse_letter_spacing, normalize_line, normalize_name


def _people(lines: list[str]) -> list[tuple[str, str, str | None]]:
    block = parse_contact_lines(enumerate(lines, 1))
    return [(c.role, c.name, c.phone) for c in block.contacts]


# ---------------------------------------------------------------- text helpers


def test_normalize_line_fixes_spaces_dots_and_year_marks() -> None:
    assert normalize_line("조성\u3000및\u00a0운영") == "조성 및 운영"
    assert normalize_line("인재\u2024기술\u2027문화\u318d생활\uff65AI") == "인재·기술·문화·생활·AI"
    assert normalize_line("‘24년 과제수, '25.3월") == "’24년 과제수, ’25.3월"
    assert normalize_line("‘서울형 R&D 지원’") == "‘서울형 R&D 지원’"  # real quotes stay
    assert normalize_line("\uf000  규제철폐") == "   규제철폐"


def test_collapse_letter_spacing_only_for_runs_of_three() -> None:
    assert collapse_letter_spacing("경 제 정 책 과") == "경제정책과"
    assert collapse_letter_spacing("경 제 실 첨단산업과장") == "경제실 첨단산업과장"
    assert collapse_letter_spacing("일 자 리\n정 책 과") == "일자리\n정책과"
    assert collapse_letter_spacing("할 수 있도록 지원") == "할 수 있도록 지원"


def test_normalize_name_ignores_spacing_dots_and_punctuation() -> None:
    assert normalize_name("서울형 R&D 지원") == normalize_name("서울형R&D  지원")
    assert normalize_name("캠퍼스타운 기업성장센터 관리·운영") == normalize_name(
        "캠퍼스타운 기업성장센터 관리․운영"
    )
    assert normalize_name("경 제 정 책 과") == "경제정책과"
    assert normalize_name("‘서울 Vision 2030 펀드’") == "서울vision2030펀드"


# ---------------------------------------------------------------- phones


def test_normalize_phone_variants() -> None:
    assert normalize_phone("21 3 3 - 5 2 1 0") == "02-2133-5210"
    assert normalize_phone("2133-5210") == "02-2133-5210"
    assert normalize_phone("02-2133-5210") == "02-2133-5210"
    assert normalize_phone("5 2 3 0") == "02-2133-5230"
    assert normalize_phone("545 6", "02-6734") == "02-6734-5456"
    assert normalize_phone("031-123-4567") == "031-123-4567"
    assert normalize_phone("12") is None


# ---------------------------------------------------------------- blocks


def test_one_line_block_with_extensions() -> None:
    line = "경제정책과장 :  이병철☎2133-5210 혁신기술팀장 :  박지은☎5226 담당 :  김지영☎5223"
    block = parse_contact_lines([(752, line)])
    assert block.contacts == [
        Contact("과장", "이병철", "02-2133-5210", "경제정책과", None, 752),
        Contact("팀장", "박지은", "02-2133-5226", None, "혁신기술팀", 752),
        Contact("담당", "김지영", "02-2133-5223", None, None, 752),
    ]
    assert (block.division, block.team, block.office) == ("경제정책과", "혁신기술팀", None)


def test_letter_spaced_digits_and_office_prefix() -> None:
    line = "경 제 실 첨단산업과장 : 정한섭 ☎2133-8731 첨단산업정책팀장: 안명희 ☎8732 담당:최경화 ☎8733"
    block = parse_contact_lines([(17, line)])
    assert block.office == "경제실"
    assert block.division == "첨단산업과"
    assert _people([line]) == [
        ("과장", "정한섭", "02-2133-8731"),
        ("팀장", "안명희", "02-2133-8732"),
        ("담당", "최경화", "02-2133-8733"),
    ]
    spaced = "경제정책과장 : 이병철☎21 3 3 - 5 2 1 0  로봇과학팀장 : 유상선☎5 2 3 0  담당 :문소윤☎52 3 9"
    assert _people([spaced]) == [
        ("과장", "이병철", "02-2133-5210"),
        ("팀장", "유상선", "02-2133-5230"),
        ("담당", "문소윤", "02-2133-5239"),
    ]


def test_extension_takes_the_exchange_of_the_division_head() -> None:
    lines = ["기획과장 : 홍길동 ☎6360-4100 총무팀장 : 김철수☎4101", "담당 : 이영희☎4102"]
    assert [p for _, _, p in _people(lines)] == ["02-6360-4100", "02-6360-4101", "02-6360-4102"]
    # no full number anywhere: the city hall exchange
    assert _people(["총무팀장 : 김철수☎4101"]) == [("팀장", "김철수", "02-2133-4101")]


def test_block_over_several_lines_with_dropped_labels() -> None:
    lines = [
        "금융투자과장 : 천세은 ☎2133-8547 금융투자정책팀장 : 서정선☎4762 담당 : 이준환☎4762, 반가운☎4824",
        "투자유치팀장     : 이근하☎4760   정상운☎4763, 나영균☎4769",
        "      장  성☎9212  ",
    ]
    assert _people(lines) == [
        ("과장", "천세은", "02-2133-8547"),
        ("팀장", "서정선", "02-2133-4762"),
        ("담당", "이준환", "02-2133-4762"),
        ("담당", "반가운", "02-2133-4824"),
        ("팀장", "이근하", "02-2133-4760"),
        ("담당", "정상운", "02-2133-4763"),
        ("담당", "나영균", "02-2133-4769"),
        ("담당", "장성", "02-2133-9212"),
    ]


def test_repeated_phone_without_name_is_ignored_and_other_numbers_flagged() -> None:
    block = parse_contact_lines([(1, "첨단산업과장 : 정한섭☎2133-8731 ☎2133-8731 담당 : 최경화☎8733")])
    assert [(c.name, c.phone) for c in block.contacts] == [
        ("정한섭", "02-2133-8731"),
        ("최경화", "02-2133-8733"),
    ]
    assert block.issues == []
    odd = parse_contact_lines([(3, "첨단산업과장 : 정한섭☎2133-8731 ☎2133-9999")])
    assert [i.reason for i in odd.issues] == ["phone without a name: 2133-9999"]


def test_team_label_without_head_and_other_exchange() -> None:
    lines = [
        "산업입지과장 : 한경미 ☎2133-8460 산업단지1팀장      : 권미경☎8468",
        "G밸리산업박물관팀 : 정붓샘 ☎6734-6908",
        "      석민정 ☎6734-6904",
    ]
    block = parse_contact_lines(enumerate(lines, 1))
    museum = block.contacts[2]
    assert (museum.role, museum.name, museum.team, museum.phone) == (
        "담당",
        "정붓샘",
        "G밸리산업박물관팀",
        "02-6734-6908",
    )
    assert block.contacts[3].phone == "02-6734-6904"


def test_press_release_style_without_phone_glyph() -> None:
    lines = [
        "담당부서 : 경제실 경제정책과 경제정책과장 이병철 2133-5210",
        "혁신기술팀장 박지은 2133-5226",
        "담 당 자 김지영 2133-5223",
    ]
    assert all(is_contact_line(x) for x in lines)
    block = parse_contact_lines(enumerate(lines, 1))
    assert (block.office, block.division) == ("경제실", "경제정책과")
    assert [(c.role, c.name, c.phone) for c in block.contacts] == [
        ("과장", "이병철", "02-2133-5210"),
        ("팀장", "박지은", "02-2133-5226"),
        ("담당", "김지영", "02-2133-5223"),
    ]


def test_contact_without_phone_and_other_titles() -> None:
    block = parse_contact_lines([(5, "민원과장 : 김하나  주무관 : 박둘☎1234")])
    assert [(c.role, c.name, c.phone) for c in block.contacts] == [
        ("과장", "김하나", None),
        ("주무관", "박둘", "02-2133-1234"),
    ]


def test_find_contact_block_stops_at_first_other_line() -> None:
    lines = [
        "2 제목",
        "일자리정책과장 : 조혜정 ☎2133-5445 동행일자리팀장 :  안동주☎545 6",
        "",
        "매력일자리팀장 :  박용성☎546 7",
        "담당 : 황인숙☎5459",
        "      이상훈☎5461",
        "",
        "□ 사업개요",
        "ㅇ 담당 : 누구☎1111",
    ]
    block = find_contact_block(lines, 1)
    assert block is not None
    assert [c.name for c in block.contacts] == ["조혜정", "안동주", "박용성", "황인숙", "이상훈"]
    assert block.contacts[1].phone == "02-2133-5456"
    assert (block.first_line, block.last_line) == (2, 6)
    assert find_contact_block(lines, 7) is None


def test_division_typo_kept_and_flagged() -> None:
    block = parse_contact_lines([(9, "창업정첵과장 : 김정범 ☎2133-4750 창업투자팀장 : 허지숙☎4772")])
    assert block.division == "창업정첵과"  # printed name is kept
    issues = division_typo_issues(block.contacts, ["창업정책과", "창업정책과", "창업정첵과"])
    assert [(i.line, i.reason) for i in issues] == [
        (9, "division 창업정첵과 looks like a typo of 창업정책과")
    ]
    assert division_typo_issues(block.contacts, ["창업정첵과"]) == []


def test_never_invents_a_division() -> None:
    block = parse_contact_lines([(1, "혁신기술팀장 : 박지은☎5226 담당 : 김지영☎5223")])
    assert block.division is None
    assert all(c.division is None for c in block.contacts)
