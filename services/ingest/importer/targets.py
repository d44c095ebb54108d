"""추진목표 tables: activity, period, target value with unit.

Rows look like `규제전문가 심화 컨설팅 1~12월 40건` or `서울뷰티허브 운영 ’25.2.~12. 뷰티기업 1,000개사 지원`.
Cells wrap: a line with no period and a number is a further target of the row above
(`관람객 40,000명`), a line with neither is the start of the next row's activity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.ingest.importer.dates import parse_when
from services.ingest.importer.model import Issue, Target
from services.ingest.importer.text import (
    collapse_letter_spacing,
    compact,
    normalize_line,
    squeeze,
    year_or_now,
)

# Longest first so `개 과제` wins over `개`, `개사` over `개`.
UNITS = ("개 과제", "개과제", "억원", "백만원", "천원", "조원", "만명", "천명", "개사", "개소",
         "개교", "개국", "개실", "개팀", "명", "회", "건", "개", "팀", "편", "%", "곳", "실", "社",
         "억", "호", "종", "대")
_UNIT_ALIASES = {"社": "개사", "개과제": "개 과제", "억": "억원"}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(set(UNITS), key=len, reverse=True))
# `3,000여 명`: 여 (about) may sit between the number and the unit.
_VALUE = re.compile(rf"(?<![\d.’'])(\d[\d,]*(?:\.\d+)?)\s*(?:여\s*)?({_UNIT_RE})(?![가-힣])")
_VALUE_LOOSE = re.compile(rf"(?<![\d.’'])(\d[\d,]*(?:\.\d+)?)\s*(?:여\s*)?({_UNIT_RE})")

_Y = r"(?:’\d{2}\.?\s*)"
_PERIOD = re.compile(
    r"(?<![\d가-힣])(?:"
    # ’25.1.~12. / ’25.8.28.~8.30.
    rf"{_Y}?\d{{1,2}}\s*\.\s*(?:\d{{1,2}}\s*\.\s*)?~\s*(?:{_Y}?\d{{1,2}}\s*\.(?:\s*\d{{1,2}}\s*\.)?)?"
    rf"|{_Y}?\d{{1,2}}\s*월?\s*[~\-∼]\s*\d{{1,2}}\s*월"  # 2~4월, 1-12월, ’25.1~12월, 4월~10월
    rf"|{_Y}?\d{{1,2}}\s*월(?:\s*,\s*\d{{1,2}}\s*월)*(?:\s*(?:초|중순|중|말))?"  # 9월, 2월, 9월
    r"|연중(?:수시|상시)?|상\s*[·․]?\s*하반기|상반기|하반기|반기별|분기별|매월|매년|상시|수시"
    r")(?![\d가-힣])")
_HEADER_WORDS = ("추진시기", "추진목표", "세부사업명", "주요내용", "물량")


@dataclass
class _Row:
    activity: str
    period_text: str
    line: int
    targets: list[tuple[str, str]] = field(default_factory=list)  # (label, target text)


def _is_header(text: str) -> bool:
    c = compact(text)
    return sum(w in c for w in _HEADER_WORDS) >= 2 or c in ("(개)", "(억원)")


def _value(text: str) -> tuple[Decimal | None, str | None]:
    """First number with a unit; `’25년` and years are not targets."""
    m = _VALUE.search(text) or _VALUE_LOOSE.search(text)
    if not m:
        return None, None
    unit = m.group(2)
    return Decimal(m.group(1).replace(",", "")), _UNIT_ALIASES.get(unit, unit)


def _rows(lines: Sequence[str], start: int, end: int) -> list[_Row]:
    rows: list[_Row] = []
    pending: list[str] = []
    for no in range(start, end + 1):
        s = squeeze(collapse_letter_spacing(normalize_line(lines[no - 1])))
        s = s.lstrip("·").strip()
        if not s or _is_header(s) or s.startswith(("ㅇ", "※", "*", "-", "<")):
            continue
        m = _PERIOD.search(s)
        if m and m.start() == 0 and rows and not pending and s[m.end():].strip():
            rows[-1].targets.append((s, s))  # `9월 XR페스티벌 개최`: a dated target of the row above
        elif m and (m.start() > 0 or pending):
            activity = squeeze(" ".join([*pending, s[: m.start()]]))
            rows.append(_Row(activity, squeeze(m.group(0)), no, [("", s[m.end():].strip(" ·"))]))
            pending = []
        elif rows and _value(s)[0] is not None:
            rows[-1].targets.append((s, s))  # `관람객 40,000명` continues the row above
        elif not re.fullmatch(r"[\d\s]+", s):
            pending.append(s)
            if len(pending) > 3:
                pending = pending[-3:]
    return rows


def parse_targets(lines: Sequence[str], start: int, end: int,
                  ref_year: int | None) -> tuple[list[Target], list[Issue]]:
    """Targets from the body of a 추진목표 block (1-based inclusive line range)."""
    targets: list[Target] = []
    issues: list[Issue] = []
    for row in _rows(lines, start, end):
        period = parse_when(row.period_text, year_or_now(ref_year))
        filled = [(label, text) for label, text in row.targets if text.strip()]
        for label, text in filled or [("", "")]:
            value, unit = _value(text)
            name = row.activity
            if label:
                hit = _VALUE.search(text) or _VALUE_LOOSE.search(text)
                lead = text[: hit.start()] if hit else text
                lead = lead.strip(" ()·")
                name = f"{row.activity} ({squeeze(lead)})" if lead else row.activity
            if value is None and text.strip():
                issues.append(Issue(row.line, "target without a number", text))
            targets.append(Target(name, row.period_text, period, value, unit, row.line))
    return targets, issues
