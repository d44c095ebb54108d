"""Notify's HTTP API over TestKafkaBroker and SQLite, with a driven clock: notifications and
inbox, alerts with state, acknowledgement (API and signed link), silences, metrics, and failed
deliveries on the dead-letter topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import Context
from faststream.kafka import TestKafkaBroker
from faststream.kafka.message import KafkaMessage

from contracts import dump_event
from services.common.embedded import free_port
from services.notify import links
from services.notify.app import build
from services.notify.service import ManualClock
from tests import factories as f
from tests.helpers import running
from tests.service.test_notify_service import SUBJECT, slip, 담당, 팀장


async def test_read_api_ack_and_silences(make_settings, sqlite_url, mail_sink):
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))  # Monday 10:00 KST
    settings = make_settings(database_url=sqlite_url, smtp_port=mail_sink.port, notify_tick_s=3600,
                             notify_public_url="http://notify.test/")
    app = build(settings, clock=clock)
    rt, notifier, dispatcher = app.state.runtime, app.state.notifier, app.state.dispatcher
    alert = slip()
    fp = alert.payload.fingerprint
    async with TestKafkaBroker(rt.broker) as br, running(app) as (client,):
        await br.publish(json.dumps(f.program()).encode(), settings.topic("execwatch.programs"), key=b"P-RND")
        await br.publish(dump_event(alert), settings.topic("execwatch.alerts"), key=b"P-RND")
        [a] = (await client.get("/v1/alerts")).json()["items"]
        assert (a["fingerprint"], a["state"], a["notified_at"]) == (fp, "active", None)

        clock.advance(seconds=30)
        notifier.tick()
        await dispatcher.flush()
        sent = (await client.get("/v1/notifications", params={"status": "sent", "channel": "email"})).json()
        assert sorted((d["address"], d["subject"]) for d in sent["items"]) == [(담당, SUBJECT), (팀장, SUBJECT)]
        mine = (await client.get("/v1/notifications", params={"recipient": 담당})).json()["items"]
        assert {d["channel"] for d in mine} == {"email", "inbox"}
        body = mail_sink.messages[0].get_body(("plain",)).get_content()
        token = body.split("http://notify.test/v1/ack?token=", 1)[1].split()[0]
        claims = links.verify(settings.notify_ack_secret.get_secret_value(), token, "ack", clock())
        assert (claims.fingerprint, claims.name) == (fp, mail_sink.messages[0]["To"].addresses[0].display_name)

        inbox = (await client.get(f"/v1/inbox/{담당}")).json()
        assert inbox["unread"] == 1 and inbox["items"][0]["subject"] == SUBJECT
        read = await client.post(f"/v1/inbox/{담당}/{inbox['items'][0]['id']}/read")
        assert read.status_code == 200 and read.json()["read_at"] is not None
        assert (await client.get(f"/v1/inbox/{담당}", params={"unread": True})).json()["items"] == []

        [a] = (await client.get("/v1/alerts")).json()["items"]
        assert a["notified_at"] is not None
        assert sorted((r["receiver"], r["told"]) for r in a["recipients"]) == [(담당, "firing"), (팀장, "firing")]

        assert (await client.get("/v1/ack", params={"token": "forged"})).status_code == 403
        page = await client.get("/v1/ack", params={"token": token})
        assert page.status_code == 200 and "<form method=\"post\"" in page.text
        ack = await client.post("/v1/ack", params={"token": token}, data={"comment": "3월 교부 예정"})
        assert ack.status_code == 200 and "확인되었습니다" in ack.text
        [a] = (await client.get("/v1/alerts")).json()["items"]
        assert (a["state"], a["acked_by"]) == ("acknowledged", "test-operator")  # the signed-in caller
        assert (await client.post("/v1/alerts/nope/ack", json={"by": "x"})).status_code == 404

        # silences: create, list, expire
        now = clock()
        created = await client.post("/v1/silences", json={
            "matchers": [{"name": "과", "value": "경제.*", "op": "=~"}],
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "created_by": "김지영", "comment": "예산 재배정 반영 중"})
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["state"] == "active"
        [a] = (await client.get("/v1/alerts")).json()["items"]
        assert a["state"] == "suppressed" and a["silenced_by"] == silence["id"]
        assert [s["id"] for s in (await client.get("/v1/silences", params={"state": "active"})).json()["items"]] \
            == [silence["id"]]
        expired = await client.delete(f"/v1/silences/{silence['id']}")
        assert expired.json()["state"] == "expired"
        assert (await client.get("/v1/silences", params={"state": "active"})).json()["items"] == []
        invalid = await client.post("/v1/silences", json={
            "matchers": [{"name": "과", "value": "(", "op": "=~"}], "ends_at": now.isoformat(),
            "created_by": "김", "comment": "x"})
        assert invalid.status_code == 422

        metrics = (await client.get("/metrics")).text
        assert 'execwatch_notify_active_alerts{rule="execution_slipped",severity="warning"} 1.0' in metrics
        assert 'execwatch_notify_notifications_total{channel="email",outcome="sent"}' in metrics
        assert "execwatch_notify_alert_to_delivery_seconds_bucket" in metrics


async def test_failed_delivery_goes_to_the_dead_letter_topic(make_settings, sqlite_url):
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))
    settings = make_settings(database_url=sqlite_url, smtp_port=free_port(), notify_tick_s=3600,
                             notify_max_attempts=1)
    app = build(settings, clock=clock)
    rt = app.state.runtime
    dead: list[tuple[Any, dict[str, str]]] = []

    @rt.broker.subscriber(settings.topic("execwatch.deadletter"))  # type: ignore[untyped-decorator]
    async def dlq(body: Any, message: KafkaMessage = Context("message")) -> None:
        dead.append((json.loads(message.body), message.headers))

    async with TestKafkaBroker(rt.broker) as br, running(app) as (client,):
        await br.publish(json.dumps(f.program()).encode(), settings.topic("execwatch.programs"), key=b"P-RND")
        await br.publish(dump_event(slip()), settings.topic("execwatch.alerts"), key=b"P-RND")
        clock.advance(seconds=30)
        app.state.notifier.tick()
        await app.state.dispatcher.flush()
        await app.state.dispatcher.flush()  # the second row, in the next round
        await app.state.relay.flush()
        failed = (await client.get("/v1/notifications", params={"status": "failed"})).json()["items"]
        assert sorted(d["address"] for d in failed) == [담당, 팀장]
        assert sorted(body["address"] for body, _ in dead) == [담당, 팀장]
        assert all(h["x-error-stage"] == "deliver" and "Connection" in h["x-error"] for _, h in dead)
        metrics = (await client.get("/metrics")).text
        assert 'execwatch_notify_notifications_total{channel="email",outcome="failed"}' in metrics
