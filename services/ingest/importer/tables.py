"""Budget tables of Korean government reports -> BudgetTable / SupplementaryRow, checked.

Tables are found by their header rows (사업명 / 세부사업 / 부서명 followed by column labels), so the
heading text may vary. Columns are mapped from the header as printed (two-level headers such as
`’25년 예산` over `본예산(a) 이월 등(b) 예산현액` are expanded in place), never from a fixed order.
Rows may wrap over several lines, carry rates on the next line, be letter-spaced, or be split
by page breaks that repeat the caption and header. Values stay in the table unit until the
table is complete (the unit caption can come after the table) and are then converted to 원.

Every 소계/계/합계 is checked against the rows it covers; a table that does not add up is still
returned as printed, with the failed check and its likely cause. Nothing here raises on odd
input: unusable lines become Issues.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from services.ingest.importer.model import (
    BudgetRow,
    BudgetTable,
    InlineAmount,
    Issue,
    NationalRow,
    Reconciliation,
    SupplementaryRow,
)
from services.ingest.importer.numbers import (
    Cell,
    find_money,
    normalize_blanks,
    parse_number,
    parse_unit_caption,
    split_trailing_cells,
    to_won,
    unit_multiplier,
)

# ---------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    key: str  # BudgetRow attribute, or an `extra` key for 추경 columns
    label: str  # as used in reconciliations
    kind: str  # "amount" | "amount_rate" (rate may be glued / on next line) | "rate"


COLUMNS: dict[str, Column] = {
    c.key: c
    for c in (
        Column("original", "본예산", "amount"),
        Column("carried_over", "이월 등", "amount"),
        Column("current", "예산현액", "amount"),
        Column("previous_final", "전년도 최종예산", "amount"),
        Column("committed", "원인행위액", "amount_rate"),
        Column("spent", "지출액", "amount_rate"),
        Column("spent_rate", "집행률", "rate"),
        Column("proposed", "추경예산(안)", "amount"),
        Column("before", "기정예산", "amount"),
        Column("increase", "증가액", "amount"),
    )
}
_EXTRA_KEYS = ("proposed", "before", "increase")  # stored in BudgetRow.extra under their label
_BUDGET_GROUP = "@budget"  # `’25년 예산` / `2025년도`: a group over 본예산 … 예산현액, or a column
_EXEC_GROUP = "@exec"  # `집행액 및 집행률(%)`: a group over 원인행위액, 지출액
_GROUP_CHILDREN = {
    _BUDGET_GROUP: ("original", "carried_over", "current"),
    _EXEC_GROUP: ("committed", "spent"),
}

# Alternatives are tried in order at each position of the compacted header text, so longer
# labels come before the bare `예산` they contain.
_HEADER_TOKENS: list[tuple[str, str]] = [
    (r"(?:\d{2,4}년도?)?최종예산", "previous_final"),
    (r"추경예산(?:\(안\))?", "proposed"),
    (r"기정(?:예산)?액?(?:\([A-Za-z]\))?", "before"),
    (r"증가액|증감액?", "increase"),
    (r"본예산(?:\([A-Za-z]\))?", "original"),
    (r"이월(?:등)?(?:\([A-Za-z]\))?", "carried_over"),
    (r"예산현액(?:\([^)]*\))?", "current"),
    (r"원인행위액?(?:\(집행률\))?", "committed"),
    (r"지출액(?:\(집행률\))?", "spent"),
    (r"집행액및집행률(?:\(%\))?", _EXEC_GROUP),
    (r"집행액(?:\([A-Za-z]\))?(?:\(지출액기준\))?", "spent"),
    (r"집행률(?:\([^)]*\))?", "spent_rate"),
    (r"운용계획액?", "original"),  # fund tables: the year's plan is their budget
    (r"(?P<year>\d{2,4})년도?(?:예산)?|예산", _BUDGET_GROUP),
]
_HEADER_RE = re.compile(
    "|".join(
        f"(?P<t{i}>{pattern.replace('?P<year>', f'?P<y{i}>')})"
        for i, (pattern, _) in enumerate(_HEADER_TOKENS)
    )
)
_NAME_COLUMN_RE = re.compile(r"사업명|세부사업|부서명?|내역사업|구분")


@dataclass(frozen=True)
class Header:
    columns: list[Column]
    has_division: bool
    fiscal_year: int | None
    first: int  # 0-based index of the first header line
    end: int  # 0-based index after the header block
    text: str


def compact(text: str) -> str:
    return re.sub(r"\s+", "", normalize_blanks(text)).replace("’", "").replace("‘", "").replace("'", "")


def _header_items(text: str) -> tuple[list[str], int | None]:
    """Column keys and groups in printed order, plus the budget year if the header names one."""
    items: list[str] = []
    year: int | None = None
    for m in _HEADER_RE.finditer(compact(text)):
        index = int(next(k for k, v in m.groupdict().items() if v is not None and k.startswith("t"))[1:])
        key = _HEADER_TOKENS[index][1]
        year_text = m.group(f"y{index}") if f"y{index}" in m.groupdict() else None
        if key == _BUDGET_GROUP and year_text and year is None:
            year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        items.append(key)
    return items, year


def _expand_groups(items: list[str]) -> list[str]:
    """Put each group's sub-columns where the group is printed (two-level headers)."""
    keys = list(items)
    for group, children in _GROUP_CHILDREN.items():
        if group not in keys:
            continue
        members = [k for k in keys if k in children]
        at = keys.index(group)
        if not members:  # a one-level `’25년 예산` is the year's budget itself
            keys[at] = "original" if group == _BUDGET_GROUP else "spent"
            continue
        keys = (
            [k for k in keys[:at] if k not in members]
            + members
            + [k for k in keys[at + 1 :] if k not in members]
        )
    result: list[str] = []
    for k in keys:
        if not k.startswith("@") and k not in result:
            result.append(k)
    return result


