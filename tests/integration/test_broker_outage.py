"""Kafka down when ingest starts: the HTTP API still accepts (committed to the outbox), and
everything is published once the broker comes up. Nothing accepted is lost."""

from __future__ import annotations

import json

from services.common.embedded import EmbeddedBroker, free_port
from services.ingest.app import build
from tests import factories as f
from tests.helpers import eventually, running, topic_reader

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


async def test_ingest_accepts_while_kafka_is_down_and_publishes_when_it_is_back(sqlite_url, make_settings):
    port = free_port()
    settings = make_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", database_url=sqlite_url,
                             broker_connect_timeout_s=2.0)
    app = build(settings)
    events = [f.program(), f.budget_line(), f.snapshot(spent=3)]
    broker: EmbeddedBroker | None = None
    async with running(app) as (client,):
        health = await client.get("/healthz")
        assert health.status_code == 503 and health.json()["broker"] is False
        resp = await client.post("/v1/events", headers=AUTH, json=events)
        assert resp.status_code == 202 and resp.json()["accepted"] == 3

        broker = EmbeddedBroker.start(port=port)
        try:
            async def healthy() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await eventually(healthy, timeout=90, what="ingest to reconnect")
            live = await client.get("/livez")  # the finished reconnect task is not a dead one
            assert live.status_code == 200 and live.json()["dead_tasks"] == []
            consumer = await topic_reader(broker.bootstrap, settings.topic("execwatch.programs"),
                                          settings.topic("execwatch.budget"))
            seen: list[str] = []
            try:
                async def published() -> bool:
                    batch = await consumer.getmany(timeout_ms=500)
                    seen.extend(json.loads(r.value)["event_id"] for rs in batch.values() for r in rs)
                    return len(seen) >= 3

                await eventually(published, timeout=60, what="the outbox to drain")
            finally:
                await consumer.stop()
            assert sorted(seen) == sorted(e["event_id"] for e in events)
        finally:
            if broker:
                broker.stop()
