"""Budget throughput: the budget service against a Quix Streams peer doing the same judging
(benchmarks/quix_peer.py), and against the broker's raw consume rate, in the same run on the same
data. Real parts: the embedded tansu broker, the budget app in this process (its real lifespan:
batch subscriber, SQLite or PostgreSQL, outbox relay), the peer as its own process, a plain
aiokafka consumer for the baseline.

    python benchmarks/budget_throughput.py --programs 2000 --days 10 [--db postgresql://127.0.0.1/test]
                                           [--latency-rate 200 --latency-seconds 10]

(a) raw: N snapshots consumed by a plain aiokafka consumer (new group, from the start);
(p) peer: the same N through the Quix Streams app (new group, from the start, RocksDB state with
its changelog), timed from its first processed message to its last;
(b) budget: the same N applied by the budget service (new group, from the start) until its inbox
holds them all (= committed to the view); ratio b/p (target ≥ 50 %).
(c) optional: snapshots published at a fixed rate while the service runs; publish → view latency
per event = inbox processed_at (stamped in the batch's transaction) − send time; p50/p99 printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from sqlmodel import col, func, select

from contracts import dump_event, parse_event
from contracts.topics import BUDGET
from services.budget.app import build
from services.budget.store import BudgetInbox
from services.common.db import Database, upgrade
from services.common.embedded import EmbeddedBroker, free_port, wait_for_port
from services.common.messaging import ensure_topics
from services.common.settings import Settings


def envelope(event_type: str, pid: str, payload: dict[str, Any]) -> bytes:
    return dump_event(parse_event({
        "event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "source": "bench", "key": pid, "payload": payload}))


def lines(programs: int) -> list[tuple[str, bytes]]:
    return [(f"P{i:05d}", envelope("budget.line_set", f"P{i:05d}", {
        "program_id": f"P{i:05d}", "fiscal_year": 2025, "title": f"사업 {i}", "office": f"{i % 5}실",
        "division": f"{i % 40}과", "original": 1_000_000_000 + i})) for i in range(programs)]


def snapshots(programs: int, days: int, start: date = date(2025, 1, 2)) -> list[tuple[str, bytes]]:
    """Daily cumulative snapshots, day by day for every program (how a nightly e-호조 load looks)."""
    out = []
    for d in range(days):
        as_of = start + timedelta(days=d)
        for i in range(programs):
            spent = (d + 1) * (1_000_000 + (i % 7) * 500_000)
            out.append((f"P{i:05d}", envelope("budget.execution_snapshot", f"P{i:05d}", {
                "program_id": f"P{i:05d}", "fiscal_year": 2025, "as_of": as_of.isoformat(),
                "committed": spent, "spent": spent})))
    return out


async def publish(bootstrap: str, topic: str, events: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=k.encode()) for k, v in events]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, expect: int, decode: bool = False) -> float:
    """Seconds to consume `expect` records; with `decode`, each is also validated against its
    contract (what any consumer of ours must do before it can use an event)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", max_poll_records=500, enable_auto_commit=True)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < expect:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            n = sum(len(r) for r in batch.values())
            if decode:
                for records in batch.values():
                    for record in records:
                        parse_event(record.value)
            if n and started is None:
                started = time.monotonic()  # from the first record: group join is not consume rate
            seen += n
        assert started is not None
        return time.monotonic() - started
    finally:
        await consumer.stop()


def inbox_count(db: Database) -> int:
    with db.read() as s:
        return int(s.exec(select(func.count()).select_from(BudgetInbox)).one())


async def budget_apply(settings: Settings, expect: int) -> tuple[float, Database]:
    app = build(settings)
    db = Database(settings.database_url_for("budget"))
    async with app.router.lifespan_context(app):
        started = None
        while True:
            n = await asyncio.to_thread(inbox_count, db)
            if n and started is None:
                started = time.monotonic()
                first = n
            if n >= expect:
                break
            await asyncio.sleep(0.02)
        assert started is not None
        elapsed = time.monotonic() - started
    # Rate over what was applied after the first commit was seen (symmetric with the raw side).
    return elapsed * expect / max(1, expect - first), db


