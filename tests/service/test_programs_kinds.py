"""What a program is (program / part / action item) in the programs service: parts shown on
their parent's page, action items listable, and an audit follow-up past its date overdue like
any milestone. Fed with what the importer makes of the January report (001), on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from sqlmodel import col, select

from contracts import AnyEvent, parse_event
from services.ingest.importer.events import map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.report import parse_report
from services.programs import service
from services.programs.app import build
from services.programs.store import ProgramsOutbox
from tests import factories as f
from tests.helpers import running
from tests.service.test_programs_service import ev

TODAY = date(2025, 2, 15)  # the demo's date: a follow-up due in January is late by then


def setup_app(make_settings: Callable[..., Any], sqlite_url: str) -> tuple[FastAPI, Any, service.Config]:
    settings = make_settings(database_url=sqlite_url, check_interval_s=3600)
    app = build(settings, start_broker=False, clock=lambda: TODAY)
    return app, app.state.runtime, service.Config.from_settings(settings)


def _january(seeds: Path) -> list[AnyEvent]:
    path = sorted(seeds.glob("001_*.txt"))[0]
    result = map_report(parse_report(path), ProgramRegistry(), text=path.read_bytes().decode("utf-8-sig"))
    return [parse_event(e.model_dump(mode="json")) for e in result.envelopes
            if e.event_type in ("program.registered", "milestone.set")]


async def test_parts_on_the_parent_page_action_items_listed_and_overdue(
        make_settings: Callable[..., Any], sqlite_url: str, seeds: Path) -> None:
    app, rt, cfg = setup_app(make_settings, sqlite_url)
    events = _january(seeds)
    registered = [e.payload for e in events if e.event_type == "program.registered"]
    action_items = {p.program_id for p in registered if p.kind == "action_item"}
    assert action_items  # the report's 행정사무감사 처리결과
    async with running(app) as (client,):
        service.apply_batch(rt.db, cfg, events, TODAY)
        service.check_all(rt.db, cfg, TODAY)

        listed = (await client.get("/v1/programs", params={"kind": "action_item", "limit": 1000})).json()
        assert {i["program_id"] for i in listed["items"]} == action_items
        assert {i["kind"] for i in listed["items"]} == {"action_item"}
        assert (await client.get("/v1/programs", params={"kind": "bogus"})).status_code == 422

        # A part is shown on its parent's page (typed from 001: 서울 RISE 센터 운영 under 서울 지역혁신중심
        # 대학지원체계 추진), and names its parent on its own page.
        parent = "대학협력과/서울지역혁신중심대학지원체계추진"
        page = (await client.get(f"/v1/programs/{quote(parent, safe='')}")).json()
        part_id = f"{parent}/서울RISE센터운영"
        assert part_id in [p["program_id"] for p in page["parts"]]
        assert {p["kind"] for p in page["parts"]} == {"part"}
        own = (await client.get(f"/v1/programs/{part_id}")).json()["program"]
        assert (own["kind"], own["parent_program_id"]) == ("part", parent)
        assert own["source_ref"]["document"].startswith("001_")

        # 001 line 4018: "해외 팝업 스토어 진출 지원계획 수립 :’25. 1월중", a follow-up of an audit finding
        # of 뷰티패션산업과 (동대문 상권): past its date, overdue like any milestone, and alerted.
        overdue = (await client.get("/v1/programs/overdue", params={"division": "뷰티패션산업과"})).json()["items"]
        popup = [o for o in overdue if o["title"] == "해외 팝업 스토어 진출 지원계획 수립"]
        assert len(popup) == 1 and popup[0]["program_id"] in action_items
        assert (popup[0]["window_end"], popup[0]["days_late"], popup[0]["source_ref"]["line"]) == ("2025-01-31", 15,
                                                                                                  4018)
        with rt.db.read() as s:
            sent = [r.value for r in s.exec(select(ProgramsOutbox).order_by(col(ProgramsOutbox.id))).all()]
        fired = [a for a in (parse_event(v) for v in sent)
                 if a.payload.program_id == popup[0]["program_id"] and a.payload.rule == "milestone_overdue"]
        assert fired and fired[0].payload.status == "firing" and fired[0].payload.division == "뷰티패션산업과"


async def test_register_keeps_kind_and_parent_of_the_latest_registration(
        make_settings: Callable[..., Any], sqlite_url: str) -> None:
    app, rt, cfg = setup_app(make_settings, sqlite_url)
    part = f.program(pid="P-RND/공사비", title="리모델링 공사비")
    part["payload"].update(kind="part", parent_program_id="P-RND")
    async with running(app) as (client,):
        service.apply_batch(rt.db, cfg, [ev(f.program(), name="p"), ev(part, name="part")], TODAY)
        page = (await client.get("/v1/programs/P-RND")).json()
        assert [(p["program_id"], p["kind"]) for p in page["parts"]] == [("P-RND/공사비", "part")]
        assert page["program"]["kind"] == "program" and page["program"]["parent_program_id"] is None
        assert [i["program_id"] for i in (await client.get("/v1/programs", params={"parent": "P-RND"})).json()[
            "items"]] == ["P-RND/공사비"]
        # A later registration that says it is a program of its own takes it off the parent's page.
        moved = f.program(pid="P-RND/공사비", title="리모델링 공사비")
        service.apply_batch(rt.db, cfg, [ev(moved, occurred=date(2025, 3, 1), name="moved")], TODAY)
        assert (await client.get("/v1/programs/P-RND")).json()["parts"] == []
