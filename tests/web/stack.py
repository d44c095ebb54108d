"""The demo data behind the staff pages, in-process: the seed reports mapped by the importer and
applied to real budget, programs and notify apps (no broker), the alerts those services emit fed
to notify, and the web app reading them through ASGI transports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import select

from contracts import parse_event
from services.budget import service as budget_service
from services.budget.app import build as build_budget
from services.budget.store import BudgetOutbox
from services.common.settings import Settings
from services.ingest.importer.cli import map_files
from services.notify.app import build as build_notify
from services.programs import service as programs_service
from services.programs.app import build as build_programs
from services.programs.store import ProgramsOutbox
from services.web.app import build as build_web
from tests.helpers import running

TODAY = date(2025, 2, 15)  # the demo's clock: the reports speak of early 2025


def seed_events(seeds: Path) -> list[Any]:
    summary = map_files(sorted(seeds.glob("*.txt")), progress=False)
    events = []
    for envelope in summary.envelopes:
        events.append(parse_event(envelope.model_dump(mode="json")))
    return events


@dataclass
class Stack:
    web: FastAPI
    client: httpx.AsyncClient  # to the web app
    budget: httpx.AsyncClient
    programs: httpx.AsyncClient
    notify: httpx.AsyncClient
    services: dict[str, FastAPI]  # budget, programs, notify (running)


@asynccontextmanager
async def demo_stack(tmp_path: Path, seeds: Path, extra: list[dict[str, Any]] | None = None
                     ) -> AsyncIterator[Stack]:
    def settings(name: str) -> Settings:
        return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/{name}.db",  # type: ignore[call-arg]
                        clock=TODAY.isoformat(), notify_quiet_hours=False, log_json=False, log_level="WARNING",
                        recipient_address_template="{phone_digits}@staff.test",
                        notify_ack_secret="test-ack-secret-not-the-demo-one",
                        # Pages need alerts of several 과 to show: judge January against the default
                        # curve too (the staff default waits until April; see docs/budget.md).
                        slip_default_from="01-01", slip_default_min_gap_amount=0)

    budget, programs, notify = (build_budget(settings("budget"), start_broker=False),
                                build_programs(settings("programs"), start_broker=False),
                                build_notify(settings("notify"), start_broker=False))
    async with running(budget, programs, notify) as (bc, pc, nc):
        events = seed_events(seeds) + [parse_event(e) for e in extra or []]
        brt, prt = budget.state.runtime, programs.state.runtime
        budget_service.apply_batch(brt.db, budget_service.Config.from_settings(brt.settings),
                                   [e for e in events if e.event_type.startswith("budget.")])
        programs_service.apply_batch(prt.db, programs_service.Config.from_settings(prt.settings),
                                     [e for e in events if not e.event_type.startswith("budget.")], TODAY)
        alerts = []
        for rt, table in ((brt, BudgetOutbox), (prt, ProgramsOutbox)):
            with rt.db.read() as s:
                alerts += [parse_event(json.loads(row.value)) for row in s.exec(select(table)).all()]
        notify.state.notifier.apply_batch([e for e in events if e.event_type == "program.registered"] + alerts)

        web = build_web(settings("web"), transports={
            "budget": httpx.ASGITransport(app=budget), "programs": httpx.ASGITransport(app=programs),
            "notify": httpx.ASGITransport(app=notify)})
        async with running(web) as (wc,):
            yield Stack(web, wc, bc, pc, nc, {"budget": budget, "programs": programs, "notify": notify})