def _is_header_like(line: str) -> bool:
    """A line of column labels: no numbers of its own, mostly made of known labels."""
    text, cells = split_trailing_cells(line)
    c = compact(text)
    if cells or not c:
        return False
    covered = sum(len(m.group(0)) for m in _HEADER_RE.finditer(c)) + sum(
        len(m.group(0)) for m in _NAME_COLUMN_RE.finditer(c)
    )
    return bool(_HEADER_RE.search(c)) and covered * 2 >= len(c)


def read_header(lines: list[str], first: int) -> Header | None:
    """A header block starting at `first` (a line naming the 사업명/부서 column), or None."""
    if not _NAME_COLUMN_RE.search(compact(lines[first])) or split_trailing_cells(lines[first])[1]:
        return None
    block = [lines[first]]
    end = first + 1
    while end < len(lines) and end - first <= 8:
        line = lines[end]
        if not line.strip() or _is_header_like(line) or compact(line) in {"(%)", "(A)", "(B)", "(C)"}:
            if line.strip():
                block.append(line)
            end += 1
            continue
        break
    while end > first + 1 and not lines[end - 1].strip():
        end -= 1
    items, year = _header_items(" ".join(block))
    keys = _expand_groups(items)
    if len([k for k in keys if COLUMNS[k].kind != "rate"]) < 2:
        return None
    has_division = "부서" in compact(" ".join(block))
    return Header(
        [COLUMNS[k] for k in keys], has_division, year, first, end, " / ".join(b.strip() for b in block)
    )


# ---------------------------------------------------------------- names and line kinds


def undo_letter_spacing(text: str) -> str:
    """`서 울 영 화 센 터  건 립` -> `서울영화센터 건립`; ordinary names are left alone.

    Words are separated by two or more spaces; inside a word, single spaces are removed when
    most of its pieces are one character long (a letter-spaced word).
    """
    words = re.split(r"\s{2,}", normalize_blanks(text).strip())
    out: list[str] = []
    for word in words:
        pieces = word.split()
        singles = sum(1 for p in pieces if len(p) == 1)
        spaced = len(pieces) >= 3 and singles * 2 >= len(pieces) and all(len(p) <= 2 for p in pieces)
        out.append("".join(pieces) if spaced or (len(pieces) == 2 and singles == 2) else " ".join(pieces))
    return " ".join(w for w in out if w)


def join_name_parts(parts: list[str]) -> str:
    """Join the wrapped lines of a row name; no space before `(` or after `(`."""
    name = ""
    for part in (undo_letter_spacing(p) for p in parts):
        if not part:
            continue
        if not name or part.startswith(("(", ")")) or name.endswith("("):
            name += part
        else:
            name += " " + part
    return re.sub(r"\s+", " ", name).strip()


_DIVISION_RE = re.compile(r"^[가-힣A-Za-z]{2,12}(?:과|담당관|실|국|본부|사업소)$")
_OFFICE_RE = re.compile(r"^[가-힣]{1,8}(?:실|국|본부)$")
_SUBTOTAL_NAMES = {"소계"}
_TOTAL_NAMES = {"계", "합계", "총계", "총합계", "합"}
_BREAK_RE = re.compile(
    r"^(?:[□■◆◇○◦ㅇ∘•▶▷❍◎]|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ]|[①-⑳]|참\s*고|\d{1,2}\s*\.\s+\S|\d{1,2}\s+[^\d\s(,.)\-－△▲]"
    r"|-\s+[^\d\s\-－(])"
)
_NOTE_RE = re.compile(r"^(?:[*※]|주\s*\)|\d\)\s)")
_REASON_RE = re.compile(r"^[‣▸▹►]")
_TABLE_HEADING_RE = re.compile(r"집\s*행\s*현\s*황|예\s*산\s*현\s*황|운\s*용\s*현\s*황")
_HEADING_RE = re.compile(r"(예산|집행|추경|추가경정|기금).*(현황|내역|개요|계획)")


