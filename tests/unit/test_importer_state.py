"""What one import run learns is remembered for the next (programs, last milestones)."""

from __future__ import annotations

from services.ingest.importer.cli import map_files, save_state


def test_a_later_run_matches_programs_an_earlier_run_saw(seeds, tmp_path):
    state = tmp_path / "state.json"
    first = map_files([seeds / "001_74008803e39ce1ad.txt"], progress=False, state=state)
    assert first.registry is not None
    save_state(state, first.registry, first.last_milestones)
    january = {e.key: e.payload.original for e in first.envelopes if e.event_type == "budget.line_set"}

    second = map_files([seeds / "000_b33102f55d2543a4.txt"], progress=False, state=state)
    amended = [e for e in second.envelopes if e.event_type == "budget.amended"]
    assert len(amended) == 4
    assert {e.key for e in amended} <= set(january)


def test_a_milestone_dropped_in_next_months_report_is_cancelled(seeds, tmp_path):
    state = tmp_path / "state.json"
    january = seeds / "001_74008803e39ce1ad.txt"
    first = map_files([january], progress=False, state=state)
    assert first.registry is not None
    save_state(state, first.registry, first.last_milestones)
    milestones = [e for e in first.envelopes if e.event_type == "milestone.set"]
    # A program whose schedule is still printed (it keeps other milestones) loses just this one.
    milestone = next(m for m in milestones if sum(x.key == m.key for x in milestones) >= 2)
    line = milestone.payload.source_ref.line  # type: ignore[union-attr]
    lines = january.read_text("utf-8").splitlines()
    assert line is not None
    newer = tmp_path / "february.txt"
    newer.write_text("\n".join(lines[: line - 1] + lines[line:]), "utf-8")

    second = map_files([newer], progress=False, state=state)
    cancelled = [e for e in second.envelopes if e.event_type == "milestone.set" and e.payload.status == "cancelled"]
    assert [(e.key, e.payload.milestone_id) for e in cancelled] == [(milestone.key, milestone.payload.milestone_id)]


def test_a_target_dropped_in_next_months_report_is_published_as_dropped(seeds, tmp_path):
    state = tmp_path / "state.json"
    january = seeds / "001_74008803e39ce1ad.txt"
    first = map_files([january], progress=False, state=state)
    assert first.registry is not None
    save_state(state, first.registry, first.last_milestones)
    targets = [e for e in first.envelopes if e.event_type == "target.set"]
    target = next(t for t in targets if sum(x.key == t.key for x in targets) >= 2)
    line = target.payload.source_ref.line  # type: ignore[union-attr]
    assert line is not None
    lines = january.read_text("utf-8").splitlines()
    newer = tmp_path / "february.txt"
    newer.write_text("\n".join(lines[: line - 1] + lines[line:]), "utf-8")

    second = map_files([newer], progress=False, state=state)
    dropped = [e for e in second.envelopes if e.event_type == "target.set" and e.payload.status == "dropped"]
    assert [(e.key, e.payload.target_id) for e in dropped] == [(target.key, target.payload.target_id)]
    assert "빠진 목표" in (dropped[0].payload.note or "")
    cancelled = [e for e in second.envelopes if e.event_type == "milestone.set" and e.payload.status == "cancelled"]
    assert cancelled == []  # only the target line was removed
