"""The pipelined consumer over the real broker (services/common/consumer.py `Pipeline`): offsets are
committed only for events already in the database, a crash between the database commit and the
offset commit redelivers the batch and the inbox absorbs it, and an outage in the middle of a
stream holds the later batches back instead of skipping the failed one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.exc import OperationalError
from sqlmodel import func, select

from services.budget import service as budget_service
from services.budget.app import build
from services.budget.store import BudgetAlert, BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.consumer import Pipeline
from services.common.db import Database
from tests import factories as f
from tests.helpers import eventually, running


async def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    """Send in order; returns (partition, offset) → event id, to check commits against."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    placed: dict[tuple[int, int], str] = {}
    try:
        for e in events:
            meta = await producer.send_and_wait(topic, json.dumps(e).encode(), key=e["key"].encode())
            placed[(meta.partition, meta.offset)] = e["event_id"]
    finally:
        await producer.stop()
    return placed


def _inbox_ids(db: Database) -> set[str]:
    with db.read() as s:
        return {str(i) for i in s.exec(select(BudgetInbox.event_id)).all()}


def _watch_commits(monkeypatch: pytest.MonkeyPatch, db: Database, topic: str,
                   placed: Callable[[], dict[tuple[int, int], str]]) -> list[str]:
    """Check every offset commit against the database at the moment it is sent: each event below
    the committed offset of its partition must already be in the inbox. Returns the violations
    (and records the commits seen, as "ok")."""
    seen: list[str] = []
    real = AIOKafkaConsumer.commit

    async def commit(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        assert offsets is not None, "the pipeline commits explicit offsets, never the positions"
        stored = _inbox_ids(db)
        for tp, offset in offsets.items():
            if tp.topic != topic:
                continue
            missing = [eid for (p, o), eid in placed().items()
                       if p == tp.partition and o < offset and eid not in stored]
            seen.append(f"{tp.partition}:{offset} ahead of the database: {missing}" if missing else "ok")
        await real(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit)
    return seen


def _events(programs: int, days: int) -> list[dict[str, Any]]:
    """Lines, then daily snapshots that go past the budget (so levels change: alerts)."""
    out = [f.budget_line(f"P-{i:02d}", original=1_000_000) for i in range(programs)]
    for d in range(days):
        out += [f.snapshot(f"P-{i:02d}", date(2025, 6, 10) + timedelta(days=d), spent=(d + 1) * 150_000 + i)
                for i in range(programs)]
    return out


async def test_offsets_are_committed_only_for_events_already_in_the_database(kafka, db_url, make_settings,
                                                                          monkeypatch):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url, consumer_batch_size=7)
    assert settings.consumer_pipeline_depth >= 1
    app = build(settings)
    rt = app.state.runtime
    topic = settings.topic("execwatch.budget")
    placed: dict[tuple[int, int], str] = {}
    seen = _watch_commits(monkeypatch, rt.db, topic, lambda: placed)
    events = _events(programs=6, days=12)
    async with running(app):
        placed.update(await _produce(kafka.bootstrap, topic, events))

        async def all_committed() -> bool:
            return len(_inbox_ids(rt.db)) == len(events) and len(seen) > 0 and any(
                s == "ok" for s in seen)
        await eventually(all_committed, timeout=90, what="every event applied and offsets committed")
        await asyncio.sleep(0.5)  # the last commits
    assert [s for s in seen if s != "ok"] == []
    assert len(seen) >= len(events) // 7 // 6  # many small batches, each committed on its own
    with rt.db.read() as s:
        rows = {r.program_id: r.spent for r in s.exec(select(BudgetProgram)).all()}
    assert rows == {f"P-{i:02d}": 12 * 150_000 + i for i in range(6)}  # per program in order


