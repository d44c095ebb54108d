"""Over the real broker, both databases: programs emits its schedule alerts once; a new
consumer group replaying the topic from the beginning emits nothing again; a fresh database
fed the same stream emits the very same alert events (same ids, so notify would drop them)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlmodel import col, select

from contracts import dump_event
from services.common.db import Database
from services.programs.app import build
from services.programs.store import ProgramsOutbox
from tests.helpers import eventually, running, topic_reader
from tests.service.test_programs_service import milestone, program, target

EVENTS = [
    program(),
    milestone("M1", end=date(2025, 5, 31)),  # 10 days late on 10 June
    milestone("M2", start=date(2025, 6, 1), end=date(2025, 6, 15)),  # D-5: the D-7 reminder
    milestone("M2", start=date(2025, 6, 1), end=date(2025, 6, 20), occurred=date(2025, 3, 1)),  # slipped
]
EXPECTED = [("milestone_overdue", "firing"), ("deadline_approaching", "firing"), ("schedule_moved", "firing"),
            ("deadline_approaching", "resolved")]


def outbox_ids(url: str) -> list[tuple[str, bool]]:
    db = Database(url)
    with db.read() as s:
        rows = s.exec(select(ProgramsOutbox).order_by(col(ProgramsOutbox.id))).all()
        out = [(r.event_id, r.published_at is not None) for r in rows]
    db.dispose()
    return out


async def test_replay_with_a_new_group_and_into_a_fresh_database(kafka, db_url, make_settings, tmp_path):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url, clock="2025-06-10",
                             check_interval_s=3600)
    group = settings.topic_prefix + "programs"
    first = settings.model_copy(update={"programs_group_id": group + "-1"})
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    probe: AIOKafkaConsumer | None = None
    seen: list[dict[str, Any]] = []

    async def alerts_seen() -> list[dict[str, Any]] | None:
        assert probe is not None
        for records in (await probe.getmany(timeout_ms=300)).values():
            seen.extend(json.loads(r.value) for r in records)
        return seen if len(seen) >= len(EXPECTED) else None

    await producer.start()
    try:
        async with running(build(first)):
            for e in EVENTS:
                await producer.send_and_wait(settings.topic("execwatch.programs"), dump_event(e), key=b"P-RND")
            probe = await topic_reader(kafka.bootstrap, settings.topic("execwatch.alerts"))
            await eventually(alerts_seen, what="the four schedule alerts")
        assert [(a["payload"]["rule"], a["payload"]["status"]) for a in seen] == EXPECTED
        published = outbox_ids(db_url)
        assert [ok for _, ok in published] == [True] * 4

        # A sentinel after the stream: once it is in the view, the replay has passed every event.
        sentinel = target()
        await producer.send_and_wait(settings.topic("execwatch.programs"), dump_event(sentinel), key=b"P-RND")

        async def caught_up(client) -> bool:
            r = await client.get("/v1/programs/P-RND")
            return r.status_code == 200 and bool(r.json()["targets"])

        replay = settings.model_copy(update={"programs_group_id": group + "-2"})
        async with running(build(replay)) as (client,):
            await eventually(lambda: caught_up(client), what="replay caught up")
            detail = (await client.get("/v1/programs/P-RND")).json()
        assert outbox_ids(db_url) == published  # nothing emitted again
        assert {a["rule"] for a in detail["alerts"]} == {"milestone_overdue", "schedule_moved"}

        fresh_url = f"sqlite:///{tmp_path}/fresh.db"
        fresh = settings.model_copy(update={"programs_group_id": group + "-3", "database_url": fresh_url})
        async with running(build(fresh)) as (client,):
            await eventually(lambda: caught_up(client), what="fresh replay caught up")
        assert [i for i, _ in outbox_ids(fresh_url)] == [i for i, _ in published]

        # what the fresh database published are the same events again: notify's inbox drops them
        assert probe is not None
        more = await probe.getmany(timeout_ms=500)
        assert {json.loads(r.value)["event_id"] for rs in more.values() for r in rs} <= {i for i, _ in published}
    finally:
        if probe is not None:
            await probe.stop()
        await producer.stop()
