"""Audit findings (행정사무감사 지적사항, 건의사항, 기타사항) and their follow-ups.

The answer book prints each finding as a question wrapped over short lines, the division(s) it
is addressed to, then the answer in boxed blocks:

  ㅇ서울영화센터 ’25년          the finding (first line bulleted, the rest wrapped)
  9월 개관 후 센터 …
  (창조산업과)                  the tag: the division(s) answering it
  □ 추진상황 : 추진완료         status
  □ 추진내용                    what was done (past)
  □ 향후계획                    follow-ups with dates: the milestones
   ㅇ 세부 운영계획 수립 : ’25. 7.

The next finding starts right after the last follow-up, without a heading: it is found by
walking back from its tag to the bulleted line that opens it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from services.ingest.importer.model import ActionItem, Issue, Milestone
from services.ingest.importer.schedules import TOP_BULLET, is_running_header, parse_schedule
from services.ingest.importer.text import compact, normalize_line, squeeze

# Follow-up blocks: what the division will do next, with dates.
_FOLLOW_UP = re.compile(r"향후|조치계획|처리계획|이행계획|조치예정")
_STATUS = re.compile(r"^\s*□\s*(?:추진|처리|조치)\s*상황\s*[:：]?\s*(.*)$")
_BOX = re.compile(r"^\s*[□■]\s*(.+?)\s*$")
# The answer's headings, also when the box glyph was lost: `추진상황 : 추진중`, `향후계획`.
_BARE = re.compile(r"^\s*((?:추진|처리|조치|향후)\s*(?:상황|내용|경과|계획|결과|실적|추진\s*계획|일정)"
                   r"(?:\s*및\s*향후\s*(?:추진\s*)?계획)?)\s*(?::.*)?$")
# A finding opens with a top bullet of any style (ㅇ ○ ◦ ① 1. 가. (1)); sub-bullets (- ‣) do not.
_OPENER = TOP_BULLET
_ORG = re.compile(r"^[가-힣A-Za-z·]{2,16}(?:과|담당관|관|원|센터|단|본부|실|팀)$")
_PART = re.compile(r"^\s*[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]{1,3}\s*\.?\s+\S")
_NUMBERED = re.compile(r"^\s{0,3}(\d{1,2})\s+(\S.*)$")
_CATEGORY_WORDS = ("요구사항", "건의사항", "기타사항", "지적사항", "시정")
_MAX_FINDING_LINES = 60


@dataclass(frozen=True)
class _Tag:
    start: int  # 0-based first line of the tag
    end: int  # 0-based last line of the tag
    divisions: list[str]


def _tag_at(lines: Sequence[str], i: int) -> _Tag | None:
    """`(창조산업과)` or `(일자리정책과,` / ` 공기업담당관)` starting at line i, followed by a box."""
    s = normalize_line(lines[i]).strip()
    if not s.startswith("("):
        return None
    text, end = s, i
    while ")" not in text and end + 1 < len(lines) and end - i < 3:
        end += 1
        text += " " + normalize_line(lines[end]).strip()
    if not text.endswith(")") or text.count("(") != 1:
        return None
    names = [compact(t) for t in re.split(r"[,，、/]", text[1:-1]) if compact(t)]
    if not names or not all(_ORG.match(n) for n in names):
        return None
    nxt = next((j for j in range(end + 1, min(end + 6, len(lines))) if lines[j].strip()), None)
    if nxt is None or _heading(lines[nxt]) is None:
        return None
    return _Tag(i, end, names)


def _heading(line: str) -> str | None:
    """The name of an answer block heading (`□ 향후계획`, glyph lost or not), else None."""
    s = normalize_line(line)
    box = _BOX.match(s)
    if box:
        return box.group(1)
    bare = _BARE.match(s)
    return s.strip() if bare else None


def _finding_start(lines: Sequence[str], tag: _Tag, floor: int) -> int | None:
    """The bulleted line that opens the finding the tag closes (0-based), not above `floor`."""
    j = tag.start - 1
    while j >= floor and tag.start - j <= _MAX_FINDING_LINES:
        s = normalize_line(lines[j])
        if _heading(s) is not None:
            return None
        if _OPENER.match(s):
            return j
        j -= 1
    return None


def _category(lines: Sequence[str], line: int) -> str | None:
    """The nearest numbered heading above (`2 시정·처리 요구사항`, `3  건의사항`)."""
    for j in range(line - 1, -1, -1):
        s = normalize_line(lines[j])
        if _PART.match(s):
            return None
        m = _NUMBERED.match(s)
        if m and any(w in compact(m.group(2)) for w in _CATEGORY_WORDS):
            return squeeze(m.group(2))
    return None


def _zone_end(lines: Sequence[str], start: int) -> int:
    """Last line (0-based) before the next part or numbered heading below `start`."""
    for j in range(start + 1, len(lines)):
        s = normalize_line(lines[j])
        numbered = _NUMBERED.match(s)
        if _PART.match(s) or (numbered and any(w in compact(numbered.group(2)) for w in _CATEGORY_WORDS)):
            return j - 1
    return len(lines) - 1


def _title(lines: Sequence[str], start: int, end: int) -> str:
    parts = []
    for j in range(start, end + 1):
        s = normalize_line(lines[j]).strip()
        if s and not is_running_header(s):
            parts.append(s)
    text = squeeze(" ".join(parts))
    return re.sub(r"^[ㅇ○◦❍]\s*", "", text)


def find_action_items(lines: Sequence[str], ref_year: int | None) -> tuple[list[ActionItem], list[Issue]]:
    """Every tagged finding in the document with its status and dated follow-ups."""
    tags: list[tuple[int, _Tag]] = []
    floor = 0
    i = 0
    while i < len(lines):
        tag = _tag_at(lines, i)
        if tag is None:
            i += 1
            continue
        start = _finding_start(lines, tag, floor)
        if start is not None:
            tags.append((start, tag))
            floor = tag.end + 1
        i = tag.end + 1
    items: list[ActionItem] = []
    issues: list[Issue] = []
    for k, (start, tag) in enumerate(tags):
        stop = _zone_end(lines, tag.end)
        if k + 1 < len(tags):
            stop = min(stop, tags[k + 1][0] - 1)
        item = ActionItem(title=_title(lines, start, tag.start - 1), line=start + 1, end=stop + 1,
                          divisions=tag.divisions, category=_category(lines, start))
        _answer(lines, tag.end + 1, stop, ref_year, item, issues)
        items.append(item)
    return items, issues


def _answer(lines: Sequence[str], first: int, last: int, ref_year: int | None, item: ActionItem,
            issues: list[Issue]) -> None:
    """Status and follow-up milestones from the boxed blocks in lines[first..last] (0-based)."""
    heads: list[tuple[int, str]] = []
    for j in range(first, last + 1):
        s = normalize_line(lines[j])
        status = _STATUS.match(s) or _STATUS.match("□" + s)
        if status:
            item.status = compact(status.group(1)) or item.status
            heads.append((j, "status"))
            continue
        name = _heading(s)
        if name is not None:
            heads.append((j, name))
    for n, (j, name) in enumerate(heads):
        end = heads[n + 1][0] - 1 if n + 1 < len(heads) else last
        if name == "status" or not _FOLLOW_UP.search(compact(name)):
            continue
        inline = name.partition(":")[2].strip()
        if inline:  # `□ 향후계획 : ’25.3월 조례 개정`
            found, found_issues = parse_schedule([f"ㅇ {inline}"], 1, 1, ref_year)
            item.milestones.extend(_at_line(found, j + 1))
            issues.extend(Issue(j + 1, i.reason, i.text) for i in found_issues)
        found, found_issues = parse_schedule(lines, j + 2, end + 1, ref_year)
        # An undated follow-up (`… 노력하겠음`) is a promise, not a deadline: only dated ones count.
        dated = [m for m in found if m.when_text]
        item.milestones.extend(dated)
        kept = {m.line for m in dated}
        issues.extend(i for i in found_issues if i.reason != "milestone date not readable" or i.line in kept)


def _at_line(milestones: Sequence[Milestone], line: int) -> list[Milestone]:
    return [replace(m, line=line) for m in milestones]
