"""Korean schedule date expressions from Seoul government reports (pure, no I/O).

`parse_when` reads one expression (`’25. 4~5월`, `’25.9월~`, `연중`); `find_when` locates one inside
a free-text line. Whatever cannot be read comes back as `ParsedWhen(unparsed=reason)` with no
windows: the parser never guesses and never raises.

Conventions (callers compare windows across reports, so they are fixed here):
- Two-digit years: ’25 -> 2025, pivoting within ±50 years of `ref_year` (’99 -> 1999). A month or
  day without a year takes the year in force: the previous item's or range side's, else `ref_year`.
- Month modifiers: 초/초순 = days 1-10, 중순 = 11-20, 말/하순 = 21-end, 중/경/내 = the whole month;
  N주/N째주 = days 7N-6..7N. Year modifiers: 초/연초 = Q1, 말/연말 = Q4, 중/내/연내 = the whole year.
- 상반기/上/전반기 = Jan-Jun, 하반기/下/후반기 = Jul-Dec, N분기 = its three months.
- Dot forms take their meaning from position: `’25.3` is a month, `’25.8.27` a day; on the right of
  a range the numbers fill the trailing fields of the left side (`’25.8.28~30`, `’25.7.14~7.28`,
  `’25.8.~26.7.` where two numbers after a month mean year.month).
- A unit written once serves the whole range or list: `2~4월`, `’24년 2~3분기`, `’25. 2, 3월`.
- A range whose end lies before its start rolls the omitted field forward
  (`’25. 11월~2월` ends 2026-02-28); with both years written it is unparsed instead.
- `approximate`: some bound is coarser than an exact day (month, half, quarter, year, 초/중순/말, 경).
- `continuing`: some window has an open end (`’25.9월~`, `’25.계속`, bare `계속`).
- `recurrence` is one of RECURRENCES: monthly (매월, 월별, 매달), quarterly (분기별, 매분기),
  half-yearly (반기별, 매반기), yearly (매년, 연례), ongoing (연중, 연중지속, 상시), adhoc (수시,
  연중수시). 연중... also means "throughout the year", so it gets that year as a window; the others
  alone have no period and no window (`매년 3월` has both).
- Trailing words that do not change the date (`개관`, `완료`, `예정`, `(3년)`, `(화)`, `14:00`,
  `※ ...`) are ignored; `까지`/`이내`/`이전` make an open start, `부터`/`이후` an open end.
- Deliberately unparsed: invalid calendar dates (’25.2.30, 13월), reversed ranges with both years
  written, numbers glued to other words (’25년 60억원, ’25.3개월), `’25년 3` (a month needs 월 after
  a 년), a lone 상/하, recurrence counts (연 2회), changes (`’25.3월 → 5월`), date words left over
  in the note, anything else that does not fit the shapes above.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

__all__ = ["RECURRENCES", "ParsedWhen", "Window", "find_when", "normalize", "parse_when"]

# The closed set of `ParsedWhen.recurrence` values.
RECURRENCES: tuple[str, ...] = ("monthly", "quarterly", "half-yearly", "yearly", "ongoing", "adhoc")


@dataclass(frozen=True)
class Window:
    start: date | None  # inclusive; None = open start
    end: date | None  # inclusive; None = open end


@dataclass(frozen=True)
class ParsedWhen:
    text: str  # the original text
    windows: tuple[Window, ...]  # empty when unparsed or purely recurring
    recurrence: str | None = None  # one of RECURRENCES
    continuing: bool = False  # some window has an open end
    approximate: bool = False  # some bound is coarser than an exact day
    unparsed: str | None = None  # why it could not be read; then windows == ()

    @property
    def ok(self) -> bool:
        return self.unparsed is None

    @property
    def start(self) -> date | None:
        """Earliest start; None when there is no window or one has an open start."""
        starts = [w.start for w in self.windows]
        if not starts or any(s is None for s in starts):
            return None
        return min(s for s in starts if s is not None)

    @property
    def end(self) -> date | None:
        """Latest end; None when there is no window or one has an open end."""
        ends = [w.end for w in self.windows]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

# Character folding is one-to-one so that find_when can map offsets back to the original line.
_FOLD: dict[int, str] = {c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}  # full-width ASCII
_FOLD.update({ord(c): "'" for c in "’‘`´′＇"})
_FOLD.update({ord(c): "~" for c in "∼〜～∽⁓"})
_FOLD.update({ord(c): "-" for c in "‐‑‒–—−"})
_FOLD.update({ord(c): "·" for c in "‧ㆍ･・•"})  # middle dots separate list items
_FOLD.update({ord(c): " " for c in "\u3000\u00a0\u2002\u2003\u2009\u200b\ufeff\t"})

_WS = re.compile(r"\s+")
_SPACE_AROUND_PUNCT = re.compile(r"\s*([~.,/·-])\s*")
_SPACE_BEFORE_UNIT = re.compile(r"(?<=\d) (?=년|월|일|분기)")  # letter-spaced: 9 월
_QUARTER_SLASH = re.compile(r"([1-4])/4(?=분기)")  # 1/4분기 -> 1분기, before '/' becomes a list
_ISO_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})-(\d{1,2})-(\d{1,2})(?!\d)")  # 2025-03-15
_RANGE_HYPHEN = re.compile(r"(?<=[\d.월년'])-(?=['\d])")  # 1-12월, ’25.3-’25.5
_MULTI_DOT = re.compile(r"\.{2,}")
_DOT_AFTER_TILDE = re.compile(r"~\.")  # ’25.2.~.7.
_DOT_BEFORE_PUNCT = re.compile(r"\.(?=[~,/·()]|$)")  # ’25. 3. / ’25.1.~12. : the dot adds nothing


def normalize(text: str) -> str:
    """Canonical spelling: ASCII apostrophe/tilde/digits, single spaces, range '~', no stray dots."""
    s = _WS.sub(" ", text.translate(_FOLD)).strip()
    s = _SPACE_AROUND_PUNCT.sub(r"\1", s)
    s = _SPACE_BEFORE_UNIT.sub("", s)
    s = _QUARTER_SLASH.sub(r"\1", s)
    s = _ISO_DATE.sub(r"\1.\2.\3", s)
    s = _RANGE_HYPHEN.sub("~", s)
    s = _MULTI_DOT.sub(".", s)
    s = _DOT_AFTER_TILDE.sub("~", s)
    return _DOT_BEFORE_PUNCT.sub("", s)


# --------------------------------------------------------------------------------------------
# Vocabulary: small named pieces shared by the tokenizer and by find_when's scanner
# --------------------------------------------------------------------------------------------

_B = r"(?![가-힣A-Za-z])"  # a Hangul keyword must end its word: 하 is not 하이브랜드
_B_PARTICLE = r"(?=까지|부터|이후|이내|이전|에|[^가-힣A-Za-z]|$)"  # ... but 말까지, 상반기에 are fine

_YEAR_APOS = r"'(\d{2})(?!\d)(?:년도?)?"
_YEAR_FULL = r"((?:19|20)\d{2})(?!\d)(?:년도?)?"
_YEAR_KO = r"(\d{2})년도?"  # apostrophe lost: 25년
_YEAR_DOT = r"(\d{2})(?=\.\d{1,2}월)"  # apostrophe lost: 25.3월 (only near ref_year, see _scan_side)
_YEAR_REL = r"(금년|올해|당해|내년|명년)도?" + _B
_QUARTER = r"([1-4])사?분기|([1-4])[Qq](?![A-Za-z])|[Qq]([1-4])(?!\d)"
_MONTH = r"(\d{1,2})월(?!간)"
_DAY = r"(\d{1,2})일(?![간째차])"
_WEEK = r"(?:([1-5])|(첫|둘|셋|넷|다섯)째)\s?주(?:차)?(?!간)"
_NUM = r"(\d+)"
_DOT = r"\."
_HALF_WORD = r"(상|하|전|후)반기|(上|下)(?:半期|반기)?"
_HALF_BARE = r"(상|하)" + _B_PARTICLE  # ’26.상, 상~하반기
_YEAR_MOD = r"(연초|연말|연내|년초|년말)" + _B_PARTICLE
_MOD = r"(초순|초|중순|하순|말|중)경?" + _B_PARTICLE + r"|(경|무렵|께|내)" + _B_PARTICLE
_UNTIL = r"(까지|이내|이전)" + _B
_FROM = r"(부터|이후)" + _B
_CONT = r"(계속|지속)" + _B

# Token kinds are single letters so that a side's shape can be checked with a regex (_SIDE_SHAPE).
_TOKEN_PIECES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (kind, name, re.compile(pattern))
    for kind, name, pattern in (
        ("Y", "apos", _YEAR_APOS),
        ("Y", "full", _YEAR_FULL),
        ("Y", "ko", _YEAR_KO),
        ("Y", "dotyear", _YEAR_DOT),
        ("Y", "rel", _YEAR_REL),
        ("Q", "quarter", _QUARTER),
        ("M", "month", _MONTH),
        ("D", "day", _DAY),
        ("W", "week", _WEEK),
        ("N", "num", _NUM),
        (".", "dot", _DOT),
        ("H", "half", _HALF_WORD),
        ("y", "yearmod", _YEAR_MOD),
        ("m", "mod", _MOD),
        ("H", "half", _HALF_BARE),
        ("u", "until", _UNTIL),
        ("f", "from", _FROM),
        ("c", "cont", _CONT),
    )
)

# One side of a range: [year][.] then one body, then at most one modifier and one bound word.
#   N(.N)*  dot form (’25.3, ’25.8.27)      M[D|W|N]  3월, 3월 15일, 4월4주, 8월 28(~30일)
#   D / H / Q / y                            30일 / 하반기 / 3분기 / 연말
_SIDE_SHAPE = re.compile(r"Y?\.?(?:N(?:\.N){0,2}\.?|M[DWN]?|D|H|Q|y)?m?[ufc]?")
_DATE_KINDS = frozenset("YNMDWHQy")

_HALF_VALUE = {"상": 1, "上": 1, "전": 1, "하": 2, "下": 2, "후": 2}
_WEEK_ORDINAL = {"첫": 1, "둘": 2, "셋": 3, "넷": 4, "다섯": 5}
_MOD_VALUE = {
    "초": "early", "초순": "early", "중순": "mid", "하순": "late", "말": "late",
    "중": "during", "내": "during", "경": "about", "무렵": "about", "께": "about",
}  # fmt: skip
_YEAR_MOD_VALUE = {"연초": "early", "년초": "early", "연말": "late", "년말": "late", "연내": "during"}
_RELATIVE_YEAR = {"금년": 0, "올해": 0, "당해": 0, "내년": 1, "명년": 1}

# Recurrence words, longest first. The flag says the word also means "throughout the year".
_RECURRENCE_WORDS: tuple[tuple[str, str, bool], ...] = (
    ("연중수시", "adhoc", True),
    ("연중상시", "ongoing", True),
    ("연중지속", "ongoing", True),
    ("연중계속", "ongoing", True),
    ("연중", "ongoing", True),
    ("상시", "ongoing", False),
    ("수시", "adhoc", False),
    ("매월", "monthly", False),
    ("매달", "monthly", False),
    ("월별", "monthly", False),
    ("매분기", "quarterly", False),
    ("분기별", "quarterly", False),
    ("분기마다", "quarterly", False),
    ("매반기", "half-yearly", False),
    ("반기별", "half-yearly", False),
    ("매년", "yearly", False),
    ("연례", "yearly", False),
    ("해마다", "yearly", False),
)
_RECURRENCE_INFO = {word: (kind, spans) for word, kind, spans in _RECURRENCE_WORDS}


def _spaced(word: str) -> str:
    """연중수시 is also written 연중 수시."""
    return word.replace("연중", r"연중\s?", 1) if word.startswith("연중") and word != "연중" else word


_RECURRENCE_ALT = "|".join(_spaced(word) for word, _, _ in _RECURRENCE_WORDS)
# "매월 첫째주", "분기별 1회", "연 1회" details say how often, not when: swallowed with the word.
_RECURRENCE_DETAIL = r"(?:\s*(?:\d+\s*회|(?:첫|둘|셋|넷|다섯|마지막)\s*째?\s*주))?"
_RECURRENCE = re.compile(rf"(?<![가-힣\d])({_RECURRENCE_ALT}){_RECURRENCE_DETAIL}{_B}")
# In prose these are ordinary words ("수시점검" aside, "계속 지원"); see _delimited.
_WEAK_WORDS = ("계속", "지속", "상시", "수시")
_STRONG_RECURRENCE_ALT = "|".join(_spaced(w) for w, _, _ in _RECURRENCE_WORDS if w not in _WEAK_WORDS)

# Date words must not hide in text we are about to ignore as a note: anywhere inside a word for
# these, as a whole word for the short ones (초 and 말 start many ordinary words).
_NOTE_FORBIDDEN_PARTS = re.compile(
    "반기|분기|연중|매월|매년|수시|상시|계속|지속|까지|이내|이전|부터|이후|연초|연말|연내|내년|올해|금년"
)
_NOTE_FORBIDDEN_WORDS = frozenset({"上", "下", "초", "초순", "중순", "하순", "말", "상", "하"})


# --------------------------------------------------------------------------------------------
# Tokenizing one side of a range
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # letter used in _SIDE_SHAPE
    value: int | str | None
    text: str


@dataclass(frozen=True)
class _Side:
    toks: tuple[_Tok, ...]
    note: str  # text after the last token (only allowed on the last side)
    glued: bool  # the note starts right after a digit: 3개월, ’25개

    @property
    def shape(self) -> str:
        return "".join(t.kind for t in self.toks)

    @property
    def has_date(self) -> bool:
        return any(t.kind in _DATE_KINDS for t in self.toks)

    def first(self, kind: str) -> _Tok | None:
        return next((t for t in self.toks if t.kind == kind), None)


def _expand_year(yy: int, ref_year: int) -> int:
    """’25 -> 2025: the year ending in yy that lies within ±50 years of ref_year."""
    year = ref_year - ref_year % 100 + yy
    if year > ref_year + 50:
        year -= 100
    elif year < ref_year - 50:
        year += 100
    return year


def _token_value(name: str, m: re.Match[str], ref_year: int) -> int | str | None:
    group = next((g for g in m.groups() if g is not None), None)
    if group is None:
        return None
    if name in ("apos", "ko", "dotyear"):
        return _expand_year(int(group), ref_year)
    if name == "rel":
        return ref_year + _RELATIVE_YEAR[group]
    if name == "half":
        return _HALF_VALUE[group]
    if name == "week":
        return _WEEK_ORDINAL[group] if group in _WEEK_ORDINAL else int(group)
    if name == "mod":
        return _MOD_VALUE[group]
    if name == "yearmod":
        return _YEAR_MOD_VALUE[group]
    if group.isdigit():
        return int(group)
    return group


def _scan_side(s: str, ref_year: int) -> _Side:
    toks: list[_Tok] = []
    pos = 0
    while True:
        while pos < len(s) and s[pos] == " ":
            pos += 1
        if pos >= len(s):
            break
        for kind, name, pattern in _TOKEN_PIECES:
            m = pattern.match(s, pos)
            if not m:
                continue
            value = _token_value(name, m, ref_year)
            if name == "dotyear" and isinstance(value, int) and abs(value - ref_year) > 10:
                continue  # 11.12월 is more likely two months than 2011
            toks.append(_Tok(kind, value, m.group(0)))
            pos = m.end()
            break
        else:
            break
    note = s[pos:].strip()
    glued = bool(note) and pos > 0 and s[pos - 1].isdigit()
    return _Side(tuple(toks), note, glued)


def _note_problem(note: str) -> str | None:
    if re.search(r"[\d']", note):
        return f"unreadable text: {note!r}"
    found = _NOTE_FORBIDDEN_PARTS.search(note)
    if found:
        return f"date word out of place: {found.group(0)!r}"
    for word in re.split(r"[\s,/·()~.-]+", note):
        if word in _NOTE_FORBIDDEN_WORDS:
            return f"date word out of place: {word!r}"
    return None


# --------------------------------------------------------------------------------------------
# Resolving a side to a span of days
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    """What a side inherits from the side or item before it."""

    year: int
    month: int | None = None
    precision: str | None = None  # None: nothing before (a bare number then needs a unit)


@dataclass(frozen=True)
class _Point:
    start: date
    end: date
    year: int
    month: int | None
    precision: str  # day | week | month | quarter | half | year
    exact: bool  # an exact day, not 3월/하반기/8.27경
    year_given: bool
    month_given: bool

    def ctx(self) -> _Ctx:
        return _Ctx(self.year, self.month, self.precision)


_FIELDS = ("year", "month", "day")
_DEPTH = {"year": 1, "month": 2, "day": 3}


def _assign_numbers(count: int, year_tok: _Tok | None, ctx: _Ctx) -> tuple[str, ...] | None:
    """Which fields bare dot-separated numbers stand for (see module doc, dot forms)."""
    if year_tok is not None:
        if year_tok.text.endswith(("년", "도")):  # ’25년 3 is not March: Korean would write 3월
            return None
        return ("month", "day")[:count] if count <= 2 else None
    depth = _DEPTH.get(ctx.precision or "")
    if depth is None:  # nothing to lean on: m.d or yy.m.d only
        return {2: ("month", "day"), 3: _FIELDS}.get(count)
    if count <= depth:
        return _FIELDS[depth - count : depth]
    return _FIELDS[:count] if count <= 3 else None


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _eom(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _int(tok: _Tok | None) -> int | None:
    return tok.value if tok is not None and isinstance(tok.value, int) else None


_Span = tuple[date, date, str]  # first day, last day, precision


def _span(year: int, month: int | None, day: int | None, side: _Side, mod: str | None) -> _Span | str:
    """First and last day of what a side names, with its precision; a str is a reason."""
    week, half, quarter = side.first("W"), _int(side.first("H")), _int(side.first("Q"))
    if day is not None and month is not None:
        if mod not in (None, "about"):
            return f"{mod} modifier on a day"
        d = _make_date(year, month, day)
        if d is None:
            return f"invalid date {year:04d}-{month:02d}-{day:02d}"
        return d, d, "day"
    if week is not None and month is not None:
        n = _int(week) or 0
        first_day, last_day = 7 * n - 6, min(7 * n, _eom(year, month))
        if first_day > last_day or mod not in (None, "about", "during"):
            return f"invalid week {week.text!r}"
        return date(year, month, first_day), date(year, month, last_day), "week"
    if month is not None:
        eom = _eom(year, month)
        first_day, last_day = {"early": (1, 10), "mid": (11, 20), "late": (21, eom)}.get(mod or "", (1, eom))
        return date(year, month, first_day), date(year, month, last_day), "month"
    if mod == "mid" or (mod in ("early", "late") and (half or quarter)):
        return f"{mod} modifier does not fit a year, half or quarter"
    if half is not None:
        first_month, precision = (1 if half == 1 else 7), "half"
        last_month = first_month + 5
    elif quarter is not None:
        first_month, precision = 3 * quarter - 2, "quarter"
        last_month = first_month + 2
    else:  # a year: 초 = Q1, 말 = Q4 (module doc)
        first_month, last_month = {"early": (1, 3), "late": (10, 12)}.get(mod or "", (1, 12))
        precision = "year"
    return date(year, first_month, 1), date(year, last_month, _eom(year, last_month)), precision


def _resolve(side: _Side, ctx: _Ctx, unit: str | None, ref_year: int) -> _Point | str:
    """Turn one side into a span, inheriting missing fields from ctx; a str is a reason."""
    year_tok = side.first("Y")
    year, month, day = _int(year_tok), _int(side.first("M")), _int(side.first("D"))
    half = side.first("H")

    nums = [t for t in side.toks if t.kind == "N"]
    if any(len(t.text) > 2 for t in nums):
        return f"unexpected number {next(t.text for t in nums if len(t.text) > 2)!r}"
    values = [v for v in map(_int, nums) if v is not None]
    quarter_from_unit: int | None = None
    if len(values) == 1 and unit is not None and (month is None or unit == "D"):
        # A unit written on the next side serves this one too: 2~4월, ’24년 2~3분기, 8월 28~30일.
        n = values[0]
        if unit == "D":
            day = n
        elif unit == "M":
            month = n
        elif unit == "Q" and 1 <= n <= 4:
            quarter_from_unit = n
        elif unit == "Y" and year is None and len(nums[0].text) == 2:
            year = _expand_year(n, ref_year)
        else:
            return "cannot tell what the bare number means"
    elif values and month is not None:
        return "number after the month"
    elif values:
        names = _assign_numbers(len(values), year_tok, ctx)
        if names is None:
            return "cannot tell what the bare numbers mean"
        fields = dict(zip(names, values, strict=True))
        if "year" in fields:
            if len(nums[names.index("year")].text) != 2:
                return "a year needs two digits"
            year = _expand_year(fields["year"], ref_year)
        month, day = fields.get("month", month), fields.get("day", day)

    # A lone 상/하 is just a syllable unless a year or a 반기 next to it says otherwise.
    lone_half = half is not None and half.text in ("상", "하") and year_tok is None
    if lone_half and unit != "H" and ctx.precision != "half":
        return "상/하 without a year or 반기"

    year_given, month_given = year is not None, month is not None
    year = year if year is not None else ctx.year
    if (day is not None or side.first("W") is not None) and month is None:
        if ctx.month is None:
            return "day without a month"
        month = ctx.month
    if not 1900 <= year <= 2100:
        return f"year {year} out of range"
    if month is not None and not 1 <= month <= 12:
        return f"invalid month {month}"

    mods = [t.value for t in side.toks if t.kind in "my" and isinstance(t.value, str)]
    if len(mods) > 1:
        return "two modifiers"
    mod = mods[0] if mods else None
    if quarter_from_unit is not None:
        side = _Side((*side.toks, _Tok("Q", quarter_from_unit, "")), side.note, side.glued)
    span = _span(year, month, day, side, mod)
    if isinstance(span, str):
        return span
    start, end, precision = span
    exact = precision == "day" and mod is None
    return _Point(start, end, year, month, precision, exact, year_given, month_given)


# --------------------------------------------------------------------------------------------
# Items, ranges and the whole expression
# --------------------------------------------------------------------------------------------

_WEEKDAY_PAREN = re.compile(r"(?<=[\d.일])\s*\((?:월|화|수|목|금|토|일)(?:요일)?\)")
_CLOCK = r"(?:오전|오후)?\s*\d{1,2}:\d{2}"
_TIME_OF_DAY = re.compile(rf"(?<=[\d.)일])\s*{_CLOCK}(?:\s*~\s*{_CLOCK})?")  # ’25.9.30. 14:00~18:00
_REFERENCE_NOTE = re.compile(r"\s*※.*$")
_TRAILING_PAREN = re.compile(r"\s*\(([^()]*)\)\s*$")
_DATE_IN_PAREN = re.compile(r"'|\d\s*(?:월|분기)|반기|[上下]|연중|까지")
_LIST_SPLIT = re.compile(r"[,/·、]|\s+및\s+")
_PAIRS = {"(": ")", "[": "]", "<": ">", "〈": "〉", "「": "」"}


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


def _strip_decorations(s: str) -> str:
    """Drop what is around the date but not part of it: brackets, weekdays, notes."""
    s = _TIME_OF_DAY.sub("", _WEEKDAY_PAREN.sub("", s))
    s = _REFERENCE_NOTE.sub("", s).strip()
    while len(s) >= 2 and _PAIRS.get(s[0]) == s[-1] and _balanced(s[1:-1]):
        s = s[1:-1].strip()
    # Extraction cuts lines inside parentheses: (’25.9월~  or  ’25.하반기)
    if s.startswith("(") and ")" not in s:
        s = s[1:].strip()
    if s.endswith(")") and "(" not in s:
        s = s[:-1].strip()
    # A trailing parenthesis without a date is a note: (3년), (2년 6개월), (누적), (예정)
    while (m := _TRAILING_PAREN.search(s)) and m.start() > 0 and not _DATE_IN_PAREN.search(m.group(1)):
        s = s[: m.start()].strip()
    return s


def _unit_of(side: _Side) -> str | None:
    """The unit a side can lend to a bare neighbour: 월 in 4월, 반기 in 하반기, 년 in 30년."""
    shape = side.shape
    if shape and shape[0] in "MDQH":
        return shape[0]
    return "Y" if shape == "Y" else None


def _shared_units(items: list[list[_Side]]) -> list[str | None]:
    """For each point item, the unit of the next item, reached through bare numbers:
    2, 4, 6월 -> 월 for 2 and 4. Ranges share within themselves (see _resolve_item)."""
    shared: list[str | None] = [None] * len(items)
    carry: str | None = None  # what an item lends to the one before it
    for i in range(len(items) - 1, -1, -1):
        sides = items[i]
        shared[i] = carry if len(sides) == 1 else None
        own = _unit_of(sides[0])
        carry = own if own is not None else carry if sides[0].shape == "N" and len(sides) == 1 else None
    return shared


@dataclass(frozen=True)
class _Period:
    windows: tuple[Window, ...]
    approximate: bool


def _bound(side: _Side) -> str | None:
    tok = next((t for t in side.toks if t.kind in "ufc"), None)
    return tok.kind if tok else None


_ItemResult = tuple[Window, bool, _Ctx] | str  # (window, approximate, context for the next item)


def _resolve_item(sides: list[_Side], ctx: _Ctx, unit: str | None, ref_year: int) -> _ItemResult:
    """One list item, a point or a range: (window, approximate, context for the next item)."""
    if len(sides) == 1:
        side = sides[0]
        if side.shape == "c":  # bare 계속: running, dates unknown
            return Window(None, None), False, ctx
        p = _resolve(side, ctx, unit, ref_year)
        if isinstance(p, str):
            return p
        bound = _bound(side)
        if bound == "u":
            return Window(None, p.end), not p.exact, p.ctx()
        if bound in ("f", "c"):
            return Window(p.start, None), not p.exact, p.ctx()
        return Window(p.start, p.end), not p.exact, p.ctx()

    left, right = sides
    if _bound(left) in ("u", "c") or _bound(right) == "f" or (right.has_date and _bound(right) == "c"):
        return "bound word on the wrong side of '~'"
    if right.toks and right.shape != "c" and not right.has_date:
        return "range end without a date"
    if not left.toks:  # ~ ’25. 6월
        if not right.has_date:
            return "range without dates"
        q = _resolve(right, ctx, None, ref_year)
        if isinstance(q, str):
            return q
        return Window(None, q.end), not q.exact, q.ctx()
    if not left.has_date:
        return "range start without a date"
    p = _resolve(left, ctx, _unit_of(right), ref_year)
    if isinstance(p, str):
        return p
    if not right.has_date:  # ’25.9월~  ’25.3월~계속
        return Window(p.start, None), not p.exact, p.ctx()
    q = _resolve(right, p.ctx(), None, ref_year)
    if isinstance(q, str):
        return q
    if q.end < p.start and not q.year_given:
        # Roll the omitted field forward when that explains the order: ’25.11월~2월 ends in 2026,
        # ’25.8.30~2 in September; ’25.3월 말~3월 초 stays an error.
        rolled: _Ctx | None = None
        if not q.month_given and p.month is not None and q.start.day < p.start.day:
            rolled = _Ctx(p.year + (p.month == 12), p.month % 12 + 1, p.precision)
        elif (q.month_given or q.precision in ("half", "quarter")) and q.start.month < p.start.month:
            rolled = _Ctx(p.year + 1, p.month, p.precision)
        q2 = _resolve(right, rolled, None, ref_year) if rolled else q
        if isinstance(q2, str):
            return q2
        q = q2
    if q.end < p.start:
        return "range ends before it starts"
    return Window(p.start, q.end), not (p.exact and q.exact), q.ctx()


def _parse_period(body: str, ref_year: int) -> _Period | str | None:
    """Windows for a list of points/ranges; None when there is only note text, str = reason."""
    items: list[list[_Side]] = []
    in_note = False
    for raw in _LIST_SPLIT.split(body):
        if not raw.strip():
            continue
        if in_note:  # the note carried on past a separator: 법인설립 허가·등기
            problem = _note_problem(raw)
            if problem:
                return problem
            continue
        parts = raw.split("~")
        if len(parts) > 2:
            return "more than one '~'"
        sides = [_scan_side(p, ref_year) for p in parts]
        if len(sides) == 1 and not sides[0].toks:
            problem = _note_problem(raw)
            if problem:
                return problem
            in_note = True
            continue
        for side in sides[:-1]:
            if side.note:
                return f"unreadable text: {side.note!r}"
        last = sides[-1]
        if last.note:
            if last.glued:
                return f"number runs into text: {last.note!r}"
            problem = _note_problem(last.note)
            if problem:
                return problem
            in_note = True
        for side in sides:
            if not _SIDE_SHAPE.fullmatch(side.shape):
                return f"unexpected order of date parts in {raw!r}"
        items.append(sides)
    if not items:
        return None

    ctx = _Ctx(ref_year)
    windows: list[Window] = []
    approximate = False
    for sides, unit in zip(items, _shared_units(items), strict=True):
        if len(sides) == 1 and not sides[0].has_date and sides[0].shape != "c":
            return "no date"
        got = _resolve_item(sides, ctx, unit, ref_year)
        if isinstance(got, str):
            return got
        window, approx, ctx = got
        windows.append(window)
        approximate = approximate or approx
    return _Period(tuple(windows), approximate)


def _unparsed(text: str, reason: str) -> ParsedWhen:
    return ParsedWhen(text=text, windows=(), unparsed=reason)


def parse_when(text: str, ref_year: int) -> ParsedWhen:
    """Read one schedule date expression; `ref_year` is the document's year (e.g. 2025)."""
    if not 1900 <= ref_year <= 2099:
        return _unparsed(text, f"reference year {ref_year} out of range")
    body = _strip_decorations(normalize(text))
    if not body:
        return _unparsed(text, "empty")

    recurrence: str | None = None
    whole_year = False
    found = list(_RECURRENCE.finditer(body))
    if len(found) > 1:
        return _unparsed(text, "more than one recurrence word")
    if found:
        m = found[0]
        if m.start() > 0 and m.end() < len(body):  # ’25.3 매월 4 : which part is the date?
            return _unparsed(text, f"recurrence word inside the date: {m.group(0)!r}")
        recurrence, whole_year = _RECURRENCE_INFO[m.group(1).replace(" ", "")]
        body = (body[: m.start()] + " " + body[m.end() :]).strip(" ,·/")

    period = _parse_period(body, ref_year) if body else None
    if isinstance(period, str):
        return _unparsed(text, period)
    if period is None:
        if body and recurrence is None:
            return _unparsed(text, f"no date in {body!r}")
        if recurrence is None:
            return _unparsed(text, "empty")
        if whole_year:  # 연중: throughout the report's year
            year = Window(date(ref_year, 1, 1), date(ref_year, 12, 31))
            return ParsedWhen(text, (year,), recurrence, approximate=True)
        return ParsedWhen(text, (), recurrence)
    continuing = any(w.end is None for w in period.windows)
    return ParsedWhen(text, period.windows, recurrence, continuing, period.approximate)