def division_label(text: str) -> str | None:
    """`경 제 정 책 과` / `뷰티패션산업과` alone on a line -> the division name."""
    name = undo_letter_spacing(text)
    if " " in name or len(name) < 3:
        return None
    return name if _DIVISION_RE.match(name) else None


def row_kind(name: str) -> str:
    c = compact(name)
    if c in _SUBTOTAL_NAMES:
        return "subtotal"
    if c in _TOTAL_NAMES:
        return "total"
    return "row"


def is_break(line: str) -> bool:
    """A line that cannot be part of a table body: a new section, bullet prose, contacts."""
    s = normalize_blanks(line).strip()
    return bool(_BREAK_RE.match(s)) or "☎" in s or bool(_TABLE_HEADING_RE.search(s))


# ---------------------------------------------------------------- rows under construction


@dataclass
class _Row:
    name: str
    line: int
    division: str | None
    kind: str
    cells: list[Cell] = field(default_factory=list)
    reason: str | None = None
    subs: list[tuple[str, int, list[Cell]]] = field(default_factory=list)

    def value_count(self) -> int:
        return sum(1 for c in self.cells if not c.rate_only)


@dataclass
class _Assigned:
    values: dict[str, Decimal]
    rates: dict[str, Decimal]
    short: bool


def _fold_rates(cells: list[Cell], line: int, issues: list[Issue]) -> list[Cell]:
    """Attach rate-only cells (`(0.0)` on the next line) to the value printed before them."""
    out: list[Cell] = []
    for cell in cells:
        if cell.rate_only:
            if out and out[-1].rate is None:
                out[-1] = replace(out[-1], rate=cell.rate)
            else:
                issues.append(Issue(line, "rate without an amount before it", cell.text))
            continue
        out.append(cell)
    return out


def assign_cells(row: _Row, columns: list[Column], issues: list[Issue]) -> _Assigned:
    """Map a row's cells to columns; short rows are aligned by rate-bearing cells and flagged."""
    cells = _fold_rates(row.cells, row.line, issues)
    if len(cells) > len(columns):
        issues.append(
            Issue(
                row.line,
                f"{len(cells)} values for {len(columns)} columns; extra values ignored",
                " ".join(c.text for c in cells),
            )
        )
        cells = cells[: len(columns)]
    short = len(cells) < len(columns)
    targets = list(range(len(cells)))
    if short:
        issues.append(
            Issue(
                row.line,
                f"row has {len(cells)} values for {len(columns)} columns; "
                "columns aligned by rates where possible, check for a column shift",
                " ".join(c.text for c in cells),
            )
        )
        targets = _align_short(cells, columns)
    values: dict[str, Decimal] = {}
    rates: dict[str, Decimal] = {}
    for cell, index in zip(cells, targets, strict=True):
        column = columns[index]
        value = cell.value if cell.value is not None else Decimal(0)
        if column.kind == "rate":
            rates[column.key] = value
            continue
        values[column.key] = value
        if cell.rate is not None:
            rates[column.key] = cell.rate
        if cell.irregular:
            issues.append(
                Issue(
                    row.line, f"irregular digit grouping in {column.label}; value read as {value}", cell.text
                )
            )
    return _Assigned(values, rates, short)


def _align_short(cells: list[Cell], columns: list[Column]) -> list[int]:
    """Cells with a glued rate go to the rate-bearing columns (from the right); others fill left."""
    rate_cols = [i for i, c in enumerate(columns) if c.kind == "amount_rate"]
    plain_cols = [i for i, c in enumerate(columns) if c.kind != "amount_rate"]
    rated = [i for i, c in enumerate(cells) if c.rate is not None]
    if not rated or len(rated) > len(rate_cols):
        return list(range(len(cells)))
    targets: dict[int, int] = dict(zip(rated, rate_cols[len(rate_cols) - len(rated) :], strict=True))
    plain = iter(plain_cols)
    for i in range(len(cells)):
        if i not in targets:
            targets[i] = next(plain, len(columns) - 1)
    return [targets[i] for i in range(len(cells))]


# ---------------------------------------------------------------- table body parser


@dataclass
class _TableState:
    header: Header
    heading_line: int  # 1-based
    unit: str | None
    as_of: date | None
    rows: list[_Row] = field(default_factory=list)
    open_row: _Row | None = None
    pending_name: list[str] = field(default_factory=list)
    pending_name_line: int | None = None
    pending_reason: list[str] = field(default_factory=list)
    division: str | None = None
    divisions_with_subtotal: set[str] = field(default_factory=set)
    text_only_run: int = 0


class _NewTable(Exception):
    """Raised inside the body parser when another table's header starts."""


