"""Ingest over FastStream's TestKafkaBroker and SQLite: validation, auth, outbox, relay, DLQ."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from faststream import Context
from faststream.kafka import TestKafkaBroker
from faststream.kafka.message import KafkaMessage
from sqlmodel import select

from services.ingest.app import build
from services.ingest.store import IngestOutbox
from tests import factories as f
from tests.helpers import running

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


@pytest.fixture
def app(make_settings, sqlite_url):
    return build(make_settings(database_url=sqlite_url))


async def test_accepts_publishes_and_answers_duplicates(app):
    rt = app.state.runtime
    published: list[dict] = []

    @rt.broker.subscriber(rt.settings.topic("execwatch.budget"))
    async def sink(body: dict) -> None:
        published.append(body)

    async with TestKafkaBroker(rt.broker), running(app) as (client,):
        event = f.snapshot(spent=5, committed=7)
        resp = await client.post("/v1/events", headers=AUTH, json=event)
        assert resp.status_code == 202
        assert resp.json() == {"accepted": 1, "duplicates": 0, "event_ids": [event["event_id"]], "published_as": {}}
        await app.state.relay.flush()
        assert [p["event_id"] for p in published] == [event["event_id"]]
        assert published[0]["payload"]["spent"] == 5

        again = await client.post("/v1/events", headers=AUTH, json={"events": [event]})
        assert again.json() == {"accepted": 0, "duplicates": 1, "event_ids": [], "published_as": {}}
        await app.state.relay.flush()
        assert len(published) == 1

        status = (await client.get(f"/v1/events/{event['event_id']}")).json()
        assert status["published_at"] is not None and status["topic"].endswith("execwatch.budget")


async def test_a_bad_event_rejects_the_whole_batch_with_field_and_index(app):
    rt = app.state.runtime
    good = f.snapshot()
    bad = f.snapshot()
    bad["payload"]["spent"] = -3
    async with TestKafkaBroker(rt.broker), running(app) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=[good, bad])
        assert resp.status_code == 422
        body = resp.json()
        assert body["rejected"] == [
            {"index": 1, "field": "payload.spent", "message": "Input should be greater than or equal to 0"}
        ]
        with rt.db.read() as s:
            assert s.exec(select(IngestOutbox)).all() == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_unknown_callers_are_refused(app, headers):
    async with TestKafkaBroker(app.state.runtime.broker), running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=headers, json=f.snapshot())
        assert resp.status_code == 401


async def test_a_system_cannot_publish_as_another(app):
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=f.envelope(
            "program.registered", "P", f.program("P")["payload"], source="someone-else"))
        assert resp.status_code == 422
        assert resp.json()["rejected"][0]["field"] == "source"


async def test_alerts_cannot_be_injected(app):
    alert = f.envelope("alert", "P", {
        "fingerprint": "x", "rule": "over_execution", "status": "firing", "severity": "critical",
        "program_id": "P", "summary": "가짜", "starts_at": "2025-01-01T00:00:00+09:00", "generator": "budget"})
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=alert)
        assert resp.status_code == 422
        assert resp.json()["rejected"][0]["field"] == "event_type"


async def test_kafka_inbound_authenticates_and_dead_letters(app):
    rt = app.state.runtime
    s = rt.settings
    canonical: list[dict] = []
    dead: list[tuple[bytes, dict]] = []

    @rt.broker.subscriber(s.topic("execwatch.programs"))
    async def programs(body: dict) -> None:
        canonical.append(body)

    @rt.broker.subscriber(s.topic("execwatch.deadletter"))
    async def dlq(body: Any, message: KafkaMessage = Context("message")) -> None:
        dead.append((message.body, message.headers))

    async with TestKafkaBroker(rt.broker) as br, running(app):
        ok = f.program()
        await br.publish(json.dumps(ok).encode(), s.topic("execwatch.inbound"), key=b"P-RND",
                         headers={"x-execwatch-token": f.TOKEN})
        stolen = json.dumps(f.program("P2")).encode()
        await br.publish(stolen, s.topic("execwatch.inbound"), key=b"P2",
                         headers={"x-execwatch-token": "stolen"})
        await br.publish(b"{not json", s.topic("execwatch.inbound"), key=b"P3",
                         headers={"x-execwatch-token": f.TOKEN})
        await app.state.relay.flush()
        assert [c["event_id"] for c in canonical] == [ok["event_id"]]
        reasons = {body: headers for body, headers in dead}
        assert set(reasons) == {stolen, b"{not json"}
        assert reasons[stolen]["x-error-stage"] == "auth"
        assert reasons[stolen]["x-error"] == "unknown or missing token"
        assert reasons[b"{not json"]["x-error-stage"] == "contract"
        assert reasons[b"{not json"]["x-original-topic"] == s.topic("execwatch.inbound")


def test_event_ids_are_unique_per_factory_call():
    assert f.snapshot()["event_id"] != f.snapshot()["event_id"]
    uuid.UUID(f.snapshot()["event_id"])


async def test_ops_endpoints(app):
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        spec = (await client.get("/asyncapi.json")).json()
        channel = spec["channels"]["ingest.inbound"]
        assert app.state.runtime.settings.topic("execwatch.inbound") in json.dumps(channel)
        health = await client.get("/healthz")
        assert health.json()["database"] is True
        metrics = (await client.get("/metrics")).text
        assert "execwatch_ingest_accepted_total" in metrics


async def test_database_down_answers_503_and_stores_nothing(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from services.ingest import store

    def down(*_: Any, **__: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        monkeypatch.setattr(store, "known", down)
        resp = await client.post("/v1/events", headers=AUTH, json=f.snapshot())
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
        assert "nothing was stored" in resp.json()["error"]
