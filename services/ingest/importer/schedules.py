"""Milestones from 향후 추진 일정 / 향후 계획 / 추진일정 blocks and staged flow charts.

`ㅇ 서류심사, 현장실사 등 선정평가 : ’25. 4~5월`      -> one milestone, date after the colon
`ㅇ 준공(’25.8월), 시범운영(’25.9~10월)`              -> one milestone per dated parenthesis
`  - 조례안 상정(’25.2월)`                             -> sub-items count when they carry a date
A line whose date cannot be read is kept (when.unparsed) and reported as an Issue.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.ingest.importer.dates import ParsedWhen, find_when, parse_when
from services.ingest.importer.model import Issue, Milestone
from services.ingest.importer.text import normalize_line, squeeze, strip_bullet, year_or_now

# Bullets of an item, any style: ㅇ ○ ◦ ① 1. 1) 가. (1) (가) open one; - – ‣ ▸ · a sub-item.
TOP_BULLET = _TOP = re.compile(
    r"^\s*(?:[ㅇ○◦∘•▪❍]|[①-⑳➀-➉]|\d{1,2}[.)]\s+(?!\d{1,2}\s*\.)|[가-하][.)]\s|\(\d{1,2}\)|\([가-하]\))")
_SUB = re.compile(r"^\s*[\-–‣▸▴·▹►]")
# `소요예산 : 1,375백만원`, `사업기간 : …`: a fact line of its own, never the wrap of a schedule item.
_FACT_LINE = re.compile(r"^\s*(?:소요예산|총사업비|사업비|예산|사업기간|추진기간|사업대상|지원대상|지원규모|"
                        r"추진방법|사업내용|주요내용|담당|담당부서|근거|추진근거)\s*[:：]")
_RUNNING_HEADER = re.compile(r"(?:(?<!\S)[가-힣]\s+){3,}[가-힣]$")
_NOTE = re.compile(r"^\s*(※|\*|<|〈|\[참고)")
_PAREN = re.compile(r"\(([^()]*)\)")
_STAGE = re.compile(r"[(\[<]?\s*(완\s*료|진\s*행\s*중|추\s*진\s*중|추\s*진\s*예\s*정)\s*[)\]>]?\s*$")
_STAGE_NAMES = {"완료": "완료", "진행중": "진행중", "추진중": "진행중", "추진예정": "추진 예정"}
_ARROWS = re.compile(r"[è→➡⇨➜▶➞➠⇒]")
_LEGEND_WORDS = ("완료", "진행중", "예정")
_TABLE_ROW = re.compile(r"(\s[\d,.()\-]+){3,}\s*$")
# An undated item ending in an owner list `(경제정책과)` opens the next row of a flattened table.
_OWNER_TAIL = re.compile(r"\((?:\s*[가-힣]+(?:과|담당관|관)\s*,?)+\)\s*$")
_DATEISH = re.compile(r"[’]\d{2}|\d{1,2}\s*월|\d{1,2}\.\s*\d{1,2}|연중|상반기|하반기|반기|분기|"
                      r"매월|매년|수시|계속|上|下|\d주")


@dataclass
class _Item:
    text: str
    line: int
    top: bool


def _has_date(text: str, ref_year: int | None) -> bool:
    return bool(_DATEISH.search(text)) and find_when(text, year_or_now(ref_year)) is not None


def is_running_header(text: str) -> bool:
    """`건  의  사  항 조    치    결    과`: a page header repeated by the extraction, ending in
    letter-spaced syllables; never part of an item."""
    t = text.strip()
    return bool(t) and bool(_RUNNING_HEADER.search(t)) and not (_TOP.match(t) or _SUB.match(t))


def _ends_with_date(text: str, ref_year: int | None) -> bool:
    """`… 선정평가 : ’25. 4~5월` is a complete item: what follows it is not its wrap."""
    found = find_when(text, year_or_now(ref_year))
    if found is None or not _DATEISH.search(found[0]):
        return False
    tail = text[text.rfind(found[0]) + len(found[0]):]
    tail = _STAGE.sub("", tail)
    return not re.search(r"[가-힣A-Za-z0-9]", tail)


def _items(lines: Sequence[str], start: int, end: int, ref_year: int | None = None) -> list[_Item]:
    """Bulleted items in lines[start..end] (1-based, inclusive); wrapped lines are joined.

    A line is the wrap of the item above only when that item is not complete yet (its date is
    not at its end) and the line is no fact line, table row, header or dated line of its own:
    a dated line after a complete item is an item of its own, with its own line number."""
    items: list[_Item] = []
    wraps = 0
    for no in range(start, end + 1):
        raw = normalize_line(lines[no - 1])
        if not raw.strip() or _NOTE.match(raw) or is_running_header(raw):
            continue
        if _TOP.match(raw) or _SUB.match(raw):
            items.append(_Item(strip_bullet(raw), no, bool(_TOP.match(raw))))
            wraps = 0
            continue
        if _FACT_LINE.match(raw):
            if items:
                break  # the list is over: `소요예산 : …` and the like follow it
            continue
        if _TABLE_ROW.search(raw):
            if items:
                break  # a table or box after the list ends the schedule
            continue
        text = raw.strip()
        complete = bool(items) and _ends_with_date(items[-1].text, ref_year)
        if items and not complete and wraps < 3 and len(text) <= 80:
            items[-1].text = f"{items[-1].text} {text}"  # a wrapped line
            wraps += 1
        elif not items or (_has_date(text, ref_year) and len(text) <= 120):
            items.append(_Item(text, no, items[-1].top if items else True))  # an unbulleted item
            wraps = 0
        else:
            break
    return items


def _stage_of(text: str) -> tuple[str, str | None]:
    m = _STAGE.search(text)
    if not m:
        return text, None
    return text[: m.start()].rstrip(" ,:"), _STAGE_NAMES[re.sub(r"\s", "", m.group(1))]


def _clean(text: str) -> str:
    text = re.sub(r"\(\s*\)", "", text)
    return squeeze(text).strip(" ,:;")


def _date_and_rest(content: str, ref_year: int | None) -> tuple[str, str]:
    """`’25.3월, 프랑스` -> (`’25.3월`, `프랑스`): a place or note next to the date stays in the text."""
    found = find_when(content, year_or_now(ref_year))
    if found is None:
        return squeeze(content), ""
    rest = content.replace(found[0], " ", 1).strip(" ,/;")
    if not rest or re.search(r"\d", rest):
        return squeeze(content), ""
    return squeeze(found[0]), squeeze(rest)


def _split_item(text: str, ref_year: int | None) -> list[tuple[str, str]]:
    """(activity, date text) pairs for one item; date text "" when none was found."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.strip() and _has_date(tail, ref_year):
        return [(_clean(head), squeeze(tail))]
    dated = [m for m in _PAREN.finditer(text) if _has_date(m.group(1), ref_year)]
    if len(dated) > 1:  # `준공(’25.8월), 시범운영(’25.9~10월)`: one milestone per date
        out: list[tuple[str, str]] = []
        pos = 0
        for m in dated:
            when_text, rest = _date_and_rest(m.group(1), ref_year)
            out.append((_clean(text[pos:m.start()] + (f" ({rest})" if rest else "")), when_text))
            pos = m.end()
        return out
    if dated:
        m = dated[0]
        when_text, rest = _date_and_rest(m.group(1), ref_year)
        activity = text[: m.start()] + (f" ({rest})" if rest else "") + text[m.end():]
        return [(_clean(activity), when_text)]
    found = find_when(text, year_or_now(ref_year))
    if found is not None and _DATEISH.search(found[0]):
        when_text = found[0]
        return [(_clean(text.replace(when_text, " ", 1)), squeeze(when_text))]
    return [(_clean(text), "")]


