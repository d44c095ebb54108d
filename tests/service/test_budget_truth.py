"""What staff see must equal the source reports, on SQLite without a broker (one test through
TestKafkaBroker): views as of a date with line versions and a later 추경, parts, unlinked lines
and 기금 out of the totals, ids with "/" on every page of both services, and slip alerts that
state their basis and wait for a program's first funding milestone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from sqlmodel import select

from contracts import AnyEvent, dump_event, parse_event
from services.budget import service
from services.budget.app import build
from services.budget.store import BudgetAlert, BudgetOutbox, BudgetProgram
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.programs import service as programs_service
from services.programs.app import build as build_programs
from tests import factories as f
from tests.helpers import eventually, running

FY = 2025
RND = "경제정책과/서울형 R&D 지원"
CENTER = "경제정책과/서울기업지원센터운영"
WORKS = "경제정책과/서울기업지원센터운영/리모델링 공사비"
FUND = "창업정책과/중소기업육성기금"
ORPHAN = "창업정책과/창업박람회 개최"


def ev(data: dict[str, Any]) -> AnyEvent:
    return parse_event(data)


def line(pid: str, original: int, *, on: date | None = None, division: str = "경제정책과",
         **extra: Any) -> AnyEvent:
    payload = {"program_id": pid, "fiscal_year": FY, "title": pid.split("/")[-1], "office": "경제실",
               "division": division, "original": original, "account": "일반회계",
               "effective_date": on.isoformat() if on else None, **extra}
    return ev(f.envelope("budget.line_set", pid, payload))


def snap(pid: str, as_of: date, spent: int, committed: int | None = None) -> AnyEvent:
    return ev(f.envelope("budget.execution_snapshot", pid, {
        "program_id": pid, "fiscal_year": FY, "as_of": as_of.isoformat(), "committed": committed, "spent": spent}))


def milestone(pid: str, mid: str, title: str, start: date, end: date) -> AnyEvent:
    data = f.milestone(pid, mid, start, end, title=title)
    return ev(data)


@pytest.fixture
async def budget(make_settings: Callable[..., Settings], sqlite_url: str
                 ) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    app = build(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (client,):
        yield app.state.runtime, client


def apply(rt: Runtime, *events: AnyEvent) -> service.BatchResult:
    return service.apply_batch(rt.db, service.Config.from_settings(rt.settings), list(events))


def alert_rows(rt: Runtime, pid: str | None = None) -> list[BudgetAlert]:
    with rt.db.read() as s:
        return [a for a in s.exec(select(BudgetAlert)).all() if pid is None or a.program_id == pid]


async def get_summary(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/budget/summary", params={"fiscal_year": FY, **params})
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------- as of a date


async def test_as_of_shows_the_line_amendments_and_snapshot_then_in_effect(budget):
    rt, client = budget
    # Published as the importer may: the 추경 plan (effective 1 May) before the January report.
    apply(rt, line(RND, 40_000_000_000, on=date(2025, 5, 1), carried_over=1_000_000_000,
                   supplementary=5_000_000_000))
    apply(rt, line(RND, 40_000_000_000, on=date(2025, 1, 31), carried_over=1_000_000_000),
          snap(RND, date(2025, 1, 31), 2_050_000_000),
          line(CENTER, 2_000_000_000, on=date(2025, 1, 31)), snap(CENTER, date(2025, 1, 31), 183_000_000),
          ev(f.envelope("budget.amended", CENTER, {
              "program_id": CENTER, "fiscal_year": FY, "amendment_id": "2025-1차추경", "before": 2_000_000_000,
              "change": 500_000_000, "after": 2_500_000_000, "effective_date": "2025-05-02"})),
          snap(RND, date(2025, 5, 31), 20_000_000_000))

    jan = await get_summary(client, as_of="2025-01-31")
    assert (jan["total"]["current"], jan["total"]["spent"], jan["total"]["programs"]) == \
        (43_000_000_000, 2_233_000_000, 2)
    assert jan["total"]["supplementary"] == 0  # the 추경 does not leak into January
    assert jan["total"]["rate"] == "5.2"  # 2,233 / 43,000
    may = await get_summary(client, as_of="2025-05-31")
    assert (may["total"]["current"], may["total"]["supplementary"], may["total"]["spent"]) == \
        (48_500_000_000, 5_500_000_000, 20_183_000_000)
    before = await get_summary(client, as_of="2025-01-30")  # no line stated yet
    assert before["total"]["programs"] == 0

    detail = (await client.get(f"/v1/budget/programs/{RND}", params={"as_of": "2025-01-31"})).json()
    assert (detail["current_budget"], detail["spent"], detail["rate"], detail["effective_date"]) == \
        (41_000_000_000, 2_050_000_000, "5.0", "2025-01-31")
    assert [(v["effective_date"], v["supplementary"]) for v in detail["lines"]] == [
        ("2025-01-31", 0), ("2025-05-01", 5_000_000_000)]
    latest = (await client.get(f"/v1/budget/programs/{RND}")).json()
    assert (latest["current_budget"], latest["spent"], latest["effective_date"]) == \
        (46_000_000_000, 20_000_000_000, "2025-05-01")
    # Each point of the series is measured against the budget in effect on its own date.
    assert [(h["as_of"], h["current_budget"], h["rate"]) for h in latest["history"]] == [
        ("2025-01-31", 41_000_000_000, "5.0"), ("2025-05-31", 46_000_000_000, "43.5")]
    center = (await client.get(f"/v1/budget/programs/{CENTER}", params={"as_of": "2025-01-31"})).json()
    assert [(a["amendment_id"], a["in_effect"]) for a in center["amendments"]] == [("2025-1차추경", False)]
    assert center["current_budget"] == 2_000_000_000


async def test_an_amendment_without_a_date_counts_from_the_day_its_event_happened(budget):
    rt, client = budget
    undated = f.envelope("budget.amended", CENTER, {
        "program_id": CENTER, "fiscal_year": FY, "amendment_id": "2025-1차추경", "before": 1_000,
        "change": 500, "after": 1_500})  # factories date every event 1 February 2025
    apply(rt, line(CENTER, 1_000), ev(undated))
    assert (await get_summary(client, as_of="2025-01-31"))["total"]["current"] == 1_000
    assert (await get_summary(client, as_of="2025-02-01"))["total"]["current"] == 1_500


async def test_a_january_alert_states_the_january_budget_not_the_later_추경(make_settings, sqlite_url):
    app = build(make_settings(database_url=sqlite_url, slip_default_from="01-01"), start_broker=False)
    async with running(app):
        rt = app.state.runtime
        apply(rt, line(RND, 40_000_000_000, on=date(2025, 5, 1), supplementary=20_000_000_000))
        apply(rt, line(RND, 40_000_000_000, on=date(2025, 1, 31)), snap(RND, date(2025, 1, 31), 0))
        (alert,) = alert_rows(rt)
        assert (alert.figures["current_budget"], alert.figures["rate"], alert.figures["as_of"]) == \
            (40_000_000_000, "0.0", "2025-01-31")
        assert "예산현액 40,000백만원" in alert.summary


# ---------------------------------------------------------------- what a total counts


async def seed_scopes(rt: Runtime) -> None:
    apply(rt,
          line(CENTER, 10_000_000_000), snap(CENTER, date(2025, 1, 31), 1_000_000_000),
          line(WORKS, 3_000_000_000, scope="part", parent_program_id=CENTER),
          snap(WORKS, date(2025, 1, 31), 300_000_000),
          line(ORPHAN, 700_000_000, scope="unlinked", division="창업정책과"),
          line(FUND, 70_000_000_000, account="기금", division="창업정책과"), snap(FUND, date(2025, 1, 31), 5_000),
          line("창업정책과/창업지원", 5_000_000_000, division="창업정책과", account="특별회계"),
          snap("창업정책과/창업지원", date(2025, 1, 31), 542_000_000, committed=600_000_000))


async def test_parts_unlinked_lines_and_funds_stay_out_of_the_expenditure_total(budget):
    rt, client = budget
    await seed_scopes(rt)
    for as_of in (None, "2025-01-31"):
        s = await get_summary(client, **({"as_of": as_of} if as_of else {}))
        by_division = {d["division"]: d for d in s["divisions"]}
        assert (by_division["경제정책과"]["current"], by_division["경제정책과"]["spent"]) == \
            (10_000_000_000, 1_000_000_000), as_of
        assert (by_division["창업정책과"]["current"], by_division["창업정책과"]["programs"]) == (5_000_000_000, 1)
        assert (s["total"]["current"], s["total"]["spent"]) == (15_000_000_000, 1_542_000_000)
        assert {k: v["current"] for k, v in s["accounts"].items()} == {
            "기금": 70_000_000_000, "일반회계": 10_000_000_000, "특별회계": 5_000_000_000}
        assert s["held_out"] == {"part": {"programs": 1, "current": 3_000_000_000, "spent": 300_000_000},
                                 "unlinked": {"programs": 1, "current": 700_000_000, "spent": 0}}
        # One 원인행위액 known (창업지원), one not (센터): the rate on that basis is not made up.
        assert (s["total"]["committed"], s["total"]["committed_unknown"], s["total"]["commit_rate"]) == \
            (600_000_000, 1, None)
    fund = await get_summary(client, account="기금")
    assert (fund["total"]["current"], fund["total"]["spent"]) == (70_000_000_000, 5_000)

    unlinked = (await client.get("/v1/budget/unlinked", params={"fiscal_year": FY})).json()
    assert [(i["program_id"], i["current_budget"]) for i in unlinked["items"]] == [(ORPHAN, 700_000_000)]
    parent = (await client.get(f"/v1/budget/programs/{CENTER}")).json()
    assert [(p["program_id"], p["scope"], p["current_budget"], p["spent"]) for p in parent["parts"]] == [
        (WORKS, "part", 3_000_000_000, 300_000_000)]
    parts = (await client.get("/v1/budget/programs", params={"scope": "part"})).json()
    assert [i["program_id"] for i in parts["items"]] == [WORKS]


async def test_parts_are_never_alerted(make_settings, sqlite_url):
    app = build(make_settings(database_url=sqlite_url, slip_default_from="01-01"), start_broker=False)
    async with running(app):
        rt = app.state.runtime
        apply(rt, line(WORKS, 3_000_000_000, scope="part", parent_program_id=CENTER),
              snap(WORKS, date(2025, 3, 31), 0),
              line(ORPHAN, 3_000_000_000, scope="unlinked"), snap(ORPHAN, date(2025, 3, 31), 0),
              line(CENTER, 3_000_000_000), snap(CENTER, date(2025, 3, 31), 0))
        assert {a.program_id for a in alert_rows(rt)} == {CENTER}


# ---------------------------------------------------------------- every page answers


async def test_every_listed_program_answers_on_budget_and_programs(budget, make_settings, tmp_path):
    rt, client = budget
    await seed_scopes(rt)
    listed = (await client.get("/v1/budget/programs", params={"limit": 1000})).json()["items"]
    assert len(listed) == 5 and any("/" in i["program_id"] for i in listed)
    for item in listed:
        pid = item["program_id"]
        for path in (f"/v1/budget/programs/{pid}", f"/v1/budget/programs/{quote(pid, safe='')}"):
            r = await client.get(path)
            assert (r.status_code, r.json()["program_id"]) == (200, pid), path
        r = await client.get(f"/v1/budget/programs/{pid}", params={"format": "csv"})
        assert r.status_code == 200 and "filename*=UTF-8''" in r.headers["content-disposition"]

    settings = make_settings(database_url=f"sqlite:///{tmp_path}/programs.db", check_interval_s=3600)
    app = build_programs(settings, start_broker=False, clock=lambda: date(2025, 2, 1))
    async with running(app) as (pclient,):
        prt = app.state.runtime
        events = [ev(f.program(pid, pid.split("/")[-1])) for pid in (RND, CENTER, WORKS)]
        events.append(milestone(RND, "M1", "참여기업 선정", date(2025, 3, 3), date(2025, 3, 31)))
        programs_service.apply_batch(prt.db, programs_service.Config.from_settings(settings), events,
                                     date(2025, 2, 1))
        plisted = (await pclient.get("/v1/programs", params={"limit": 1000})).json()["items"]
        assert sorted(i["program_id"] for i in plisted) == sorted([RND, CENTER, WORKS])
        for item in plisted:
            pid = item["program_id"]
            for path in (f"/v1/programs/{pid}", f"/v1/programs/{quote(pid, safe='')}"):
                r = await pclient.get(path)
                assert (r.status_code, r.json()["program"]["program_id"]) == (200, pid), path
        # The fixed routes still answer as themselves.
        assert (await pclient.get("/v1/programs/upcoming", params={"days": 60})).json()["items"][0][
            "program_id"] == RND
        assert (await pclient.get("/v1/programs/경제정책과/없는사업")).status_code == 404


# ---------------------------------------------------------------- alerts a 팀장 would agree with


async def test_a_program_whose_first_선정_is_in_march_is_not_alerted_in_january(make_settings, sqlite_url):
    # Judged from 1 January at any amount, so only the program's own schedule holds the alert back.
    app = build(make_settings(database_url=sqlite_url, slip_default_from="01-01", slip_default_min_gap_amount=0),
                start_broker=False)
    async with running(app) as (client,):
        rt = app.state.runtime
        other = "경제정책과/일정 없는 사업"
        apply(rt, milestone(RND, "M1", "서류심사, 현장실사 등 선정평가", date(2025, 3, 3), date(2025, 3, 31)),
              line(RND, 40_000_000_000), snap(RND, date(2025, 1, 31), 0),
              line(other, 40_000_000_000), snap(other, date(2025, 1, 31), 0))
        assert [a.program_id for a in alert_rows(rt)] == [other]
        page = (await client.get(f"/v1/budget/programs/{RND}")).json()
        assert (page["plan_rate"], page["plan"]["funding_start"], page["plan"]["points"][0]["cumulative_rate"]) == \
            ("0.0", "2025-03-03", "0.0")
        # The schedule arrives after the snapshot (another topic, another order): the alert resolves.
        apply(rt, milestone(other, "M1", "보조금 교부", date(2025, 2, 10), date(2025, 2, 28)))
        got = [(a.status, a.figures["funding_start"]) for a in alert_rows(rt, other)]
        assert got == [("firing", None), ("resolved", "2025-02-10")]
        # By 30 April the curve from 3 March says 60×58/119 = 29.2%: now RND is behind.
        apply(rt, snap(RND, date(2025, 4, 30), 0))
        (fired,) = alert_rows(rt, RND)
        assert (fired.figures["plan"], fired.figures["funding_start"]) == ("29.2", "2025-03-03")


async def test_with_the_defaults_nothing_is_alerted_on_the_default_curve_in_january(budget):
    rt, _ = budget
    apply(rt, line(RND, 40_000_000_000), snap(RND, date(2025, 1, 31), 0))
    assert alert_rows(rt) == []


async def test_a_default_curve_alert_states_its_basis_and_figures_of_record(budget):
    rt, _ = budget
    apply(rt, line(RND, 40_000_000_000), snap(RND, date(2025, 4, 30), 4_000_000_000))
    with rt.db.read() as s:
        (row,) = s.exec(select(BudgetOutbox)).all()
    alert = parse_event(row.value).payload
    # plan 60×120/181 = 39.8% of 40,000백만원 = 15,920백만원; spent 4,000: 10.0%
    assert alert.summary == ("서울형 R&D 지원 집행률 10.0%(예산현액 40,000백만원 중 지출 4,000백만원, 2025-04-30 기준):"
                             " 기본 곡선(6월 말 60%) 기준 계획 39.8%(지출 예정 15,920백만원) 대비 29.8%p 부진")
    figs = alert.figures
    assert (figs["basis"], figs["basis_text"], figs["current_budget"], figs["spent"], figs["as_of"]) == \
        ("default_curve", "기본 곡선(6월 말 60%)", 40_000_000_000, 4_000_000_000, "2025-04-30")
    assert (str(figs["rate"]), figs["planned_amount"], figs["gap_amount"], figs["commit_rate"]) == \
        ("10.0", 15_920_000_000, 11_920_000_000, None)


async def test_a_monthly_plan_alert_says_so(budget):
    rt, _ = budget
    apply(rt, line(RND, 40_000_000_000), snap(RND, date(2025, 1, 31), 0),
          ev(f.envelope("budget.plan_set", RND, {"program_id": RND, "fiscal_year": FY, "points": [
              {"month": 1, "cumulative_rate": "25"}, {"month": 12, "cumulative_rate": "100"}]})))
    (alert,) = alert_rows(rt)
    assert (alert.severity, alert.figures["basis"]) == ("critical", "monthly_plan")
    assert "월별 집행계획 기준 계획 25.0%" in alert.summary


async def test_milestones_reach_budget_from_the_programs_topic(make_settings, sqlite_url):
    settings = make_settings(database_url=sqlite_url, slip_default_from="01-01", slip_default_min_gap_amount=0)
    app = build(settings, start_broker=False)
    rt: Runtime = app.state.runtime
    async with TestKafkaBroker(rt.broker), running(app):
        await rt.broker.publish(dump_event(milestone(RND, "M1", "참여기업 선정", date(2025, 3, 3),
                                                     date(2025, 3, 31))),
                                settings.topic("execwatch.programs"), key=RND.encode())
        await rt.broker.publish(dump_event(ev(f.program(RND))),
                                settings.topic("execwatch.programs"), key=RND.encode())  # ignored by budget
        for e in (line(RND, 40_000_000_000), snap(RND, date(2025, 1, 31), 0)):
            await rt.broker.publish(dump_event(e), settings.topic("execwatch.budget"), key=RND.encode())

        async def judged() -> bool:
            with rt.db.read() as s:
                row = s.get(BudgetProgram, (RND, FY))
                return row is not None and row.as_of is not None

        await eventually(judged, timeout=10, what="the snapshot in the view")
        assert alert_rows(rt) == []  # the 선정 in March held the January alert back
