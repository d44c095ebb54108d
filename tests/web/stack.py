"""The demo data behind the staff pages, in-process: the seed reports mapped by the importer and
applied to real budget, programs and notify apps (no broker), the alerts those services emit fed
to notify, and the web app reading them through ASGI transports as the signed-in person.

The services share one access database (keys, audit, used sign-in links) and secret, as a
deployment does; people are signed in with Access's own sessions and keys (`as_person`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import select

from contracts import parse_event
from services.budget import service as budget_service
from services.budget.app import build as build_budget
from services.budget.store import BudgetOutbox
from services.common.auth import Identity, Role, session_token
from services.common.embedded import MailSink
from services.common.settings import Settings
from services.ingest.importer.cli import map_files
from services.notify.app import build as build_notify
from services.programs import service as programs_service
from services.programs.app import build as build_programs
from services.programs.store import ProgramsOutbox
from services.web.app import build as build_web
from services.web.session import COOKIE
from services.web.session import Identity as WebIdentity
from tests.helpers import eventually, running

TODAY = date(2025, 2, 15)  # the demo's clock: the reports speak of early 2025
AUTH_SECRET = "test-auth-secret-not-the-demo-one"


def seed_events(seeds: Path) -> list[Any]:
    summary = map_files(sorted(seeds.glob("*.txt")), progress=False)
    events = []
    for envelope in summary.envelopes:
        events.append(parse_event(envelope.model_dump(mode="json")))
    return events


@dataclass
class Stack:
    web: FastAPI
    client: httpx.AsyncClient  # to the web app, nobody signed in
    budget: httpx.AsyncClient  # to the APIs, as an operator
    programs: httpx.AsyncClient
    notify: httpx.AsyncClient
    services: dict[str, FastAPI]  # budget, programs, notify (running)
    make_web: Callable[..., FastAPI]  # another web app on the same services, with these settings

    def staff(self, name: str, division: str, title: str = "팀장", email: str | None = None,
              office: str = "경제실") -> Identity:
        return Identity(name=name, role=Role.staff, divisions=frozenset({division}), office=office, title=title,
                        email=email or f"{name}@staff.test", via="session")

    async def address_of(self, name: str, division: str) -> str:
        """Where notify tells this person about alerts (the reports' contact): their sign-in address."""
        alerts = (await self.notify.get("/v1/alerts", params={"status": ""})).json()["items"]
        for a in alerts:
            for r in a["recipients"]:
                if r["name"] == name and a["labels"].get("과") == division:
                    return str(r["receiver"])
        raise AssertionError(f"no alert was sent to {name} of {division}")

    def credential(self, who: Identity) -> str:
        """Staff: an access session as notify's sign-in gives it; others: an API key of their role."""
        access = self.services["notify"].state.access
        if who.role == Role.staff:
            return session_token(access.secret, who, 3600, datetime.now(UTC))
        _, key = access.store.create(name=who.name, role=str(who.role), divisions=sorted(who.divisions),
                                     email=who.email, title=who.title)
        return str(key)

    def cookie(self, who: Identity) -> str:
        codec = self.web.state.sessions
        return str(codec.encode(codec.session(WebIdentity.from_access(who.as_json()), self.credential(who),
                                              time.time() + 3600)))

    def as_person(self, who: Identity) -> httpx.AsyncClient:
        """A browser-like client of the web signed in as this person."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.web), base_url="http://web",
                                 cookies={COOKIE: self.cookie(who)})


LINK_SUBJECT = "[execwatch] 로그인 링크"


async def mailed_link(sink: MailSink, since: int) -> str:
    """The sign-in link of the first sign-in mail the sink received after its `since`-th message."""

    async def probe() -> str | None:
        for m in sink.messages[since:]:
            if m["Subject"] == LINK_SUBJECT:
                found = re.search(r"(https?://\S+/auth/callback\?token=\S+)", m.get_content())
                assert found, m.get_content()
                return found.group(1)
        return None

    return await eventually(probe, timeout=15, what="the sign-in mail")


@asynccontextmanager
async def demo_stack(tmp_path: Path, seeds: Path, extra: list[dict[str, Any]] | None = None, *,
                     smtp_port: int | None = None, web_url: str = "http://web",
                     web: dict[str, Any] | None = None) -> AsyncIterator[Stack]:
    """`smtp_port`: where notify sends mail (sign-in links); `web_url`: where those links point;
    `web`: more settings for the web app."""

    def settings(name: str, **more: Any) -> Settings:
        return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/{name}.db",  # type: ignore[call-arg]
                        auth_database_url=f"sqlite:///{tmp_path}/auth.db", auth_secret=AUTH_SECRET,
                        clock=TODAY.isoformat(), notify_quiet_hours=False, log_json=False, log_level="WARNING",
                        recipient_address_template="{phone_digits}@staff.test",
                        notify_ack_secret="test-ack-secret-not-the-demo-one",
                        **({"smtp_host": "127.0.0.1", "smtp_port": smtp_port} if smtp_port else {}),
                        auth_login_url=f"{web_url}/auth/callback",
                        # Pages need alerts of several 과 to show: judge January against the default
                        # curve too (the staff default waits until April; see docs/budget.md).
                        slip_default_from="01-01", slip_default_min_gap_amount=0, **more)

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

        def make_web(**more: Any) -> FastAPI:
            return build_web(settings("web", **more), transports={
                "budget": httpx.ASGITransport(app=budget), "programs": httpx.ASGITransport(app=programs),
                "notify": httpx.ASGITransport(app=notify)})

        web_app = make_web(**(web or {}))
        async with running(web_app, as_role=None) as (wc,):
            yield Stack(web_app, wc, bc, pc, nc, {"budget": budget, "programs": programs, "notify": notify},
                        make_web)
