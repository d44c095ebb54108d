"""Programs use cases on SQLite: the alert rules, their resolves, idempotency and replay."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from contracts import AnyEvent, deterministic_id, parse_event
from services.common.db import Database, upgrade
from services.programs import service
from services.programs.domain import ScheduleConfig
from services.programs.store import (
    Milestone,
    MilestoneWindow,
    Occurrence,
    Program,
    ProgramsAlert,
    ProgramsOutbox,
    Target,
    TargetProgress,
)
from tests import factories as f

CFG = service.Config(ScheduleConfig(reminder_days=(7, 1)), "t.")


@pytest.fixture
def db(sqlite_url: str):
    upgrade(sqlite_url, "programs")
    database = Database(sqlite_url)
    yield database
    database.dispose()


def at(day: date) -> str:
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC).isoformat()


def ev(data: dict[str, Any], occurred: date = date(2025, 2, 1), name: str | None = None) -> AnyEvent:
    data = {**data, "occurred_at": at(occurred)}
    if name:  # stable ids so two runs of a scenario are the same stream
        data["event_id"] = str(deterministic_id("test", name))
    return parse_event(data)


def milestone(mid: str = "M1", start: date | None = date(2025, 4, 1), end: date | None = date(2025, 5, 31),
              status: str = "planned", occurred: date = date(2025, 2, 1), **extra: Any) -> AnyEvent:
    data = f.milestone(mid=mid, start=start, end=end, status=status)
    data["payload"].update(extra)
    return ev(data, occurred, name=f"{mid}-{start}-{end}-{status}-{occurred}-{sorted(extra.items())}")


def target(progress: str | None = None, as_of: date | None = None, occurred: date = date(2025, 2, 1),
           tid: str = "T1", status: str = "active") -> AnyEvent:
    payload = {"program_id": "P-RND", "target_id": tid, "activity": "규제전문가 심화 컨설팅",
               "period_start": "2025-01-01", "period_end": "2025-12-31", "target_value": "40", "unit": "건",
               "progress_value": progress, "progress_as_of": as_of.isoformat() if as_of else None,
               "status": status}
    return ev(f.envelope("target.set", "P-RND", payload), occurred,
              name=f"{tid}-{progress}-{as_of}-{occurred}-{status}")


def program() -> AnyEvent:
    return ev(f.program(), name="program")


def alerts(db: Database) -> list[dict[str, Any]]:
    with db.read() as s:
        rows = s.exec(select(ProgramsOutbox).order_by(col(ProgramsOutbox.id))).all()
    return [json.loads(r.value) for r in rows]


def brief(db: Database) -> list[tuple[str, str, str]]:
    return [(a["payload"]["rule"], a["payload"]["status"], a["payload"]["severity"]) for a in alerts(db)]


def test_overdue_fires_after_grace_escalates_and_resolves_when_done(db):
    cfg = service.Config(ScheduleConfig(grace_days=2, critical_after_days=30, reminder_days=()), "t.")
    service.apply_batch(db, cfg, [program(), milestone()], date(2025, 6, 2))
    assert brief(db) == []  # 2 days after the end: within grace
    assert service.check_all(db, cfg, date(2025, 6, 3)).alerts == 1
    assert service.check_all(db, cfg, date(2025, 6, 3)).alerts == 0  # the same day again: nothing
    assert service.check_all(db, cfg, date(2025, 6, 20)).alerts == 0  # still warning: no repeat
    service.check_all(db, cfg, date(2025, 7, 2))  # 30 days late after grace
    service.apply_batch(db, cfg, [milestone(status="done", occurred=date(2025, 7, 5))], date(2025, 7, 5))
    assert brief(db) == [("milestone_overdue", "firing", "warning"), ("milestone_overdue", "firing", "critical"),
                         ("milestone_overdue", "resolved", "info")]
    first = alerts(db)[0]["payload"]
    assert first["figures"]["days_late"] == 1 and first["figures"]["window_end"] == "2025-05-31"
    assert first["summary"].startswith("서울형 R&D 지원: '서류심사, 현장실사 등 선정평가' 일정(2025-05-31 종료)이 1일")
    assert first["division"] == "경제정책과" and first["labels"]["milestone_id"] == "M1"
    assert len({a["payload"]["fingerprint"] for a in alerts(db)}) == 1  # one alert, three states
    with db.read() as s:
        assert s.get(Program, "P-RND").status == "done"


def test_schedule_moved_later_or_open_ended_fires_with_both_windows_and_resolves_when_done(db):
    service.apply_batch(db, CFG, [program(), milestone()], date(2025, 2, 1))
    moved = milestone(end=date(2025, 6, 20), occurred=date(2025, 3, 1),
                      source_ref={"document": "2025 주요업무보고", "section": "향후 추진 일정", "line": 120})
    result = service.apply_batch(db, CFG, [moved], date(2025, 3, 1))
    assert result.by_rule == {("schedule_moved", "firing"): 1}
    a = alerts(db)[-1]["payload"]
    assert (a["severity"], a["figures"]["old_end"], a["figures"]["new_end"], a["figures"]["days_moved"]) == \
        ("warning", "2025-05-31", "2025-06-20", 20)
    assert a["figures"]["source_document"] == "2025 주요업무보고"
    assert "2025-05-31에서 2025-06-20" in a["summary"]
    service.apply_batch(db, CFG, [milestone(end=None, occurred=date(2025, 3, 2))], date(2025, 3, 2))
    a = alerts(db)[-1]["payload"]
    assert (a["rule"], a["severity"], a["figures"]["new_end"]) == ("schedule_moved", "critical", None)
    with db.read() as s:
        assert s.get(Program, "P-RND").status == "at_risk"
        history = s.exec(select(MilestoneWindow).order_by(col(MilestoneWindow.id))).all()
        assert [(h.window_end, h.change) for h in history] == [
            (date(2025, 5, 31), "initial"), (date(2025, 6, 20), "later"), (None, "open_ended")]
        assert history[1].source_ref["line"] == 120
    service.apply_batch(db, CFG, [milestone(end=None, status="done", occurred=date(2025, 3, 3))], date(2025, 3, 3))
    assert brief(db)[-1] == ("schedule_moved", "resolved", "info")


def test_moving_earlier_is_not_a_slip(db):
    service.apply_batch(db, CFG, [program(), milestone()], date(2025, 2, 1))
    service.apply_batch(db, CFG, [milestone(end=date(2025, 5, 15), occurred=date(2025, 3, 1))], date(2025, 3, 1))
    assert brief(db) == []


def test_older_report_arriving_late_joins_history_without_overwriting(db):
    service.apply_batch(db, CFG, [program(), milestone(end=date(2025, 6, 20), occurred=date(2025, 3, 1))],
                        date(2025, 3, 1))
    result = service.apply_batch(db, CFG, [milestone(end=date(2025, 5, 31), occurred=date(2025, 1, 15))],
                                 date(2025, 3, 1))
    assert result.stale == 1
    with db.read() as s:
        assert s.get(Milestone, ("P-RND", "M1")).window_end == date(2025, 6, 20)
        assert s.get(Milestone, ("P-RND", "M1")).baseline_end == date(2025, 5, 31)
    # the older plan ended sooner: the slip is found, late but found
    assert brief(db) == [("schedule_moved", "firing", "warning")]


def test_deadline_reminders_d7_and_d1_once_each_then_resolved_when_done(db):
    service.apply_batch(db, CFG, [program(), milestone(end=date(2025, 6, 30))], date(2025, 6, 1))
    fired = [service.check_all(db, CFG, date(2025, 6, day)).alerts for day in range(20, 31)]
    assert fired == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]  # D-7 on 23 June, D-1 on 29 June
    assert brief(db) == [("deadline_approaching", "firing", "info"), ("deadline_approaching", "firing", "warning")]
    assert [a["payload"]["figures"]["reminder"] for a in alerts(db)] == ["D-7", "D-1"]
    service.apply_batch(db, CFG, [milestone(end=date(2025, 6, 30), status="done", occurred=date(2025, 6, 30))],
                        date(2025, 6, 30))
    assert brief(db)[-1] == ("deadline_approaching", "resolved", "info")
    assert service.check_all(db, CFG, date(2025, 7, 5)).alerts == 0  # done: never late


def test_a_move_closes_the_old_reminder_and_reminds_again_for_the_new_end(db):
    service.apply_batch(db, CFG, [program(), milestone(end=date(2025, 6, 30))], date(2025, 6, 25))
    assert brief(db) == [("deadline_approaching", "firing", "info")]
    service.apply_batch(db, CFG, [milestone(end=date(2025, 8, 31), occurred=date(2025, 6, 26))], date(2025, 6, 26))
    assert brief(db)[1:] == [("schedule_moved", "firing", "critical"), ("deadline_approaching", "resolved", "info")]
    service.check_all(db, CFG, date(2025, 8, 24))
    assert brief(db)[-1] == ("deadline_approaching", "firing", "info")
    assert alerts(db)[-1]["payload"]["figures"]["window_end"] == "2025-08-31"


def test_duplicates_emit_nothing_and_alert_ids_are_deterministic(db, tmp_path):
    events = [program(), milestone(), milestone(end=date(2025, 6, 30), occurred=date(2025, 3, 1))]
    service.apply_batch(db, CFG, events, date(2025, 7, 10))
    before = [a["event_id"] for a in alerts(db)]
    again = service.apply_batch(db, CFG, events, date(2025, 7, 10))
    assert (again.duplicates, again.alerts) == (3, 0)
    assert [a["event_id"] for a in alerts(db)] == before
    # the same stream into a fresh database, one event at a time: the same alert events
    other_url = f"sqlite:///{tmp_path}/other.db"
    upgrade(other_url, "programs")
    other = Database(other_url)
    for e in events:
        service.apply_batch(other, CFG, [e], date(2025, 7, 10))
    assert [a["event_id"] for a in alerts(other)] == before
    other.dispose()


def test_replay_of_a_date_range_reproduces_the_daily_history(db, tmp_path):
    service.apply_batch(db, CFG, [program(), milestone(end=date(2025, 6, 30))], date(2025, 6, 1))
    daily = service.replay(db, CFG, date(2025, 6, 1), date(2025, 7, 31))
    assert brief(db) == [("deadline_approaching", "firing", "info"), ("deadline_approaching", "firing", "warning"),
                         ("milestone_overdue", "firing", "warning"), ("milestone_overdue", "firing", "critical")]
    assert daily.alerts == 4
    assert service.replay(db, CFG, date(2025, 6, 1), date(2025, 7, 31)).alerts == 0  # replayed: nothing new


def test_recurring_monthly_milestone_checks_each_month_on_its_own(db):
    m = milestone(mid="MONTHLY", start=date(2025, 1, 1), end=date(2025, 12, 31), recurrence="monthly",
                  window_text="매월")
    cfg = service.Config(ScheduleConfig(reminder_days=()), "t.")
    service.apply_batch(db, cfg, [program(), m], date(2025, 3, 15))
    labels = [a["payload"]["labels"]["occurrence"] for a in alerts(db)]
    assert labels == ["2025-01", "2025-02"]  # January and February are late; March is not over
    done_feb = milestone(mid="MONTHLY", start=date(2025, 1, 1), end=date(2025, 12, 31), recurrence="monthly",
                         window_text="매월", actual_end=date(2025, 2, 28), occurred=date(2025, 3, 16))
    service.apply_batch(db, cfg, [done_feb], date(2025, 3, 16))
    assert brief(db)[2:] == [("milestone_overdue", "resolved", "info")] * 2
    service.check_all(db, cfg, date(2025, 4, 1))
    assert alerts(db)[-1]["payload"]["labels"]["occurrence"] == "2025-03"
    with db.read() as s:
        occ = s.exec(select(Occurrence).where(Occurrence.milestone_id == "MONTHLY")).all()
        assert len(occ) == 12 and sum(o.done for o in occ) == 2


def test_unreadable_schedule_is_kept_verbatim_flagged_and_never_judged(db):
    vague = milestone(mid="VAGUE", start=None, end=None, window_text="’25.3월 → 5월")
    flagged = milestone(mid="FLAG", start=date(2025, 1, 1), end=date(2025, 1, 31), window_text="’25.1월경?",
                        needs_review=True)
    service.apply_batch(db, CFG, [program(), vague, flagged], date(2025, 12, 1))
    with db.read() as s:
        v = s.get(Milestone, ("P-RND", "VAGUE"))
        assert (v.window_text, v.needs_review, v.review_reason) == ("’25.3월 → 5월", True, "일정(기간)이 없습니다")
        assert s.get(Milestone, ("P-RND", "FLAG")).needs_review
    assert [a["payload"]["labels"]["milestone_id"] for a in alerts(db)] == ["FLAG"]  # dated: still checked


def test_target_behind_then_catching_up_with_progress_history(db):
    service.apply_batch(db, CFG, [program(), target()], date(2025, 7, 1))
    assert brief(db) == []  # no progress reported yet: not judged
    service.apply_batch(db, CFG, [target("10", date(2025, 6, 30), date(2025, 7, 1))], date(2025, 7, 1))
    a = alerts(db)[-1]["payload"]
    assert (a["rule"], a["severity"], a["figures"]["achieved"], a["figures"]["expected"]) == \
        ("target_behind", "warning", "25.0", "49.9")
    assert "목표 40건 중 10건(25.0%)" in a["summary"]
    # an older report arriving late is history, not the current progress
    service.apply_batch(db, CFG, [target("5", date(2025, 3, 31), date(2025, 4, 1))], date(2025, 7, 2))
    service.apply_batch(db, CFG, [target("18", date(2025, 7, 15), date(2025, 7, 16))], date(2025, 7, 16))
    assert brief(db)[-1] == ("target_behind", "resolved", "info")
    with db.read() as s:
        t = s.get(Target, ("P-RND", "T1"))
        assert (t.progress_value, t.progress_as_of, t.activity) == (18, date(2025, 7, 15), "규제전문가 심화 컨설팅")
        assert len(s.exec(select(TargetProgress)).all()) == 3


def test_milestones_before_the_program_registers_get_a_placeholder_then_the_register(db):
    service.apply_batch(db, CFG, [milestone()], date(2025, 2, 1))
    with db.read() as s:
        p = s.get(Program, "P-RND")
        assert (p.registered, p.title, p.fiscal_year) == (False, "P-RND", 2025)
    reg = f.program()
    reg["payload"].update(period_start="2025-01-01", period_end="2025-12-31", budget_program_ids=["P-RND-B"],
                          method="대행", agency="서울경제진흥원",
                          source_ref={"document": "2025 주요업무보고", "section": "Ⅲ-1", "line": 10})
    service.apply_batch(db, CFG, [ev(reg)], date(2025, 2, 1))
    with db.read() as s:
        p = s.get(Program, "P-RND")
        assert (p.registered, p.title, p.agency, p.budget_program_ids) == (True, "서울형 R&D 지원", "서울경제진흥원",
                                                                            ["P-RND-B"])
        assert p.contacts[0] == {"role": "과장", "name": "이병철", "phone": "02-2133-5210", "email": None,
                                 "division": None, "team": None}


def test_alerts_are_unique_per_event_id(db):
    service.apply_batch(db, CFG, [program(), milestone()], date(2025, 9, 1))
    ids = [a["event_id"] for a in alerts(db)]
    assert len(ids) == len(set(ids)) and all(uuid.UUID(i) for i in ids)
    with db.read() as s:
        assert all(r.status == "firing" for r in s.exec(select(ProgramsAlert)).all())


def test_a_dropped_target_is_no_longer_judged_and_its_alert_resolves(db):
    service.apply_batch(db, CFG, [program(), target("10", date(2025, 6, 30), date(2025, 7, 1))], date(2025, 7, 1))
    assert brief(db)[-1] == ("target_behind", "firing", "warning")
    service.apply_batch(db, CFG, [target("10", date(2025, 6, 30), date(2025, 8, 1), status="dropped")],
                        date(2025, 8, 1))
    last = alerts(db)[-1]["payload"]
    assert (last["rule"], last["status"]) == ("target_behind", "resolved")
    assert "목표가 빠져" in last["summary"]
    service.check_all(db, CFG, date(2025, 10, 1))  # still behind on paper, but no longer a target
    assert brief(db)[-1] == ("target_behind", "resolved", "info")