# --------------------------------------------------------------------------------------------
# Finding an expression inside a line
# --------------------------------------------------------------------------------------------

# Where an expression may start. 계속/지속/상시/수시 are ordinary words in prose, so alone they
# only count when they fill a parenthesis or the text after a colon (see _delimited).
_STRONG_ANCHOR = re.compile(
    "|".join(
        (
            r"'\d{2}(?=년|[^\d가-힣]|$)",
            r"(?<!\d)(?:19|20)\d{2}(?=\s*년|\.\d|\s*(?:상|하)반기|\s*\d{1,2}\s*월)",
            r"(?<![\d.])\d{1,2}\s*월(?!간)",
            r"(?<![\d.'])\d{2}\.\s?\d{1,2}\s*월",
            r"(?<!\d)[1-4]\s*(?:/\s*4\s*)?사?분기",
            r"(?<![가-힣])(?:(?:상|하|전|후)반기|연초|연말|연내|금년|올해|내년|명년)" + _B,
            rf"(?<![가-힣\d])(?:{_STRONG_RECURRENCE_ALT})" + _B,
        )
    )
)
_WEAK_ANCHOR = re.compile(r"(?<![가-힣])(?:" + "|".join(_WEAK_WORDS) + ")" + _B)
# Text just before an anchor that belongs to the same expression: ~, 2~, 4.~, 상~, and a year
# that lost its apostrophe (25년 1~2월), which is too common in prose ("30년 이상") to be an anchor.
_LEFT_EXTENSION = re.compile(
    r"(?:(?<![\d.,'])\d{2}년도?\s*)?"
    r"(?:(?:(?<![\d.,'])\d{1,2}(?:\.\d{1,2})*\.?\s*[~-]|(?:상|하|上|下)\s*~|~)\s*)?$"
)
_RUN_PIECE = re.compile(
    "|".join(
        (
            r"'\d{2}(?!\d)(?:년도?)?",
            r"\d+(?:\s?(?:년도?|월(?!간)|일(?![간째차])|사?분기)|주차?|[Qq](?![A-Za-z]))?",
            r"[.~,/·-]",
            r"\((?:월|화|수|목|금|토|일)(?:요일)?\)",
            _WEEK,
            _HALF_WORD,
            _HALF_BARE,
            _YEAR_MOD,
            _YEAR_REL,
            _MOD,
            _UNTIL,
            _FROM,
            _CONT,
            rf"(?:{_RECURRENCE_ALT}){_RECURRENCE_DETAIL}{_B}",
        )
    )
)
_COLON = re.compile(r"(?<!\d):(?!\d)")
_TRIM = " ,/·-"


