"""Property tests of the report parser, through the entry the `execwatch import` CLI uses (`map_files`):
whatever a file holds — arbitrary text, or a real report damaged (lines deleted, duplicated or swapped,
odd characters put in, numbers changed, the file cut anywhere) — the importer never raises, every
envelope it yields satisfies the contracts with money as integer 원, and every issue it reports names a
line of the file.

Reproducible in CI: derandomized, no example database. The 5,947-line business report takes seconds
to parse whole, so it is damaged in windows (its cover page, then a stretch of its body)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import parse_event
from services.ingest.importer.cli import map_files
from services.ingest.importer.reporting import ImportSummary

PROPERTY = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"

# Fields of the contracts that hold money (`Won` / `WonDelta`): integers, never floats or strings.
MONEY = {"original", "carried_over", "supplementary", "current", "previous_final", "before", "change", "after",
         "committed", "spent", "current_budget"}

# What extraction leaves in real files, and worse: control characters, ideographic and no-break spaces,
# zero-width marks, a BOM mid-file, line separators that are not "\n", private-use glyphs, full-width and
# non-ASCII digits, the report's own signs and units.
ODD = ["\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x1c", "\x7f", "\x85", "\u2028", "\u2029", "\u3000",
       "\u00a0", "\u200b", "\ufeff", "\r", "\t", "\ue000", "－", "１２３", "٣", "𝟘", "△", "▲", "-", "(", ")", "’25.",
       "월", "억원", "백만원", "천원", "계", "소계", "%", ",", ".", "~", "\ud7a3", "가" * 300]


def _seed(prefix: str) -> str:
    found = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.skip("shared/seeds is not beside the checkout")
    return found[0].read_text("utf-8")


def _lines_of(text: str) -> int:
    """How many lines the parser sees in the file (it splits on CR, LF and CRLF, after a BOM)."""
    return len(text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def import_text(text: str) -> ImportSummary:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.txt"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        return map_files([path], progress=False)


def _values(data: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _values(v, k)
    elif isinstance(data, list):
        for v in data:
            yield from _values(v, key)
    else:
        yield key, data


def assert_sound(text: str) -> ImportSummary:
    """The properties every import must have, whatever the file held."""
    summary = import_text(text)
    lines = _lines_of(text)
    for doc in summary.documents:
        assert doc.error is None  # readable files are never "unreadable"
        for issue in doc.issues:
            assert 1 <= issue.line <= lines, issue
        for row in [*doc.unmatched, *doc.inconsistencies, *doc.unlinked]:
            assert 1 <= row.line <= lines, row
        for envelope in doc.envelopes:
            data = envelope.model_dump(mode="json")
            assert parse_event(data).model_dump(mode="json") == data  # valid, and the same once parsed
            for key, value in _values(data["payload"]):
                assert not isinstance(value, float), (key, value)
                if key in MONEY:
                    assert value is None or type(value) is int, (key, value)
    return summary


# A few files of arbitrary text: any character at all, and report-ish lines.
report_lines = st.lists(st.one_of(st.text(max_size=60), st.sampled_from(ODD),
                                  st.builds("".join, st.lists(st.sampled_from(ODD), max_size=12))), max_size=40)


@settings(PROPERTY, max_examples=100)
@given(text=st.text(max_size=2000))
def test_arbitrary_text_never_raises(text: str) -> None:
    summary = assert_sound(text)
    assert len(summary.documents) == 1


@settings(PROPERTY, max_examples=60)
@given(lines=report_lines)
def test_arbitrary_report_like_lines_never_raise(lines: list[str]) -> None:
    assert_sound("\n".join(lines))


def _renumber(draw: st.DrawFn, line: str) -> str:
    """Change every number of a line: other digits, huge, empty, negative, commas in odd places."""
    choices = st.one_of(st.integers(0, 10**30).map(str), st.sampled_from(["", "0", "-1", "△1", "1,2,3", "９", "1.5.5",
                                                                        "9" * 40, ",", "00000"]))
    return re.sub(r"\d[\d,.]*", lambda _: draw(choices), line)


@st.composite
def damaged(draw: st.DrawFn, text: str, window: bool = False) -> str:
    lines = text.split("\n")
    if window:  # the cover (kind, office, year) and a stretch of the body
        start = draw(st.integers(0, len(lines) - 1))
        lines = lines[:draw(st.integers(0, 60))] + lines[start:start + draw(st.integers(40, 400))]
    for _ in range(draw(st.integers(1, 8))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        # Cutting the file is one damage among many: drawn rarely, or most examples would be stubs.
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "insert", "renumber", "renumber",
                                   "new line", "cut"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.one_of(st.sampled_from(ODD), st.text(max_size=5))) + lines[i][at:]
        elif op == "renumber":
            lines[i] = _renumber(draw, lines[i])
        elif op == "new line":
            lines.insert(i, draw(st.text(max_size=40)))
        else:  # the file ends anywhere, mid-line or mid-table
            whole = "\n".join(lines)
            lines = whole[:draw(st.integers(0, len(whole)))].split("\n")
    return "\n".join(lines)


@pytest.mark.parametrize("prefix", ["000", "002", "004"])
def test_damaged_small_reports_never_raise(prefix: str) -> None:
    text = _seed(prefix)

    @settings(PROPERTY, max_examples=12)
    @given(damaged(text))
    def run(damaged_text: str) -> None:
        assert_sound(damaged_text)

    run()


def test_damaged_business_report_windows_never_raise() -> None:
    text = _seed("001")

    @settings(PROPERTY, max_examples=40)
    @given(damaged(text, window=True))
    def run(damaged_text: str) -> None:
        assert_sound(damaged_text)

    run()


def test_the_budget_table_damaged_still_yields_valid_integer_money() -> None:
    """The 예산현황 summary (lines ~95-290 of the January report) with its numbers changed: what is
    still published is valid and integer, and an undamaged window publishes the table's lines."""
    lines = _seed("001").split("\n")
    window = "\n".join(lines[:300])
    published = [e for e in assert_sound(window).envelopes if e.event_type == "budget.line_set"]
    assert published  # the undamaged window does publish budget lines: the property below is not vacuous

    @settings(PROPERTY, max_examples=10)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        damaged_lines = list(lines[:300])
        for i in data.draw(st.lists(st.integers(94, 299), min_size=1, max_size=15)):
            damaged_lines[i] = _renumber(data.draw, damaged_lines[i])
        assert_sound("\n".join(damaged_lines))

    run()


def test_a_negative_spent_in_the_execution_table_is_an_issue_on_its_line_not_an_exception() -> None:
    """Found by the property above: `-1` printed as 지출액 made the contract refuse the snapshot and the
    whole import raise. Now that one row is reported, and the rest of the table still published."""
    lines = _seed("001").split("\n")[:300]
    row = 114  # 중소기업 매출채권보험료 지원 1,496 1,496 2,500 　- 0.0 (the January report's 예산현황)
    assert lines[row - 1].startswith("중소기업 매출채권보험료 지원 1,496")
    lines[row - 1] = "중소기업 매출채권보험료 지원 1,496 1,496 2,500 -1 0.0"
    summary = assert_sound("\n".join(lines))
    issues = [i for d in summary.documents for i in d.issues if i.line == row]
    assert any("contract refuses" in i.reason and "spent" in i.reason for i in issues), issues
    published = {e.payload.title for e in summary.envelopes if e.event_type == "budget.line_set"}
    assert {"중소기업 매출채권보험료 지원", "서울형 R&D 지원"} <= published
