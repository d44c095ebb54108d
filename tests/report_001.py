"""001's 예산현황 table (’25. 1. 31. 기준, 백만원), typed once from the report for every test that
compares what the system shows with it (lines 103-280 of the extraction)."""

from __future__ import annotations

#: 과 → 소계 as printed: (본예산, 예산현액, 집행액), 백만원.
SUBTOTALS: dict[str, tuple[int, int, int]] = {
    "경제정책과": (120_664, 120_809, 183),
    "일자리정책과": (252_628, 252_957, 27_360),
    "창업정책과": (71_880, 71_912, 542),
    "대학협력과": (69_457, 69_541, 3_230),
    "금융투자과": (25_026, 25_066, 2_374),
    "창조산업과": (44_128, 56_546, 7_756),
    "뷰티패션산업과": (34_706, 35_367, 2_530),
    "첨단산업과": (42_690, 42_690, 4_659),
    "산업입지과": (7_721, 7_863, 596),
}
#: 과 → how many 세부사업 rows the table lists under it (each rounded on its own).
ROWS: dict[str, int] = {"경제정책과": 15, "일자리정책과": 20, "창업정책과": 18, "대학협력과": 8, "금융투자과": 12,
                        "창조산업과": 15, "뷰티패션산업과": 15, "첨단산업과": 7, "산업입지과": 12}
#: the 계: 본예산, 예산현액, 집행액 (백만원) and 집행률 (%) as printed.
TOTAL = (668_901, 682_752, 49_232, "7.2")