async def test_a_crash_between_database_commit_and_offset_commit_redelivers_and_is_deduplicated(
        kafka, db_url, make_settings, monkeypatch):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url, consumer_batch_size=10)
    topic = settings.topic("execwatch.budget")
    events = _events(programs=4, days=10)
    event_ids = {e["event_id"] for e in events}

    async def never_commit(self: Pipeline, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        self._done()  # the process "dies" after each database commit, before its offset commit

    first = build(settings)
    with monkeypatch.context() as m:
        m.setattr(Pipeline, "_commit", never_commit)
        async with running(first):
            await _produce(kafka.bootstrap, topic, events)

            async def applied() -> bool:
                return _inbox_ids(first.state.runtime.db) == event_ids
            await eventually(applied, timeout=90, what="the first run applied every event")
    db = first.state.runtime.db
    with db.read() as s:
        view = sorted((r.program_id, r.spent, r.level) for r in s.exec(select(BudgetProgram)).all())
        alerts = s.exec(select(func.count()).select_from(BudgetAlert)).one()
        history = s.exec(select(func.count()).select_from(BudgetSnapshot)).one()
    assert alerts > 0  # the data crosses 집행률 levels, so a double apply would show as more alerts

    delivered: list[str] = []
    real_apply = budget_service.apply_batch

    def spy(db: Database, cfg: budget_service.Config, events: list[Any]) -> budget_service.BatchResult:
        delivered.extend(str(e.event_id) for e in events)
        return real_apply(db, cfg, events)

    monkeypatch.setattr(budget_service, "apply_batch", spy)
    second = build(settings)  # same group, same database: a restart
    async with running(second):
        async def redelivered() -> bool:
            return set(delivered) >= event_ids
        await eventually(redelivered, timeout=90, what="every uncommitted event delivered again")
        await asyncio.sleep(0.5)
        with second.state.runtime.db.read() as s:
            assert sorted((r.program_id, r.spent, r.level) for r in s.exec(select(BudgetProgram)).all()) == view
            assert s.exec(select(func.count()).select_from(BudgetAlert)).one() == alerts
            assert s.exec(select(func.count()).select_from(BudgetSnapshot)).one() == history
            assert s.exec(select(func.count()).select_from(BudgetInbox)).one() == len(events)


async def test_an_outage_mid_stream_holds_later_batches_back_and_skips_nothing(kafka, db_url, make_settings,
                                                                            monkeypatch):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url, consumer_batch_size=1)
    app = build(settings)
    rt = app.state.runtime
    topic = settings.topic("execwatch.budget")
    placed: dict[tuple[int, int], str] = {}
    seen = _watch_commits(monkeypatch, rt.db, topic, lambda: placed)
    line = f.budget_line("P-OUT", original=10_000_000)
    snaps = [f.snapshot("P-OUT", date(2025, 2, d), spent=d * 1000) for d in range(1, 9)]
    failing = snaps[2]["event_id"]
    real_apply, real_ping = budget_service.apply_batch, rt.db.ping
    state = {"down": False, "failed": 0}

    def flaky(db: Database, cfg: budget_service.Config, events: list[Any]) -> budget_service.BatchResult:
        if not state["failed"] and any(str(e.event_id) == failing for e in events):
            state["failed"], state["down"] = 1, True  # the database goes away under this batch
            raise OperationalError("UPDATE …", {}, Exception("server closed the connection"))
        return real_apply(db, cfg, events)

    def ping() -> bool:
        if state["down"]:
            state["down"] = False  # back for the next attempt
            return False
        return bool(real_ping())

    monkeypatch.setattr(budget_service, "apply_batch", flaky)
    monkeypatch.setattr(rt.db, "ping", ping)
    async with running(app):
        placed.update(await _produce(kafka.bootstrap, topic, [line, *snaps]))

        async def done() -> bool:
            return len(_inbox_ids(rt.db)) == 9
        await eventually(done, timeout=90, what="every event applied after the outage")
        await asyncio.sleep(0.5)
    assert state["failed"] == 1
    errors = rt.registry.get_sample_value("execwatch_received_processed_messages_total", {
        "app_name": "budget", "broker": "kafka", "handler": topic, "status": "error"})
    assert errors == 1  # counted as a failed handler is (ExecwatchHandlerErrors)
    with rt.db.read() as s:
        assert s.exec(select(BudgetProgram)).one().spent == 8000  # the last snapshot, applied last
        assert sorted(r.spent for r in s.exec(select(BudgetSnapshot)).all()) == [d * 1000 for d in range(1, 9)]
    assert seen and [s for s in seen if s != "ok"] == []
