"""Notify over the real broker, SQLite and PostgreSQL, restarted twice in the middle of its work:
after consuming (before the group is due), and after a failed send. Every message goes out
once: none lost, none repeated, also when Kafka redelivers an alert already applied."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from aiokafka import AIOKafkaProducer

from contracts import dump_event
from services.common.db import Database
from services.common.embedded import free_port
from services.notify.app import build
from services.notify.service import ManualClock
from services.notify.store import NotifyInbox
from tests import factories as f
from tests.helpers import eventually, running
from tests.service.test_notify_service import SUBJECT, slip, 담당, 팀장


async def test_restarts_neither_lose_nor_repeat_a_message(kafka, db_url, mail_sink, make_settings):
    base = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url, notify_retry_base_s=60,
                         notify_quiet_hours=False)
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))
    alert = slip()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()

    async def publish(topic: str, value: bytes) -> None:
        await producer.send_and_wait(base.topic(topic), value, key=b"P-RND")

    try:
        # 1. consume and commit; stop before the group is due (group_wait 30 s on the driven clock)
        app = build(base.model_copy(update={"smtp_port": mail_sink.port}), clock=clock)
        async with running(app) as (client,):
            await publish("execwatch.programs", json.dumps(f.program()).encode())
            await publish("execwatch.alerts", dump_event(alert))

            async def routed() -> list[object] | None:
                items = (await client.get("/v1/alerts")).json()["items"]
                return items if items and items[0]["recipients"] else None

            await eventually(routed, what="alert routed to its recipients")
        assert mail_sink.messages == []

        # 2. the group is due but the mail server is down: deliveries recorded, send failed
        clock.advance(seconds=31)
        app = build(base.model_copy(update={"smtp_port": free_port()}), clock=clock)
        async with running(app) as (client,):
            async def tried() -> list[object] | None:
                items = (await client.get("/v1/notifications", params={"channel": "email"})).json()["items"]
                if len(items) == 2 and all(d["attempts"] >= 1 for d in items):
                    return items
                # A round stops at the mail server's first failure (the other delivery waits for
                # the next round): run rounds now rather than at the dispatcher's 5 s period.
                await app.state.dispatcher.flush()
                return None

            await eventually(tried, what="a failed first attempt")
        assert mail_sink.messages == []

        # 3. mail server back; Kafka redelivers the applied alert, and the source repeats it
        clock.advance(hours=1)
        app = build(base.model_copy(update={"smtp_port": mail_sink.port}), clock=clock)
        async with running(app) as (client,):
            repeat = alert.model_copy(update={"event_id": uuid.uuid4()})
            await publish("execwatch.alerts", dump_event(alert))
            await publish("execwatch.alerts", dump_event(repeat))

            async def delivered() -> list[EmailMessage] | None:
                return list(mail_sink.messages) if len(mail_sink.messages) >= 2 else None

            messages = await eventually(delivered, what="the two emails")
            db = Database(base.database_url_for("notify"))

            async def applied() -> bool:
                with db.read() as s:
                    return s.get(NotifyInbox, str(repeat.event_id)) is not None

            await eventually(applied, what="the repeated alert consumed")
            db.dispose()
            clock.advance(minutes=10)
            app.state.notifier.tick()
            await app.state.dispatcher.flush()
            items = (await client.get("/v1/notifications")).json()["items"]

        assert sorted(m["To"].addresses[0].addr_spec for m in mail_sink.messages) == [담당, 팀장]
        assert {m["Subject"] for m in messages} == {SUBJECT}
        assert sorted((d["channel"], d["address"], d["outcome"]) for d in items) == [
            ("email", 담당, "sent"), ("email", 팀장, "sent"), ("inbox", 담당, "sent"), ("inbox", 팀장, "sent")]
        assert all(d["attempts"] == 2 for d in items if d["channel"] == "email")
        assert datetime.fromisoformat(items[0]["created_at"]) < clock() - timedelta(minutes=30)
    finally:
        await producer.stop()
