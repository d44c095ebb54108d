"""The outbox relay alone: N rows already committed to ingest's outbox, time until the relay has
them all confirmed by the broker (acks=all: on the topic) and marked published; then how long a
single row committed while the relay idles waits before it is published.

    python benchmarks/relay_bench.py --rows 20000 [--db postgresql://127.0.0.1:5432/test] [--keys 2000]
                                     [--latency 50] [--profile FILE]

Real parts: the embedded tansu broker (its own, started here), SQLite or PostgreSQL (a fresh
schema), the service's `Runtime` (its broker, its broker watch and marker check) and its
`LeaderRelay`, as ingest wires them. Run it with another tree's code to compare
(`PYTHONPATH=/path/to/other/tree python benchmarks/relay_bench.py …`).

Prints the rows/s of the backlog (the relay's `flush` until nothing is pending), a count of the
records on the topic (they must all be there), and the latency percentiles of "commit → marked
published" for rows committed one at a time (a commit followed by `relay.wake()`, as ingest's
HTTP door does), with the relay running as in the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from kafka import KafkaConsumer

from services.common.db import PENDING
from services.common.embedded import EmbeddedBroker
from services.common.leader import LeaderRelay
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.ingest.store import IngestOutbox


def value(i: int, pid: str) -> bytes:
    """About the size of a snapshot envelope as ingest stores it."""
    return json.dumps({
        "event_id": str(uuid.uuid4()), "event_type": "budget.execution_snapshot", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "source": "demo-system", "key": pid,
        "payload": {"program_id": pid, "fiscal_year": 2025, "as_of": "2025-03-31", "committed": i * 10,
                    "spent": i * 5, "revision": 0}}, separators=(",", ":")).encode()


def insert(engine: sa.Engine, topic: str, start: int, count: int, keys: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + count):
        pid = f"P{i % keys:05d}"
        rows.append({"event_id": str(uuid.uuid4()), "topic": topic, "key": pid, "value": value(i, pid),
                     "created_at": now, "source": "bench", "source_event_id": str(uuid.uuid4()),
                     "content_hash": ""})
    with engine.begin() as conn:
        conn.execute(sa.insert(IngestOutbox.__table__), rows)  # type: ignore[attr-defined]


def count_topic(bootstrap: str, topic: str, expect: int, timeout: float = 120) -> int:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=3000, max_poll_records=5000)
    seen, end = 0, time.monotonic() + timeout
    while seen < expect and time.monotonic() < end:
        for _ in consumer:
            seen += 1
            if seen >= expect:
                break
    consumer.close()
    return seen


def pg_schema(url: str) -> str:
    schema = f"relaybench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def run(args: argparse.Namespace, bootstrap: str, db_url: str) -> int:
    prefix = f"rb{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap_servers=bootstrap, database_url=db_url, topic_prefix=prefix,
                        log_level="WARNING")
    rt = Runtime.create("ingest", settings)
    relay = LeaderRelay(rt.db, IngestOutbox, rt.publish_raw)
    if args.batch:
        relay.batch = args.batch
    topic = settings.topic("execwatch.budget")
    async with rt.running():
        engine = rt.db.engine
        await asyncio.to_thread(insert, engine, topic, 0, args.rows, args.keys)
        spy = None
        if args.profile:
            py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
            spy = await asyncio.create_subprocess_exec(py_spy, "record", "--pid", str(os.getpid()), "-r", "200",
                                                       "-f", "raw", "-o", args.profile, "--nonblocking",
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        start = time.monotonic()
        sent = 0
        while True:  # as the relay's own loop would, without its interval between rounds
            n = await relay.flush()
            sent += n
            if n == 0:
                break
        elapsed = time.monotonic() - start
        if spy is not None:
            spy.send_signal(2)
            await spy.wait()
        seen = await asyncio.to_thread(count_topic, bootstrap, topic, args.rows)
        print(f"rows={args.rows} keys={args.keys} batch={relay.batch} db={'postgres' if args.db else 'sqlite'} "
              f"load={os.getloadavg()[0]:.2f}")
        print(f"backlog: {sent:,} published in {elapsed:.2f} s = {sent / elapsed:,.0f} rows/s; "
              f"{seen:,} on the topic")

        # Latency at rest: the relay runs as in the service (woken after each commit).
        task = asyncio.create_task(relay.run(settings.relay_interval_s))
        await asyncio.sleep(1.0)
        waits: list[float] = []
        table = IngestOutbox.__table__  # type: ignore[attr-defined]
        for i in range(args.latency):
            await asyncio.to_thread(insert, engine, topic, args.rows + i, 1, args.keys)
            committed = time.monotonic()
            relay.wake()
            while True:
                await asyncio.sleep(0.001)
                with engine.connect() as conn:
                    # The relay's own predicate (its partial index): `published_at IS NULL` alone
                    # is a scan of the whole table on PostgreSQL since published_at lost its index.
                    left = conn.execute(sa.select(sa.func.count()).select_from(table)
                                        .where(sa.text(PENDING))).scalar()
                if not left:
                    break
            waits.append((time.monotonic() - committed) * 1000)
            await asyncio.sleep(0.2)  # the relay is idle again
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if waits:
            q = statistics.quantiles(waits, n=100)
            print(f"commit → published at rest ({len(waits)} rows, polled every 1 ms): "
                  f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {max(waits):.1f} ms")
    return 0 if seen == args.rows else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--keys", type=int, default=2000, help="distinct program ids (keys)")
    ap.add_argument("--db", default=None, help="PostgreSQL URL (a fresh schema is made); default a SQLite file")
    ap.add_argument("--batch", type=int, default=0, help="rows per round (default: the relay's own)")
    ap.add_argument("--latency", type=int, default=50, help="rows committed one at a time at rest")
    ap.add_argument("--profile", metavar="FILE", help="py-spy profile of the backlog phase (raw collapsed stacks)")
    args = ap.parse_args()
    broker = EmbeddedBroker.start()
    schema = pg_schema(args.db) if args.db else None
    try:
        work = tempfile.mkdtemp(prefix="execwatch-relaybench-")
        db_url = f"{args.db}?options=-csearch_path%3D{schema}" if schema else f"sqlite:///{work}/ingest.db"
        return asyncio.run(run(args, broker.bootstrap, db_url))
    finally:
        broker.stop()
        if schema:
            drop_schema(args.db, schema)


if __name__ == "__main__":
    sys.exit(main())