class _BodyParser:
    """Feeds body lines into a table until something that is not the table."""

    def __init__(self, lines: list[str], state: _TableState, issues: list[Issue]) -> None:
        self.lines = lines
        self.s = state
        self.issues = issues

    @property
    def columns(self) -> list[Column]:
        return self.s.header.columns

    def run(self, start: int) -> int:
        """Parse from index `start`; return the index of the first line not in the table."""
        i = start
        while i < len(self.lines):
            if not self.feed(i):
                break
            i += 1
        self.close_row()
        return i

    def feed(self, i: int) -> bool:
        try:
            return self._feed(i)
        except _NewTable:
            return False

    def _feed(self, i: int) -> bool:
        line = normalize_blanks(self.lines[i])
        if not line.strip():
            return True
        if _TABLE_HEADING_RE.search(line):  # the next table's heading (often with its caption)
            return False
        caption = parse_unit_caption(line)
        if caption is not None and not split_trailing_cells(line)[1]:
            self.s.unit = self.s.unit or caption.unit
            self.s.as_of = self.s.as_of or caption.as_of
            return True
        if self._repeated_header(i):
            return True
        text, cells = split_trailing_cells(line)
        if text and is_break(text):
            return False
        if text and _NOTE_RE.match(text.strip()):
            self.issues.append(Issue(i + 1, "note inside a table, not used as a row", line.strip()))
            return True
        if cells:
            self.s.text_only_run = 0
            self.take_cells(i, text, cells)
            return True
        return self.take_text(i, text)

    def _repeated_header(self, i: int) -> bool:
        """Page breaks repeat the header: skip it when it matches ours.

        A different header is not skipped; it fails as a row and ends this table.
        """
        if _NAME_COLUMN_RE.search(compact(self.lines[i])) and read_header(self.lines, i) is not None:
            if not self._same_header(i):
                raise _NewTable
            return True
        if _is_header_like(self.lines[i]):
            items, _ = _header_items(self.lines[i])
            return bool(items) and (
                not _NAME_COLUMN_RE.search(compact(self.lines[i])) or self._same_header(i)
            )
        return _NAME_COLUMN_RE.fullmatch(compact(self.lines[i])) is not None

    def _same_header(self, i: int) -> bool:
        other = read_header(self.lines, i)
        return other is not None and [c.key for c in other.columns] == [c.key for c in self.columns]

    # -- text-only lines: division labels, wrapped names, reasons

    def take_text(self, i: int, text: str) -> bool:
        stripped = text.strip()
        if self.s.header.has_division and self._take_division(stripped):
            return True
        if _REASON_RE.match(stripped) or self.s.pending_reason:
            self.close_row()
            self.s.pending_reason.append(_REASON_RE.sub("", stripped).strip())
            return True
        self.close_row()
        self.s.text_only_run += 1
        if self.s.text_only_run > 5:  # prose after the table, not a wrapped row name
            self.s.pending_name = []
            return False
        if not self.s.pending_name:
            self.s.pending_name_line = i + 1
        self.s.pending_name.append(stripped)
        return True

    def _take_division(self, text: str) -> bool:
        pending = self.s.pending_name
        if pending and all(len(undo_letter_spacing(p).replace(" ", "")) <= 6 for p in pending):
            combined = division_label("".join(compact(undo_letter_spacing(p)) for p in [*pending, text]))
            if combined:
                self._set_division(combined)
                return True
        label = division_label(text)
        if label and not pending:
            self._set_division(label)
            return True
        return False

    def _set_division(self, name: str) -> None:
        self.close_row()
        self.s.division = name
        self.s.pending_name = []
        self.s.text_only_run = 0

    # -- lines with numbers

    def take_cells(self, i: int, text: str, cells: list[Cell]) -> None:
        stripped = text.strip()
        if _REASON_RE.match(stripped) and not self.s.pending_name and self.s.rows and self.s.open_row is None:
            self.s.rows[-1].subs.append((_REASON_RE.sub("", stripped).strip(), i + 1, cells))
            return
        if _REASON_RE.match(stripped) and self.s.open_row is not None and not self.s.pending_name:
            self.close_row()
            self.s.rows[-1].subs.append((_REASON_RE.sub("", stripped).strip(), i + 1, cells))
            return
        if (self.s.pending_reason or _REASON_RE.match(stripped)) and stripped:
            self.s.pending_reason.append(_REASON_RE.sub("", stripped).strip())
            stripped = ""
        if stripped or self.s.pending_name:
            self.start_row(i, stripped, cells)
            return
        row = self.s.open_row
        if row is not None and (row.value_count() < len(self.columns) or all(c.rate_only for c in cells)):
            row.cells.extend(cells)
            return
        self.issues.append(Issue(i + 1, "numbers without a row name", self.lines[i].strip()))

    def start_row(self, i: int, text: str, cells: list[Cell]) -> None:
        self.close_row()
        extra = sum(1 for c in cells if not c.rate_only) - len(self.columns)
        if extra > 0:  # leading numbers belong to the name (e.g. `서울 Vision 2030 …`)
            text = (text + " " + " ".join(c.text for c in cells[:extra])).strip()
            cells = cells[extra:]
        parts = self.s.pending_name + ([text] if text else [])
        line = self.s.pending_name_line if self.s.pending_name else i + 1
        if self.s.pending_name and text and row_kind(text) != "row":
            # `소계` printed beside a wrapped row name: the values are that row's (sub-items follow)
            parts = list(self.s.pending_name)
        division, name = self._split_division(parts)
        kind = row_kind(name)
        if kind == "row" and self._is_office_total(name):
            kind = "total"
        row = _Row(name=name, line=line or i + 1, division=division, kind=kind, cells=list(cells))
        if self.s.pending_reason:
            row.reason = " ".join(p for p in self.s.pending_reason if p)
        if kind == "subtotal":
            row.division = self._subtotal_division(i)
        self.s.pending_name, self.s.pending_reason, self.s.pending_name_line = [], [], None
        self.s.open_row = row

    def _split_division(self, parts: list[str]) -> tuple[str | None, str]:
        name = join_name_parts(parts)
        if self.s.header.has_division:
            c = compact(name)
            m = re.match(r"^(.{2,12}?(?:과|담당관))(소계|합계|계)$", c)
            if m:
                self.s.division = m.group(1)
                return m.group(1), m.group(2)
            first, _, rest = name.partition(" ")
            if rest and division_label(first):
                self.s.division = first
                return first, rest
        return self.s.division, name

    def _is_office_total(self, name: str) -> bool:
        """`경 제 실` above the first division of a table with a 부서 column is the office total."""
        return (
            self.s.header.has_division
            and self.s.division is None
            and not self.s.rows
            and bool(_OFFICE_RE.match(compact(name)))
        )

    def _subtotal_division(self, i: int) -> str | None:
        """Subtotals printed first in a merged 부서 cell can come out before the division label.

        When the current division already has its subtotal and the next text line is a
        division label, this subtotal belongs to that next division.
        """
        current = self.s.division
        if current is not None and current in self.s.divisions_with_subtotal:
            following = self._next_label(i + 1)
            if following is not None:
                current = following
        if current is not None:
            self.s.divisions_with_subtotal.add(current)
        return current

    def _next_label(self, j: int) -> str | None:
        while j < len(self.lines) and j < len(self.lines):
            text, cells = split_trailing_cells(self.lines[j])
            if text.strip():
                return division_label(text) if not cells else None
            j += 1
        return None

    def close_row(self) -> None:
        if self.s.open_row is not None:
            self.s.rows.append(self.s.open_row)
            self.s.open_row = None