async def budget_apply_processes(settings: Settings, expect: int, processes: int,
                                 profile: str | None = None) -> tuple[float, list[float]]:
    """Like budget_apply, with the service as `processes` processes of one consumer group (the
    topic's partitions spread over them: per-partition parallelism across cores). Returns the
    seconds and each process's peak RSS in MB."""
    upgrade(settings.database_url, "budget")  # once, before they start together
    db = Database(settings.database_url_for("budget"))
    async with contextlib.AsyncExitStack() as stack:
        procs = await asyncio.gather(*(stack.enter_async_context(budget_process(settings))
                                       for _ in range(processes)))
        # py-spy attached to each service process (sampling profile, raw collapsed stacks)
        spies = [subprocess.Popen(["py-spy", "record", "--pid", str(p.pid), "-r", "200", "-f", "raw", "-o",
                                   f"{profile}/budget-{settings.database_url.split(':')[0]}-{p.pid}.txt"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for p in procs] if profile else []
        started = None
        while True:
            n = await asyncio.to_thread(inbox_count, db)
            if n and started is None:
                started, first = time.monotonic(), n
            if n >= expect:
                break
            await asyncio.sleep(0.05)
        assert started is not None
        elapsed = time.monotonic() - started
        rss = [peak_rss_mb(p.pid) for p in procs]
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    db.dispose()
    return elapsed * expect / max(1, expect - first), rss


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.asynccontextmanager
async def budget_process(settings: Settings) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The budget service as its own process (`python -m services.budget`), as deployed: the
    producer in this process then does not compete with it for the interpreter."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
           "DATABASE_URL": settings.database_url, "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix,
           "EXECWATCH_BUDGET_PORT": str(port), "EXECWATCH_BUDGET_CONSUMER_GROUP": settings.budget_consumer_group,
           "EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS": str(settings.consumer_session_timeout_ms),
           "EXECWATCH_CONSUMER_BATCH_SIZE": str(settings.consumer_batch_size), "EXECWATCH_LOG_LEVEL": "WARNING",
           "EXECWATCH_CONSUMER_PIPELINE_DEPTH": str(settings.consumer_pipeline_depth),
           "EXECWATCH_DEMO": "true"}  # default (demo) secrets accepted
    proc = subprocess.Popen([sys.executable, "-m", "services.budget"], env=env)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60)
        yield proc
    finally:
        proc.terminate()
        proc.wait(15)


