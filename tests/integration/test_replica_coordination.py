"""What replicas share through the database (PostgreSQL; leadership also on one SQLite file, by
a file lock): leadership with failover, delivery claims with a
lease, and notify's intake taking turns over groups that span programs. Each "replica" here is its
own engine (its own connections), as separate processes would be."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from sqlmodel import col, func, select

from contracts import parse_event
from services.common.db import Database, upgrade
from services.common.embedded import MailSink
from services.common.leader import Leader, LeaderRelay
from services.notify import routing
from services.notify.dispatcher import Dispatcher
from services.notify.render import Renderer
from services.notify.service import ManualClock, Notifier
from services.notify.store import NotifyDelivery, NotifyGroup, NotifyMember, NotifyOutbox
from tests import factories as f
from tests.conftest import _fresh_pg_schema
from tests.service.test_notify_service import MONDAY_10, slip

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return _fresh_pg_schema(pg_database)


def test_one_leader_at_a_time_and_failover_when_it_dies(pg_url, pg_database):
    a, b = Database(pg_url), Database(pg_url)
    other_schema = Database(_fresh_pg_schema(pg_database))
    la, lb = Leader(a, "job"), Leader(b, "job")
    try:
        assert la.holds() and not lb.holds()
        assert la.holds()  # holding is re-checked, not re-acquired
        assert Leader(other_schema, "job").holds()  # another deployment's schema has its own leader
        assert Leader(b, "another job").holds()
        # the leader's connection dies (process killed, network cut): the lock goes with it
        with psycopg.connect(pg_database, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                   "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()").fetchall()
        assert killed
        assert lb.holds()
        assert not la.holds()  # the old leader notices and does not lead again
        lb.release()
        assert la.holds()
    finally:
        for leader in (la, lb):
            leader.release()
        for db in (a, b, other_schema):
            db.dispose()


async def test_relays_of_two_replicas_publish_each_row_once(pg_url):
    await _two_relays(pg_url)


async def test_relays_of_two_processes_on_one_sqlite_file_publish_each_row_once(sqlite_url):
    await _two_relays(sqlite_url)


async def _two_relays(url: str) -> None:
    upgrade(url, "notify")
    a, b = Database(url), Database(url)
    with a.unit_of_work() as s:
        for i in range(50):
            s.add(NotifyOutbox(event_id=f"e{i}", topic="t", key=f"k{i % 5}", value=b"{}"))
    published: list[str] = []

    def publisher(db: Database) -> Callable[[str, str, bytes], Awaitable[None]]:
        async def publish(topic: str, key: str, value: bytes) -> None:
            await asyncio.sleep(0.01)  # the broker takes a while: both relays would see the same rows
            published.append(key)

        return publish

    relays = [LeaderRelay(db, NotifyOutbox, publisher(db)) for db in (a, b)]
    try:
        counts = await asyncio.gather(*(r.flush() for r in relays))
        assert sorted(counts) == [0, 50] and len(published) == 50
        assert count_unpublished(a) == 0
        # the leader steps down (or dies): the other publishes what comes next
        leader, other = (relays[0], relays[1]) if counts[0] else (relays[1], relays[0])
        leader.leader.release()
        with a.unit_of_work() as s:
            s.add(NotifyOutbox(event_id="late", topic="t", key="k", value=b"{}"))
        assert await other.flush() == 1
    finally:
        for r in relays:
            r.leader.release()
        a.dispose()
        b.dispose()


def count_unpublished(db: Database) -> int:
    with db.read() as s:
        return int(s.exec(select(func.count()).select_from(NotifyOutbox)
                          .where(col(NotifyOutbox.published_at).is_(None))).one())


def test_on_sqlite_a_file_lock_makes_one_leader_and_a_killed_one_hands_over(sqlite_url, tmp_path):
    db = Database(sqlite_url)
    la, lb = Leader(db, "job"), Leader(db, "job")
    try:
        assert la.holds() and not lb.holds() and la.holds()
        assert Leader(db, "another job").holds()
        la.release()
        assert lb.holds() and not la.holds()  # released for good: it does not lead again
        lb.release()
        # Another process leads, and is killed: the kernel frees its lock.
        ready = tmp_path / "ready"
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time, pathlib; from services.common.db import Database; "
            "from services.common.leader import Leader; "
            f"leader = Leader(Database({sqlite_url!r}), 'job'); assert leader.holds(); "
            f"pathlib.Path({str(ready)!r}).touch(); "
            "time.sleep(60)")])
        try:
            deadline = time.monotonic() + 30
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.exists()
            mine = Leader(db, "job")
            assert not mine.holds()
            holder.kill()
            holder.wait(10)
            assert mine.holds()
            mine.release()
        finally:
            holder.kill()
    finally:
        db.dispose()


def test_an_in_memory_sqlite_database_has_one_process_and_it_leads():
    db = Database("sqlite://")
    assert Leader(db, "job").holds() and Leader(db, "job").holds()
    db.dispose()


def _world(url: str, make_settings, port: int) -> tuple[Database, Notifier, ManualClock]:
    settings = make_settings(database_url=url, smtp_port=port, notify_escalation_after_s=0)
    clock = ManualClock(MONDAY_10)
    db = Database(url)
    return db, Notifier(db, settings, routing.load(settings), Renderer(), clock), clock


async def test_two_dispatchers_send_every_mail_once(pg_url, make_settings, mail_sink: MailSink):
    upgrade(pg_url, "notify")
    db, notifier, clock = _world(pg_url, make_settings, mail_sink.port)
    pids = [f"P-{i:02d}" for i in range(12)]
    # one 과 per program: a message per person per program, 24 mails
    notifier.apply_batch([parse_event(f.program(p, division=f"과{p}")) for p in pids]
                         + [slip(pid=p, division=f"과{p}") for p in pids])
    clock.advance(seconds=30)
    notifier.tick()
    settings = notifier.settings
    replicas = [Dispatcher(Database(pg_url), settings, notifier.routing, clock, batch=5) for _ in range(2)]
    for i, d in enumerate(replicas):
        d.replica = f"replica-{i}"
    expected = {d.id for d in _emails(db)}
    assert len(expected) == 24

    async def drain(d: Dispatcher) -> int:
        sent = 0
        while n := await d.flush():
            sent += n
        return sent

    sent = await asyncio.gather(*(drain(d) for d in replicas))
    assert sum(sent) == 24
    ids = [m["Message-ID"] for m in mail_sink.messages]
    assert len(ids) == len(set(ids)) == 24
    rows = _emails(db)
    assert {r.outcome for r in rows} == {"sent"} and all(r.attempts == 1 and r.claimed_by is None for r in rows)
    for d in replicas:
        d.db.dispose()
    db.dispose()


async def test_a_dead_replicas_claims_expire_and_another_sends(pg_url, make_settings, mail_sink: MailSink):
    upgrade(pg_url, "notify")
    db, notifier, clock = _world(pg_url, make_settings, mail_sink.port)
    notifier.apply_batch([parse_event(f.program()), slip()])
    clock.advance(seconds=30)
    notifier.tick()
    dead = Dispatcher(db, notifier.settings, notifier.routing, clock)
    claimed = dead._claim(clock(), "dead-replica:round")  # claimed, then the process died
    assert len(claimed) == 2
    alive = Dispatcher(Database(pg_url), notifier.settings, notifier.routing, clock)
    assert await alive.flush() == 0 and mail_sink.messages == []  # the claims hold
    clock.advance(seconds=notifier.settings.notify_claim_lease_s)
    assert await alive.flush() == 2
    assert len(mail_sink.messages) == 2
    alive.db.dispose()
    db.dispose()


def test_intake_replicas_take_turns_over_shared_groups(pg_url, make_settings, mail_sink: MailSink):
    """Programs of one 과 land on different partitions, so on different replicas; their alerts go
    to the same people's groups. Without turns, two replicas create the same group at once."""
    upgrade(pg_url, "notify")
    replicas = [_world(pg_url, make_settings, mail_sink.port) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def consume(notifier: Notifier, pids: list[str]) -> None:
        try:
            start.wait()
            for p in pids:
                notifier.apply_batch([parse_event(f.program(p)), slip(pid=p)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(n, [f"P-{i}-{k}" for k in range(6)]))
               for i, (_, n, _) in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = replicas[0][0]
    with db.read() as s:
        groups = s.exec(select(NotifyGroup.receiver, func.count()).group_by(col(NotifyGroup.receiver))).all()
        members = s.exec(select(func.count()).select_from(NotifyMember)).one()
    assert sorted(n for _, n in groups) == [1, 1]  # 담당 and 팀장 of 경제정책과, one group each
    assert members == 24
    for d, _, _ in replicas:
        d.dispose()


def _emails(db: Database) -> list[NotifyDelivery]:
    with db.read() as s:
        return list(s.exec(select(NotifyDelivery).where(NotifyDelivery.channel == "email")).all())