# ---------------------------------------------------------------- building results


def _default_unit(kind: str) -> str:
    return "천원" if kind in {"execution", "fund"} else "백만원"


def _table_kind(header: Header, rows: list[_Row], heading: str) -> str:
    keys = {c.key for c in header.columns}
    if keys & set(_EXTRA_KEYS):
        return "supplementary"
    if header.has_division:
        return "summary"
    if not keys & {"carried_over", "current", "committed"} and (
        "기금" in heading or any("기금" in r.name for r in rows)
    ):
        return "fund"
    return "execution"


def _to_won_dict(values: dict[str, Decimal], unit: str) -> dict[str, int]:
    return {k: to_won(v, unit) for k, v in values.items()}


def _budget_row(row: _Row, assigned: _Assigned, unit: str) -> BudgetRow:
    won = _to_won_dict(assigned.values, unit)
    extra = {COLUMNS[k].label: won[k] for k in _EXTRA_KEYS if k in won}
    return BudgetRow(
        name=row.name,
        line=row.line,
        division=row.division,
        kind=row.kind,
        original=won.get("original"),
        carried_over=won.get("carried_over"),
        current=won.get("current"),
        committed=won.get("committed"),
        committed_rate=assigned.rates.get("committed"),
        spent=won.get("spent"),
        spent_rate=assigned.rates.get("spent")
        if "spent" in assigned.rates
        else assigned.rates.get("spent_rate"),
        previous_final=won.get("previous_final"),
        extra=extra,
    )


def column_value(row: BudgetRow, key: str) -> int | None:
    if key in _EXTRA_KEYS:
        return row.extra.get(COLUMNS[key].label)
    value = getattr(row, key)
    return value if isinstance(value, int) else None


def _check_row_identities(row: BudgetRow, unit_won: int, issues: list[Issue]) -> None:
    """본예산 + 이월 등 = 예산현액 and 기정예산 + 증가액 = 추경예산(안), within one unit."""
    pairs = [
        ("original", "carried_over", "current", "본예산 + 이월 등 ≠ 예산현액"),
        ("before", "increase", "proposed", "기정예산 + 증가액 ≠ 추경예산(안)"),
    ]
    for a, b, total, reason in pairs:
        va, vb, vt = column_value(row, a), column_value(row, b), column_value(row, total)
        if va is not None and vb is not None and vt is not None and abs(va + vb - vt) > unit_won:
            issues.append(Issue(row.line, f"{reason} ({va:,} + {vb:,} vs {vt:,} 원)", row.name))


