"""Budget use cases on SQLite, without a broker: the batch apply (ordering, corrections,
duplicates, amendments, alerts) and the read API on top of it."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest
from sqlmodel import select

from contracts import AnyEvent, parse_event
from services.budget import service
from services.budget.app import build
from services.budget.store import BudgetAlert, BudgetOutbox, BudgetProgram, BudgetSnapshot
from services.common.runtime import Runtime
from services.common.settings import Settings
from tests import factories as f
from tests.helpers import running


def ev(data: dict[str, Any]) -> AnyEvent:
    return parse_event(data)


def line(pid: str = "P-RND", original: int = 1_000_000_000, division: str = "경제정책과", office: str = "경제실",
         title: str | None = None, **extra: Any) -> AnyEvent:
    payload = {"program_id": pid, "fiscal_year": 2025, "title": title or pid, "office": office,
               "division": division, "original": original, **extra}
    return ev(f.envelope("budget.line_set", pid, payload))


def snap(pid: str = "P-RND", as_of: date = date(2025, 1, 31), spent: int = 0, committed: int | None = None,
         revision: int = 0, event_id: uuid.UUID | None = None) -> AnyEvent:
    return ev(f.snapshot(pid, as_of, spent, spent if committed is None else committed, revision, event_id))


def amend(pid: str, amendment_id: str, before: int, change: int, reason: str = "1회 추경",
          on: date = date(2025, 5, 1)) -> AnyEvent:
    return ev(f.envelope("budget.amended", pid, {
        "program_id": pid, "fiscal_year": 2025, "amendment_id": amendment_id, "before": before,
        "change": change, "after": before + change, "reason": reason, "effective_date": on.isoformat()}))


#: These tests exercise the rules' state machines on small figures early in the year: the
#: default curve is judged from 1 January at any amount. Its hold-back (start date, money
#: threshold, funding milestones) is tested in test_budget_truth.py.
JUDGE_ALL: dict[str, Any] = {"slip_default_from": "01-01", "slip_default_min_gap_amount": 0}


@pytest.fixture
async def budget(make_settings: Callable[..., Settings], sqlite_url: str
                 ) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    app = build(make_settings(database_url=sqlite_url, **JUDGE_ALL), start_broker=False)
    async with running(app) as (client,):
        yield app.state.runtime, client


def apply(rt: Runtime, *events: AnyEvent) -> service.BatchResult:
    return service.apply_batch(rt.db, service.Config.from_settings(rt.settings), list(events))


def view(rt: Runtime, pid: str = "P-RND") -> BudgetProgram:
    with rt.db.read() as s:
        return s.exec(select(BudgetProgram).where(BudgetProgram.program_id == pid)).one()


def alerts(rt: Runtime) -> list[BudgetAlert]:
    with rt.db.read() as s:
        return list(s.exec(select(BudgetAlert)).all())


# ---------------------------------------------------------------- snapshots under real traffic


async def test_late_older_snapshot_never_overwrites_a_newer_one(budget):
    rt, _ = budget
    apply(rt, line(), snap(as_of=date(2025, 3, 31), spent=300_000_000))
    result = apply(rt, snap(as_of=date(2025, 2, 28), spent=100_000_000))
    assert (result.stale, result.snapshots) == (1, 0)
    row = view(rt)
    assert (row.as_of, row.spent) == (date(2025, 3, 31), 300_000_000)


async def test_correction_replaces_only_with_a_higher_revision(budget):
    rt, _ = budget
    apply(rt, line(), snap(as_of=date(2025, 3, 31), spent=300_000_000))
    same = apply(rt, snap(as_of=date(2025, 3, 31), spent=999_000_000))  # new id, no revision: ignored
    assert (same.duplicates, same.snapshots) == (1, 0)
    assert view(rt).spent == 300_000_000
    fixed = apply(rt, snap(as_of=date(2025, 3, 31), spent=310_000_000, revision=1))
    assert (fixed.corrections, fixed.snapshots) == (1, 1)
    row = view(rt)
    assert (row.spent, row.revision) == (310_000_000, 1)
    with rt.db.read() as s:  # both revisions kept; the series shows the correction only
        assert len(s.exec(select(BudgetSnapshot)).all()) == 2


async def test_duplicate_event_id_changes_nothing(budget):
    rt, client = budget
    event_id = uuid.uuid4()
    apply(rt, line(), snap(as_of=date(2025, 1, 31), spent=0, event_id=event_id))
    before = (await client.get("/v1/budget/programs/P-RND")).json()
    result = apply(rt, snap(as_of=date(2025, 1, 31), spent=0, event_id=event_id),
                   snap(as_of=date(2025, 1, 31), spent=0, event_id=event_id))
    assert (result.duplicates, result.applied, result.alerts) == (2, 0, 0)
    after = (await client.get("/v1/budget/programs/P-RND")).json()
    assert after == before
    assert len(alerts(rt)) == 1


async def test_same_id_twice_in_one_batch_is_applied_once(budget):
    rt, _ = budget
    event_id = uuid.uuid4()
    result = apply(rt, line(), snap(spent=5, event_id=event_id), snap(spent=5, event_id=event_id))
    assert (result.applied, result.duplicates) == (2, 1)
    assert view(rt).snapshots == 1


async def test_unknown_programs_are_kept_and_listed(budget):
    rt, client = budget
    apply(rt, snap("P-NEW", as_of=date(2025, 2, 28), spent=7_000, committed=9_000))
    r = await client.get("/v1/budget/unknown-programs", params={"fiscal_year": 2025})
    assert [(i["program_id"], i["spent"], i["committed"]) for i in r.json()["items"]] == [("P-NEW", 7_000, 9_000)]
    summary = (await client.get("/v1/budget/summary", params={"fiscal_year": 2025})).json()
    assert summary["unbudgeted_programs"] == 1 and summary["total"]["programs"] == 0
    # The budget line arrives later: the program joins the view with its execution.
    apply(rt, line("P-NEW", original=100_000))
    r = await client.get("/v1/budget/unknown-programs")
    assert r.json()["items"] == []
    program = (await client.get("/v1/budget/programs/P-NEW")).json()
    assert (program["spent"], program["rate"], program["current_budget"]) == (7_000, "7.0", 100_000)


# ---------------------------------------------------------------- amendments


async def test_amendments_kept_as_history_and_a_resend_is_not_counted_twice(budget):
    rt, client = budget
    apply(rt, line(original=1_000_000, carried_over=200_000))
    apply(rt, amend("P-RND", "2025-1차추경", 1_200_000, 300_000, on=date(2025, 5, 2)))
    apply(rt, amend("P-RND", "2025-2차추경", 1_500_000, -100_000, reason="감액", on=date(2025, 9, 10)))
    apply(rt, amend("P-RND", "2025-1차추경", 1_200_000, 250_000, on=date(2025, 5, 2)))  # corrected amount
    p = (await client.get("/v1/budget/programs/P-RND")).json()
    assert (p["original"], p["carried_over"], p["supplementary"], p["current_budget"]) == \
        (1_000_000, 200_000, 150_000, 1_350_000)
    assert [(a["amendment_id"], a["change"], a["reason"], a["effective_date"]) for a in p["amendments"]] == [
        ("2025-1차추경", 250_000, "1회 추경", "2025-05-02"), ("2025-2차추경", -100_000, "감액", "2025-09-10")]


# ---------------------------------------------------------------- alerts


async def test_slip_fires_once_escalates_and_recovers_with_the_same_fingerprint(budget):
    rt, _ = budget
    apply(rt, line(original=1_000_000_000))
    apply(rt, snap(as_of=date(2025, 1, 31), spent=0))  # plan 10.3%: warning
    apply(rt, snap(as_of=date(2025, 2, 3), spent=0))  # still warning: nothing new
    apply(rt, snap(as_of=date(2025, 3, 31), spent=50_000_000))  # plan 29.8%, 5.0%: critical
    apply(rt, snap(as_of=date(2025, 4, 30), spent=350_000_000))  # plan 39.8%, 35.0%: recovered
    got = [(a.rule, a.status, a.severity) for a in sorted(alerts(rt), key=lambda a: a.as_of or date.min)]
    assert got == [("execution_slipped", "firing", "warning"), ("execution_slipped", "firing", "critical"),
                   ("execution_slipped", "resolved", "info")]
    assert len({a.fingerprint for a in alerts(rt)}) == 1
    resolved = max(alerts(rt), key=lambda a: a.as_of or date.min)
    assert resolved.figures["rate"] == "35.0" and resolved.figures["plan"] == "39.8"


async def test_alert_carries_labels_and_figures_notify_renders(budget):
    rt, _ = budget
    apply(rt, line(original=41_106_204_000, title="서울형 R&D 지원"), snap(spent=0))
    with rt.db.read() as s:
        (row,) = s.exec(select(BudgetOutbox)).all()
    alert = parse_event(row.value).payload
    assert alert.labels == {"fiscal_year": "2025", "program_id": "P-RND", "rule": "execution_slipped",
                            "severity": "warning", "office": "경제실", "division": "경제정책과"}
    assert alert.figures["rate"] == 0 and str(alert.figures["plan"]) == "10.3"
    assert alert.figures["current_budget"] == 41_106_204_000 and alert.figures["balance"] == 41_106_204_000
    assert alert.summary.startswith("서울형 R&D 지원 집행률 0.0%")


async def test_no_slip_below_min_budget_or_for_excluded_categories(make_settings, sqlite_url):
    app = build(make_settings(database_url=sqlite_url, slip_min_budget=10_000_000, **JUDGE_ALL), start_broker=False)
    async with running(app):
        rt = app.state.runtime
        apply(rt, line("P-SMALL", original=9_999_999), snap("P-SMALL", spent=0),
              line("P-BASE", original=500_000_000, title="기본경비"), snap("P-BASE", spent=0),
              line("P-CAT", original=500_000_000, category="전출금"), snap("P-CAT", spent=0))
        assert alerts(rt) == []
        assert view(rt, "P-BASE").plan_rate is None


async def test_over_execution_fires_and_resolves_after_an_amendment(budget):
    rt, _ = budget
    apply(rt, line(original=1_000_000), snap(as_of=date(2025, 6, 30), spent=600_000, committed=1_200_000))
    (over,) = [a for a in alerts(rt) if a.rule == "over_execution"]
    assert (over.status, over.severity, over.figures["over_amount"]) == ("firing", "critical", 200_000)
    apply(rt, snap(as_of=date(2025, 7, 1), spent=650_000, committed=1_200_000))  # still over: silent
    apply(rt, amend("P-RND", "2025-1차추경", 1_000_000, 300_000))
    got = [(a.status, a.severity) for a in alerts(rt) if a.rule == "over_execution"]
    assert sorted(got) == [("firing", "critical"), ("resolved", "info")]


async def test_year_end_risk_from_the_programs_own_pace(budget):
    rt, client = budget
    apply(rt, line(original=1_000_000_000))
    # On plan until mid-year, then spending stalls: 40% by 1 Aug and 45% by 30 Sept.
    apply(rt, snap(as_of=date(2025, 6, 30), spent=600_000_000))
    apply(rt, snap(as_of=date(2025, 8, 1), spent=620_000_000))
    assert [a for a in alerts(rt) if a.rule == "year_end_risk"] == []  # before 1 September: not judged
    apply(rt, snap(as_of=date(2025, 9, 30), spent=650_000_000))
    (risk,) = [a for a in alerts(rt) if a.rule == "year_end_risk"]
    # pace since 1 Aug (the anchor 60 days back): 30백만/60일 → 650 + 0.5×92 = 696 → 69.6%: critical
    assert (risk.status, risk.severity, risk.figures["projected_rate"]) == ("firing", "critical", "69.6")
    p = (await client.get("/v1/budget/programs/P-RND")).json()
    assert (p["projected_rate"], p["year_end_level"]) == ("69.6", "critical")


async def test_alerts_do_not_depend_on_batch_boundaries(make_settings, tmp_path):
    events = [line(original=1_000_000_000), line("P-B", original=2_000_000)]
    spent = [0, 0, 40_000_000, 350_000_000, 360_000_000, 700_000_000, 1_100_000_000]
    days = [date(2025, m, 28) for m in range(1, 8)]
    events += [snap(as_of=d, spent=s) for d, s in zip(days, spent, strict=True)]
    events += [snap("P-B", as_of=d, spent=10_000 * i) for i, d in enumerate(days)]
    events.insert(5, snap(as_of=date(2025, 2, 1), spent=1))  # late
    events.insert(7, snap(as_of=days[2], spent=45_000_000, revision=1))  # correction

    def run(name: str, size: int) -> tuple[list[tuple[Any, ...]], list[str]]:
        app = build(make_settings(database_url=f"sqlite:///{tmp_path}/{name}.db", **JUDGE_ALL), start_broker=False)
        rt: Runtime = app.state.runtime
        rt.migrate()
        for i in range(0, len(events), size):
            apply(rt, *events[i:i + size])
        with rt.db.read() as s:
            views = [(r.program_id, r.spent, r.as_of, r.revision, r.level, r.over_level, r.plan_rate, r.gap)
                     for r in s.exec(select(BudgetProgram).order_by(BudgetProgram.program_id)).all()]
            ids = sorted(r.event_id for r in s.exec(select(BudgetOutbox)).all())
        rt.db.dispose()
        return views, ids

    one_by_one, whole, threes = run("a", 1), run("b", len(events)), run("c", 3)
    assert one_by_one == whole == threes
    assert len(whole[1]) >= 3


# ---------------------------------------------------------------- read API


async def seed_three(rt: Runtime) -> None:
    apply(rt, line("A1", 1_000_000_000, "가과"), line("A2", 3_000_000_000, "가과"),
          line("B1", 2_000_000_000, "나과", office="나실"))
    apply(rt, snap("A1", date(2025, 1, 31), 100_000_000), snap("A2", date(2025, 1, 31), 0),
          snap("B1", date(2025, 1, 31), 500_000_000))
    apply(rt, snap("A1", date(2025, 2, 28), 300_000_000, committed=400_000_000))


async def test_summary_rollups_by_division_office_and_total_as_of_a_date(budget):
    rt, client = budget
    await seed_three(rt)
    now = (await client.get("/v1/budget/summary", params={"fiscal_year": 2025})).json()
    by_div = {d["division"]: d for d in now["divisions"]}
    assert (by_div["가과"]["current"], by_div["가과"]["spent"], by_div["가과"]["rate"]) == \
        (4_000_000_000, 300_000_000, "7.5")
    assert by_div["가과"]["commit_rate"] == "10.0" and by_div["가과"]["balance"] == 3_700_000_000
    assert [o["office"] for o in now["offices"]] == ["경제실", "나실"]
    assert now["total"]["spent"] == 800_000_000 and now["total"]["rate"] == "13.3"
    jan = (await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": "2025-01-31"})).json()
    jan_div = {d["division"]: d for d in jan["divisions"]}
    assert jan_div["가과"]["spent"] == 100_000_000 and jan["total"]["spent"] == 600_000_000
    assert jan_div["가과"]["plan_rate"] == "10.3" and jan_div["가과"]["gap"] == "7.8"  # 10.3 − 2.5
    before = (await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": "2025-01-01"})).json()
    assert before["total"]["spent"] == 0 and before["total"]["current"] == 6_000_000_000


async def test_summary_in_thousands_and_as_csv(budget):
    rt, client = budget
    await seed_three(rt)
    r = await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "unit": "백만원"})
    assert r.json()["total"]["display"]["current"] == "6,000"
    assert (await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "unit": "만원"})).status_code == 422
    r = await client.get("/v1/budget/summary", params={"fiscal_year": 2025}, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [(row["level"], row["division"]) for row in rows] == [("과", "가과"), ("실", ""), ("과", "나과"),
                                                                  ("실", ""), ("계", "")]
    assert rows[-1]["spent"] == "800000000"


async def test_program_list_filters_sorts_by_gap_and_pages(budget):
    rt, client = budget
    await seed_three(rt)
    r = (await client.get("/v1/budget/programs", params={"sort": "gap"})).json()
    # gaps (plan − actual): A2 10.3−0, A1 19.6−30.0 = −10.4, B1 10.3−25.0 = −14.7
    assert [i["program_id"] for i in r["items"]] == ["A2", "A1", "B1"]
    assert r["total"] == 3
    page = (await client.get("/v1/budget/programs", params={"sort": "gap", "limit": 1, "offset": 1})).json()
    assert [i["program_id"] for i in page["items"]] == ["A1"] and page["total"] == 3
    warn = (await client.get("/v1/budget/programs", params={"status": "warning", "division": "가과"})).json()
    assert [i["program_id"] for i in warn["items"]] == ["A2"]
    r = await client.get("/v1/budget/programs", params={"format": "csv", "unit": "천원"})
    assert r.text.lstrip("\ufeff").splitlines()[0].startswith("program_id,fiscal_year,office,division")


async def test_program_detail_history_plan_and_alerts(budget):
    rt, client = budget
    await seed_three(rt)
    apply(rt, ev(f.envelope("budget.plan_set", "A2", {"program_id": "A2", "fiscal_year": 2025, "points": [
        {"month": 3, "cumulative_rate": "10"}, {"month": 12, "cumulative_rate": "100"}]})))
    a1 = (await client.get("/v1/budget/programs/A1", params={"unit": "천원"})).json()
    assert [(h["as_of"], h["spent"], h["rate"], h["plan_rate"]) for h in a1["history"]] == [
        ("2025-01-31", 100_000_000, "10.0", "10.3"), ("2025-02-28", 300_000_000, "30.0", "19.6")]
    assert a1["plan"]["source"] == "default" and a1["plan"]["points"][5]["cumulative_rate"] == "60.0"
    assert a1["display"]["current_budget"] == "1,000,000"
    a2 = (await client.get("/v1/budget/programs/A2")).json()
    assert a2["plan"]["source"] == "monthly" and a2["plan"]["points"][2]["planned_amount"] == 300_000_000
    # Under its own plan (≈3.4% by 31 Jan) A2 is no longer behind: the warning resolves.
    assert [(a["rule"], a["status"]) for a in a2["alerts"]] == [("execution_slipped", "firing"),
                                                                 ("execution_slipped", "resolved")]
    assert (await client.get("/v1/budget/programs/NOPE")).status_code == 404


async def test_metrics_division_gauges_and_outcome_counters(make_settings, sqlite_url):
    from services.budget.metrics import record

    app = build(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (client,):
        rt = app.state.runtime
        await seed_three(rt)
        record(apply(rt, snap("A1", date(2025, 1, 15), 1)))  # stale
        assert app.state.gauges.refresh(rt.db, service.Config.from_settings(rt.settings)) == 2
        text = (await client.get("/metrics")).text
    assert 'execwatch_budget_division_execution_rate_percent{division="가과",fiscal_year="2025",office="경제실"} 7.5' \
        in text
    assert 'execwatch_budget_division_programs{division="나과",fiscal_year="2025",office="나실"} 1.0' in text
    assert "execwatch_budget_division_gap_points{" in text
    assert 'execwatch_budget_snapshots_total{outcome="stale"}' in text
    assert "program_id" not in text.split("execwatch_budget_division")[1]  # per division, never per program


async def test_a_budget_line_without_추경_keeps_the_amendments_on_record(budget):
    rt, client = budget
    apply(rt, line("P-RND", original=1_000_000), amend("P-RND", "2025-1차추경", 1_000_000, 300_000))
    apply(rt, line("P-RND", original=1_000_000, carried_over=50_000))  # a later report, no 추경 column
    p = (await client.get("/v1/budget/programs/P-RND")).json()
    assert (p["original"], p["carried_over"], p["supplementary"], p["current_budget"]) == \
        (1_000_000, 50_000, 300_000, 1_350_000)
    apply(rt, line("P-RND", original=1_000_000, supplementary=200_000))  # one that prints its 추경
    p = (await client.get("/v1/budget/programs/P-RND")).json()
    assert (p["supplementary"], p["current_budget"]) == (200_000, 1_200_000)