async def latency(settings: Settings, topic: str, programs: int, rate: float, seconds: float,
                  separate: bool = False) -> list[float]:
    app = build(settings)
    db = Database(settings.database_url_for("budget"))
    sent: dict[str, float] = {}
    running = budget_process(settings) if separate else app.router.lifespan_context(app)
    async with running:
        await asyncio.sleep(3)  # let the group settle
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=1)
        await producer.start()
        try:
            start, i = time.time(), 0
            as_of = date(2025, 3, 1)
            while time.time() - start < seconds:
                pid = f"P{i % programs:05d}"
                as_of_i = as_of + timedelta(days=i // programs)
                value = envelope("budget.execution_snapshot", pid, {
                    "program_id": pid, "fiscal_year": 2025, "as_of": as_of_i.isoformat(),
                    "committed": 10 * (i + 1), "spent": 10 * (i + 1)})
                event_id = value.split(b'"event_id":"')[1][:36].decode()
                sent[event_id] = time.time()
                await producer.send(topic, value, key=pid.encode())
                i += 1
                await asyncio.sleep(max(0.0, start + i / rate - time.time()))
            await producer.flush()
        finally:
            await producer.stop()
        while await asyncio.to_thread(lambda: _count_ids(db, list(sent))) < len(sent):
            await asyncio.sleep(0.1)
    with db.read() as s:
        rows = s.exec(select(BudgetInbox).where(col(BudgetInbox.event_id).in_(list(sent)))).all()
    db.dispose()
    return sorted(r.processed_at.timestamp() - sent[r.event_id] for r in rows)


def _count_ids(db: Database, ids: list[str]) -> int:
    with db.read() as s:
        return int(s.exec(select(func.count()).select_from(BudgetInbox)
                          .where(col(BudgetInbox.event_id).in_(ids))).one())


def run_peer(bootstrap: str, topic: str, expect: int) -> dict[str, Any]:
    """The Quix Streams peer as its own process on the same topic (its alerts topic created up
    front: tansu does not create topics on Quix's admin path)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(f"{topic}.peer-alerts", BUDGET.partitions, 1)])
    finally:
        admin.close()
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("quix_peer.py")), "--bootstrap", bootstrap,
                          "--topic", topic, "--expect", str(expect), "--group", f"peer-{uuid.uuid4().hex[:6]}"],
                         check=True, capture_output=True, text=True, timeout=1800)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def fresh_pg(url: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{url}?options=-csearch_path%3D{schema}", schema


def drop_pg(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch", type=lambda v: [int(n) for n in v.split(",")],
                        default=[Settings.model_fields["consumer_batch_size"].default],
                        help="budget's consumer batch size(s), e.g. 500,2000 (each measured; default the service's)")
    parser.add_argument("--depth", type=lambda v: [int(n) for n in v.split(",")], default=[1],
                        help="budget's consumer pipeline depth(s), e.g. 0,1 (0 = serial; each measured)")
    parser.add_argument("--zip", action="store_true",
                        help="pair --batch and --depth (500,2000 with 0,1: two settings) instead of every combination")
    parser.add_argument("--db", help="PostgreSQL URL to measure as well as SQLite")
    parser.add_argument("--latency-rate", type=float, default=0, help="events/s for the latency run (0 = skip)")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--processes", type=lambda v: [int(n) for n in v.split(",")], default=[0],
                        help="budget as N processes of one group, e.g. 1,2 (0 = in the benchmark's process)")
    parser.add_argument("--profile", metavar="DIR", help="with --processes: py-spy profiles of the services here")
    parser.add_argument("--no-peer", action="store_true", help="skip the Quix Streams peer")
    parser.add_argument("--separate-process", action="store_true",
                        help="latency run with the budget service as its own process (as deployed)")
    args = parser.parse_args()

    broker = EmbeddedBroker.start()
    tmp = tempfile.mkdtemp(prefix="budget-bench-")
    try:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        base = Settings(_env_file=None, kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix,
                        log_json=False, log_level="WARNING",
                        consumer_batch_timeout_ms=50, consumer_session_timeout_ms=6000)
        topic = base.topic("execwatch.budget")
        ensure_topics(broker.bootstrap, prefix)
        events = lines(args.programs) + snapshots(args.programs, args.days)
        t0 = time.monotonic()
        await publish(broker.bootstrap, topic, events)
        print(f"published {len(events):,} events ({args.programs:,} lines + {args.programs * args.days:,} "
              f"snapshots) in {time.monotonic() - t0:.1f}s")

        raw_s = await raw_consume(broker.bootstrap, topic, len(events))
        raw_rate = len(events) / raw_s
        print(f"(a) raw aiokafka consume:     {raw_rate:10,.0f} events/s  ({raw_s:.2f}s)")
        dec_s = await raw_consume(broker.bootstrap, topic, len(events), decode=True)
        print(f"(a') consume + contract decode: {len(events) / dec_s:8,.0f} events/s  ({dec_s:.2f}s)")

        peer = run_peer(broker.bootstrap, topic, len(events)) if not args.no_peer else None
        if peer:
            print(f"(p) Quix Streams peer:         {peer['rate']:10,.0f} events/s  ({peer['seconds']:.2f}s, "
                  f"{peer['alerts']:,} level changes)")

        pg = fresh_pg(args.db) if args.db else None
        pg_schemas: list[str] = []
        targets = [("sqlite", f"sqlite:///{tmp}/budget.db")] + ([("postgresql", pg[0])] if pg else [])
        settings_tried = (list(zip(args.batch, args.depth, strict=True)) if args.zip
                          else [(b, d) for b in args.batch for d in args.depth])
        runs = [(name, url, n, batch, depth) for name, url in targets for n in args.processes
                for batch, depth in settings_tried]
        for run, (name, url, processes, batch, depth) in enumerate(runs):
            if name == "sqlite":
                url = f"sqlite:///{tmp}/budget-{run}.db"
            elif pg:
                url, schema = fresh_pg(args.db or "")
                pg_schemas.append(schema)
            settings = base.model_copy(update={"database_url": url, "consumer_batch_size": batch,
                                               "consumer_pipeline_depth": depth,
                                               "budget_consumer_group": f"bench-{name}-{uuid.uuid4().hex[:6]}"})
            if processes:
                svc_s, rss = await budget_apply_processes(settings, len(events), processes, args.profile)
                where = f"{processes} process{'es' if processes > 1 else ''}, peak RSS " + "/".join(
                    f"{r:.0f}" for r in rss) + " MB"
            else:
                svc_s, db = await budget_apply(settings, len(events))
                db.dispose()
                where = "in the benchmark's process"
            where += f", batch {batch}, depth {depth}, load {os.getloadavg()[0]:.1f}"
            svc_rate = len(events) / svc_s
            print(f"(b) budget → {name:10s} ({where}) {svc_rate:10,.0f} events/s  ({svc_s:.2f}s)  "
                  f"{svc_rate / raw_rate:.1%} of raw"
                  + (f", ratio to peer {svc_rate / peer['rate']:.0%}" if peer else ""))
        if pg and args.db:
            for schema in [pg[1], *pg_schemas]:
                drop_pg(args.db, schema)

        if args.latency_rate:
            url = f"sqlite:///{tmp}/latency.db"
            settings = base.model_copy(update={"database_url": url, "topic_prefix": prefix + "lat.",
                                               "budget_consumer_group": f"bench-lat-{uuid.uuid4().hex[:6]}"})
            ensure_topics(broker.bootstrap, prefix + "lat.")
            await publish(broker.bootstrap, settings.topic("execwatch.budget"), lines(args.programs))
            lat = await latency(settings, settings.topic("execwatch.budget"), args.programs, args.latency_rate,
                                args.latency_seconds, args.separate_process)
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            where = "separate process" if args.separate_process else "in this process"
            print(f"(c) publish→view latency at {args.latency_rate:,.0f}/s over {len(lat):,} snapshots "
                  f"(SQLite, service {where}): "
                  f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
