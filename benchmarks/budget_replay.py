"""Replay: the budget service rebuilt from offset 0 into an empty database, against the view
the same events give when they arrive live, with the service's memory along the way.

    python benchmarks/budget_replay.py --programs 2000 --days 250 [--live-batch 100]

Real parts: the embedded tansu broker, the budget service as its own process (`python -m
services.budget`, batches of 500, SQLite). "Live" is the same event stream applied in small
batches (`--live-batch`) in this process, as a running service sees it day by day. The replay
must give the same view (every column but `updated_at`) and the same alert ids; its resident
memory is sampled when 10 %, 50 % and 100 % of the events are committed (peak and current RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from typing import Any

from sqlmodel import select

from benchmarks.budget_throughput import budget_process, inbox_count, lines, peak_rss_mb, publish, rss_mb, snapshots
from contracts import parse_event
from services.budget import service
from services.budget.store import BudgetAlert, BudgetProgram
from services.common.db import Database, upgrade
from services.common.embedded import EmbeddedBroker
from services.common.messaging import ensure_topics
from services.common.settings import Settings


def view_of(db: Database) -> tuple[list[dict[str, Any]], list[str]]:
    with db.read() as s:
        rows = [{k: v for k, v in r.model_dump().items() if k != "updated_at"}
                for r in s.exec(select(BudgetProgram).order_by(BudgetProgram.program_id)).all()]
        alerts = sorted(a.event_id for a in s.exec(select(BudgetAlert)).all())
    return rows, alerts


def live(url: str, settings: Settings, events: list[tuple[str, bytes]], batch: int) -> float:
    upgrade(url, "budget")
    db = Database(url)
    cfg = service.Config.from_settings(settings)
    start = time.monotonic()
    for i in range(0, len(events), batch):
        service.apply_batch(db, cfg, [parse_event(v) for _, v in events[i:i + batch]])
    db.dispose()
    return time.monotonic() - start


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--live-batch", type=int, default=100)
    args = ap.parse_args()

    broker = EmbeddedBroker.start()
    tmp = tempfile.mkdtemp(prefix="budget-replay-")
    try:
        prefix = f"replay{uuid.uuid4().hex[:6]}."
        settings = Settings(_env_file=None, kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix,
                            log_json=False, log_level="WARNING", consumer_batch_size=500,
                            consumer_batch_timeout_ms=50, consumer_session_timeout_ms=6000,
                            database_url=f"sqlite:///{tmp}/replay.db",
                            budget_consumer_group=f"replay-{uuid.uuid4().hex[:6]}")
        ensure_topics(broker.bootstrap, prefix)
        events = lines(args.programs) + snapshots(args.programs, args.days)
        t0 = time.monotonic()
        await publish(broker.bootstrap, settings.topic("execwatch.budget"), events)
        print(f"published {len(events):,} events in {time.monotonic() - t0:.1f}s")

        live_s = await asyncio.to_thread(live, f"sqlite:///{tmp}/live.db", settings, events, args.live_batch)
        print(f"live: {len(events):,} events in batches of {args.live_batch} in {live_s:.1f}s "
              f"({len(events) / live_s:,.0f} events/s, apply only, no broker)")

        db = Database(settings.database_url)
        upgrade(settings.database_url, "budget")
        marks = {int(len(events) * p): f"{p:.0%}" for p in (0.1, 0.5, 1.0)}
        async with budget_process(settings) as proc:
            start, pending = time.monotonic(), sorted(marks)
            while pending:
                n = await asyncio.to_thread(inbox_count, db)
                while pending and n >= pending[0]:
                    mark = pending.pop(0)
                    print(f"replay {marks[mark]:>4}: {n:>9,} committed at {time.monotonic() - start:6.1f}s, "
                          f"RSS {rss_mb(proc.pid):.0f} MB, peak RSS {peak_rss_mb(proc.pid):.0f} MB")
                await asyncio.sleep(0.2)
            replay_s = time.monotonic() - start
        print(f"replay: {len(events):,} events from offset 0 in {replay_s:.1f}s ({len(events) / replay_s:,.0f} "
              "events/s, including the service's start and group join)")
        replayed, live_view = view_of(db), view_of(Database(f"sqlite:///{tmp}/live.db"))
        same = replayed == live_view
        print(f"same view as live: {same} ({len(replayed[0]):,} programs, {len(replayed[1]):,} alerts)")
        if not same:
            diff = [(a, b) for a, b in zip(replayed[0], live_view[0], strict=False) if a != b][:3]
            print("first differences:", diff)
        db.dispose()
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
