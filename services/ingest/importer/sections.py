"""Split a report into program sections and their sub-blocks; detect document-level facts.

Structure seen in these reports:
  Ⅵ. 부서별 주요 업무보고                    part (roman numeral): resets numbering and context
   1. 경제정책과                             division divider (number + dot + 과)
  2 미래성장동력 창출을 위한 서울형 R&D 지원   program section (number, no dot)
  경제정책과장 : 이병철☎2133-5210 ...          contacts
  □ 사업개요 / □ 추진목표 / □ 향후 추진 일정   blocks (the □ glyph is sometimes lost)
A table of contents repeats the headings, so a heading counts only when content follows it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from services.ingest.importer.contacts import ContactBlock, find_contact_block, is_contact_line
from services.ingest.importer.model import Issue, Section
from services.ingest.importer.text import (
    collapse_letter_spacing,
    compact,
    normalize_line,
    normalize_name,
    squeeze,
    strip_bullet,
)

ROMAN = "ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ"
_PART = re.compile(rf"^\s*([{ROMAN}]{{1,3}})\s*\.?\s+(\S.*)$")
_NUMBERED = re.compile(rf"^\s{{0,3}}(\d{{1,2}}|[{ROMAN}]{{1,3}}-\d{{1,2}})\s+(\S.*)$")
_NUMBERED_DOT = re.compile(r"^\s*(\d{1,2})\.\s+(\S.*)$")
_TASK = re.compile(r"^\s*((?:핵심|추진|세부|중점)과제\s*\d{0,2}|과제\s*\d{1,2})\s+(\S.*)$")
_STRATEGY = re.compile(r"^\s*[\[(]?(전략\s*\d{1,2})[\])]?\s+\S")
_REFERENCE = re.compile(r"^\s*(참\s*고|붙\s*임)\s*\d*(\s|$)")
_DIVISION_NAME = re.compile(r"^[가-힣A-Za-z0-9]{2,14}(과|담당관)$")
_TRAILING_CELLS = re.compile(r"(\s[\d,.%△\-]+){1,}\s*$")

# Block names as printed (spaces removed) -> kind. Order matters: longer/more specific first.
_BLOCK_KINDS: tuple[tuple[str, str], ...] = (
    ("향후추진일정", "schedule"), ("향후추진계획", "schedule"), ("향후계획", "schedule"),
    ("향후일정", "schedule"), ("세부추진일정", "schedule"), ("추진일정", "schedule"),
    ("사업개요", "overview"), ("추진목표", "targets"), ("예산집행현황", "execution"),
    ("추진실적", "results"), ("추진계획", "plan"), ("추진내용", "other"), ("추진상황", "other"),
    ("추진경과", "other"), ("추진배경", "other"), ("추진방향", "other"), ("주요내용", "other"),
)

_OVERVIEW_KEYS: dict[str, str] = {
    "추진목적": "purpose", "사업목적": "purpose", "목적": "purpose",
    "추진방법": "method", "사업방법": "method", "추진방식": "method", "사업방식": "method",
    "운영방식": "method", "사업기간": "period", "추진기간": "period", "기간": "period",
    "협약기간": "period", "운영기간": "period",
}


@dataclass(frozen=True)
class Block:
    kind: str  # schedule | overview | targets | execution | results | plan | other | reference
    title: str
    line: int  # 1-based heading line
    end: int  # last line of the block, inclusive
    inline: str | None = None  # text after `:` on the heading line


@dataclass
class RawSection:
    """A section with the line range it spans, before facts are attached."""

    section: Section
    start: int  # 1-based heading line
    end: int  # last line, inclusive
    blocks: list[Block] = field(default_factory=list)
    contacts: ContactBlock | None = None
    part: str | None = None


@dataclass
class DocFacts:
    kind: str
    office: str | None
    reference_year: int | None
    title: str | None
    as_of_dates: list[date]
    issue_date: date | None  # the date printed on the cover / press embargo line


# ---------------------------------------------------------------- block headings


def _block_kind(name: str, bulleted: bool) -> str | None:
    key = re.sub(r"\(.*$", "", compact(name))
    for known, kind in _BLOCK_KINDS:
        loose = bulleted and known in key and len(key) <= len(known) + 6  # `□ 추진실적(2024년)`
        if key in (known, known + "(안)") or loose:
            return kind
    return None


def block_heading(line: str) -> tuple[str, str, str | None] | None:
    """(kind, title, inline text) when the line opens a block, else None.

    `□ 향후 추진 일정`, `□ 추진목표 : ...`, and glyph-less ` 향후 계획` (known names only).
    Long `□` lines are prose paragraphs (press releases), not blocks.
    """
    s = normalize_line(line).strip()
    bulleted = s.startswith(("□", "■"))
    body = s[1:].strip() if bulleted else s
    name, sep, rest = body.partition(":")
    inline = rest.strip() or None if sep else None
    kind = _block_kind(name, bulleted)
    if kind is not None and len(compact(name)) <= 24:
        return kind, squeeze(name), inline
    if bulleted and len(compact(name)) <= 14 and not re.search(r"[.。다]$", name.strip()):
        return "other", squeeze(name), inline
    if _REFERENCE.match(s):
        return "reference", squeeze(s), None
    return None


# ---------------------------------------------------------------- section headings


def _clean_title(title: str) -> str:
    """Heading text without trailing organisation cells (`...지원     과기정통부`)."""
    head = re.split(r"\s{4,}", title.strip())[0]
    return squeeze(collapse_letter_spacing(head))


def _plausible_title(title: str) -> bool:
    t = title.strip()
    if len(re.findall(r"[가-힣]", t)) < 2 or len(t) > 80 or "☎" in t:
        return False
    if re.match(r"^[.,~\-)(:%]", t) or re.match(r"^(월|년|일|개|명|회|건)(\s|$)", t):
        return False
    if re.match(r"^\d", t) and not re.match(r"^(19|20)\d{2}(년|\s)", t):  # `2025년 ...` is a title
        return False
    return not _TRAILING_CELLS.search(t)  # `2 바이오·의료 ... 30 60` is a table row


def _next_nonblank(lines: Sequence[str], i: int, count: int) -> list[int]:
    out: list[int] = []
    j = i + 1
    while j < len(lines) and len(out) < count:
        if lines[j].strip():
            out.append(j)
        j += 1
    return out


def _followed_by_block(lines: Sequence[str], i: int) -> bool:
    return any(block_heading(lines[j]) for j in _next_nonblank(lines, i, 3))


def _followed_by_contacts(lines: Sequence[str], i: int) -> bool:
    nxt = _next_nonblank(lines, i, 1)
    return bool(nxt) and is_contact_line(lines[nxt[0]])


@dataclass
class _Candidate:
    index: int  # 0-based line index
    number: str | None
    title: str
    has_contacts: bool
    toc_match: bool
    has_block: bool
    task: bool = False


def _first_seen(lines: Sequence[str]) -> dict[str, int]:
    """Where each line's text (without a `1.` prefix) first appears: a heading printed earlier
    is a table-of-contents entry, which confirms the later heading."""
    seen: dict[str, int] = {}
    for i, line in enumerate(lines):
        s = normalize_line(line).strip()
        m = _NUMBERED_DOT.match(s) or _NUMBERED.match(s)
        for text in (s, m.group(2) if m else ""):
            key = normalize_name(_clean_title(text)) if text else ""
            if key and len(key) >= 4:
                seen.setdefault(key, i)
    return seen


def _candidates(lines: Sequence[str]) -> list[_Candidate]:
    seen = _first_seen(lines)
    out: list[_Candidate] = []
    for i, raw in enumerate(lines):
        s = normalize_line(raw)
        task = _TASK.match(s)
        m = task or _NUMBERED.match(s)
        if not m or not _plausible_title(m.group(2)):
            continue
        title = _clean_title(m.group(2))
        number = squeeze(m.group(1)) or None
        toc_match = seen.get(normalize_name(title), i) < i
        out.append(_Candidate(i, number, title, _followed_by_contacts(lines, i), toc_match,
                              _followed_by_block(lines, i), task=bool(task)))
    return out


# ---------------------------------------------------------------- splitting


@dataclass
class _Context:
    part: str | None = None
    part_title: str | None = None
    part_office: str | None = None
    division: str | None = None
    strategy: str | None = None
    top: RawSection | None = None


def _part_office(title: str) -> str | None:
    text = collapse_letter_spacing(title)
    m = re.search(r"(?:^|\s)(?:서울시\s*|서울특별시\s*)?([가-힣]{1,8}실)(?:\s|$)", text)
    return m.group(1) if m else None


def _content_between(lines: Sequence[str], start: int, end: int) -> bool:
    """True when lines[start:end] hold something besides blanks and headings (i.e. not a TOC)."""
    for j in range(start, end):
        s = normalize_line(lines[j]).strip()
        if s and not _PART.match(s) and not _NUMBERED_DOT.match(s):
            return True
    return False


def _part_section(lines: Sequence[str], idx: int, stop: int, ctx: _Context) -> RawSection | None:
    """A roman part with its own schedule/overview/targets blocks (e.g. `Ⅴ. 주요 현안보고` with a
    single unnumbered topic, or `Ⅲ. 향후 계획`) becomes a section so those facts have a home."""
    own_kind = _block_kind(ctx.part_title or "", True)
    kinds = {b[0] for j in range(idx + 1, stop) if (b := block_heading(lines[j]))}
    if not ({"schedule", "overview", "targets"} & (kinds | {own_kind or ""})):
        return None
    title = ctx.part_title or ""
    nxt = _next_nonblank(lines, idx, 2)
    topic = normalize_line(lines[nxt[0]]).strip() if nxt else ""
    if (own_kind is None and len(nxt) == 2 and block_heading(topic) is None
            and block_heading(lines[nxt[1]]) and not re.match(r"^[ㅇ○\-※*]", topic)):
        title = _clean_title(normalize_line(lines[nxt[0]]))
    sec = Section(number=ctx.part, title=title, line=idx + 1, office=ctx.part_office)
    raw = RawSection(sec, idx + 1, stop, part=ctx.part)
    inner = find_blocks(lines, idx + 1, stop)
    if own_kind == "schedule":  # `Ⅲ. 향후 계획`: the part heading opens the schedule itself
        last = inner[0].line - 1 if inner else stop
        raw.blocks.append(Block("schedule", ctx.part_title or "", idx + 1, last))
    raw.blocks.extend(inner)
    return raw


def _division_divider(s: str) -> str | None:
    m = _NUMBERED_DOT.match(s)
    if m and _DIVISION_NAME.match(compact(m.group(2))):
        return compact(m.group(2))
    return None


def split_sections(lines: Sequence[str]) -> list[RawSection]:
    """Program sections in document order, with line ranges and blocks."""
    accepted = _accept(lines, _candidates(lines))
    sections: list[RawSection] = []
    ctx = _Context()
    part_start: int | None = None
    by_index = {c.index: c for c in accepted}
    parts = {i for i, text in enumerate(lines) if _PART.match(normalize_line(text))}
    boundaries = sorted(set(by_index) | parts)
    for pos, i in enumerate(boundaries):
        stop = boundaries[pos + 1] if pos + 1 < len(boundaries) else len(lines)
        s = normalize_line(lines[i])
        pm = _PART.match(s) if i not in by_index else None
        if pm:
            ctx = _Context(part=pm.group(1), part_title=_clean_title(pm.group(2)),
                           part_office=_part_office(pm.group(2)))
            part_start = i
            raw = _part_section(lines, i, stop, ctx)
            if raw is not None:
                sections.append(raw)
            continue
        _track_context(lines, part_start if part_start is not None else 0, i, ctx)
        part_start = i
        raw = _make_section(lines, by_index[i], stop, ctx)
        sections.append(raw)
    for raw in sections:
        raw.blocks = raw.blocks or find_blocks(lines, raw.start, raw.end)
    return _dedupe([r for r in sections if _content_between(lines, r.start, r.end)], lines)


def _dedupe(sections: list[RawSection], lines: Sequence[str]) -> list[RawSection]:
    """Drop a repeat of an earlier heading that has (almost) no body: a trailing TOC/bookmark list."""
    seen: set[tuple[str | None, str]] = set()
    out: list[RawSection] = []
    for r in sections:
        key = (r.section.number, normalize_name(r.section.title))
        body = sum(1 for no in range(r.start + 1, r.end + 1) if lines[no - 1].strip())
        if key in seen and body <= 5:
            continue
        seen.add(key)
        out.append(r)
    return out


def _track_context(lines: Sequence[str], start: int, end: int, ctx: _Context) -> None:
    """Division dividers and strategy headings seen since the last section."""
    for j in range(start, end):
        s = normalize_line(lines[j])
        div = _division_divider(s)
        if div:
            ctx.division = div
            ctx.top = None
        sm = _STRATEGY.match(s)
        if sm:
            ctx.strategy = compact(sm.group(1))


def _accept(lines: Sequence[str], cands: list[_Candidate]) -> list[_Candidate]:
    """Keep real headings: with contacts, confirmed by a TOC entry, or opening blocks."""
    out: list[_Candidate] = []
    for c in cands:
        if c.task or c.has_contacts or (c.toc_match and _has_body(lines, c.index)) or c.has_block:
            out.append(c)
    return out


def _has_body(lines: Sequence[str], i: int) -> bool:
    """A TOC entry is followed by other short headings; a heading by prose/blocks/tables."""
    for j in _next_nonblank(lines, i, 3):
        s = normalize_line(lines[j]).strip()
        if block_heading(s) or s.startswith(("ㅇ", "○", "-", "□")) or len(s) > 40:
            return True
        if _NUMBERED_DOT.match(s) or _NUMBERED.match(s) or _PART.match(s):
            return False
    return True


def _make_section(lines: Sequence[str], cand: _Candidate, stop: int, ctx: _Context) -> RawSection:
    number = cand.number
    if cand.task and ctx.strategy:
        number = f"{ctx.strategy} {number}"
    is_child = (not cand.task and not cand.has_contacts and not cand.toc_match and ctx.top is not None
                and ctx.top.contacts is not None)
    if is_child and ctx.top is not None:
        number = f"{ctx.top.section.number}-{number}"
    sec = Section(number=number, title=cand.title, line=cand.index + 1, office=ctx.part_office,
                  division=ctx.division)
    raw = RawSection(sec, cand.index + 1, stop, part=ctx.part)
    if cand.has_contacts:
        raw.contacts = find_contact_block(lines, cand.index + 1)
    if is_child and ctx.top is not None:
        parent = ctx.top.section  # a sub-program inherits the organisation printed for its parent
        sec.office, sec.division, sec.team = parent.office, parent.division, parent.team
    else:
        ctx.top = raw
    if raw.contacts is not None:
        sec.contacts = list(raw.contacts.contacts)
        sec.office = raw.contacts.office or sec.office
        sec.division = raw.contacts.division or sec.division
        sec.team = raw.contacts.team
    return raw


def find_blocks(lines: Sequence[str], start: int, end: int) -> list[Block]:
    """Blocks inside a section (1-based inclusive range); each runs to the next block heading."""
    heads: list[tuple[int, tuple[str, str, str | None]]] = []
    for no in range(start + 1, end + 1):
        bh = block_heading(lines[no - 1])
        if bh:
            heads.append((no, bh))
    blocks: list[Block] = []
    for k, (no, (kind, title, inline)) in enumerate(heads):
        last = heads[k + 1][0] - 1 if k + 1 < len(heads) else end
        blocks.append(Block(kind, title, no, last, inline))
    return blocks


# ---------------------------------------------------------------- division from context

_IN_CHARGE = re.compile(
    r"담당\s*(?:부서|과)?\s*[:：]\s*(?:[가-힣]{1,8}실\s*)?([가-힣A-Za-z0-9]{2,14}(?:과|담당관))(?![가-힣])")
_DIVISION_IN_TEXT = re.compile(r"(?<![가-힣])([가-힣A-Za-z0-9]{2,12}(?:과|담당관))(?![가-힣])")
# Words ending in 과 that are not a division.
_NOT_DIVISION = ("결과", "효과", "성과", "학과", "교과", "통과", "경과", "초과", "부과", "사과", "이과", "문과")


def toc_divisions(lines: Sequence[str]) -> dict[str, str]:
    """Title (normalised) -> division from lists that print `1. 경제정책과` and then its programs:
    the table of contents, a bookmark list. A title listed under two divisions names neither."""
    found: dict[str, set[str]] = {}
    current: str | None = None
    for line in lines:
        s = normalize_line(line).strip()
        if not s:
            continue
        div = _division_divider(s)
        if div:
            current = div
            continue
        if _PART.match(s) or is_contact_line(s) or block_heading(s):
            current = None
            continue
        if current is None:
            continue
        m = _NUMBERED.match(s)
        key = normalize_name(_clean_title(m.group(2) if m else s))
        if len(key) >= 4 and len(s) <= 80:
            found.setdefault(key, set()).add(current)
        if len(s) > 80:
            current = None  # prose: the list is over
    return {k: next(iter(v)) for k, v in found.items() if len(v) == 1}


def _common_run(a: str, b: str) -> int:
    """Length of the longest common substring (names are short)."""
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def infer_division(lines: Sequence[str], start: int, end: int, title: str, toc: dict[str, str],
                   rows: Sequence[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(division, where it came from) for a section that names none: a 담당 line in the section,
    the table of contents, the chapter heading above it, a budget table row of the same program."""
    for no in range(start, min(end, start + 15) + 1):
        m = _IN_CHARGE.search(collapse_letter_spacing(normalize_line(lines[no - 1])))
        if m:
            return m.group(1), "담당 line"
    key = normalize_name(title)
    if key in toc:
        return toc[key], "table of contents"
    for j in range(start - 2, -1, -1):
        s = normalize_line(lines[j])
        pm = _PART.match(s)
        if pm:
            for m in _DIVISION_IN_TEXT.finditer(collapse_letter_spacing(pm.group(2))):
                if not m.group(1).endswith(_NOT_DIVISION):
                    return m.group(1), "chapter heading"
            break
    named = {d for name, d in rows if normalize_name(name) == key}
    if len(named) == 1:
        return next(iter(named)), "budget table"
    # a looser match: the table row and the heading share a long run (`청년취업사관학교 조성 및 운영`
    # / `청년 취업사관학교 AI 인재 양성`), and only rows of one division do
    close = {d for name, d in rows if _common_run(normalize_name(name), key) >= 6}
    if len(close) == 1:
        return next(iter(close)), "budget table"
    return None, None


