"""Programs rules: occurrences, lateness, reminders, slips, targets, program status."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.programs import domain as d

CFG = d.ScheduleConfig(grace_days=0, warning_after_days=1, critical_after_days=30, reminder_days=(7, 1))


def ms(start: date | None = None, end: date | None = None, recurrence: str | None = None, status: str = "planned",
       actual_end: date | None = None, year: int | None = 2025) -> d.MilestoneState:
    return d.MilestoneState("P", "M", "t", start, end, status, "ok", recurrence, actual_end, year)


def test_one_off_milestone_is_one_occurrence_with_its_window():
    assert d.occurrences(ms(date(2025, 4, 1), date(2025, 5, 31))) == [
        d.Occurrence("", date(2025, 4, 1), date(2025, 5, 31))]


def test_monthly_milestone_has_one_occurrence_per_month_clipped_to_the_window():
    occ = d.occurrences(ms(date(2025, 3, 15), date(2025, 6, 10), "monthly"))
    assert [(o.key, o.start, o.end) for o in occ] == [
        ("2025-03", date(2025, 3, 15), date(2025, 3, 31)),
        ("2025-04", date(2025, 4, 1), date(2025, 4, 30)),
        ("2025-05", date(2025, 5, 1), date(2025, 5, 31)),
        ("2025-06", date(2025, 6, 1), date(2025, 6, 10)),
    ]


def test_quarterly_without_dates_spans_the_fiscal_year():
    occ = d.occurrences(ms(recurrence="quarterly"))
    assert [o.key for o in occ] == ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
    assert (occ[1].start, occ[1].end) == (date(2025, 4, 1), date(2025, 6, 30))


def test_half_yearly_and_yearly_keys():
    assert [o.key for o in d.occurrences(ms(recurrence="half_yearly"))] == ["2025-H1", "2025-H2"]
    assert [o.key for o in d.occurrences(ms(date(2025, 1, 1), date(2026, 12, 31), "yearly"))] == ["2025", "2026"]


def test_ongoing_without_dates_is_the_whole_year_and_unbounded_recurrence_has_none():
    assert d.occurrences(ms(recurrence="ongoing")) == [d.Occurrence("", date(2025, 1, 1), date(2025, 12, 31))]
    assert d.occurrences(ms(recurrence="monthly", year=None)) == []
    assert d.needs_review(ms(recurrence="monthly", year=None), False) is not None


def test_actual_end_completes_a_recurring_milestone_through_that_date():
    m = ms(recurrence="monthly", actual_end=date(2025, 2, 14))
    done = [o.key for o in d.occurrences(m) if d.occurrence_done(m, o)]
    assert done == ["2025-01", "2025-02"]
    assert all(d.occurrence_done(ms(recurrence="monthly", status="done"), o) for o in d.occurrences(m))


@pytest.mark.parametrize(("flagged", "start", "end", "recurrence", "needs"), [
    (True, date(2025, 1, 1), date(2025, 2, 1), None, True),
    (False, None, None, None, True),  # text without any date: never guessed
    (False, date(2025, 9, 1), None, None, False),  # open-ended is a real schedule
    (False, None, None, "ongoing", False),
])
def test_needs_review(flagged, start, end, recurrence, needs):
    assert (d.needs_review(ms(start, end, recurrence), flagged) is not None) is needs


@pytest.mark.parametrize(("today", "late", "level"), [
    (date(2025, 5, 31), 0, "ok"),
    (date(2025, 6, 1), 1, "warning"),
    (date(2025, 6, 29), 29, "warning"),
    (date(2025, 6, 30), 30, "critical"),
])
def test_overdue_severity_grows_with_days_late(today, late, level):
    assert d.days_late(date(2025, 5, 31), False, today, CFG) == late
    assert d.overdue_severity(late, CFG) == level


def test_grace_and_info_tier_and_done_or_open_ended_is_never_late():
    cfg = d.ScheduleConfig(grace_days=3, warning_after_days=5, critical_after_days=30)
    assert d.days_late(date(2025, 5, 31), False, date(2025, 6, 3), cfg) == 0
    assert d.overdue_severity(d.days_late(date(2025, 5, 31), False, date(2025, 6, 4), cfg), cfg) == "info"
    assert d.days_late(date(2025, 5, 31), True, date(2025, 9, 1), cfg) == 0
    assert d.days_late(None, False, date(2025, 9, 1), cfg) == 0


@pytest.mark.parametrize(("today", "stage"), [
    (date(2025, 6, 22), None), (date(2025, 6, 23), 7), (date(2025, 6, 28), 7), (date(2025, 6, 29), 1),
    (date(2025, 6, 30), 1), (date(2025, 7, 1), None),
])
def test_reminder_stage_d7_then_d1(today, stage):
    assert d.reminder_stage(date(2025, 6, 30), False, today, CFG) == stage


def test_reminder_severity_last_is_warning():
    assert d.reminder_severity(7, CFG) == "info" and d.reminder_severity(1, CFG) == "warning"


def test_moved_later_and_slip_severity():
    assert d.moved_later(date(2025, 5, 31), date(2025, 6, 30))
    assert d.moved_later(date(2025, 5, 31), None)  # dated -> open-ended is a slip
    assert not d.moved_later(date(2025, 5, 31), date(2025, 5, 1))
    assert not d.moved_later(None, date(2025, 5, 1))
    assert d.moved_severity(date(2025, 5, 31), date(2025, 6, 15), CFG) == "warning"
    assert d.moved_severity(date(2025, 5, 31), date(2025, 7, 15), CFG) == "critical"
    assert d.moved_severity(date(2025, 5, 31), None, CFG) == "critical"


def target(progress: str | None, value: str = "40") -> d.TargetState:
    return d.TargetState(Decimal(value), date(2025, 1, 1), date(2025, 12, 31),
                         Decimal(progress) if progress is not None else None, date(2025, 6, 30))


def test_target_behind_by_elapsed_share_minus_tolerance():
    today = date(2025, 7, 1)  # 182 of 365 days: 49.9% elapsed
    e = d.evaluate_target(target("10"), today, CFG)  # 25% achieved
    assert (e.level, e.achieved, e.expected, e.gap) == ("warning", Decimal("25.0"), Decimal("49.9"), Decimal("24.9"))
    assert d.evaluate_target(target("16"), today, CFG).level == "ok"  # 40%: within 10%p
    assert d.evaluate_target(target("4"), today, CFG).level == "critical"  # 10%: 39.9%p behind
    assert d.evaluate_target(target("40"), date(2025, 12, 31), CFG).level == "ok"
    assert d.evaluate_target(target(None), today, CFG).level == "ok"  # no report: not judged


def test_elapsed_share_bounds():
    assert d.elapsed_share(date(2025, 1, 1), date(2025, 1, 10), date(2024, 12, 31)) == 0
    assert d.elapsed_share(date(2025, 1, 1), date(2025, 1, 10), date(2025, 1, 5)) == Decimal("50.0")
    assert d.elapsed_share(date(2025, 1, 1), date(2025, 1, 10), date(2025, 2, 1)) == 100


def test_program_status():
    assert d.program_status({"milestone_overdue": "warning"}, ["planned"]) == "late"
    assert d.program_status({"schedule_moved": "warning"}, ["planned"]) == "at_risk"
    assert d.program_status({"deadline_approaching": "info"}, ["planned"]) == "on_track"
    assert d.program_status({"deadline_approaching": "warning"}, ["planned"]) == "at_risk"
    assert d.program_status({}, ["done", "cancelled"]) == "done"
    assert d.program_status({}, []) == "no_schedule"


def test_number_format():
    assert d.number(Decimal("1000.00")) == "1,000" and d.number(Decimal("2.50")) == "2.5"
