"""How many of a report's schedule lines reach the events: an independent count and the recall.

The count does not use the importer's parser. It scans the raw text for what a reader would call a
schedule line: a bulleted line (any bullet style) under a heading that announces what comes next
(향후 추진 일정, 향후계획, 추진일정, 조치계획, 처리계획 …) whose item carries a date expression. The
importer's milestone events are then checked against it line by line: a line is recalled when at
least one `milestone.set` cites it and that milestone has a window or a recurrence (so the programs
service can judge it). Every line not recalled is listed with the importer's reason, if it gave one.

`python -m services.ingest.importer.recall FILE...` prints the figures.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.ingest.importer.events import DocumentResult, map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.report import parse_text

# Bullets as printed in these reports, any style; `1.` / `가.` / `(1)` number items too.
_BULLET = re.compile(
    r"^\s*(?:[ㅇ○◦∘•▪❍‣▸▹►\-–·*]|[①-⑳]|[➀-➉]|\(?\d{1,2}[.)](?!\d)|[가-하][.)]|\([가-하]\))\s*\S")
_BOX = re.compile(r"^\s*[□■◇◆◈▣\ue000-\uf8ff]")  # private use: a box glyph the extractor lost
_SCHEDULE_HEAD = re.compile(r"향후|일정|조치계획|처리계획|이행계획")
_NOT_SCHEDULE_HEAD = re.compile(r"추진경과|추진실적|추진상황")
_PART = re.compile(r"^\s*[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]{1,3}\s*\.?\s+\S")
_SECTION = re.compile(r"^\s{0,3}\d{1,2}\s+[가-힣A-Za-z’']")
# Date expressions a reader recognises; deliberately coarse.
_DATE = re.compile(
    r"[’‘'`]\s?\d{2}(?!\d)|(?<!\d)\d{2}\s?년|(?<!\d)(?:19|20)\d{2}\s?년|(?<![\d.])\d{1,2}\s?월(?!간)|"
    r"(?<!\d)\d{2}\.\s?\d{1,2}\.|[상하]반기|\d\s?/?\s?4?\s?분기|(?<![가-힣])(?:연중|매월|매년|매분기|분기별|반기별|수시)|"
    r"(?<![가-힣])[上下](?![가-힣])")
_OPENS_FINDING = re.compile(r"^\s*(?:[ㅇ○◦❍]|[①-⑳]|\d{1,2}\.\s|[가-하]\.\s|\(\d{1,2}\))")
_DIVISION_TAG = re.compile(r"^\s*\(\s*[가-힣·,\s]+(?:과|관|원|센터)\s*,?\s*\)?\s*$")
_STATUS_LINE = re.compile(r"^\s*[□\ue000-\uf8ff]?\s*추진\s*상황")
# Headings printed without a box glyph (the glyph is often lost in extraction).
_BARE_HEADINGS = frozenset({
    "향후계획", "향후일정", "향후추진일정", "향후추진계획", "추진일정", "세부추진일정", "조치계획", "처리계획",
    "추진현황", "추진실적", "추진경과", "사업개요", "추진목표", "추진계획", "예산집행현황", "주요내용", "추진내용",
    "추진배경", "추진상황"})
_SPACED_HEADER = re.compile(r"^(?:[가-힣]\s+){3,}[가-힣]")  # `건 의 사 항 조 치 결 과`: a page header


@dataclass(frozen=True)
class ScheduleLine:
    line: int  # 1-based
    text: str  # the item as read (bullet line plus wrapped lines), squeezed
    heading: str  # the block heading it sits under
    audit: bool  # inside an audit finding's follow-up


@dataclass
class Recall:
    path: str
    expected: list[ScheduleLine]
    recalled: list[ScheduleLine] = field(default_factory=list)
    missed: list[tuple[ScheduleLine, str]] = field(default_factory=list)  # (line, why)
    milestones: int = 0  # milestone.set events published
    repeats: list[tuple[int, int]] = field(default_factory=list)  # (line, the earlier line it repeats)

    @property
    def rate(self) -> float:
        return len(self.recalled) / len(self.expected) if self.expected else 1.0

    def render(self) -> str:
        audit = [s for s in self.expected if s.audit]
        audit_ok = [s for s in self.recalled if s.audit]
        out = [f"{Path(self.path).name}: {len(self.recalled)}/{len(self.expected)} schedule lines recalled "
               f"({self.rate:.1%}); audit follow-ups {len(audit_ok)}/{len(audit)}; "
               f"{self.milestones} milestone events"
               + (f"; {len(self.repeats)} repeated item(s) published once" if self.repeats else "")]
        out += [f"  {s.line}: {why} | {s.text[:70]}" for s, why in self.missed]
        return "\n".join(out)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _finding_text_lines(lines: Sequence[str]) -> set[int]:
    """Lines of audit findings (the question printed before `(과)` and `□ 추진상황`): a finding's
    text may carry a date (`서울영화센터 ’25년 9월 개관 후 …`) but is not a schedule line."""
    out: set[int] = set()
    for i, line in enumerate(lines):
        if not _DIVISION_TAG.match(line) or "(" not in line:
            continue
        following = [j for j in range(i + 1, min(i + 5, len(lines))) if lines[j].strip()]
        if not following or not _STATUS_LINE.match(lines[following[0]]):
            continue
        j = i - 1
        while j >= 0 and not _OPENS_FINDING.match(lines[j]) and i - j < 60:
            j -= 1
        out.update(range(j + 1, i + 2))  # 1-based numbers of the finding's lines
    return out


def schedule_lines(text: str) -> list[ScheduleLine]:
    """The independent count: dated bullet items under a schedule heading, one per source line."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    finding = _finding_text_lines(lines)
    audit_zone = False
    heading: str | None = None
    out: list[ScheduleLine] = []
    for i, raw in enumerate(lines):
        no = i + 1
        s = raw.strip()
        if _PART.match(raw) or _SECTION.match(raw):
            heading = None
            if _PART.match(raw):
                audit_zone = "감사" in raw
                name = re.sub(r"\s", "", raw.strip().lstrip("ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ.").split(":")[0])
                heading = _squeeze(s) if name in _BARE_HEADINGS and _SCHEDULE_HEAD.search(name) else None
            continue
        bare = re.sub(r"\s|\(.*", "", s.split(":")[0]) in _BARE_HEADINGS
        if _BOX.match(raw) or _DIVISION_TAG.match(raw) or bare:
            name = re.sub(r"\s", "", _BOX.sub("", s))
            is_schedule = bool(_SCHEDULE_HEAD.search(name)) and not _NOT_SCHEDULE_HEAD.search(name)
            heading = _squeeze(s) if is_schedule and len(name) <= 24 else None
            continue
        if heading is None or no in finding or not _BULLET.match(raw):
            continue
        item = s
        for j in range(i + 1, min(i + 8, len(lines))):  # wrapped lines of the item
            nxt = lines[j].strip()
            if not nxt:
                continue
            if (_BULLET.match(lines[j]) or _BOX.match(lines[j]) or nxt.startswith(("※", "<", "〈"))
                    or (j + 1) in finding or _SPACED_HEADER.match(nxt)):
                break
            if _SECTION.match(lines[j]) or _PART.match(lines[j]):
                break
            item = f"{item} {nxt}"
            if len(item) > 200:
                break
        if _DATE.search(item.replace("’", "'")):
            out.append(ScheduleLine(no, _squeeze(item), heading, audit_zone))
    return out