# ---------------------------------------------------------------- overview


def parse_overview(lines: Sequence[str], block: Block) -> tuple[dict[str, str], list[Issue]]:
    """`ㅇ 추진목적 : ...` lines -> {'purpose', 'method', 'period'} as printed."""
    found: dict[str, str] = {}
    for no in range(block.line + 1, block.end + 1):
        s = strip_bullet(normalize_line(lines[no - 1]))
        key, sep, value = s.partition(":")
        if not sep:
            continue
        value, _, note = value.partition("※")
        field_name = _OVERVIEW_KEYS.get(compact(key))
        if field_name and field_name not in found and value.strip():
            found[field_name] = squeeze(value)
        if "period" not in found and re.search(r"기간\s*:", note):
            found["period"] = squeeze(note.split(":", 1)[1])
        if compact(key) in ("소요예산", "사업비", "예산") and "method" not in found:
            agency = re.search(r"\(\s*([^(),]+?)\s*대행", value)
            if agency:
                found["method"] = f"대행({agency.group(1)})"
    return found, []


# ---------------------------------------------------------------- document facts


_AS_OF = re.compile(r"[’]?(\d{2}|\d{4})\s*\.\s*(\d{1,2})\s*\.\s*(\d{1,2})\s*\.?\s*(?:\)|,)?\s*기준")
_FULL_DATE = re.compile(r"^\s*(20\d{2})\s*\.\s*(\d{1,2})\s*\.\s*(\d{1,2})\s*\.?")
_YEAR_TOKEN = re.compile(r"(?:’(\d{2})(?!\d))|(?<!\d)(20\d{2})(?:\s*년|\s*\.)")


