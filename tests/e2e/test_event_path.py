"""The whole path over the real broker: a department system posts an execution snapshot to
ingest; budget updates its view in the database and emits an alert on the alerts topic; notify
delivers a Korean email to the program's staff through a real SMTP server."""

from __future__ import annotations

import json

from sqlmodel import select

from services.budget.app import build as build_budget
from services.budget.store import BudgetProgram
from services.common.db import Database
from services.ingest.app import build as build_ingest
from services.notify.app import build as build_notify
from services.programs.app import build as build_programs
from tests import factories as f
from tests.helpers import eventually, running, topic_reader

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


async def test_snapshot_to_email(kafka, db_url, mail_sink, make_settings):
    # Staff defaults hold a first message 30 s and keep nights quiet, and judge the default curve
    # only from April; this path checks delivery, so a January slip on the default curve is judged.
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url,
                             smtp_port=mail_sink.port, notify_group_wait_s=0.5, notify_quiet_hours=False,
                             slip_default_from="01-01")
    apps = [build_ingest(settings), build_budget(settings), build_programs(settings), build_notify(settings)]
    alerts_seen: list[dict] = []
    async with running(*apps) as (ingest, budget, _programs, notify):
        consumer = await topic_reader(kafka.bootstrap, settings.topic("execwatch.alerts"))
        try:
            resp = await ingest.post("/v1/events", headers=AUTH, json=[f.program(), f.budget_line()])
            assert resp.status_code == 202, resp.text
            assert resp.json()["accepted"] == 2

            # 0 spent on 31 January is 10.3%p behind the default plan: a warning.
            resp = await ingest.post("/v1/events", headers=AUTH, json=f.snapshot(spent=0, committed=0))
            assert resp.status_code == 202, resp.text

            async def view() -> dict | None:
                r = await budget.get("/v1/budget/programs/P-RND")
                return r.json() if r.status_code == 200 and r.json()["as_of"] else None

            program = await eventually(view, what="budget view")
            assert program["current_budget"] == 41_106_204_000
            assert program["rate"] == "0.0" and program["plan_rate"] == "10.3"
            assert program["level"] == "warning"

            db = Database(settings.database_url_for("budget"))
            with db.read() as s:
                row = s.exec(select(BudgetProgram)).one()
                assert (row.program_id, row.as_of.isoformat(), row.spent) == ("P-RND", "2025-01-31", 0)
            db.dispose()

            async def alert() -> list | None:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    alerts_seen.extend(json.loads(r.value) for r in records)
                return alerts_seen or None

            await eventually(alert, what="alert on the alerts topic")
            payload = alerts_seen[0]["payload"]
            assert (payload["rule"], payload["status"], payload["severity"]) == \
                ("execution_slipped", "firing", "warning")

            async def mails() -> list | None:
                return list(mail_sink.messages) if len(mail_sink.messages) >= 2 else None

            messages = await eventually(mails, what="emails to 담당 and 팀장")
            subjects = {m["Subject"] for m in messages}
            assert subjects == {"[집행 부진] 서울형 R&D 지원 — 집행률 0.0% (계획 대비 −10.3%p)"}
            to = sorted(m["To"].addresses[0].addr_spec for m in messages)
            assert to == ["0221335223@staff.test", "0221335226@staff.test"]  # 담당, 팀장; not 과장
            body = messages[0].get_body(("plain",)).get_content()
            assert "집행률: 0.0% (계획 10.3%" in body and "41,106,204,000원" in body

            r = await notify.get("/v1/notifications")
            assert {d["outcome"] for d in r.json()["items"]} == {"sent"}
        finally:
            await consumer.stop()
