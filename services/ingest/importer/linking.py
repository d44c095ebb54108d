"""Pure rules that link a detail section's budget rows to the 세부사업 of record (no I/O).

The 예산현황 summary table of a business report lists the 세부사업 of record (백만원). Each
program section prints its own execution table (천원) whose rows are either that 세부사업
again (same name, or same amount under a near-duplicate name), or something below it: a
sub-item (`…지원(R&D지원센터 공사비)`), an event funded through an 출연금 (`로봇쇼(서울경제진흥원
출연금)`), or several rows that together make the 세부사업 (`서울영화센터 건립` + `서울영화센터
운영` = `서울영화센터 건립 및 운영`). These helpers decide which, from names and amounts only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.ingest.importer.text import normalize_line, normalize_name

#: Words too common in program names to say two names are about the same thing.
GENERIC_WORDS = frozenset({"서울", "서울시", "운영", "지원", "사업", "조성", "추진", "활성화", "육성", "및", "개최",
                           "구축", "관리", "기반", "산업", "센터"})
#: Above this many candidate rows only small subsets are tried (2^n grows fast; tables are short).
MAX_EXHAUSTIVE = 14


def half_unit(unit_won: int) -> int:
    """A printed figure is the exact one rounded to the unit: they differ by at most half of it."""
    return unit_won // 2


def base_and_parens(name: str) -> tuple[str, list[str]]:
    """`홍릉 일대 …지원(R&D지원센터 공사비)` -> (`홍릉일대…지원`, [`rd지원센터공사비`]), normalised."""
    text = normalize_line(name)
    parens = [normalize_name(p) for p in re.findall(r"[(（]([^()（）]*)[)）]", text)]
    base = re.sub(r"[(（][^()（）]*[)）]", "", text)
    return normalize_name(base), [p for p in parens if p]


def words(name: str) -> set[str]:
    """The telling words of a name (two or more characters, not generic)."""
    found = re.split(r"[\s()（）·,\[\]]+", normalize_line(name))
    return {w for w in found if len(w) >= 2 and w not in GENERIC_WORDS}


def close(a: int | None, b: int | None, tolerance: int) -> bool:
    """Both known and within tolerance; two unknowns agree, one unknown does not."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance


def sub_item_of(name: str, record_key: str) -> str | None:
    """How `name` sits below the record named `record_key`, by its name alone, or None:
    `sub-item` when it is the record's name with a qualifier in brackets, `funded-through`
    when the bracket names the record (an event paid from an 출연금)."""
    base, parens = base_and_parens(name)
    if base and base == record_key and parens:
        return "sub-item"
    if any(p == record_key or (p.startswith(record_key) and len(p) - len(record_key) <= 2) for p in parens):
        return "funded-through"
    return None


@dataclass(frozen=True)
class Amounts:
    """One candidate row for a sum: its index in the caller's list, 본예산 and 예산현액."""

    index: int
    original: int
    current: int | None


def subsets_summing_to(rows: Sequence[Amounts], original: int, current: int | None, tolerance: int,
                       min_size: int) -> list[tuple[int, ...]]:
    """Every subset (at least `min_size` rows) whose 본예산 and 예산현액 sum to the targets within
    tolerance; at most two are returned (two already means ambiguous)."""
    found: list[tuple[int, ...]] = []
    limit = len(rows) if len(rows) <= MAX_EXHAUSTIVE else 3
    for size in range(max(min_size, 1), limit + 1):
        for combo in itertools.combinations(rows, size):
            if abs(sum(r.original for r in combo) - original) > tolerance:
                continue
            known = current is not None and all(r.current is not None for r in combo)
            if known and abs(sum(r.current or 0 for r in combo) - (current or 0)) > tolerance:
                continue
            found.append(tuple(r.index for r in combo))
            if len(found) > 1:
                return found
    return found