def parse_schedule(lines: Sequence[str], start: int, end: int,
                   ref_year: int | None) -> tuple[list[Milestone], list[Issue]]:
    """Milestones from the body of a schedule block (1-based inclusive line range)."""
    items = _items(lines, start, end, ref_year)
    milestones: list[Milestone] = []
    issues: list[Issue] = []
    for k, item in enumerate(items):
        text, stage = _stage_of(item.text)
        dated = _has_date(text, ref_year)
        if item.top and not dated and _OWNER_TAIL.search(text):
            break
        if not item.top and not dated:
            continue  # an explanatory sub-line (`- 신산업, 청년기업 등 간담회 추진`)
        if item.top and _children_dated(items, k, ref_year) and (not dated or _only_year(text, ref_year)):
            # a group heading (`ㅇ ’25년 행사계획 수립 시 …`): its dated sub-items are the milestones
            issues.append(Issue(item.line, "group heading; its dated sub-items are the milestones", item.text))
            continue
        for activity, when_text in _split_item(text, ref_year):
            when = parse_when(when_text, year_or_now(ref_year))
            if when.unparsed or not when_text:
                issues.append(Issue(item.line, "milestone date not readable", item.text))
            milestones.append(Milestone(activity or text, when_text, when, item.line, stage))
    return milestones, issues


