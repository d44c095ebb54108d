"""At-least-once over the real broker: a database failure makes Kafka redeliver the batch (the
offset was not committed), the redelivered events are applied exactly once, and a poison message
goes to the dead-letter topic without stalling the partition."""

from __future__ import annotations

import json

from aiokafka import AIOKafkaProducer
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from services.budget import service as budget_service
from services.budget.app import build
from services.budget.store import BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.metrics import REGISTRY
from tests import factories as f
from tests.helpers import eventually, running, topic_reader


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def test_database_failure_means_redelivery_not_loss(kafka, db_url, make_settings, monkeypatch):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    app = build(settings)
    rt = app.state.runtime
    real_apply = budget_service.apply_batch
    calls = {"n": 0}

    def flaky_apply(db, cfg, events):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("INSERT …", {}, Exception("database is down"))
        return real_apply(db, cfg, events)

    monkeypatch.setattr(budget_service, "apply_batch", flaky_apply)
    events = [f.budget_line(), f.snapshot(spent=1_000_000)]
    async with running(app):
        await _produce(kafka.bootstrap, settings.topic("execwatch.budget"),
                       [(b"P-RND", json.dumps(e).encode()) for e in events])

        def applied() -> list[BudgetSnapshot]:
            with rt.db.read() as s:
                return list(s.exec(select(BudgetSnapshot)).all())

        async def probe() -> list[BudgetSnapshot] | None:
            return applied() or None

        snapshots = await eventually(probe, what="the redelivered batch applied")
        assert calls["n"] >= 2  # the first attempt failed, Kafka delivered again
        assert [(s.program_id, s.spent) for s in snapshots] == [("P-RND", 1_000_000)]
        with rt.db.read() as s:
            assert len(s.exec(select(BudgetInbox)).all()) == 2
            assert s.exec(select(BudgetProgram)).one().spent == 1_000_000


async def test_poison_goes_aside_and_the_partition_moves_on(kafka, sqlite_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=sqlite_url)
    app = build(settings)
    rt = app.state.runtime
    bad = f.snapshot()
    bad["payload"]["committed"] = "천만원"
    async with running(app):
        await _produce(kafka.bootstrap, settings.topic("execwatch.budget"), [
            (b"P-RND", json.dumps(f.budget_line()).encode()),
            (b"P-RND", json.dumps(bad, ensure_ascii=False).encode()),
            (b"P-RND", json.dumps(f.snapshot(spent=5)).encode()),
        ])

        async def view() -> BudgetProgram | None:
            with rt.db.read() as s:
                row = s.exec(select(BudgetProgram)).first()
                return row if row and row.as_of else None

        row = await eventually(view, what="the valid snapshot after the poison one")
        assert row.spent == 5

        async def lags() -> dict[str, float] | None:
            found = {s.labels["partition"]: s.value for m in REGISTRY.collect() if m.name == "execwatch_consumer_lag"
                     for s in m.samples if s.labels["execwatch_service"] == "budget"
                     and s.labels["topic"] == settings.topic("execwatch.budget")}
            return found if found and set(found.values()) == {0.0} else None

        # Every assigned partition is reported (sampled, not only those with messages), all consumed.
        assert len(await eventually(lags, what="lag 0 on every partition")) == 6

    consumer = await topic_reader(kafka.bootstrap, settings.topic("execwatch.deadletter"))
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        records = [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert json.loads(records[0].value)["event_id"] == bad["event_id"]
    assert headers["x-error-service"] == "budget" and headers["x-error-stage"] == "contract"
    assert json.loads(headers["x-error"])[0]["field"] == "payload.committed"
