"""Budget over the real broker: a year of snapshots published straight to the budget topic;
a run stopped part-way and restarted with the same group ends with the same view and the same
alert event ids as an uninterrupted run, and a full replay under a new consumer group into a
fresh database reproduces both exactly."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlmodel import func, select

from contracts import dump_event, parse_event
from contracts.envelope import deterministic_id
from services.budget.app import build
from services.budget.store import BudgetAlert, BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.db import Database
from services.common.messaging import ensure_topics
from services.common.settings import Settings
from tests import factories as f
from tests.helpers import eventually, running, topic_reader

PROGRAMS = 10
BUDGET = 1_000_000_000


def _id(*parts: object) -> uuid.UUID:
    return deterministic_id("budget-restart-test", *parts)


def year_of_events() -> list[tuple[str, bytes]]:
    """(key, value) in publication order: lines, fortnightly snapshots with different paces,
    late snapshots, corrections, re-sent duplicates, an amendment and one over-execution."""
    out: list[dict[str, Any]] = []
    for i in range(PROGRAMS):
        pid = f"P{i:02d}"
        title = "기본경비" if i == 9 else f"사업 {i}"
        out.append(f.envelope("budget.line_set", pid, {
            "program_id": pid, "fiscal_year": 2025, "title": title, "office": "경제실",
            "division": f"{'가나다'[i % 3]}과", "original": BUDGET}, event_id=_id("line", pid)))
    days = [date(2025, 1, 15) + timedelta(days=14 * k) for k in range(25)]
    for k, day in enumerate(days):
        for i in range(PROGRAMS):
            pid = f"P{i:02d}"
            pace = [0.2, 0.5, 0.8, 1.0, 1.2, 0.6, 0.9, 0.3, 1.1, 0.7][i]
            share = min(1.0, pace * (day - date(2024, 12, 31)).days / 365 * (0.5 if 8 <= k <= 12 else 1))
            spent = int(BUDGET * share) + (400_000_000 if i == 4 and k >= 20 else 0)  # P04 overspends
            out.append(f.snapshot(pid, day, spent=spent, committed=spent, event_id=_id("snap", pid, k)))
            if i == 2 and k == 6:  # a correction of the same as-of
                out.append(f.snapshot(pid, day, spent=spent + 1_000, committed=spent + 1_000, revision=1,
                                      event_id=_id("fix", pid, k)))
            if i == 3 and k in (5, 15):  # a late, older snapshot
                out.append(f.snapshot(pid, days[k - 3], spent=1, committed=1, event_id=_id("late", pid, k)))
            if i == 5 and k % 4 == 0:  # the same event re-sent
                out.append(f.snapshot(pid, day, spent=spent, committed=spent, event_id=_id("snap", pid, k)))
        if k == 12:
            out.append(f.envelope("budget.amended", "P01", {
                "program_id": "P01", "fiscal_year": 2025, "amendment_id": "2025-1차추경", "before": BUDGET,
                "change": -300_000_000, "after": BUDGET - 300_000_000, "reason": "감액",
                "effective_date": day.isoformat()}, event_id=_id("amend")))
    return [(e["key"], dump_event(parse_event(e))) for e in out]


async def publish(bootstrap: str, topic: str, events: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in events:
            await producer.send(topic, value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def distinct_ids(events: list[tuple[str, bytes]]) -> int:
    return len({json.loads(v)["event_id"] for _, v in events})


def processed(url: str) -> int:
    db = Database(url)
    try:
        with db.read() as s:
            return int(s.exec(select(func.count()).select_from(BudgetInbox)).one())
    finally:
        db.dispose()


def final_state(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str], int]:
    db = Database(url)
    try:
        with db.read() as s:
            views = [(r.program_id, r.original, r.supplementary, r.committed, r.spent, r.as_of, r.revision,
                      r.level, r.over_level, r.year_end_level, r.plan_rate, r.gap, r.projected_rate, r.snapshots)
                     for r in s.exec(select(BudgetProgram).order_by(BudgetProgram.program_id)).all()]
            alerts = sorted((a.event_id, a.rule, a.status, a.severity, a.as_of)
                            for a in s.exec(select(BudgetAlert)).all())
            snapshots = int(s.exec(select(func.count()).select_from(BudgetSnapshot)).one())
            return views, alerts, [a[0] for a in alerts], snapshots
    finally:
        db.dispose()


async def run_until(settings: Settings, url: str, done: Callable[[int], bool], what: str) -> None:
    async with running(build(settings)):
        await eventually(lambda: asyncio.to_thread(lambda: done(processed(url))), timeout=90, interval=0.02,
                         what=what)


async def test_restart_and_replay_give_the_same_view_and_alerts(kafka, db_url, make_settings, tmp_path: Path):
    events = year_of_events()
    total = distinct_ids(events)
    base = make_settings(kafka_bootstrap_servers=kafka.bootstrap, consumer_batch_size=8)
    prefix = base.topic_prefix
    await asyncio.to_thread(ensure_topics, kafka.bootstrap, prefix)
    await publish(kafka.bootstrap, base.topic("execwatch.budget"), events)

    # Reference: one uninterrupted run.
    ref_url = f"sqlite:///{tmp_path}/reference.db"
    ref = base.model_copy(update={"database_url": ref_url, "budget_consumer_group": f"{prefix}ref"})
    await run_until(ref, ref_url, lambda n: n == total, "reference run to finish")
    expected = final_state(ref_url)
    views, alerts, _, _ = expected
    assert len(views) == PROGRAMS and {a[1] for a in alerts} >= {"execution_slipped", "over_execution",
                                                                  "year_end_risk"}

    # Stopped part-way (the lifespan exits with batches in flight), then a new instance, same group.
    restart = base.model_copy(update={"database_url": db_url, "budget_consumer_group": f"{prefix}restart"})
    await run_until(restart, db_url, lambda n: n >= total // 4, "first instance to make progress")
    stopped_at = processed(db_url)
    assert stopped_at < total, "the first instance finished before it was stopped; the test proves nothing"
    await run_until(restart, db_url, lambda n: n == total, "second instance to finish")
    assert final_state(db_url) == expected

    # A full replay under a new group into a fresh database, with other batch sizes.
    replay_url = f"sqlite:///{tmp_path}/replay.db"
    replay = base.model_copy(update={"database_url": replay_url, "budget_consumer_group": f"{prefix}replay",
                                     "consumer_batch_size": 500})
    await run_until(replay, replay_url, lambda n: n == total, "replay to finish")
    assert final_state(replay_url) == expected

    # Every alert reached the alerts topic, under the same ids whichever run sent it.
    consumer = await topic_reader(kafka.bootstrap, base.topic("execwatch.alerts"))
    seen: set[str] = set()
    try:
        async def all_alerts() -> bool:
            batch = await consumer.getmany(timeout_ms=300)
            seen.update(json.loads(r.value)["event_id"] for records in batch.values() for r in records)
            return seen == set(expected[2])

        await eventually(all_alerts, timeout=30, what="alerts on the alerts topic")
    finally:
        await consumer.stop()
