"""A prototype of a faster outbox relay, for measurement only (the relay itself lives in
services/common/db.py, `OutboxRelay.flush`). Superseded: the service's relay now sends through the
broker's aiokafka producer itself, in waves per key (see docs/benchmarks.md, "2026-11-26 (evening):
outbox relay", and `benchmarks/relay_bench.py`); kept to compare with `--relay prototype`.

What it changes, and why (profiled in ingest at 2,000-3,000 events/s: FastStream's
`broker.publish` per record — middlewares, Prometheus, a publish command and a correlation id per
message — was 20-30 % of the process and ran on the event loop that also serves HTTP):

- each pending row is handed to one aiokafka producer with `send` (which only appends it to the
  partition's batch), and the whole round is awaited once; order per key holds because a key's
  rows are sent in id order to one partition and aiokafka keeps one batch per partition in flight;
- the pending rows are read and marked with plain DB-API (`= ANY(array)` on PostgreSQL).

    python -c "import benchmarks.relay_prototype as r; r.install(); from services.ingest.app import main; main()"

`install()` replaces `OutboxRelay.flush` in this process only. Records carry no FastStream
headers (content-type, correlation id); the execwatch consumers decode the bytes alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common import bulk
from services.common.db import OutboxRelay, utcnow
from services.common.settings import get_settings

_producer: AIOKafkaProducer | None = None


async def _get_producer() -> AIOKafkaProducer:
    global _producer
    if _producer is None:
        settings = get_settings()
        _producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5,
                                     max_batch_size=1 << 20, acks=1)
        await _producer.start()
    return _producer


def _pending(relay: OutboxRelay) -> list[tuple[int, str, str, bytes]]:
    table = relay.table.__tablename__
    with relay.db.read() as s:
        conn = s.connection()
        sql = (f"SELECT id, topic, key, value FROM {table} WHERE published_at IS NULL"
               f" ORDER BY id LIMIT {int(relay.batch)}")

        def fetch(cur: Any) -> list[tuple[int, str, str, bytes]]:
            cur.execute(sql)
            return [(int(r[0]), r[1], r[2], bytes(r[3])) for r in cur.fetchall()]
        rows: list[tuple[int, str, str, bytes]] = bulk.run(conn, sql, fetch)
        return rows


def _mark(relay: OutboxRelay, ids: list[int]) -> None:
    table = relay.table.__tablename__
    with relay.db.unit_of_work() as s:
        conn = s.connection()
        column = relay.table.__table__.c.published_at  # type: ignore[attr-defined]
        stamp = column.type._cached_bind_processor(conn.dialect)
        now: Any = utcnow()
        if stamp is not None:
            now = stamp(now)
        if conn.dialect.name == "postgresql":
            sql = f"UPDATE {table} SET published_at = %s WHERE id = ANY(%s)"
            bulk.run(conn, sql, lambda cur: cur.execute(sql, [now, ids]))
            return
        for start in range(0, len(ids), 400):
            chunk = ids[start:start + 400]
            sql = f"UPDATE {table} SET published_at = ? WHERE id IN ({', '.join('?' * len(chunk))})"
            bulk.run(conn, sql, lambda cur, sql=sql, chunk=chunk: cur.execute(sql, [now, *chunk]))


async def flush(self: OutboxRelay) -> int:
    sent = 0
    async with self._lock:
        while True:
            rows = await asyncio.to_thread(_pending, self)
            if not rows:
                break
            producer = await _get_producer()
            futures = [await producer.send(topic, value, key=key.encode()) for _, topic, key, value in rows]
            await asyncio.gather(*futures)
            await asyncio.to_thread(_mark, self, [r[0] for r in rows])
            sent += len(rows)
    return sent


def install() -> None:
    OutboxRelay.flush = flush  # type: ignore[method-assign]