_MAX_RUN_PIECES = 40  # far longer than any real expression; keeps junk lines linear


def _run_pieces(folded: str, start: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    pos = start
    while len(pieces) < _MAX_RUN_PIECES:
        q = pos
        while q < len(folded) and folded[q] == " ":
            q += 1
        m = _RUN_PIECE.match(folded, q)
        if m is None or m.end() == q:
            return pieces
        pieces.append((q, m.end()))
        pos = m.end()
    return pieces


_AFTER_NUMBER = frozenset(" )]}>,/·~-.:;(」』'\"")


def _cut_points(folded: str, pieces: list[tuple[int, int]]) -> list[int]:
    """Ends at which the run may be cut, longest first. Never inside ’25.2.30 or 3,300, never next
    to a '~' (half a range is a guess), never right after a number that belongs to the next word
    (’25년 6억원, ’24년 10%)."""
    cuts = []
    for i, (start, end) in reversed(list(enumerate(pieces))):
        if end < len(folded) and folded[end - 1].isdigit() and folded[end] not in _AFTER_NUMBER:
            continue
        if i + 1 < len(pieces):
            next_start, next_end = pieces[i + 1]
            if folded[start:end] in ("~", "-") or folded[next_start:next_end] in ("~", "-"):
                continue
            if next_start == end and (folded[end - 1] in "0123456789." or folded[end] in "0123456789."):
                continue
        cuts.append(end)
    return cuts


def _delimited(folded: str, start: int, end: int) -> bool:
    before, after = folded[:start].rstrip(), folded[end:].lstrip()
    return (not before or before[-1] in "(:") and (not after or after[0] == ")")


def _scan(line: str, folded: str, region: int, ref_year: int) -> tuple[str, ParsedWhen] | None:
    pos = region
    while True:
        strong = _STRONG_ANCHOR.search(folded, pos)
        weak = _WEAK_ANCHOR.search(folded, pos)
        anchor = min((m for m in (strong, weak) if m), key=lambda m: m.start(), default=None)
        if anchor is None:
            return None
        ext = _LEFT_EXTENSION.search(folded, region, anchor.start())
        start = ext.start() if ext and ext.end() == anchor.start() else anchor.start()
        pieces = _run_pieces(folded, start)
        if not pieces:
            pos = anchor.end()
            continue
        first: tuple[str, ParsedWhen] | None = None
        for cut in _cut_points(folded, pieces):
            s, e = start, cut
            while e > s and folded[e - 1] in _TRIM:
                e -= 1
            while s < e and folded[s] in _TRIM:
                s += 1
            if s >= e:
                continue
            candidate = folded[s:e]
            if not _STRONG_ANCHOR.search(candidate) and not _delimited(folded, s, e):
                continue
            parsed = parse_when(line[s:e], ref_year)
            if parsed.ok:
                return line[s:e], parsed
            if first is None:
                first = (line[s:e], parsed)
        if first is not None:
            return first  # date-like but unreadable: say so rather than pick a fragment
        pos = max(anchor.end(), pieces[-1][1])


def find_when(line: str, ref_year: int) -> tuple[str, ParsedWhen] | None:
    """Locate a date expression inside a free-text line and return (the expression text, parsed).

    The text after the last colon is searched first (`ㅇ 선정평가 : ’25. 4~5월`), then the whole
    line from the left, so the first of several dates wins (`교총회관(’17년), ...(’19년)`).
    """
    folded = line.translate(_FOLD)
    colons = list(_COLON.finditer(folded))
    regions = ([colons[-1].end()] if colons else []) + [0]
    for region in regions:
        hit = _scan(line, folded, region, ref_year)
        if hit is not None:
            return hit
    return None
