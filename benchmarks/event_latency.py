"""Publish (HTTP) → budget view latency at a sustained rate, every part as its own process.

    python benchmarks/event_latency.py --rate 2000 --seconds 60 [--programs 2000] [--tick-ms 50]
    python benchmarks/event_latency.py --mail --rate 20 --seconds 60 --programs 1200

Real parts: the embedded tansu broker, the ingest service (`python -m services.ingest`: HTTP
accept into its outbox, relay to Kafka) and the budget service (`python -m services.budget`),
SQLite files. Every `--tick-ms` this process POSTs the events due in that tick as one request
(2,000/s with 50 ms ticks: 100 events per request), without waiting for earlier requests. An
event's latency is the budget inbox's `processed_at` (stamped in the batch's transaction, before
its writes and commit) minus the time its request was sent; p50/p95/p99/max are printed.

--mail adds notify as its own process (grouping off: group_wait 0, group_interval 0, no quiet
hours) sending to an SMTP sink in this process, with every program registered (its 담당 and 팀장)
on the programs topic first. A program's first snapshot makes budget raise its execution alert;
that alert's mail latency is the sink's receipt of the program's first mail minus the time the
request carrying that snapshot was sent (HTTP → ingest → budget → alert → notify → SMTP). With
more programs than rate × seconds, every snapshot is a program's first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from benchmarks.budget_throughput import budget_process, lines, publish
from benchmarks.notify_bench import TimedSink, program_event
from contracts import dump_event
from services.budget.store import BudgetInbox
from services.common.db import Database, upgrade
from services.common.embedded import EmbeddedBroker, free_port, wait_for_port
from services.common.messaging import ensure_topics
from services.common.settings import Settings

HEADERS = {"Authorization": "Bearer demo-token", "Content-Type": "application/json"}


def snapshot(i: int, programs: int) -> dict[str, Any]:
    pid = f"P{i % programs:05d}"
    as_of = date(2025, 3, 1) + timedelta(days=i // programs)
    return {"event_id": str(uuid.uuid4()), "event_type": "budget.execution_snapshot", "schema_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(), "source": "demo-system", "key": pid,
            "payload": {"program_id": pid, "fiscal_year": 2025, "as_of": as_of.isoformat(),
                        "committed": 10 * (i + 1), "spent": 10 * (i + 1)}}


def processed(db: Database, ids: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    with db.read() as s:
        for start in range(0, len(ids), 500):
            rows = s.exec(select(BudgetInbox).where(col(BudgetInbox.event_id).in_(ids[start:start + 500]))).all()
            out.update({r.event_id: r.processed_at.replace(tzinfo=UTC).timestamp() for r in rows})
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--tick-ms", type=float, default=50)
    ap.add_argument("--mail", action="store_true", help="also notify → SMTP, grouping off")
    args = ap.parse_args()

    broker = EmbeddedBroker.start()
    tmp = tempfile.mkdtemp(prefix="latency-bench-")
    prefix = f"lat{uuid.uuid4().hex[:6]}."
    settings = Settings(_env_file=None, kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix,
                        log_json=False, log_level="WARNING", consumer_batch_size=500, consumer_batch_timeout_ms=50,
                        consumer_session_timeout_ms=6000, database_url=f"sqlite:///{tmp}/budget.db",
                        budget_consumer_group=f"lat-{uuid.uuid4().hex[:6]}")
    ingest_port = free_port()
    ingest = subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
             "DATABASE_URL": f"sqlite:///{tmp}/ingest.db", "EXECWATCH_INGEST_PORT": str(ingest_port),
             "EXECWATCH_LOG_LEVEL": "WARNING"})
    sink = TimedSink().start() if args.mail else None
    notify = None
    if sink is not None:
        notify = subprocess.Popen(
            [sys.executable, "-m", "services.notify"],
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
                 "DATABASE_URL": f"sqlite:///{tmp}/notify.db", "EXECWATCH_NOTIFY_PORT": str(free_port()),
                 "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_DEMO": "true", "EXECWATCH_SMTP_PORT": str(sink.port),
                 "EXECWATCH_NOTIFY_GROUP_WAIT_S": "0", "EXECWATCH_NOTIFY_GROUP_INTERVAL_S": "0",
                 "EXECWATCH_NOTIFY_QUIET_HOURS": "false", "EXECWATCH_NOTIFY_ESCALATION_AFTER_S": "0",
                 "EXECWATCH_RECIPIENT_ADDRESS_TEMPLATE": "{phone_digits}@staff.test",
                 "EXECWATCH_CONSUMER_BATCH_TIMEOUT_MS": "50"})
    try:
        ensure_topics(broker.bootstrap, prefix)
        await publish(broker.bootstrap, settings.topic("execwatch.budget"), lines(args.programs))
        if sink is not None:
            await publish(broker.bootstrap, settings.topic("execwatch.programs"),
                          [(f"P{p:05d}", dump_event(program_event(p))) for p in range(args.programs)])
        upgrade(settings.database_url, "budget")
        db = Database(settings.database_url)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", ingest_port, 60)
        async with budget_process(settings), httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ingest_port}", timeout=120,
                limits=httpx.Limits(max_connections=50)) as client:
            await asyncio.sleep(5)  # the group settles, the budget lines are applied
            load = os.getloadavg()[0]
            sent: dict[str, float] = {}
            first_sent: dict[str, float] = {}  # program title → its first snapshot's send time
            tasks: list[asyncio.Task[httpx.Response]] = []
            tick = args.tick_ms / 1000
            per_tick = args.rate * tick
            start, i, due = time.time(), 0, 0.0
            while time.time() - start < args.seconds:
                due += per_tick
                batch = [snapshot(i + k, args.programs) for k in range(int(due) - i)]
                i = int(due)
                now = time.time()
                sent.update({e["event_id"]: now for e in batch})
                for e in batch:
                    first_sent.setdefault(f"사업 {int(e['key'][1:])}", now)
                tasks.append(asyncio.create_task(client.post("/v1/events", json=batch, headers=HEADERS)))
                await asyncio.sleep(max(0.0, start + len(tasks) * tick - time.time()))
            sending_s = time.time() - start
            responses = await asyncio.gather(*tasks)
            bad = [r.status_code for r in responses if r.status_code != 202]
            ids = list(sent)
            deadline = time.monotonic() + 300
            done: dict[str, float] = {}
            while len(done) < len(ids) and time.monotonic() < deadline:
                done = await asyncio.to_thread(processed, db, ids)
                await asyncio.sleep(0.5)
            mail_lat: list[float] = []
            if sink is not None:
                expect = len(first_sent)
                while time.monotonic() < deadline and len({_title(m) for _, m in sink.received}) < expect:
                    await asyncio.sleep(0.5)
                first_mail: dict[str, float] = {}
                for at, msg in sink.received:
                    first_mail.setdefault(_title(msg), at)
                mail_lat = sorted(first_mail[t] - first_sent[t] for t in first_mail if t in first_sent)
        lat = sorted(done[k] - sent[k] for k in done)
        pick = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]) if lat else (lambda q: float("nan"))
        print(f"sent {len(sent):,} events over HTTP in {sending_s:.1f}s ({len(sent) / sending_s:,.0f}/s, "
              f"{len(tasks):,} requests, {len(bad)} not 202); in the budget view: {len(done):,}")
        print(f"publish (HTTP) → budget view: p50 {statistics.median(lat) * 1000:.0f} ms, p95 {pick(0.95) * 1000:.0f}"
              f" ms, p99 {pick(0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms (load {load:.2f})")
        if sink is not None:
            print(f"mails: {len(sink.received):,}; programs told: {len(mail_lat):,} of {len(first_sent):,}")
            if mail_lat:
                print(f"publish (HTTP) → first mail (grouping off): p50 {statistics.median(mail_lat) * 1000:.0f} ms, "
                      f"p95 {_at(mail_lat, 0.95) * 1000:.0f} ms, p99 {_at(mail_lat, 0.99) * 1000:.0f} ms, "
                      f"max {mail_lat[-1] * 1000:.0f} ms")
        db.dispose()
    finally:
        ingest.terminate()
        ingest.wait(15)
        if notify is not None:
            notify.terminate()
            notify.wait(15)
        if sink is not None:
            sink.stop()
        broker.stop()


def _at(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _title(msg: Any) -> str:
    """The program title in a single alert's subject: "[집행 부진] 사업 12 — 집행률 …"."""
    return str(msg["Subject"]).split("] ", 1)[-1].split(" — ")[0]


if __name__ == "__main__":
    asyncio.run(main())
