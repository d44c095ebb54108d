"""A variation corpus: layout variants of a seen report, made mechanically, and what each must yield.

Each department writes its reports a little differently. The variants below change only the
layout — contacts tables dropped, bullets renumbered in another style, spacing and quotes of dates
changed, wrapped lines split and blank lines merged away, box glyphs lost, the unit caption moved
to a line of its own — so whatever the original yields, the variant must still yield:

- schedule lines: the importer's recall against the independent count (`recall.schedule_lines`),
  measured on the variant's own text;
- windows: the milestones of the original (title, window) found again in the variant;
- budget: where the variant keeps the tables, every 본예산 of the original again.

`python -m services.ingest.importer.variants FILE...` prints the figures; the unit tests hold
them to a threshold.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.ingest.importer.contacts import is_contact_line
from services.ingest.importer.events import DocumentResult, map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.recall import compare, schedule_lines
from services.ingest.importer.report import parse_text

Transform = Callable[[list[str]], list[str]]

_TOP = re.compile(r"^(\s*)[ㅇ○](\s*)(?=\S)")
_SUB = re.compile(r"^(\s*)-(\s*)(?=\S)")
_BOX = re.compile(r"^(\s*)□\s*")
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_HANGUL_ORDER = "가나다라마바사아자차카타파하"
_CAPTION = re.compile(r"\(\s*단위\s*[:：][^)]*\)")


def drop_contacts(lines: list[str]) -> list[str]:
    """The report prints no contacts table: the division must come from elsewhere."""
    return [line for line in lines if not (line.strip() and is_contact_line(line))]


def _bullet_style(block: int, n: int) -> str:
    style = block % 5
    if style == 0:
        return "◦"
    if style == 1:
        return _CIRCLED[min(n, len(_CIRCLED) - 1)]
    if style == 2:
        return f"{n + 1}."
    if style == 3:
        return f"{_HANGUL_ORDER[min(n, len(_HANGUL_ORDER) - 1)]}."
    return f"({n + 1})"


def renumber_bullets(lines: list[str]) -> list[str]:
    """Top bullets become ◦ / ① / 1. / 가. / (1) (one style per block); sub-bullets become ‣."""
    out: list[str] = []
    block, n = 0, 0
    for line in lines:
        if _BOX.match(line):
            block, n = block + 1, 0
            out.append(line)
            continue
        m = _TOP.match(line)
        if m:
            out.append(f"{m.group(1)}{_bullet_style(block, n)} {line[m.end():]}")
            n += 1
            continue
        m = _SUB.match(line)
        out.append(f"{m.group(1)}‣ {line[m.end():]}" if m else line)
    return out


_DATE_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"’(\d{2})\.\s*"), r"'\1. "),  # ’25.3월 -> '25. 3월
    (re.compile(r"(\d)\s*~\s*(\d)"), r"\1 ~ \2"),  # 4~5월 -> 4 ~ 5월
    (re.compile(r"(\d)\.\s+(\d)"), r"\1 . \2"),  # 25. 3 -> 25 . 3
)


def respace_dates(lines: list[str]) -> list[str]:
    """Other quotes and spacing in dates: `’25. 4~5월` -> `'25 . 4 ~ 5월`, alternately `‘25.4∼5월`."""
    out: list[str] = []
    for k, line in enumerate(lines):
        if not (_TOP.match(line) or _SUB.match(line)):
            out.append(line)
            continue
        if k % 2:
            s = re.sub(r"’(\d{2})\.\s*", r"‘\1.", line)
            s = re.sub(r"(\d)\s*~\s*(\d)", r"\1∼\2", s)
        else:
            s = line
            for pattern, repl in _DATE_FORMS:
                s = pattern.sub(repl, s)
        out.append(s)
    return out


def split_lines(lines: list[str]) -> list[str]:
    """Long bullet lines wrap: the words before ` : date` go on a line of their own."""
    out: list[str] = []
    for line in lines:
        head, sep, tail = line.partition(" : ")
        words = head.split()
        if sep and (_TOP.match(line) or _SUB.match(line)) and len(words) >= 4 and tail.strip():
            cut = len(words) // 2 + 1
            out.append(" ".join(words[:cut]))
            out.append(" ".join(words[cut:]) + sep + tail)
        else:
            out.append(line)
    return out


def merge_lines(lines: list[str]) -> list[str]:
    """No blank lines between anything (a reflowed extraction)."""
    return [line for line in lines if line.strip()]


def lose_box_glyphs(lines: list[str]) -> list[str]:
    """The □ of block headings is lost in extraction (a private-use glyph or nothing)."""
    out: list[str] = []
    for k, line in enumerate(lines):
        m = _BOX.match(line)
        out.append(line if m is None else m.group(1) + ("\uf000 " if k % 2 else "") + line[m.end():])
    return out


def move_unit_line(lines: list[str]) -> list[str]:
    """`□ 예산 집행 현황 (단위: 천원, …)` -> the caption on a line of its own above the heading."""
    out: list[str] = []
    for line in lines:
        m = _CAPTION.search(line)
        if m and line[: m.start()].strip():
            out.append(m.group(0))
            out.append("")
            out.append(line[: m.start()].rstrip())
        else:
            out.append(line)
    return out


@dataclass(frozen=True)
class Variant:
    name: str
    transform: Transform
    keeps_tables: bool  # the tables are untouched: every 본예산 must come out again


VARIANTS: tuple[Variant, ...] = (
    Variant("drop-contacts", drop_contacts, True),
    Variant("renumber-bullets", renumber_bullets, True),
    Variant("respace-dates", respace_dates, True),
    Variant("split-lines", split_lines, True),
    Variant("merge-lines", merge_lines, False),
    Variant("lose-box-glyphs", lose_box_glyphs, False),
    Variant("move-unit-line", move_unit_line, True),
    Variant("all-of-the-above", lambda ls: move_unit_line(lose_box_glyphs(merge_lines(split_lines(
        respace_dates(renumber_bullets(drop_contacts(ls))))))), False),
)


@dataclass(frozen=True)
class Outcome:
    name: str
    expected: int  # schedule lines in the variant (independent count)
    recalled: int
    windows_kept: int  # original (title, window) milestones found again
    windows: int
    budget_kept: int | None  # original 본예산 found again, when the variant keeps the tables
    budget: int | None
    owned: int  # milestones whose program names a division (the variant may hide who owns it)
    owned_before: int  # the same in the original

    @property
    def recall(self) -> float:
        return self.recalled / self.expected if self.expected else 1.0

    @property
    def window_rate(self) -> float:
        return self.windows_kept / self.windows if self.windows else 1.0

    def render(self) -> str:
        budget = f"; 본예산 {self.budget_kept}/{self.budget}" if self.budget is not None else ""
        return (f"  {self.name:18} schedule lines {self.recalled}/{self.expected} ({self.recall:.1%}); "
                f"milestone windows {self.windows_kept}/{self.windows} ({self.window_rate:.1%}){budget}; "
                f"with a division {self.owned} (original {self.owned_before})")


def _map(text: str, path: str) -> DocumentResult:
    return map_report(parse_text(text, path), ProgramRegistry(), text=text)


def _windows(result: DocumentResult) -> Counter[tuple[Any, ...]]:
    return Counter((re.sub(r"\s+", "", e.payload.title), e.payload.window_start, e.payload.window_end,
                    e.payload.recurrence)
                   for e in result.envelopes if e.event_type == "milestone.set")


def _budget(result: DocumentResult) -> Counter[tuple[str, int]]:
    return Counter((e.payload.title, e.payload.original) for e in result.envelopes
                   if e.event_type == "budget.line_set")


def _owned(result: DocumentResult) -> int:
    divisions = {e.key: e.payload.division for e in result.envelopes if e.event_type == "program.registered"}
    return sum(1 for e in result.envelopes if e.event_type == "milestone.set" and divisions.get(e.key))


def run(text: str, path: str = "<text>", variants: Sequence[Variant] = VARIANTS) -> list[Outcome]:
    """Every variant of `text` with what it yields against the original."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    base = _map(text, path)
    base_windows, base_budget = _windows(base), _budget(base)
    out: list[Outcome] = []
    for v in variants:
        vtext = "\n".join(v.transform(list(lines)))
        result = _map(vtext, path)
        rec = compare(schedule_lines(vtext), result, path)
        kept = sum((base_windows & _windows(result)).values())
        budget_kept = sum((base_budget & _budget(result)).values()) if v.keeps_tables else None
        out.append(Outcome(v.name, len(rec.expected), len(rec.recalled), kept, sum(base_windows.values()),
                           budget_kept, sum(base_budget.values()) if v.keeps_tables else None,
                           _owned(result), _owned(base)))
    return out


def main(argv: Sequence[str]) -> int:
    for name in argv:
        text = Path(name).read_bytes().decode("utf-8-sig")
        print(Path(name).name)
        for outcome in run(text, name):
            print(outcome.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
