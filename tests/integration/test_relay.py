"""The outbox relay's direct path (rows appended to the broker's aiokafka producer in waves):
records land where FastStream's `publish` put them (same partition per key, same headers), a
program's records stay in id order, and a failure in the middle of a round sends nothing twice,
loses nothing, and never puts a row behind its key's later rows. Also: the marker check is reused
while fresh, and read again after a failed flush."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, UnknownError
from sqlmodel import select

from services.common.db import Database, DirectPublish, OutboxRelay
from services.common.runtime import Runtime, http_app
from services.ingest.store import IngestOutbox
from tests import factories as f
from tests.helpers import eventually, running


def _add(db: Database, topic: str, events: list[dict[str, Any]]) -> None:
    with db.unit_of_work() as s:
        for e in events:
            s.add(IngestOutbox(event_id=e["event_id"], source="test", source_event_id=e["event_id"], topic=topic,
                               key=e["key"], value=json.dumps(e).encode()))


async def _records(bootstrap: str, topic: str, expect: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    seen: list[Any] = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=300)
            seen.extend(r for rs in batch.values() for r in rs)
            return len(seen) >= expect
        await eventually(enough, timeout=30, what=f"{expect} records on {topic}")
        seen.extend(r for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs)
    finally:
        await consumer.stop()
    return seen


async def test_direct_path_keeps_partitions_headers_and_order_of_the_faststream_path(kafka, db_url, make_settings):
    """The same keys published once through FastStream's `publish` (the old path) and once by the
    relay's direct path: every key on the same partition both times, the relay's records in id
    order per key, with FastStream's headers (correlation id = the event id), each exactly once."""
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    rt = Runtime.create("ingest", settings)
    relay = OutboxRelay(rt.db, IngestOutbox, rt.publish_raw, batch=7)  # several rounds and waves
    old_topic, new_topic = settings.topic("execwatch.programs"), settings.topic("execwatch.budget")
    keys = [f"P-{i:03d}" for i in range(40)]
    events = [f.program(keys[(i * 7) % len(keys)]) for i in range(120)]  # 3 per key, interleaved
    async with running(http_app(rt, "test", start_broker=True)):
        assert isinstance(rt.publish_raw, DirectPublish) and rt.publish_raw.producer() is not None
        for key in keys:
            await rt.publish_raw(old_topic, key, b"{}")
        _add(rt.db, new_topic, events)
        assert await relay.flush() == len(events)
        assert await relay.flush() == 0
        old = await _records(kafka.bootstrap, old_topic, len(keys))
        new = await _records(kafka.bootstrap, new_topic, len(events))
    partition_of = {r.key.decode(): r.partition for r in old}
    assert len(new) == len(events)
    assert all(r.partition == partition_of[r.key.decode()] for r in new)
    by_key: dict[str, list[str]] = defaultdict(list)
    for r in sorted(new, key=lambda r: (r.partition, r.offset)):
        by_key[r.key.decode()].append(json.loads(r.value)["event_id"])
    expected: dict[str, list[str]] = defaultdict(list)
    for e in events:
        expected[e["key"]].append(e["event_id"])
    assert by_key == expected
    assert all(dict(r.headers) == {"content-type": b"", "correlation_id": json.loads(r.value)["event_id"].encode()}
               for r in new)
    assert {k for k, _ in old[0].headers} == {"content-type", "correlation_id"}  # what FastStream puts


