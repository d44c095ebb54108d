"""Budget over the real broker, on SQLite and PostgreSQL: a January report, a later 추경 plan
and a programs-topic schedule, published as the importer and ingest would. As of 31 January the
view is the January report (no 추경, no part, no unlinked line, no 기금 in the 세출 total); a
program whose first 선정 is in March is not alerted in January; every listed page answers."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlmodel import func, select

from contracts import dump_event, parse_event
from services.budget.app import build
from services.budget.store import BudgetAlert, BudgetInbox
from services.common.messaging import ensure_topics
from tests import factories as f
from tests.helpers import eventually, running

FY = 2025
JAN = date(2025, 1, 31)
RND = "경제정책과/서울형 R&D 지원"  # its first 선정 is in March
CENTER = "경제정책과/서울기업지원센터운영"  # no schedule: judged on the default curve
WORKS = "경제정책과/서울기업지원센터운영/리모델링 공사비"
ORPHAN = "창업정책과/창업박람회 개최"
FUND = "창업정책과/중소기업육성기금"


def line(pid: str, original: int, on: date, **extra: Any) -> dict[str, Any]:
    return f.envelope("budget.line_set", pid, {
        "program_id": pid, "fiscal_year": FY, "title": pid.split("/")[-1], "office": "경제실",
        "division": pid.split("/")[0], "original": original, "account": "일반회계", "effective_date": on.isoformat(),
        **extra})


def snap(pid: str, spent: int) -> dict[str, Any]:
    return f.envelope("budget.execution_snapshot", pid, {
        "program_id": pid, "fiscal_year": FY, "as_of": JAN.isoformat(), "committed": None, "spent": spent})


async def publish(bootstrap: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for topic, e in items:
            await producer.send(topic, dump_event(parse_event(e)), key=e["key"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_the_january_view_is_the_january_report(kafka, db_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url,
                             slip_default_from="01-01", slip_default_min_gap_amount=0)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap, settings.topic_prefix)
    budget, programs = settings.topic("execwatch.budget"), settings.topic("execwatch.programs")
    items = [
        (budget, line(RND, 40_000_000_000, date(2025, 5, 1), supplementary=6_000_000_000)),  # the 추경 plan
        (budget, line(RND, 40_000_000_000, JAN)), (budget, snap(RND, 0)),
        (budget, line(CENTER, 2_000_000_000, JAN)), (budget, snap(CENTER, 0)),
        (budget, line(WORKS, 900_000_000, JAN, scope="part", parent_program_id=CENTER)), (budget, snap(WORKS, 0)),
        (budget, line(ORPHAN, 300_000_000, JAN, scope="unlinked")),
        (budget, line(FUND, 70_000_000_000, JAN, account="기금")),
        (programs, f.program(RND)),  # not budget's: ignored
        (programs, f.milestone(RND, "M1", date(2025, 3, 3), date(2025, 3, 31), title="서류심사, 현장실사 등 선정평가")),
    ]
    used = len(items) - 1
    await publish(kafka.bootstrap, items)

    app = build(settings)
    async with running(app) as (client,):
        rt = app.state.runtime

        def processed() -> int:
            with rt.db.read() as s:
                return int(s.exec(select(func.count()).select_from(BudgetInbox)).one())

        await eventually(lambda: asyncio.to_thread(lambda: processed() == used), timeout=90, interval=0.1,
                         what="every budget event and the milestone processed")
        s = (await client.get("/v1/budget/summary", params={"fiscal_year": FY, "as_of": JAN.isoformat()})).json()
        assert (s["total"]["programs"], s["total"]["current"], s["total"]["supplementary"]) == \
            (2, 42_000_000_000, 0)
        assert s["accounts"]["기금"]["current"] == 70_000_000_000
        assert (s["held_out"]["part"]["programs"], s["held_out"]["unlinked"]["programs"]) == (1, 1)
        latest = (await client.get("/v1/budget/summary", params={"fiscal_year": FY})).json()
        assert latest["total"]["current"] == 48_000_000_000  # the 추경 is part of the latest view

        with rt.db.read() as session:
            last: dict[str, str] = {}
            for a in session.exec(select(BudgetAlert).order_by(BudgetAlert.created_at, BudgetAlert.seq)).all():
                last[a.program_id] = a.status
        # RND's 선정 is in March: whichever topic was read first, it ends with no open alert (if its
        # snapshot came first it fired and resolved when the schedule arrived). Parts are never judged.
        assert sorted(pid for pid, status in last.items() if status == "firing") == [CENTER]
        assert set(last) <= {CENTER, RND}

        listed = (await client.get("/v1/budget/programs", params={"limit": 1000})).json()["items"]
        assert len(listed) == 5
        for item in listed:
            r = await client.get(f"/v1/budget/programs/{item['program_id']}")
            assert r.status_code == 200, item["program_id"]
