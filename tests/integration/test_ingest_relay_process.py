"""Ingest's relay as its own process (`execwatch serve ingest-relay`): an ingest started with
`EXECWATCH_INGEST_RELAY_INLINE=false` accepts into the outbox and publishes nothing itself; the
relay process publishes what it accepted, each event once, and marks it published, so the
publisher's `GET /v1/events/{id}` says so. Real broker, both databases (in-process apps); the
command itself once, as an operator starts it (a subprocess, SQLite)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from services.common.embedded import free_port, wait_for_port
from services.ingest import relay as relay_process
from services.ingest.app import build
from services.ingest.store import IngestOutbox, pending_count
from tests import factories as f
from tests.helpers import eventually, running

TOKEN = {"Authorization": "Bearer demo-token"}  # the default demo-system token of Settings.ingest_sources


async def _published(bootstrap: str, topic: str, expect: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=300)
            seen.extend(json.loads(r.value) for rs in batch.values() for r in rs)
            return len(seen) >= expect
        await eventually(enough, timeout=30, what=f"{expect} records on {topic}")
        # anything more (a second publish) would arrive with or right after the last one
        seen.extend(json.loads(r.value) for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs)
    finally:
        await consumer.stop()
    return seen


def _events(n: int) -> list[dict[str, Any]]:
    return [f.program(f"P-{i:03d}") for i in range(n)]


async def test_ingest_without_its_relay_publishes_nothing_and_the_relay_process_publishes_each_once(
        kafka, db_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url,
                             ingest_relay_inline=False, relay_interval_s=0.05, ingest_relay_poll_s=0.05)
    ingest = build(settings)
    events = _events(30)
    async with running(ingest, as_role=None) as (client,):
        r = await client.post("/v1/events", json=events, headers=TOKEN)
        assert r.status_code == 202, r.text
        # Several of the inline relay's intervals later, the rows still wait: this process does not publish.
        await asyncio.sleep(0.5)
        with ingest.state.runtime.db.read() as s:
            assert pending_count(s) == len(events)

        relay = relay_process.build(settings)
        async with running(relay, as_role=None) as (ops,):
            records = await _published(kafka.bootstrap, settings.topic("execwatch.programs"), len(events))

            async def all_marked() -> bool:
                with ingest.state.runtime.db.read() as s:
                    return pending_count(s) == 0
            await eventually(all_marked, what="every outbox row marked published")
            assert (await ops.get("/readyz")).status_code == 200
            metrics = (await ops.get("/metrics")).text
            assert 'execwatch_outbox_published_total{table="ingest_outbox"}' in metrics
        status = (await client.get(f"/v1/events/{events[0]['event_id']}", headers=TOKEN)).json()
    assert sorted(e["event_id"] for e in records) == sorted(e["event_id"] for e in events)  # each once
    assert status["published_at"] is not None


def test_execwatch_serve_ingest_relay_publishes_what_ingest_accepted(kafka, tmp_path: Path, make_settings):
    """The commands an operator runs: `execwatch serve ingest` with its relay off, and
    `execwatch serve ingest-relay` beside it, on one SQLite file."""
    settings = make_settings()
    ports = {"EXECWATCH_INGEST_PORT": str(free_port()), "EXECWATCH_INGEST_RELAY_PORT": str(free_port())}
    env = {**os.environ, **ports, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "EXECWATCH_DEMO": "true",
           "DATABASE_URL": f"sqlite:///{tmp_path}/ingest.db", "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix,
           "EXECWATCH_INGEST_RELAY_INLINE": "false", "EXECWATCH_LOG_LEVEL": "INFO"}
    execwatch = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]
    logs = tmp_path / "logs.txt"
    with open(logs, "wb") as out:
        processes = [subprocess.Popen([*execwatch, "serve", name], env=env, stdout=out, stderr=subprocess.STDOUT)
                     for name in ("ingest", "ingest-relay")]
    try:
        wait_for_port("127.0.0.1", int(ports["EXECWATCH_INGEST_PORT"]), 60)
        wait_for_port("127.0.0.1", int(ports["EXECWATCH_INGEST_RELAY_PORT"]), 60)
        events = _events(5)
        r = httpx.post(f"http://127.0.0.1:{ports['EXECWATCH_INGEST_PORT']}/v1/events", json=events,
                       headers=TOKEN, timeout=30)
        assert r.status_code == 202, r.text
        records = asyncio.run(_published(kafka.bootstrap, settings.topic("execwatch.programs"), len(events)))
        assert sorted(e["event_id"] for e in records) == sorted(e["event_id"] for e in events)
        ready = httpx.get(f"http://127.0.0.1:{ports['EXECWATCH_INGEST_RELAY_PORT']}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
    assert '"service": "ingest-relay"' in logs.read_text(encoding="utf-8")  # its own name in the logs


def test_a_relay_outside_the_ingest_process_is_a_leader_relay_of_the_ingest_outbox(make_settings, sqlite_url):
    app = relay_process.build(make_settings(database_url=sqlite_url))
    assert app.state.relay.table is IngestOutbox
    assert not any(route.path.startswith("/v1/") for route in app.routes)  # health and metrics only