def _published_lines(result: DocumentResult) -> set[int]:
    out: set[int] = set()
    for e in result.envelopes:
        if e.event_type != "milestone.set":
            continue
        p = e.payload
        if p.source_ref is None or p.source_ref.line is None:
            continue
        if p.window_start or p.window_end or p.recurrence:
            out.add(p.source_ref.line)
    return out


def measure(text: str, path: str = "<text>") -> Recall:
    """Parse and map `text` with a fresh registry and compare with the independent count."""
    expected = schedule_lines(text)
    result = map_report(parse_text(text, path), ProgramRegistry(), text=text)
    return compare(expected, result, path)


def compare(expected: Sequence[ScheduleLine], result: DocumentResult, path: str) -> Recall:
    published = _published_lines(result)
    why: dict[int, str] = {}
    for issue in result.issues:
        why.setdefault(issue.line, issue.reason)
    rec = Recall(path, list(expected), milestones=sum(1 for e in result.envelopes
                                                       if e.event_type == "milestone.set"))
    first_of: dict[str, int] = {}
    for s in expected:
        first_of.setdefault(s.text, s.line)
        if s.line in published:
            rec.recalled.append(s)
        elif first_of[s.text] != s.line and first_of[s.text] in published:
            rec.recalled.append(s)  # the document prints the same item twice: one fact, published once
            rec.repeats.append((s.line, first_of[s.text]))
        else:
            rec.missed.append((s, why.get(s.line, "no milestone published for this line")))
    return rec


def main(argv: Sequence[str]) -> int:
    for name in argv:
        text = Path(name).read_bytes().decode("utf-8-sig")
        print(measure(text, name).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
