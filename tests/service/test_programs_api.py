"""Programs read API and handler wiring: in-memory broker (TestKafkaBroker), SQLite, fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from sqlmodel import select

from contracts import dump_event
from services.programs import service
from services.programs.app import build
from services.programs.metrics import division_counts
from services.programs.store import ProgramsOutbox
from tests import factories as f
from tests.helpers import eventually, running
from tests.service.test_programs_service import ev, milestone, program, target

TODAY = date(2025, 6, 10)


def setup_app(make_settings: Callable[..., Any], sqlite_url: str) -> tuple[FastAPI, Any, service.Config]:
    settings = make_settings(database_url=sqlite_url, check_interval_s=3600)
    app = build(settings, start_broker=False, clock=lambda: TODAY)
    return app, app.state.runtime, service.Config.from_settings(settings)


async def test_read_api_register_timeline_overdue_upcoming_and_review(make_settings, sqlite_url):
    app, rt, cfg = setup_app(make_settings, sqlite_url)
    async with running(app) as (client,):
        events = [
            program(),
            milestone("M1", end=date(2025, 5, 31)),  # 10 days late
            milestone("M2", start=date(2025, 6, 1), end=date(2025, 6, 15)),  # D-5
            milestone("M2", start=date(2025, 6, 1), end=date(2025, 6, 20), occurred=date(2025, 3, 1)),
            milestone("M3", start=None, end=None, window_text="’25.하반기 중"),
            target("10", date(2025, 6, 1)),
        ]
        service.apply_batch(rt.db, cfg, events, TODAY)

        r = await client.get("/v1/programs", params={"division": "경제정책과", "status": "late"})
        body = r.json()
        assert (r.status_code, body["total"]) == (200, 1)
        item = body["items"][0]
        assert (item["program_id"], item["status"], item["milestones"], item["overdue"], item["needs_review"]) == \
            ("P-RND", "late", 3, 1, 1)
        assert (await client.get("/v1/programs", params={"status": "on_track"})).json()["total"] == 0
        assert (await client.get("/v1/programs", params={"status": "bogus"})).status_code == 422
        assert (await client.get("/v1/programs", params={"limit": 1, "offset": 1})).json()["items"] == []

        detail = (await client.get("/v1/programs/P-RND")).json()
        assert detail["program"]["contacts"][1]["name"] == "박지은"
        m2 = next(m for m in detail["milestones"] if m["milestone_id"] == "M2")
        assert [(h["window_end"], h["change"]) for h in m2["history"]] == [("2025-06-15", "initial"),
                                                                           ("2025-06-20", "later")]
        assert m2["occurrences"] == [{"key": None, "window_start": "2025-06-01", "window_end": "2025-06-20",
                                      "done": False, "overdue_level": "ok"}]
        # M2's D-7 reminder (for 15 June) was closed when it moved to 20 June, 10 days away
        assert {a["rule"] for a in detail["alerts"]} == {"milestone_overdue", "schedule_moved", "target_behind"}
        t = detail["targets"][0]
        assert (t["achieved"], [p["value"] for p in t["progress"]]) == ("25.0", ["10.00"])

        overdue = (await client.get("/v1/programs/overdue")).json()["items"]
        assert [(o["milestone_id"], o["days_late"]) for o in overdue] == [("M1", 10)]
        upcoming = (await client.get("/v1/programs/upcoming", params={"days": 14})).json()["items"]
        assert [(u["milestone_id"], u["days_left"]) for u in upcoming] == [("M2", 10)]
        assert (await client.get("/v1/programs/upcoming", params={"days": 5})).json()["items"] == []
        review = (await client.get("/v1/programs/review")).json()["items"]
        assert [(x["milestone_id"], x["window_text"]) for x in review] == [("M3", "’25.하반기 중")]
        assert (await client.get("/v1/programs/NOPE")).status_code == 404

        assert division_counts(rt.db) == {"경제정책과": (1, 1)}
        metrics = (await client.get("/metrics")).text
        assert 'execwatch_programs_overdue_milestones{division="경제정책과"} 1.0' in metrics


async def test_review_lists_programs_no_document_assigned_to_a_division(make_settings, sqlite_url):
    app, rt, cfg = setup_app(make_settings, sqlite_url)
    async with running(app) as (client,):
        data = f.program(pid="P-UN", title="로봇 실증 지원")
        data["payload"]["division"] = None
        events = [program(), milestone("M3", start=None, end=None, window_text="’25.하반기 중"),
                  ev(data, name="unassigned")]
        service.apply_batch(rt.db, cfg, events, TODAY)
        review = (await client.get("/v1/programs/review")).json()["items"]
        assert [(x["program_id"], x["milestone_id"], x["reason"]) for x in review] == [
            ("P-RND", "M3", "일정(기간)이 없습니다"), ("P-UN", None, "담당 부서(과)가 지정되지 않았습니다")]
        by_division = (await client.get("/v1/programs/review", params={"division": "경제정책과"})).json()["items"]
        assert [x["program_id"] for x in by_division] == ["P-RND"]


async def test_events_through_the_handler_emit_alerts_once(make_settings, sqlite_url):
    app, rt, _ = setup_app(make_settings, sqlite_url)
    topic = rt.settings.topic("execwatch.programs")
    async with TestKafkaBroker(rt.broker), running(app):
        for e in (program(), milestone("M1", end=date(2025, 5, 31))):
            await rt.broker.publish(dump_event(e), topic, key=b"P-RND")
        await rt.broker.publish(dump_event(milestone("M1", end=date(2025, 5, 31))), topic, key=b"P-RND")

        def rows() -> list[ProgramsOutbox]:
            with rt.db.read() as s:
                return list(s.exec(select(ProgramsOutbox)).all())

        async def probe() -> list[ProgramsOutbox] | None:
            return rows() or None

        found = await eventually(probe, timeout=10, what="overdue alert in the outbox")
        assert len(found) == 1 and b"milestone_overdue" in found[0].value
