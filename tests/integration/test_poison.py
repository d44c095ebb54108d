"""Poison is per event, everywhere: whatever one event or outbox row raises, it is set aside
with the reason (dead-letter topic and the service's own database) and the rest goes on."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from sqlmodel import select

from contracts import AnyEvent
from contracts.topics import BUDGET
from services.budget.app import build as build_budget
from services.budget.store import BudgetInbox, BudgetProgram
from services.common.consumer import consume
from services.common.db import BudgetDeadLetter, IngestDeadLetter, OutboxRelay
from services.common.runtime import Runtime, http_app
from services.ingest.store import IngestOutbox
from tests import factories as f
from tests.helpers import eventually, running


async def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        # one batch across partitions: a stalled batch would hold every program back, not one
        await asyncio.gather(*[producer.send(topic, json.dumps(e).encode(), key=e["key"].encode()) for e in events])
        await producer.flush()
    finally:
        await producer.stop()


async def test_any_exception_from_one_event_dead_letters_it_and_applies_the_rest(kafka, sqlite_url, make_settings):
    """Not a database error, not in any list: RuntimeError from one event. The old helper retried
    such a batch for ever; now the event is isolated and recorded, the others applied."""
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=sqlite_url)
    rt = Runtime.create("budget", settings)
    applied: list[str] = []
    poison = f.snapshot("P-07", spent=7)

    def apply(events: list[AnyEvent]) -> int:
        ids = [str(e.event_id) for e in events]
        if poison["event_id"] in ids:
            raise RuntimeError("a bug that only this event triggers")
        applied.extend(ids)
        return len(ids)

    consume(rt, [BUDGET.name], group_id=f"{settings.topic_prefix}g", apply=apply, title="t", description="d")
    events = [f.snapshot(f"P-{i:02d}", spent=i) for i in range(12)]
    events[7] = poison
    async with running(http_app(rt, "test")):
        await _produce(kafka.bootstrap, settings.topic(BUDGET.name), events)

        async def done() -> bool:
            return len(applied) == 11
        await eventually(done, timeout=60, what="the 11 good events applied")
        with rt.db.read() as s:
            letters = s.exec(select(BudgetDeadLetter)).all()
        assert [(d.stage, json.loads(d.value)["event_id"]) for d in letters] == [("apply", poison["event_id"])]
        assert letters[0].error == "RuntimeError: a bug that only this event triggers"
        assert letters[0].topic == settings.topic(BUDGET.name) and letters[0].key == b"P-07"
        await asyncio.sleep(1.0)
        assert sorted(applied) == sorted(e["event_id"] for e in events if e is not poison)  # each once


async def test_an_amount_the_database_cannot_hold_does_not_stall_budget(kafka, db_url, make_settings):
    """`committed: 10**30` passes validation today; SQLite raises OverflowError, PostgreSQL a
    DataError. Either way that one snapshot is set aside and every other program is applied."""
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    app = build_budget(settings)
    rt = app.state.runtime
    huge = f.snapshot("P-03", spent=1, committed=0)
    huge["payload"]["committed"] = 10**30
    events = [f.budget_line(f"P-{i:02d}", original=1_000_000) for i in range(6)]
    events += [f.snapshot(f"P-{i:02d}", date(2025, 1, 31), spent=1000 + i) for i in range(6) if i != 3]
    events.append(huge)
    async with running(app):
        await _produce(kafka.bootstrap, settings.topic(BUDGET.name), events)

        async def settled() -> bool:
            with rt.db.read() as s:
                return (len(s.exec(select(BudgetInbox)).all()) == len(events) - 1
                        and len(s.exec(select(BudgetDeadLetter)).all()) == 1)
        await eventually(settled, timeout=60, what="11 events applied and 1 set aside")
        with rt.db.read() as s:
            rows = {r.program_id: r.spent for r in s.exec(select(BudgetProgram)).all()}
            letter = s.exec(select(BudgetDeadLetter)).one()
        assert rows == {f"P-{i:02d}": (1000 + i if i != 3 else 0) for i in range(6)}
        assert json.loads(letter.value)["event_id"] == huge["event_id"]
        assert letter.stage in ("apply", "contract")  # contract, once money bounds are in the contract


async def _topic_ids(bootstrap: str, topic: str, expect: int) -> list[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    seen: list[str] = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=300)
            seen.extend(json.loads(r.value)["event_id"] for rs in batch.values() for r in rs)
            return len(seen) >= expect
        await eventually(enough, timeout=30, what=f"{expect} records on {topic}")
        seen.extend(json.loads(r.value)["event_id"] for rs in (await consumer.getmany(timeout_ms=1000)).values()
                    for r in rs)
    finally:
        await consumer.stop()
    return seen


async def test_relay_sets_aside_a_row_the_broker_refuses_and_sends_the_others_once(kafka, db_url, make_settings):
    """A 2 MB event (over the producer's 1 MB limit) in the middle of the outbox: it is marked
    failed with the reason and kept as a dead letter; every other row, before and after it and on
    the same key, is published exactly once."""
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    rt = Runtime.create("ingest", settings)
    relay = OutboxRelay(rt.db, IngestOutbox, rt.publish_raw)
    topic = settings.topic("execwatch.programs")
    events = [f.program(f"P-{i:02d}") for i in range(8)]
    big = f.program("P-02", title="가" * 700_000)  # 2.1 MB as UTF-8
    rows = [*events[:4], big, *events[4:]]
    async with running(http_app(rt, "test", start_broker=True)):
        with rt.db.unit_of_work() as s:
            for e in rows:
                s.add(IngestOutbox(event_id=e["event_id"], source="test", source_event_id=e["event_id"], topic=topic,
                                   key=e["key"], value=json.dumps(e).encode()))
        assert await relay.flush() == 8
        assert await relay.flush() == 0  # nothing left, nothing re-sent
        seen = await _topic_ids(kafka.bootstrap, topic, 8)
        assert sorted(seen) == sorted(e["event_id"] for e in events)
        with rt.db.read() as s:
            out = {r.event_id: r for r in s.exec(select(IngestOutbox)).all()}
            letters = s.exec(select(IngestDeadLetter)).all()
        assert out[big["event_id"]].published_at is None and out[big["event_id"]].failed_at is not None
        assert "MessageSizeTooLarge" in (out[big["event_id"]].error or "")
        assert all(out[e["event_id"]].published_at is not None for e in events)
        assert [(d.stage, d.topic, d.key, len(d.value)) for d in letters] == [
            ("relay", topic, b"P-02", len(json.dumps(big).encode()))]
        assert relay.oldest_pending_age() == 0.0


@pytest.mark.parametrize("error", [KafkaConnectionError("broker gone"), RuntimeError("not connected")])
async def test_relay_keeps_rows_through_a_broker_outage(sqlite_url, make_settings, error):
    """An outage is not the row's fault: nothing is marked failed, the key's order is kept, and
    what was confirmed before the outage is not sent again."""
    settings = make_settings(database_url=sqlite_url)
    rt = Runtime.create("ingest", settings)
    rt.migrate()
    sent: list[str] = []
    broker_down = False

    async def publish(topic: str, key: str, value: bytes) -> None:
        if broker_down:
            raise error
        sent.append(json.loads(value)["event_id"])

    async def broker_up() -> bool:
        return not broker_down

    relay = OutboxRelay(rt.db, IngestOutbox, publish)
    relay.broker_up = broker_up
    events = [f.program("P-1") for _ in range(3)]
    with rt.db.unit_of_work() as s:
        for e in events:
            s.add(IngestOutbox(event_id=e["event_id"], source="test", source_event_id=e["event_id"], topic="t",
                               key=e["key"], value=json.dumps(e).encode()))
    broker_down = True
    with pytest.raises(type(error)):
        await relay.flush()
    with rt.db.read() as s:
        assert all(r.failed_at is None and r.published_at is None for r in s.exec(select(IngestOutbox)).all())
    broker_down = False
    assert await relay.flush() == 3
    assert sent == [e["event_id"] for e in events]
    rt.db.dispose()


async def test_relay_sets_aside_a_row_the_broker_keeps_refusing_for_an_unknown_reason(sqlite_url, make_settings):
    """The broker is up but answers one row with an error we do not recognise: it is tried a few
    rounds (it may be the broker's hiccup), then set aside; the other keys are not held back."""
    settings = make_settings(database_url=sqlite_url)
    rt = Runtime.create("ingest", settings)
    rt.migrate()
    bad = f.program("P-BAD")
    good = [f.program(f"P-{i}") for i in range(3)]
    sent: list[str] = []

    async def publish(topic: str, key: str, value: bytes) -> None:
        if key == "P-BAD":
            raise RuntimeError("the broker says no")
        sent.append(json.loads(value)["event_id"])

    async def broker_up() -> bool:
        return True

    relay = OutboxRelay(rt.db, IngestOutbox, publish)
    relay.broker_up = broker_up
    with rt.db.unit_of_work() as s:
        for e in [bad, *good]:
            s.add(IngestOutbox(event_id=e["event_id"], source="test", source_event_id=e["event_id"], topic="t",
                               key=e["key"], value=json.dumps(e).encode()))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await relay.flush()
    assert sorted(sent) == sorted(e["event_id"] for e in good)  # sent in the first round, once
    assert await relay.flush() == 0  # third round: set aside
    with rt.db.read() as s:
        row = s.exec(select(IngestOutbox).where(IngestOutbox.event_id == bad["event_id"])).one()
        letter = s.exec(select(IngestDeadLetter)).one()
    assert row.failed_at is not None and row.error == "RuntimeError: the broker says no"
    assert (letter.stage, letter.key) == ("relay", b"P-BAD")
    rt.db.dispose()