def _supplementary_rows(
    rows: list[_Row], built: list[BudgetRow], unit: str, issues: list[Issue]
) -> list[SupplementaryRow]:
    out: list[SupplementaryRow] = []
    for raw, row in zip(rows, built, strict=True):
        if row.kind != "row":
            continue
        subs = [_sub_item(name, line, cells, unit, raw.division) for name, line, cells in raw.subs]
        parent_increase = column_value(row, "increase")
        if subs and parent_increase is not None:
            total = sum(s.increase or 0 for s in subs)
            if total != parent_increase:
                issues.append(
                    Issue(
                        row.line,
                        f"sub-items add up to {total:,} 원, row says {parent_increase:,} 원",
                        row.name,
                    )
                )
        out.append(
            SupplementaryRow(
                name=row.name,
                line=row.line,
                proposed=column_value(row, "proposed"),
                before=column_value(row, "before"),
                increase=parent_increase,
                division=row.division,
                reason=raw.reason,
                sub_items=subs,
            )
        )
    return out


def _sub_item(name: str, line: int, cells: list[Cell], unit: str, division: str | None) -> SupplementaryRow:
    """A `‣ item  1,450` line under a 추경 row: one value is its increase, three are all columns."""
    values = [to_won(c.value, unit) for c in cells if c.value is not None]
    if len(values) >= 3:
        return SupplementaryRow(name, line, values[0], values[1], values[2], division)
    return SupplementaryRow(name, line, None, None, values[-1] if values else None, division)


# ---------------------------------------------------------------- reconciliation

_AMOUNT_KEYS = (
    "original",
    "carried_over",
    "current",
    "previous_final",
    "committed",
    "spent",
    "proposed",
    "before",
    "increase",
)
CAUSE_MISSING_ROW = "a row is missing from the table"
CAUSE_DOCUMENT = "the document's own subtotal differs from its rows"
CAUSE_SHIFT = "column shift"


def _covered_rows(rows: list[BudgetRow], index: int) -> list[BudgetRow]:
    """The rows a subtotal/total at `index` adds up."""
    target = rows[index]
    plain = [r for r in rows if r.kind == "row"]
    if target.kind == "subtotal":
        if target.division is not None:
            return [r for r in plain if r.division == target.division]
        start = max((j for j in range(index) if rows[j].kind != "row"), default=-1) + 1
        return [r for r in rows[start:index] if r.kind == "row"]
    subtotals = [r for r in rows if r.kind == "subtotal"]
    covered_divisions = {s.division for s in subtotals if s.division is not None}
    return (
        subtotals + [r for r in plain if r.division is None or r.division not in covered_divisions]
        if subtotals
        else plain
    )


def reconcile(
    table_line: int, rows: list[BudgetRow], columns: list[Column], unit: str, short_lines: set[int]
) -> list[Reconciliation]:
    """Check every 소계/계/합계 of a table, per amount column, within per-row rounding."""
    unit_won = unit_multiplier(unit) or 1
    keys = [c.key for c in columns if c.key in _AMOUNT_KEYS]
    results: list[Reconciliation] = []
    for index, row in enumerate(rows):
        if row.kind == "row":
            continue
        covered = _covered_rows(rows, index)
        label = f"{row.division} 소계" if row.kind == "subtotal" and row.division else compact(row.name)
        tolerance = math.ceil(len(covered) / 2) * unit_won
        checks = []
        for key in keys:
            printed = column_value(row, key)
            if printed is None:
                continue
            computed = sum(column_value(r, key) or 0 for r in covered)
            checks.append((key, printed, computed))
        failing = [(k, p, c) for k, p, c in checks if abs(p - c) > tolerance]
        shifted = row.line in short_lines or any(r.line in short_lines for r in covered)
        for key, printed, computed in checks:
            ok = abs(printed - computed) <= tolerance
            cause = None if ok else _likely_cause(key, printed, checks, failing, covered, tolerance, shifted)
            results.append(
                Reconciliation(
                    table_line, row.line, label, COLUMNS[key].label, printed, computed, tolerance, ok, cause
                )
            )
    return results


def _likely_cause(
    key: str,
    printed: int,
    checks: list[tuple[str, int, int]],
    failing: list[tuple[str, int, int]],
    covered: list[BudgetRow],
    tolerance: int,
    shifted: bool,
) -> str:
    others = [c for k, _, c in checks if k != key]
    if shifted or (printed != 0 and any(abs(printed - c) <= tolerance for c in others)):
        return f"{CAUSE_SHIFT}: a value seems to sit in the wrong column"
    if not covered:
        return f"{CAUSE_MISSING_ROW}: no rows found for it"
    if len(failing) >= 2 and all(p > c for _, p, c in failing):
        return f"{CAUSE_MISSING_ROW}: the printed figure exceeds its rows in every failing column"
    return CAUSE_DOCUMENT