def _mkdate(y: int, m: int, d: int) -> date | None:
    try:
        return date(y if y > 99 else 2000 + y, m, d)
    except ValueError:
        return None


def as_of_dates(lines: Sequence[str]) -> list[date]:
    out: list[date] = []
    for line in lines:
        for m in _AS_OF.finditer(normalize_line(line)):
            d = _mkdate(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            if d and d not in out:
                out.append(d)
    return out


def _title_area(lines: Sequence[str]) -> list[str]:
    """Lines before the first part/section heading or bullet: the cover."""
    out: list[str] = []
    for line in lines[:40]:
        s = normalize_line(line).strip()
        if not s:
            continue
        if _PART.match(s) or _NUMBERED.match(s) or _NUMBERED_DOT.match(s) or s.startswith(("□", "ㅇ", "○")):
            break
        out.append(s)
    return out


def _kind_of(texts: Sequence[str]) -> str | None:
    joined = " ".join(compact(t) for t in texts)
    for pattern, kind in (("보도자료", "press_release"), ("업무보고", "business_report"),
                          ("추경|추가경정", "supplementary_budget"), ("계획|방안|후속조치", "plan")):
        if re.search(pattern, joined):
            return kind
    return None


def _headings(lines: Sequence[str]) -> list[str]:
    out = []
    for line in lines:
        s = normalize_line(line)
        m = _PART.match(s) or _NUMBERED_DOT.match(s) or _NUMBERED.match(s)
        if m and _plausible_title(m.group(2)):
            out.append(m.group(2))
    return out


def _office_of(lines: Sequence[str], cover: Sequence[str], heads: Sequence[str]) -> str | None:
    for text in list(cover) + list(heads):
        office = _part_office(text)
        if office and not office.endswith(("연구실", "강의실", "회의실")):
            return office
    for line in lines[:60]:
        m = re.search(r"담당부서\s*:\s*([가-힣]{1,8}실)\b", collapse_letter_spacing(normalize_line(line)))
        if m:
            return m.group(1)
    heads_count: Counter[str] = Counter()
    for line in lines:  # the office head's title (`경제실장`) names the office
        heads_count.update(re.findall(r"([가-힣]{2,6}실)장(?![가-힣])", normalize_line(line)))
    return heads_count.most_common(1)[0][0] if heads_count else None


def _reference_year(lines: Sequence[str], as_of: Sequence[date], issue: date | None) -> int | None:
    if as_of:
        return Counter(d.year for d in as_of).most_common(1)[0][0]
    if issue:
        return issue.year
    years: Counter[int] = Counter()
    for line in lines:
        for m in _YEAR_TOKEN.finditer(normalize_line(line)):
            years[2000 + int(m.group(1)) if m.group(1) else int(m.group(2))] += 1
    return years.most_common(1)[0][0] if years else None


def _issue_date(lines: Sequence[str]) -> date | None:
    for line in lines[:40]:
        m = _FULL_DATE.match(normalize_line(line))
        if m:
            return _mkdate(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return None


def _title_of(cover: Sequence[str], kind: str, lines: Sequence[str]) -> str | None:
    if kind == "press_release":
        for line in lines[:40]:  # the headline: first long sentence that is not metadata
            s = normalize_line(line).strip()
            if (len(s) >= 15 and ":" not in s and not is_contact_line(s) and not s.startswith(("-", "□", "○"))
                    and not _FULL_DATE.match(s) and "보도" not in s and not re.search(r"\d{4}-\d{4}", s)):
                return squeeze(s)
        return None
    parts = [s for s in cover if not _FULL_DATE.match(s) and not re.fullmatch(r"-\s*\d+\s*-", s)]
    if not parts:
        return None
    title = parts[0]
    if len(parts) > 1 and len(parts[1]) <= 20 and not re.search(r"합\s*동|\d", parts[1]):
        title = f"{title} {parts[1]}"  # a title wrapped onto a second cover line
    return squeeze(collapse_letter_spacing(title))


def detect_facts(lines: Sequence[str]) -> DocFacts:
    cover = _title_area(lines)
    heads = _headings(lines)
    kind = _kind_of(cover[:12]) or _kind_of([normalize_line(x) for x in lines[:10]]) or _kind_of(
        [h for h in heads if "업무보고" in compact(h)]) or _kind_of(heads) or "unknown"
    as_of = as_of_dates(lines)
    issue = _issue_date(lines)
    return DocFacts(kind=kind, office=_office_of(lines, cover, heads),
                    reference_year=_reference_year(lines, as_of, issue),
                    title=_title_of(cover, kind, lines), as_of_dates=as_of, issue_date=issue)
