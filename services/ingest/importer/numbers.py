"""Numbers as Korean government tables and prose print them.

Pure functions, no I/O, no floats: values are Decimal in the unit printed, money is int 원.
Quirks handled: thousands commas, zero printed as a dash (often beside U+3000), negatives as
`△9`/`▲9`/`-9`, footnote digits glued to a number (`341)` = 34, footnote 1), rates in parentheses
glued to an amount (`3,032,947(14.2)`) or alone (`(0.0)`), a comma used as the decimal point in
rates (`(21,0)`), and letter-spaced numbers (`1 , 2 3 4`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Characters that print "zero / nothing" in a table cell.
ZERO_DASHES = "-－‐‑–—―−"
NEGATIVE_MARKS = "△▲"
_BLANKS = "\u3000\u00a0\u2002\u2003\u2009\u200b\ufeff"

UNIT_MULTIPLIERS: dict[str, int] = {
    "원": 1,
    "천원": 1_000,
    "만원": 10_000,
    "백만원": 1_000_000,
    "천만원": 10_000_000,
    "억원": 100_000_000,
    "십억원": 1_000_000_000,
    "조원": 1_000_000_000_000,
}

_NUM = r"\d+(?:,\d+)*(?:\.\d+)?"
_RATE = r"\d+(?:[.,]\d+)?"
# One table cell: optional sign, amount or dash, optional glued "(rate)" or footnote "1)".
_CELL_RE = re.compile(
    rf"^(?P<sign>[{NEGATIVE_MARKS}]|-(?=\d))?"
    rf"(?:(?P<num>{_NUM})|(?P<dash>[{ZERO_DASHES}]))"
    rf"(?:\((?P<rate>{_RATE})\)|(?P<pct>%))?$"
)
_RATE_ONLY_RE = re.compile(rf"^\((?P<rate>{_RATE})\)$")
_FOOTNOTE_RE = re.compile(rf"^(?P<sign>[{NEGATIVE_MARKS}])?(?P<num>{_NUM}?)(?P<note>\d)\)$")
_GROUPED_RE = re.compile(r"^\d{1,3}(?:,\d{3})*(?:\.\d+)?$|^\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class Cell:
    """One numeric table cell as printed."""

    value: Decimal | None  # None for a rate printed on its own, e.g. "(0.0)"
    rate: Decimal | None = None  # glued "(14.2)" or the rate of a rate-only cell
    footnote: int | None = None
    percent: bool = False  # printed with "%" (a rate column)
    irregular: bool = False  # digit grouping looks wrong, e.g. "1,51362": value kept, doubt it
    text: str = ""

    @property
    def rate_only(self) -> bool:
        return self.value is None


def normalize_blanks(text: str) -> str:
    """Turn ideographic and other odd spaces into plain spaces (keeps their count)."""
    return "".join(" " if ch in _BLANKS else ch for ch in text)


def parse_rate(text: str) -> Decimal | None:
    """`14.2`, `(14.2)`, `(21,0)` (comma as decimal point), `8.89%` -> Decimal percent."""
    t = normalize_blanks(text).strip().strip("()%").strip()
    m = re.fullmatch(r"(\d+)(?:[.,](\d{1,2}))?", t) or re.fullmatch(r"(\d+)\.(\d+)", t)
    if not m:
        return None
    return Decimal(m.group(1) + ("." + m.group(2) if m.group(2) else ""))


def _decimal(digits: str) -> tuple[Decimal, bool]:
    """Digits with thousands commas -> (value, irregular grouping?)."""
    irregular = _GROUPED_RE.match(digits) is None
    return Decimal(digits.replace(",", "")), irregular


def parse_cell(token: str) -> Cell | None:
    """One whitespace-free token -> Cell, or None if it is not a number."""
    t = normalize_blanks(token).strip()
    if not t:
        return None
    rate_only = _RATE_ONLY_RE.match(t)
    if rate_only:
        return Cell(value=None, rate=parse_rate(rate_only.group("rate")), text=t)
    m = _CELL_RE.match(t)
    if m:
        return _cell_from_match(m, t)
    note = _FOOTNOTE_RE.match(t)
    if note and note.group("num"):
        value, irregular = _decimal(note.group("num"))
        if note.group("sign"):
            value = -value
        return Cell(value=value, footnote=int(note.group("note")), irregular=irregular, text=t)
    return None


def _cell_from_match(m: re.Match[str], t: str) -> Cell:
    if m.group("dash"):
        value, irregular = Decimal(0), False
    else:
        value, irregular = _decimal(m.group("num"))
    if m.group("sign"):
        value = -value
    rate = parse_rate(m.group("rate")) if m.group("rate") else None
    return Cell(value=value, rate=rate, percent=bool(m.group("pct")), irregular=irregular, text=t)


def parse_number(text: str) -> Decimal | None:
    """A single printed number -> Decimal (dash -> 0, `△9` -> -9, `341)` -> 34); else None."""
    cell = parse_cell(join_spaced_digits(normalize_blanks(text)).strip())
    return cell.value if cell is not None else None


def join_spaced_digits(text: str) -> str:
    """Undo letter-spacing inside numbers: `4 1 , 1 0 6` -> `41,106`.

    Only runs of single-character digit/comma tokens that contain a comma are joined, so
    neighbouring one-digit cells (`1 1 - 2`) stay separate.
    """

    def join(m: re.Match[str]) -> str:
        joined = m.group(0).replace(" ", "")
        return joined if re.fullmatch(r"\d{1,3}(?:,\d{3})+", joined) else m.group(0)

    return re.sub(
        r"(?<!\S)[\d,](?: [\d,])+(?!\S)", lambda m: join(m) if "," in m.group(0) else m.group(0), text
    )


def split_trailing_cells(line: str) -> tuple[str, list[Cell]]:
    """Split `name  1,234 - 1,234(0.0)` into the text before the numbers and the cells.

    The text keeps its original spacing (letter-spacing is undone later by the caller).
    """
    prepared = join_spaced_digits(normalize_blanks(line.rstrip("\n")))
    tokens = list(re.finditer(r"\S+", prepared))
    cells: list[Cell] = []
    cut = len(prepared)
    for tok in reversed(tokens):
        cell = parse_cell(tok.group(0))
        if cell is None:
            break
        cells.append(cell)
        cut = tok.start()
    cells.reverse()
    return prepared[:cut].rstrip(), cells


# ---------------------------------------------------------------- units and captions


def unit_multiplier(unit: str) -> int | None:
    return UNIT_MULTIPLIERS.get(re.sub(r"\s+", "", unit))


def to_won(value: Decimal | int, unit: str) -> int:
    """Exact conversion to 원. Raises TypeError for a float, ValueError for an unknown unit."""
    if isinstance(value, float):  # floats would make money inexact
        raise TypeError("money must be Decimal or int, not float")
    multiplier = unit_multiplier(unit)
    if multiplier is None:
        raise ValueError(f"unknown money unit: {unit!r}")
    won = Decimal(value) * multiplier
    return int(won.to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class UnitCaption:
    unit: str  # money unit, e.g. "천원"
    as_of: date | None
    text: str


_CAPTION_UNIT_RE = re.compile(
    r"단\s*위\s*[:：]?\s*(조\s*원|십\s*억\s*원|억\s*원|천\s*만\s*원|백\s*만\s*원|만\s*원|천\s*원|원)"
)
_AS_OF_RE = re.compile(
    r"[’‘'`]?\s*(?P<y>\d{4}|\d{2})\s*[.년]\s*(?P<m>\d{1,2})\s*[.월]\s*(?P<d>\d{1,2})\s*[.일]?\s*(?:현재|기준)"
)


def parse_as_of(text: str) -> date | None:
    """`’25. 1 .31. 기준` / `2025.1.31.기준` -> date(2025, 1, 31); None if absent or invalid."""
    m = _AS_OF_RE.search(normalize_blanks(text))
    if not m:
        return None
    year = int(m.group("y"))
    year = year + 2000 if year < 100 else year
    try:
        return date(year, int(m.group("m")), int(m.group("d")))
    except ValueError:
        return None


def parse_unit_caption(text: str) -> UnitCaption | None:
    """`(단위: 천원, ’25.1.31. 기준)` / `(’24. 12. 19. 기준, 단위: 억원)` -> UnitCaption."""
    m = _CAPTION_UNIT_RE.search(normalize_blanks(text))
    if not m:
        return None
    return UnitCaption(unit=re.sub(r"\s+", "", m.group(1)), as_of=parse_as_of(text), text=text.strip())


# ---------------------------------------------------------------- money in prose

_SMALL_FACTORS = {"십": 10, "백": 100, "천": 1_000}
_BIG_FACTORS = {"만": 10_000, "억": 100_000_000, "조": 1_000_000_000_000}
# One "number + unit" part: 41,106백만, 5천억, 2조, 14.5억; a money phrase is one or more parts
# (`1조 2,000억원`) optionally followed by 원.
_PART = rf"(?P<n>{_NUM})\s*(?P<small>[십백천])?\s*(?P<big>[만억조])"
_MONEY_RE = re.compile(
    rf"(?P<sign>[{NEGATIVE_MARKS}])?(?P<body>(?:{_NUM}\s*[십백천]?\s*[만억조]\s*)+)(?P<won>원)?"
    rf"|(?P<sign2>[{NEGATIVE_MARKS}])?(?P<plain>{_NUM})\s*(?P<small2>[십백천]?)\s*원"
)
# Counters that follow 만/억 in non-money phrases (3만㎡, 1억명).
_NOT_MONEY_AFTER = re.compile(
    r"^\s*(?:명|개|㎡|m|km|건|회|톤|평|장|대|가구|세대|호|석|주|권|시간|배"  # counters
    r"|\$|달러|불|유로|엔|위안|USD)"  # foreign currencies are not 원
)


@dataclass(frozen=True)
class MoneyMatch:
    start: int
    end: int
    won: int
    text: str


def _body_to_won(body: str) -> int | None:
    total = Decimal(0)
    for part in re.finditer(_PART, body):
        try:
            number = Decimal(part.group("n").replace(",", ""))
        except InvalidOperation:
            return None
        factor = _SMALL_FACTORS.get(part.group("small") or "", 1) * _BIG_FACTORS[part.group("big")]
        total += number * factor
    return int(total.to_integral_value(rounding=ROUND_HALF_UP))


def _is_article_or_counter(text: str, m: re.Match[str]) -> bool:
    """`제5조` is a law article; `3만㎡` and `672억$` are not 원."""
    if text[: m.start()].endswith("제") and m.group("body").rstrip().endswith("조") and not m.group("won"):
        return True
    return not m.group("won") and _NOT_MONEY_AFTER.match(text[m.end() :]) is not None


def find_money(text: str) -> list[MoneyMatch]:
    """Money statements in prose: `41,106백만원`, `5천억`, `27억원`, `1조 2,000억원`, `500원`."""
    found: list[MoneyMatch] = []
    clean = normalize_blanks(text)
    for m in _MONEY_RE.finditer(clean):
        if m.group("body") is not None:
            if _is_article_or_counter(clean, m):
                continue
            won = _body_to_won(m.group("body"))
            negative = bool(m.group("sign"))
        else:
            number = Decimal(m.group("plain").replace(",", ""))
            won = int(number * _SMALL_FACTORS.get(m.group("small2") or "", 1))
            negative = bool(m.group("sign2"))
        if won is None:
            continue
        found.append(MoneyMatch(m.start(), m.end(), -won if negative else won, m.group(0).strip()))
    return found


def parse_money(text: str) -> int | None:
    """The first money amount in `text`, in 원; None when there is none."""
    found = find_money(text)
    return found[0].won if found else None
