"""Division facts of record: a report's 과별 집행 현황 (imported as `budget.division_snapshot`)
shown in the division view beside the sum of the division's programs, with the difference,
never added to a total and never dropped because no program of the division is known; and the
report line every budget line came from on the program page. SQLite and PostgreSQL, no broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest

from contracts import AnyEvent, parse_event
from services.budget import service
from services.budget.app import build
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.ingest.importer.events import map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.report import parse_text
from tests import factories as f
from tests.helpers import running

FY = 2025
M = 1_000_000  # the table's unit, 백만원

# A 과-level execution table as a report prints it (no program rows), with its 실 named.
REPORT = """\
경 제 실

Ⅱ. 예산 집행 현황

※ 이하 금액 단위: 백만원, ’25.3.31. 기준

□ 부서별 예산 집행 현황
부서 예산현액 원인행위액(집행률) 지출액(집행률)
계 300,000 120,000 (40.0) 60,000 (20.0)
경제정책과 120,809 50,000 (41.4) 20,000 (16.6)
일자리정책과 179,191 70,000 (39.1) 40,000 (22.3)
"""


def ev(data: dict[str, Any]) -> AnyEvent:
    return parse_event(data)


def line(pid: str, original: int, division: str = "경제정책과", office: str = "경제실", **extra: Any) -> AnyEvent:
    return ev(f.envelope("budget.line_set", pid, {
        "program_id": pid, "fiscal_year": FY, "title": pid.split("/")[-1], "office": office,
        "division": division, "original": original, "account": "일반회계", **extra}))


def snap(pid: str, as_of: date, spent: int, committed: int) -> AnyEvent:
    return ev(f.envelope("budget.execution_snapshot", pid, {
        "program_id": pid, "fiscal_year": FY, "as_of": as_of.isoformat(), "committed": committed, "spent": spent}))


def division_snap(division: str, as_of: date, spent: int, revision: int = 0, office: str = "경제실") -> AnyEvent:
    return ev(f.envelope("budget.division_snapshot", f"division:{office}/{division}", {
        "office": office, "division": division, "fiscal_year": FY, "as_of": as_of.isoformat(),
        "current": 100 * M, "spent": spent, "revision": revision}))


def imported() -> list[AnyEvent]:
    result = map_report(parse_text(REPORT, "division.txt"), ProgramRegistry(), text=REPORT)
    return [parse_event(e.model_dump(mode="json")) for e in result.envelopes]


@pytest.fixture
async def budget(make_settings: Callable[..., Settings], db_url: str
                 ) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    app = build(make_settings(database_url=db_url), start_broker=False)
    async with running(app) as (client,):
        yield app.state.runtime, client


def apply(rt: Runtime, *events: AnyEvent) -> service.BatchResult:
    return service.apply_batch(rt.db, service.Config.from_settings(rt.settings), list(events))


async def summary(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/budget/summary", params={"fiscal_year": FY, **params})
    assert r.status_code == 200, r.text
    return r.json()


def division(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [d for d in data["divisions"] if d["division"] == name]
    assert len(found) == 1, [d["division"] for d in data["divisions"]]
    nested = [d for o in data["offices"] for d in o["divisions"] if d["division"] == name]
    assert nested == [{k: v for k, v in found[0].items() if k != "office"}]  # the office's view says the same
    return found[0]


async def test_division_view_shows_reported_figures_beside_the_sum_of_programs(
        budget: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = budget
    events = imported()
    assert [e.key for e in events] == ["division:경제실/경제정책과", "division:경제실/일자리정책과"]
    # Two programs of 경제정책과 whose 예산현액 add up to the report's, but whose 지출액 are 1,000 short.
    result = apply(rt, line("경제정책과/가", 80_000 * M), line("경제정책과/나", 40_809 * M),
                   snap("경제정책과/가", date(2025, 3, 31), 12_000 * M, 30_000 * M),
                   snap("경제정책과/나", date(2025, 3, 31), 7_000 * M, 20_000 * M), *events)
    assert result.applied == 6

    data = await summary(client, as_of="2025-03-31")
    econ = division(data, "경제정책과")
    assert econ["programs"] == 2 and econ["current"] == 120_809 * M and econ["spent"] == 19_000 * M
    # figures typed from the table above (백만원)
    assert econ["reported"] == {"as_of": "2025-03-31", "original": None, "current": 120_809 * M,
                                "committed": 50_000 * M, "spent": 20_000 * M, "rate": "16.6", "unit": "백만원",
                                "revision": 0,
                                "source_ref": {"document": "division.txt", "section": "과별 집행 현황", "line": 10}}
    assert econ["difference"] == {"original": None, "current": 0, "committed": 0, "spent": 1_000 * M}
    # No program of 일자리정책과 is known: its figures of record are shown all the same.
    jobs = division(data, "일자리정책과")
    assert jobs["programs"] == 0 and jobs["current"] == 0
    assert (jobs["reported"]["current"], jobs["reported"]["spent"]) == (179_191 * M, 40_000 * M)
    assert jobs["difference"] == {"original": None, "current": None, "committed": None, "spent": None}
    # Never added to a total: the total is the programs'.
    assert (data["total"]["current"], data["total"]["spent"]) == (120_809 * M, 19_000 * M)
    assert data["offices"][0]["current"] == 120_809 * M

    # Before the table's 기준일 there is no division fact; a division without programs then leaves the view.
    early = await summary(client, as_of="2025-03-30")
    assert division(early, "경제정책과")["reported"] is None
    assert [d["division"] for d in early["divisions"]] == ["경제정책과"]
    # A single account's view leaves the division fact out (it covers the whole 과, not one account).
    fund = await summary(client, account="일반회계")
    assert "일자리정책과" not in [d["division"] for d in fund["divisions"]]
    # The latest view shows the latest fact.
    assert division(await summary(client), "일자리정책과")["reported"]["as_of"] == "2025-03-31"

    # Importing the report again changes nothing.
    again = apply(rt, *imported())
    assert again.duplicates == 2 and again.applied == 0


async def test_division_snapshot_revisions_and_dates(budget: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = budget
    # Two dates and a correction in one batch; then an older revision arriving late is stale.
    result = apply(rt, division_snap("가과", date(2025, 1, 31), 5 * M),
                   division_snap("가과", date(2025, 2, 28), 9 * M),
                   division_snap("가과", date(2025, 2, 28), 8 * M, revision=1))
    assert result.applied == 3
    stale = apply(rt, division_snap("가과", date(2025, 2, 28), 7 * M, revision=0))
    assert stale.stale == 1 and stale.applied == 0
    assert division(await summary(client), "가과")["reported"]["spent"] == 8 * M
    assert division(await summary(client, as_of="2025-02-27"), "가과")["reported"]["spent"] == 5 * M
    assert division(await summary(client, as_of="2025-02-28"), "가과")["reported"]["revision"] == 1


async def test_program_page_names_the_report_line_of_the_line_shown(
        budget: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = budget
    pid = "경제정책과/서울기업지원센터운영"
    jan = {"document": "001.txt", "section": "예산현황", "line": 120}
    jun = {"document": "000.txt", "section": "추경", "line": 40}
    apply(rt, line(pid, 1_000 * M, effective_date="2025-01-31", source_ref=jan),
          line(pid, 1_200 * M, effective_date="2025-06-30", source_ref=jun))
    r = await client.get(f"/v1/budget/programs/{pid}")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["source_ref"] == jun
    assert [v["source_ref"] for v in page["lines"]] == [jan, jun]
    r = await client.get(f"/v1/budget/programs/{pid}", params={"as_of": "2025-03-31"})
    assert r.json()["source_ref"] == jan and r.json()["original"] == 1_000 * M


def fact(office: str, division: str | None, as_of: date, **figures: int) -> AnyEvent:
    return ev(f.envelope("budget.division_snapshot", f"division:{office}/{division or ''}", {
        "office": office, "division": division, "fiscal_year": FY, "as_of": as_of.isoformat(), **figures}))


async def test_office_figures_and_facts_that_complete_each_other(budget: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = budget
    day = date(2025, 1, 31)
    apply(rt, line("경제정책과/가", 100 * M), line("다과/나", 50 * M, division="다과", office="복지실"),
          # a 소계 (본예산, 예산현액, 집행액) and a 과별 집행 현황 row (원인행위액) of the same day
          fact("경제실", "경제정책과", day, original=101 * M, current=101 * M, spent=3 * M),
          fact("경제실", "경제정책과", day, current=101 * M, committed=7 * M, spent=3 * M),
          fact("경제실", None, day, original=102 * M, current=102 * M, spent=4 * M))
    data = await summary(client, as_of="2025-01-31")
    econ = division(data, "경제정책과")["reported"]
    assert (econ["original"], econ["current"], econ["committed"], econ["spent"]) == (101 * M, 101 * M, 7 * M, 3 * M)
    offices = {o["office"]: o for o in data["offices"]}
    assert offices["경제실"]["reported"]["original"] == 102 * M
    assert offices["경제실"]["difference"]["original"] == 2 * M  # 102 printed, 100 the program
    assert offices["복지실"]["reported"] is None
    # one 실 without figures of its own: the whole view has no 계 of record
    assert data["total"]["reported"] is None and data["total"]["difference"] is None

    apply(rt, fact("복지실", None, day, original=51 * M, current=51 * M, spent=1 * M))
    total = (await summary(client, as_of="2025-01-31"))["total"]
    assert (total["reported"]["original"], total["reported"]["spent"]) == (153 * M, 5 * M)
    assert total["reported"]["committed"] is None  # not every 실 states it
    assert total["difference"]["original"] == 3 * M
