"""What one import run learns is remembered for the next (programs, last milestones and targets)."""

from __future__ import annotations

from pathlib import Path

from services.ingest.importer.cli import map_files, save_state
from services.ingest.importer.reporting import ImportSummary

JANUARY = "001_74008803e39ce1ad.txt"


def _first_run(report: Path, state: Path) -> ImportSummary:
    """Import `report` and save what the run learned, as a complete publish would."""
    first = map_files([report], progress=False, state=state)
    assert first.registry is not None
    save_state(state, first.registry, first.last_listed)
    return first


def _without_line(report: Path, line: int | None, out: Path) -> Path:
    """The same report with one printed line removed (next month's report, say)."""
    assert line is not None
    lines = report.read_text("utf-8").splitlines()
    out.write_text("\n".join(lines[: line - 1] + lines[line:]), "utf-8")
    return out


def test_a_later_run_matches_programs_an_earlier_run_saw(seeds, tmp_path):
    state = tmp_path / "state.json"
    first = _first_run(seeds / JANUARY, state)
    january = {e.key: e.payload.original for e in first.envelopes if e.event_type == "budget.line_set"}

    second = map_files([seeds / "000_b33102f55d2543a4.txt"], progress=False, state=state)
    amended = [e for e in second.envelopes if e.event_type == "budget.amended"]
    assert len(amended) == 4
    assert {e.key for e in amended} <= set(january)


def test_a_milestone_dropped_in_next_months_report_is_cancelled(seeds, tmp_path):
    state = tmp_path / "state.json"
    first = _first_run(seeds / JANUARY, state)
    milestones = [e for e in first.envelopes if e.event_type == "milestone.set"]
    # A program whose schedule is still printed (it keeps other milestones) loses just this one.
    milestone = next(m for m in milestones if sum(x.key == m.key for x in milestones) >= 2)
    newer = _without_line(seeds / JANUARY, milestone.payload.source_ref.line,  # type: ignore[union-attr]
                          tmp_path / "february.txt")

    second = map_files([newer], progress=False, state=state)
    cancelled = [e for e in second.envelopes if e.event_type == "milestone.set" and e.payload.status == "cancelled"]
    assert [(e.key, e.payload.milestone_id) for e in cancelled] == [(milestone.key, milestone.payload.milestone_id)]


def test_a_target_dropped_in_next_months_report_is_published_as_dropped(seeds, tmp_path):
    state = tmp_path / "state.json"
    first = _first_run(seeds / JANUARY, state)
    targets = [e for e in first.envelopes if e.event_type == "target.set"]
    target = next(t for t in targets if sum(x.key == t.key for x in targets) >= 2)
    newer = _without_line(seeds / JANUARY, target.payload.source_ref.line,  # type: ignore[union-attr]
                          tmp_path / "february.txt")

    second = map_files([newer], progress=False, state=state)
    dropped = [e for e in second.envelopes if e.event_type == "target.set" and e.payload.status == "dropped"]
    assert [(e.key, e.payload.target_id) for e in dropped] == [(target.key, target.payload.target_id)]
    assert "빠진 목표" in (dropped[0].payload.note or "")
    cancelled = [e for e in second.envelopes if e.event_type == "milestone.set" and e.payload.status == "cancelled"]
    assert cancelled == []  # only the target line was removed