class FakeProducer:
    """aiokafka's producer as the relay uses it (`send` returns a future the broker settles),
    with failures scripted by event id: `refuse_sync` raises from `send` itself (the client cannot
    take the record), `fail_async` fails the record's future (the broker answered with an error)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []  # (key, event id), in the order the broker took them
        self.raise_on_send: dict[str, Exception] = {}
        self.fail_future: dict[str, Exception] = {}
        self.handed: list[str] = []

    async def send(self, topic: str, value: bytes, key: bytes,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        event_id = json.loads(value)["event_id"]
        if event_id in self.raise_on_send:
            raise self.raise_on_send.pop(event_id)
        self.handed.append(event_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if event_id in self.fail_future:
            future.set_exception(self.fail_future.pop(event_id))
        else:
            self.delivered.append((key.decode(), event_id))
            future.set_result(None)
        return future


class FakePublish:
    def __init__(self, producer: FakeProducer) -> None:
        self._producer = producer

    async def __call__(self, topic: str, key: str, value: bytes) -> None:
        raise AssertionError("the relay must use the producer")

    def producer(self) -> Any:
        return self._producer


def _published(db: Database) -> set[str]:
    with db.read() as s:
        return {r.event_id for r in s.exec(select(IngestOutbox)).all() if r.published_at is not None}


def _per_key(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for key, event_id in pairs:
        out[key].append(event_id)
    return dict(out)


async def test_outage_mid_round_sends_nothing_twice_loses_nothing_and_keeps_each_keys_order(db_url, make_settings):
    """The client cannot take a record in the middle of a round (the broker went away): what was
    confirmed is marked, nothing after it is handed over, and the next flush sends the rest, so
    every event reaches the broker once and in id order per program."""
    rt = Runtime.create("ingest", make_settings(database_url=db_url))
    rt.migrate()
    producer = FakeProducer()
    relay = OutboxRelay(rt.db, IngestOutbox, FakePublish(producer))  # type: ignore[arg-type]
    events = [f.program(f"P-{i % 3}") for i in range(12)]
    _add(rt.db, "t", events)
    producer.raise_on_send[events[7]["event_id"]] = KafkaConnectionError("broker gone")
    with pytest.raises(KafkaConnectionError):
        await relay.flush()
    first = list(producer.delivered)
    assert 0 < len(first) < len(events)
    assert _published(rt.db) == {event_id for _, event_id in first}
    assert await relay.flush() == len(events) - len(first)
    assert sorted(e for _, e in producer.delivered) == sorted(e["event_id"] for e in events)  # each once
    assert _per_key(producer.delivered) == _per_key([(e["key"], e["event_id"]) for e in events])
    assert _published(rt.db) == {e["event_id"] for e in events}
    rt.db.dispose()


async def test_broker_error_on_one_record_holds_its_key_back_not_the_others(db_url, make_settings):
    """The broker fails one record's batch with an error we do not know while the broker is up
    (it may accept the partition's next batch): that key's later rows are not handed over in this
    round, so the failed row never ends up behind them; the other keys go on; the next round sends
    the key from the failed row on, in order, nothing twice."""
    rt = Runtime.create("ingest", make_settings(database_url=db_url))
    rt.migrate()
    producer = FakeProducer()
    relay = OutboxRelay(rt.db, IngestOutbox, FakePublish(producer))  # type: ignore[arg-type]

    async def broker_up() -> bool:
        return True

    relay.broker_up = broker_up
    events = [f.program(f"P-{i % 4}") for i in range(16)]  # 4 per key
    _add(rt.db, "t", events)
    failing = events[5]  # P-1's second row
    producer.fail_future[failing["event_id"]] = UnknownError("the broker says no")
    with pytest.raises(UnknownError):
        await relay.flush()
    later_same_key = [e["event_id"] for e in events[6:] if e["key"] == failing["key"]]
    assert not set(later_same_key) & set(producer.handed)  # held back behind the failed row
    others = {e["event_id"] for e in events if e["key"] != failing["key"]}
    assert others <= _published(rt.db)  # the other keys went on
    assert await relay.flush() == len(later_same_key) + 1
    assert sorted(e for _, e in producer.delivered) == sorted(e["event_id"] for e in events)  # each once
    assert _per_key(producer.delivered) == _per_key([(e["key"], e["event_id"]) for e in events])
    assert _published(rt.db) == {e["event_id"] for e in events}
    rt.db.dispose()


class FakeConnection:
    def __init__(self) -> None:
        self.open = True

    def connected(self) -> bool:
        return self.open


async def test_marker_check_is_reused_while_fresh_and_read_again_after_a_failure_or_a_broken_connection(
        db_url, make_settings):
    """A flush relies on a marker check at most `verify_max_age` old while the producer keeps its
    connections; the first flush, a flush after one that failed, and a flush after one of the
    producer's connections closed (a broker that restarted closes them) ask for a fresh read (0)."""
    rt = Runtime.create("ingest", make_settings(database_url=db_url))
    rt.migrate()
    producer = FakeProducer()
    connection = FakeConnection()
    producer.client = SimpleNamespace(_conns={"node": connection})  # type: ignore[attr-defined]
    relay = OutboxRelay(rt.db, IngestOutbox, FakePublish(producer))  # type: ignore[arg-type]
    asked: list[float] = []

    async def verify(max_age: float) -> None:
        asked.append(max_age)

    relay.verify_broker, relay.verify_max_age = verify, 5.0
    for round_ in range(5):
        events = [f.program("P-1")]
        if round_ == 1:
            producer.raise_on_send[events[0]["event_id"]] = KafkaConnectionError("broker gone")
        if round_ == 4:
            connection.open = False
        _add(rt.db, "t", events)
        with contextlib.suppress(KafkaConnectionError):
            await relay.flush()
    # first; relying on it; after the failed flush; relying on it; after the connection closed
    assert asked == [0.0, 5.0, 0.0, 5.0, 0.0]
    assert len(_published(rt.db)) == 5 and len(producer.delivered) == 5
    rt.db.dispose()


class GatedProducer(FakeProducer):
    """Calls `on_handed(event_id)` as each record is handed over (after the fake broker took it)."""

    def __init__(self, on_handed: Any) -> None:
        super().__init__()
        self.on_handed = on_handed

    async def send(self, topic: str, value: bytes, key: bytes,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        future = await super().send(topic, value, key, headers)
        self.on_handed(json.loads(value)["event_id"])
        return future


def _ids_by_event(db: Database) -> dict[str, int]:
    with db.read() as s:
        return {r.event_id: int(r.id or 0) for r in s.exec(select(IngestOutbox)).all()}


async def test_marks_of_rounds_confirmed_during_a_slow_mark_go_together_in_order(db_url, make_settings):
    """While a mark is still running (held here until the last round is handed over), the sends go
    on and the rounds they confirm are marked by the next statement, together: fewer statements
    than rounds, one after another in id order, and every row marked once it was confirmed."""
    rt = Runtime.create("ingest", make_settings(database_url=db_url))
    rt.migrate()
    events = [f.program(f"P-{i % 4}") for i in range(12)]
    gate = threading.Event()
    producer = GatedProducer(lambda event_id: gate.set() if event_id == events[-1]["event_id"] else None)
    relay = OutboxRelay(rt.db, IngestOutbox, FakePublish(producer), batch=3)  # type: ignore[arg-type]
    statements: list[list[int]] = []
    mark = relay._mark

    def slow_mark(ids: list[int]) -> None:
        statements.append(list(ids))
        if len(statements) == 1:
            assert gate.wait(10), "the relay waited for the mark instead of sending on"
        mark(ids)

    relay._mark = slow_mark  # type: ignore[method-assign]
    _add(rt.db, "t", events)
    assert await relay.flush() == len(events)
    ids = _ids_by_event(rt.db)
    assert len(statements) < len(events) // 3  # rounds 2 and 3 at least went in one statement
    assert [i for ids_ in statements for i in ids_] == sorted(ids.values())  # each once, in order
    assert _published(rt.db) == set(ids)
    assert sorted(e for _, e in producer.delivered) == sorted(ids)  # nothing sent twice
    rt.db.dispose()


async def test_a_failed_mark_loses_nothing_and_republishes_only_the_unmarked_rows_in_order(db_url, make_settings):
    """The database fails the second mark while rounds after it are being sent: the flush fails;
    what is marked is exactly what the first statement marked (rows the broker had confirmed), so
    the rows confirmed and not marked are each key's last ones; the next flush publishes those
    again, each key's in id order, and marks everything (at-least-once: the broker got them twice)."""
    rt = Runtime.create("ingest", make_settings(database_url=db_url))
    rt.migrate()
    producer = FakeProducer()
    relay = OutboxRelay(rt.db, IngestOutbox, FakePublish(producer), batch=3)  # type: ignore[arg-type]
    statements: list[list[int]] = []
    mark = relay._mark

    def failing_mark(ids: list[int]) -> None:
        statements.append(list(ids))
        if len(statements) == 2:
            raise sa.exc.OperationalError("UPDATE", None, Exception("the database went away"))
        mark(ids)

    relay._mark = failing_mark  # type: ignore[method-assign]
    events = [f.program(f"P-{i % 4}") for i in range(15)]
    _add(rt.db, "t", events)
    ids = _ids_by_event(rt.db)
    with pytest.raises(sa.exc.OperationalError):
        await relay.flush()
    first = list(producer.delivered)
    marked = _published(rt.db)
    assert {ids[e] for e in marked} == set(statements[0])  # only the statement that committed
    assert marked <= {e for _, e in first}  # marked only once confirmed
    relay._mark = mark  # type: ignore[method-assign]
    left = len(events) - len(marked)
    assert await relay.flush() == left
    again = producer.delivered[len(first):]
    expected = _per_key([(e["key"], e["event_id"]) for e in events])
    for key, in_order in _per_key(again).items():
        cut = len(expected[key]) - len(in_order)
        assert in_order == expected[key][cut:]  # the key's last rows, in id order
        assert set(expected[key][:cut]) <= marked  # behind the key's marked ones
    assert len(again) == left
    assert _published(rt.db) == set(ids)
    rt.db.dispose()