# ---------------------------------------------------------------- top level


def _find_context(lines: list[str], header_first: int, floor: int) -> tuple[int, str, int | None]:
    """(heading index, heading text, caption index) looking back from the header."""
    heading, caption = header_first, None
    for j in range(header_first - 1, max(floor, header_first - 15) - 1, -1):
        text = normalize_blanks(lines[j]).strip()
        if caption is None and parse_unit_caption(text) is not None:
            caption = j
        if _HEADING_RE.search(compact(text)) and not split_trailing_cells(text)[1]:
            heading = j
            break
    return heading, normalize_blanks(lines[heading]).strip(), caption


def _caption_above(lines: list[str], header: Header, floor: int) -> int | None:
    """A unit announced on the header's own lines (`□ … 현황 (단위: 백만원)` read into the header) or
    anywhere above the table since the previous one (`※ 이하 단위: 천원` under the section heading)."""
    for j in range(header.first, header.end):
        if parse_unit_caption(lines[j]) is not None:
            return j
    for j in range(header.first - 1, max(floor, header.first - 60) - 1, -1):
        if parse_unit_caption(lines[j]) is not None:
            return j
    return None


def _caption_after(lines: list[str], end: int) -> int | None:
    for j in range(end, min(len(lines), end + 4)):
        if parse_unit_caption(lines[j]) is not None:
            return j
    return None


def parse_tables(
    lines: list[str], ref_year: int | None
) -> tuple[list[BudgetTable], list[SupplementaryRow], list[Issue]]:
    """All budget tables of a document (`lines` = whole document, results 1-based)."""
    tables: list[BudgetTable] = []
    supplementary: list[SupplementaryRow] = []
    issues: list[Issue] = []
    i, floor = 0, 0
    while i < len(lines):
        header = _safe_header(lines, i)
        if header is None:
            i += 1
            continue
        end = _parse_one(lines, header, floor, ref_year, tables, supplementary, issues)
        i = floor = max(end, i + 1)
    return tables, supplementary, issues


def _safe_header(lines: list[str], i: int) -> Header | None:
    try:
        return read_header(lines, i)
    except (ValueError, IndexError, StopIteration):  # odd text must never stop the import
        return None


def _parse_one(
    lines: list[str],
    header: Header,
    floor: int,
    ref_year: int | None,
    tables: list[BudgetTable],
    supplementary: list[SupplementaryRow],
    issues: list[Issue],
) -> int:
    heading, heading_text, caption_at = _find_context(lines, header.first, floor)
    if caption_at is None:
        caption_at = _caption_above(lines, header, floor)
    caption = parse_unit_caption(lines[caption_at]) if caption_at is not None else None
    state = _TableState(
        header, heading + 1, caption.unit if caption else None, caption.as_of if caption else None
    )
    table_issues: list[Issue] = []
    end = _BodyParser(lines, state, table_issues).run(header.end)
    if not state.rows:
        issues.append(Issue(heading + 1, "table header without rows", header.text))
        return end
    after = _caption_after(lines, end) if state.unit is None else None
    if after is not None:
        late = parse_unit_caption(lines[after])
        state.unit, state.as_of = (late.unit, late.as_of) if late else (None, None)
    kind = _table_kind(header, state.rows, heading_text)
    unit = state.unit if state.unit and unit_multiplier(state.unit) else None
    if unit is None:
        unit = _default_unit(kind)
        table_issues.append(Issue(heading + 1, f"no money unit caption found; assumed {unit}", heading_text))
    built, short_lines = [], set()
    for raw in state.rows:
        assigned = assign_cells(raw, header.columns, table_issues)
        if assigned.short:
            short_lines.add(raw.line)
        row = _budget_row(raw, assigned, unit)
        _check_row_identities(row, unit_multiplier(unit) or 1, table_issues)
        built.append(row)
    table = BudgetTable(
        kind=kind,
        line=heading + 1,
        unit=unit,
        as_of=state.as_of,
        fiscal_year=header.fiscal_year or ref_year,
        rows=built,
        reconciliations=reconcile(heading + 1, built, header.columns, unit, short_lines),
    )
    tables.append(table)
    if kind == "supplementary":
        supplementary.extend(_supplementary_rows(state.rows, built, unit, table_issues))
    issues.extend(table_issues)
    return end


# ---------------------------------------------------------------- money in prose


