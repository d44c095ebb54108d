"""A 과's execution of record over the real broker, on SQLite and PostgreSQL: the importer's
`budget.division_snapshot` (keyed by division, not program) reaches budget's consumer beside a
program's events and is shown in the division view beside the sum of the division's programs."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from sqlmodel import func, select

from services.budget.app import build
from services.budget.store import BudgetInbox
from services.common.messaging import ensure_topics
from services.ingest.importer.events import map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.report import parse_text
from tests import factories as f
from tests.helpers import eventually, running
from tests.integration.test_budget_truth import publish

FY = 2025
M = 1_000_000
REPORT = """\
경 제 실

※ 이하 금액 단위: 백만원, ’25.3.31. 기준

□ 부서별 예산 집행 현황
부서 예산현액 원인행위액(집행률) 지출액(집행률)
계 300,000 120,000 (40.0) 60,000 (20.0)
경제정책과 120,809 50,000 (41.4) 20,000 (16.6)
일자리정책과 179,191 70,000 (39.1) 40,000 (22.3)
"""
PID = "경제정책과/서울형 R&D 지원"


def program_events() -> list[dict[str, Any]]:
    return [
        f.envelope("budget.line_set", PID, {"program_id": PID, "fiscal_year": FY, "title": "서울형 R&D 지원",
                                            "office": "경제실", "division": "경제정책과", "original": 120_809 * M,
                                            "account": "일반회계"}),
        f.envelope("budget.execution_snapshot", PID, {"program_id": PID, "fiscal_year": FY, "as_of": "2025-03-31",
                                                     "committed": 50_000 * M, "spent": 19_500 * M}),
    ]


async def test_division_snapshots_reach_the_division_view(kafka, db_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap, settings.topic_prefix)
    topic = settings.topic("execwatch.budget")
    divisions = [e.model_dump(mode="json") for e in
                 map_report(parse_text(REPORT, "division.txt"), ProgramRegistry(), text=REPORT).envelopes]
    assert [e["event_type"] for e in divisions] == ["budget.division_snapshot"] * 2
    items = [(topic, e) for e in program_events() + divisions]
    await publish(kafka.bootstrap, items)

    app = build(settings)
    async with running(app) as (client,):
        rt = app.state.runtime

        def processed() -> bool:
            with rt.db.read() as s:
                return int(s.exec(select(func.count()).select_from(BudgetInbox)).one()) == len(items)

        await eventually(lambda: asyncio.to_thread(processed), timeout=90, interval=0.1, what="all events processed")
        s = (await client.get("/v1/budget/summary", params={"fiscal_year": FY, "as_of": date(2025, 3, 31)})).json()
        by = {d["division"]: d for d in s["divisions"]}
        assert by["경제정책과"]["reported"]["spent"] == 20_000 * M
        assert by["경제정책과"]["difference"] == {"original": None, "current": 0, "committed": 0,
                                                   "spent": 500 * M}
        assert by["일자리정책과"]["programs"] == 0 and by["일자리정책과"]["reported"]["current"] == 179_191 * M
        assert s["total"]["spent"] == 19_500 * M  # the 과 facts are never added to the total
