"""Publish (HTTP) → budget view latency at a sustained rate, every part as its own process.

    python benchmarks/event_latency.py --rate 2000 --seconds 60 [--programs 2000] [--tick-ms 50]

Real parts: the embedded tansu broker, the ingest service (`python -m services.ingest`: HTTP
accept into its outbox, relay to Kafka) and the budget service (`python -m services.budget`),
SQLite files. Every `--tick-ms` this process POSTs the events due in that tick as one request
(2,000/s with 50 ms ticks: 100 events per request), without waiting for earlier requests. An
event's latency is the budget inbox's `processed_at` (stamped in the batch's transaction, before
its writes and commit) minus the time its request was sent; p50/p95/p99/max are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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
    args = ap.parse_args()

    broker = EmbeddedBroker.start()
    tmp = tempfile.mkdtemp(prefix="latency-bench-")
    prefix = f"lat{uuid.uuid4().hex[:6]}."
    settings = Settings(_env_file=None, kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix,
                        log_json=False, log_level="WARNING",
                        consumer_session_timeout_ms=6000, database_url=f"sqlite:///{tmp}/budget.db",
                        budget_consumer_group=f"lat-{uuid.uuid4().hex[:6]}")
    ingest_port = free_port()
    ingest = subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
             "DATABASE_URL": f"sqlite:///{tmp}/ingest.db", "EXECWATCH_INGEST_PORT": str(ingest_port),
             "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_DEMO": "true",  # publishes with demo-token
             # 20 requests/s from one system: above the default 120 writes/min per identity, as a
             # department system sending this much would be configured (else 90 % get 429).
             "EXECWATCH_AUTH_WRITES_PER_MIN": "100000"})
    try:
        ensure_topics(broker.bootstrap, prefix)
        await publish(broker.bootstrap, settings.topic("execwatch.budget"), lines(args.programs))
        upgrade(settings.database_url, "budget")
        db = Database(settings.database_url)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", ingest_port, 60)
        async with budget_process(settings), httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ingest_port}", timeout=120,
                limits=httpx.Limits(max_connections=50)) as client:
            await asyncio.sleep(5)  # the group settles, the budget lines are applied
            sent: dict[str, float] = {}
            tasks: list[asyncio.Task[httpx.Response]] = []
            requests: list[list[str]] = []
            tick = args.tick_ms / 1000
            per_tick = args.rate * tick
            start, i, due = time.time(), 0, 0.0
            while time.time() - start < args.seconds:
                due += per_tick
                batch = [snapshot(i + k, args.programs) for k in range(int(due) - i)]
                i = int(due)
                now = time.time()
                sent.update({e["event_id"]: now for e in batch})
                requests.append([e["event_id"] for e in batch])
                tasks.append(asyncio.create_task(client.post("/v1/events", json=batch, headers=HEADERS)))
                await asyncio.sleep(max(0.0, start + len(tasks) * tick - time.time()))
            sending_s = time.time() - start
            responses = await asyncio.gather(*tasks)
            bad = [r.status_code for r in responses if r.status_code != 202]
            if bad:
                print(f"refused requests by status: {dict(collections.Counter(bad))}")
            # Only what was accepted can reach the view: a refused request is counted above.
            ids = [i for r, request_ids in zip(responses, requests, strict=True) if r.status_code == 202
                   for i in request_ids]
            deadline = time.monotonic() + 300
            done: dict[str, float] = {}
            while len(done) < len(ids) and time.monotonic() < deadline:
                done = await asyncio.to_thread(processed, db, ids)
                await asyncio.sleep(0.5)
        lat = sorted(done[k] - sent[k] for k in done)
        pick = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]) if lat else (lambda q: float("nan"))
        print(f"sent {len(sent):,} events over HTTP in {sending_s:.1f}s ({len(sent) / sending_s:,.0f}/s, "
              f"{len(tasks):,} requests, {len(bad)} not 202); in the budget view: {len(done):,}")
        print(f"publish (HTTP) → budget view: p50 {statistics.median(lat) * 1000:.0f} ms, p95 {pick(0.95) * 1000:.0f}"
              f" ms, p99 {pick(0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        db.dispose()
    finally:
        ingest.terminate()
        ingest.wait(15)
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