def find_inline_amounts(lines: list[str], start: int, end: int) -> list[InlineAmount]:
    """Money statements in prose lines `start`..`end` (1-based, inclusive), e.g. `소요예산 : 1,375백만원`."""
    found: list[InlineAmount] = []
    for number in range(max(1, start), min(len(lines), end) + 1):
        text = normalize_blanks(lines[number - 1])
        previous_end = 0
        for money in find_money(text):
            found.append(InlineAmount(_label_before(text, previous_end, money.start), money.won, number))
            previous_end = money.end
    return found


def _label_before(text: str, previous_end: int, start: int) -> str:
    """The words that name an amount: text since the last delimiter, else before the colon."""
    before = text[previous_end:start]
    label = re.split(r"[:：(（,/]", before)[-1].strip()
    if not re.search(r"[가-힣A-Za-z]", label):
        label = before.rsplit(":", 1)[0] if ":" in before else before
        label = (
            re.split(r"[(（,/]", label)[-1] if re.search(r"[가-힣A-Za-z]", label.split("(")[-1]) else label
        )
    label = re.sub(r"^[\s\-ㅇ○◦∘•·‣□※*➊-➓]+", "", label).strip(" :：()（）")
    return re.sub(r"\s+", " ", label)


# ---------------------------------------------------------------- national plan tables

_NUMBER_TOKEN = re.compile(r"^△?-?[\d,]*\d$")
_NATIONAL_COLUMNS = (("본예산", "본예산"), ("추경", "추경"), ("정부안", "정부안"), ("합계", "합계"))


def _national_groups(text: str) -> list[tuple[str, list[str]]]:
    """`AI 챔피언 프로젝트 지원 0 100 100 World Best LLM 데이터 활용 지원 0 300 300` ->
    [(name, [0, 100, 100]), (name, [0, 300, 300])]: names run until three numbers in a row."""
    groups: list[tuple[str, list[str]]] = []
    name: list[str] = []
    numbers: list[str] = []
    for token in text.split():
        if _NUMBER_TOKEN.match(token) and name:
            numbers.append(token)
            if len(numbers) == 3:
                groups.append((" ".join(name), numbers))
                name, numbers = [], []
            continue
        if numbers:  # a number inside a name (`AI 2 단계`): part of the name after all
            name += numbers
            numbers = []
        name.append(token)
    return groups


def parse_national_tables(lines: list[str]) -> tuple[list[NationalRow], list[Issue]]:
    """The budget table of a national plan: `세부사업 … ’25년 예산` printed twice side by side, in 억원,
    each printed line holding two programs; `(내역사업)` rows belong to the 세부사업 above them in
    the same column; `계` closes it and is checked against the rows."""
    rows: list[NationalRow] = []
    issues: list[Issue] = []
    i = 0
    while i < len(lines):
        caption = parse_unit_caption(lines[i])
        window = " ".join(compact(x) for x in lines[i: i + 25])
        if caption is None or caption.unit != "억원" or window.count("세부사업") < 2:
            i += 1
            continue
        multiplier = unit_multiplier("억원") or 100_000_000
        headers = tuple(label for word, label in _NATIONAL_COLUMNS if word in window)[:3]
        parents: dict[int, str] = {}
        started = False
        j = i + 1
        while j < len(lines):
            text = normalize_blanks(lines[j]).strip()
            groups = _national_groups(text)
            if not groups:
                if started and text:
                    break
                j += 1
                continue
            started = True
            for col, (name, numbers) in enumerate(groups):
                amounts = tuple(to_won(parse_number(n) or Decimal(0), "억원") for n in numbers)
                if compact(name) in ("계", "합계", "총계"):
                    total = NationalRow("계", j + 1, amounts, headers, kind="total")
                    _check_national_total(total, rows, multiplier, issues)
                    rows.append(total)
                    continue
                parent = parents.get(col) if name.startswith("(") else None
                if not name.startswith("("):
                    parents[col] = name
                clean = name.strip("() ").strip()
                if len(amounts) == 3 and amounts[0] + amounts[1] != amounts[2]:
                    issues.append(Issue(j + 1, "national table row: 본예산 + 추경 ≠ 정부안 as printed", clean))
                rows.append(NationalRow(clean, j + 1, amounts, headers, parent=parent))
            if any(compact(name) in ("계", "합계", "총계") for name, _ in groups):
                break
            j += 1
        i = j + 1
    return rows, issues


def _check_national_total(total: NationalRow, rows: list[NationalRow], multiplier: int,
                          issues: list[Issue]) -> None:
    """계 covers every row printed above it, 내역사업 included (that is how the plan adds up)."""
    body = [r for r in rows if r.kind == "row"]
    for k, printed in enumerate(total.amounts):
        computed = sum(r.amounts[k] for r in body if k < len(r.amounts))
        if abs(computed - printed) > multiplier * max(1, len(body) // 2):
            issues.append(Issue(total.line, f"national table 계 column {k + 1}: printed {printed:,}원, "
                                            f"rows add up to {computed:,}원", "계"))
