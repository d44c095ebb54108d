"""SIGKILL in the middle of consuming: the budget service, as its own process, is killed with
batches committed and more in flight; a new process picks up from the committed offsets. The
view is what an uninterrupted run gives, nothing is lost and nothing is counted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

from kafka import KafkaProducer
from sqlmodel import func, select

from services.budget.store import BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.db import Database
from services.common.embedded import free_port
from services.common.messaging import ensure_topics
from tests import factories as f

PROGRAMS, DAYS = 40, 25


def _env(kafka, settings, db_url: str) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": db_url,
            "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix, "EXECWATCH_BUDGET_PORT": str(free_port()),
            "EXECWATCH_CONSUMER_BATCH_SIZE": "40", "EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS": "2000",
            "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_DEMO": "true"}  # demo credentials accepted


def _count(db: Database) -> int:
    with db.read() as s:
        return int(s.exec(select(func.count()).select_from(BudgetInbox)).one())


def _wait(db: Database, done, timeout: float = 120.0) -> int:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        try:
            n = _count(db)
        except Exception:  # tables not migrated yet
            n = 0
        if done(n):
            return n
        time.sleep(0.05)
    raise AssertionError(f"timed out at {n} applied events")


def test_sigkill_mid_stream_loses_and_doubles_nothing(kafka, make_settings, tmp_path):
    settings = make_settings()
    db_url = f"sqlite:///{tmp_path}/budget.db"
    ensure_topics(kafka.bootstrap, settings.topic_prefix)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    topic = settings.topic("execwatch.budget")
    events = [f.budget_line(f"P{p:02d}", original=1_000_000_000) for p in range(PROGRAMS)]
    for d in range(DAYS):
        for p in range(PROGRAMS):
            events.append(f.snapshot(f"P{p:02d}", date(2025, 2, 1) + timedelta(days=d), spent=(d + 1) * 1000 + p,
                                     committed=(d + 1) * 2000))
    for e in events:
        producer.send(topic, json.dumps(e).encode(), key=e["key"].encode())
    producer.flush()
    producer.close()

    env = _env(kafka, settings, db_url)
    db = Database(db_url)
    first = subprocess.Popen([sys.executable, "-m", "services.budget"], env=env)
    try:
        applied = _wait(db, lambda n: n >= 200)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = _count(db)
        assert applied <= killed_at < len(events), "the kill must land mid-stream"
    finally:
        if first.poll() is None:
            first.kill()

    second = subprocess.Popen([sys.executable, "-m", "services.budget"], env={**env, "EXECWATCH_BUDGET_PORT":
                                                                             str(free_port())})
    try:
        _wait(db, lambda n: n >= len(events))
        time.sleep(1.0)  # anything redelivered after the last commit would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)

    with db.read() as s:
        assert _count(db) == len(events)  # every event applied once (the inbox key is the event id)
        rows = {r.program_id: r for r in s.exec(select(BudgetProgram)).all()}
        assert len(rows) == PROGRAMS
        last = date(2025, 2, 1) + timedelta(days=DAYS - 1)
        for p in range(PROGRAMS):
            r = rows[f"P{p:02d}"]
            assert (r.as_of, r.spent, r.committed) == (last, DAYS * 1000 + p, DAYS * 2000)
        per_program = s.exec(select(BudgetSnapshot.program_id, func.count())
                             .group_by(BudgetSnapshot.program_id)).all()
        assert {pid: n for pid, n in per_program} == {f"P{p:02d}": DAYS for p in range(PROGRAMS)}
    db.dispose()