def _only_year(text: str, ref_year: int | None) -> bool:
    """The item's only date is a whole year (`2025년 … 계속 추진`): too coarse beside dated sub-items."""
    found = find_when(text, year_or_now(ref_year))
    if found is not None and found[1].recurrence is not None:
        return False  # 연중, 매월: a schedule of its own
    return found is None or not found[1].windows or all(
        w.start is not None and w.end is not None and (w.start.month, w.start.day, w.end.month, w.end.day)
        == (1, 1, 12, 31) for w in found[1].windows)


def _children_dated(items: Sequence[_Item], k: int, ref_year: int | None) -> bool:
    for child in items[k + 1:]:
        if child.top:
            return False
        if _has_date(child.text, ref_year):
            return True
    return False


# ---------------------------------------------------------------- staged flow charts


def is_stage_legend(line: str) -> bool:
    """`완료 진행중 추진 예정`: the legend of a flow chart whose boxes were coloured by stage."""
    s = re.sub(r"\s", "", normalize_line(line))
    return len(s) <= 16 and all(w in s for w in _LEGEND_WORDS)


def _window(when: ParsedWhen) -> tuple[date | None, date | None]:
    """Overall span of the windows; an open side stays open (None)."""
    if not when.windows:
        return None, None
    starts = [w.start for w in when.windows]
    ends = [w.end for w in when.windows]
    start = None if any(x is None for x in starts) else min(x for x in starts if x is not None)
    end = None if any(x is None for x in ends) else max(x for x in ends if x is not None)
    return start, end


def infer_stage(when: ParsedWhen, as_of: date | None) -> str | None:
    """Stage of a window relative to the document date (the colours are lost in extraction)."""
    start, end = _window(when)
    if as_of is None or (start is None and end is None):
        return None
    if end is not None and end < as_of:
        return "완료"
    if start is not None and start > as_of:
        return "추진 예정"
    return "진행중"


def parse_flow_chart(lines: Sequence[str], legend: int, end: int, ref_year: int | None,
                     as_of: date | None) -> tuple[list[Milestone], list[Issue]]:
    """Boxes after a stage legend: `사업 공고 (1.23) è 사업 설명회 (2.7/3.7) è ...`.

    Boxes wrap over several lines; they are joined and split on the arrow glyphs. The stage
    is inferred from the document date and flagged, since only the colours carried it.
    """
    boxes: list[list[tuple[str, int]]] = [[]]
    for no in range(legend + 1, min(end, legend + 60) + 1):
        s = normalize_line(lines[no - 1]).strip()
        if s.startswith(("<", "〈", "※", "□", "ㅇ")):
            break
        for k, piece in enumerate(_ARROWS.split(s)):
            if k > 0:
                boxes.append([])
            if piece.strip():
                boxes[-1].append((piece.strip(), no))
    chunks = [(" ".join(p for p, _ in box), box[0][1]) for box in boxes if box]
    milestones: list[Milestone] = []
    issues: list[Issue] = []
    order = ["완료", "진행중", "추진 예정"]
    floor = 0  # the chart runs in order: a later step is never more advanced than an earlier one
    for text, no in chunks:
        m = re.match(r"^(.*?)\s*\(([^()]*)\)\s*$", squeeze(text))
        if not m:
            continue
        when = parse_when(m.group(2), year_or_now(ref_year))
        stage = infer_stage(when, as_of)
        if stage is not None:  # `~6월` after a planned step is planned too
            floor = max(floor, order.index(stage))
            stage = order[floor]
        milestones.append(Milestone(squeeze(m.group(1)), m.group(2).strip(), when, no, stage))
        if stage is not None:
            issues.append(Issue(no, f"stage {stage} inferred from the document date", squeeze(text)))
    return milestones, issues
