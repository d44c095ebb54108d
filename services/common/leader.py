"""Coordination of replicas through the database, for work Kafka's partitions do not spread.

Consumed events are spread by partitions: each replica of a service applies its own. What is
driven by the clock (notify's scheduler, programs' daily checks) or by a table (outbox relays)
would be done once per replica, so it is coordinated here:

- `Leader`: one replica at a time runs a job. On PostgreSQL the leader holds a session advisory
  lock (`pg_try_advisory_lock`) on a connection of its own; when its process dies the connection
  closes and the lock is free, so another replica takes over at its next round (failover within
  one interval). A leader that loses its connection notices before its next round and steps down.
- `serialize`: a transaction advisory lock (`pg_advisory_xact_lock`) so that transactions of
  different replicas that read and then write shared rows (notify's groups) take turns.
- `exclusive`: the same lock for a block outside any transaction (migrations at start-up).
- `LeaderRelay`: an outbox relay that publishes only on the leader, so a row is not published
  once per replica (and a program's events stay in order).

Leadership is an economy, not the guard of correctness: the jobs it gates are idempotent and
serialized, so two leaders for a moment (a connection dropped by the server while a round runs)
repeat work, never results.

Locks are named per database schema, so deployments sharing one database in separate schemas do
not block each other.

SQLite (the single-machine default) has no advisory locks: a `Leader` holds a file lock beside
the database file instead (`flock`, released by the kernel when the process dies), so processes
sharing one file on one machine lead one at a time too; `serialize` does nothing there, so the
services that rely on it (programs, notify) run one process each on SQLite. Budget may run more
(its batches check under SQLite's write lock what they read, see services.budget.service).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from services.common.db import Database, OutboxBase, OutboxRelay, PublishFn, normalise_url
from services.common.logging import get_logger
from services.common.worker import every

log = get_logger(__name__)

#: The lock's 64-bit key: the schema and the job's name, hashed by PostgreSQL itself (stable
#: across processes and versions, unlike Python's hash()).
_KEY = "hashtextextended(current_schema() || ':' || :name, 0)"


def is_postgres(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


def serialize(session: Session, name: str) -> None:
    """Wait for the named lock, held until this transaction ends (PostgreSQL); a no-op on SQLite,
    where one process per service and its own lock do the same."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.connection().execute(sa.text(f"SELECT pg_advisory_xact_lock({_KEY})"), {"name": name})


@contextlib.contextmanager
def exclusive(db: Database, name: str) -> Iterator[None]:
    """Hold the named lock for the block, waiting for it: e.g. replicas starting together migrate
    one after another, and the later ones find nothing to do. PostgreSQL: an advisory lock. SQLite:
    a file lock beside the database file (processes sharing one file, such as ingest and its relay
    process, started together: both migrating at once made one fail, "index … already exists")."""
    if not is_postgres(db):
        lock_path = _lock_path(db, name)
        if lock_path is None:
            yield
            return
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits; released when the file closes, or the process dies
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    engine = sa.create_engine(normalise_url(db.url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT pg_advisory_lock({_KEY})"), {"name": name})
            try:
                yield
            finally:
                conn.execute(sa.text(f"SELECT pg_advisory_unlock({_KEY})"), {"name": name})
    finally:
        engine.dispose()


def _lock_path(db: Database, name: str) -> str | None:
    """The file beside a SQLite database that stands for the named lock (None: in memory)."""
    path = make_url(normalise_url(db.url)).database
    if not path or path == ":memory:":
        return None
    return f"{path}.{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"


class Leader:
    """Whether this replica leads the job `name`; `holds()` acquires when it can (blocking I/O on
    PostgreSQL: call it from a thread)."""

    def __init__(self, db: Database, name: str) -> None:
        self.name = name
        self._postgres = is_postgres(db)
        # A connection of its own, not from the pool: the lock lives as long as this connection,
        # and autocommit, so it never sits idle in a transaction.
        self._engine = (sa.create_engine(normalise_url(db.url), poolclass=NullPool,
                                         isolation_level="AUTOCOMMIT") if self._postgres else None)
        self._conn: sa.Connection | None = None
        self._lock_path = None if self._postgres else _lock_path(db, name)
        self._lock_file: IO[bytes] | None = None
        self._mutex = threading.Lock()
        self._stopped = False

    @property
    def coordinated(self) -> bool:
        """Whether asking takes a round trip to the database (PostgreSQL); on SQLite it is a
        non-blocking file lock (or, in memory, one process that always leads)."""
        return self._engine is not None

    def holds(self) -> bool:
        if self._engine is None:
            return self._holds_file()
        with self._mutex:
            if self._stopped:  # shutting down: a late caller (a batch's flush) must not lead again
                return False
            if self._conn is not None:
                try:
                    self._conn.execute(sa.text("SELECT 1"))  # the session is alive: the lock is ours
                    return True
                except sa.exc.DBAPIError as exc:
                    log.warning("lost leadership: connection to the database broke", job=self.name,
                                error=f"{type(exc).__name__}: {exc}"[:300])
                    self._close()
            conn = self._engine.connect()
            try:
                won = bool(conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_KEY})"), {"name": self.name}).scalar())
            except BaseException:
                conn.close()
                raise
            if not won:
                conn.close()
                return False
            self._conn = conn
            log.info("leading", job=self.name)
            return True

    def _holds_file(self) -> bool:
        if self._lock_path is None:
            return True
        with self._mutex:
            if self._stopped:
                return False
            if self._lock_file is not None:
                return True
            lock = open(self._lock_path, "a+b")  # noqa: SIM115 - held open while leading
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                return False
            self._lock_file = lock
            log.info("leading", job=self.name)
            return True

    def release(self, *, for_good: bool = True) -> None:
        """Step down (closing the connection, or the lock file, frees the lock): another replica
        leads at its next round. `for_good` (shutdown): this one never leads again."""
        with self._mutex:
            self._stopped = for_good
            if self._conn is not None or self._lock_file is not None:
                log.info("stepping down", job=self.name)
            self._close()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
        if self._engine is not None and for_good:
            self._engine.dispose()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()
            self._conn = None

    async def run(self, interval: float, job: Callable[[], Awaitable[object]], what: str) -> None:
        """Every `interval` seconds, run `job` if this replica leads; step down when cancelled."""

        async def round_if_leading() -> None:
            if await asyncio.to_thread(self.holds):
                await job()

        try:
            await every(interval, round_if_leading, what)
        finally:
            await asyncio.to_thread(self.release)


class LeaderRelay(OutboxRelay):
    """An outbox relay that publishes only while this replica leads `relay:<table>`.

    The other replicas' relays stay idle (their `flush()` after a commit returns 0); the leader
    polls, so a row committed by another replica goes out within the relay interval."""

    def __init__(self, db: Database, table: type[OutboxBase], publish: PublishFn, batch: int = 500) -> None:
        super().__init__(db, table, publish, batch)
        self.leader = Leader(db, f"relay:{table.__tablename__}")

    async def flush(self) -> int:
        # On SQLite a file lock, asked without a thread hop on the path from a commit to its publish.
        if not (await asyncio.to_thread(self.leader.holds) if self.leader.coordinated else self.leader.holds()):
            return 0
        return await super().flush()

    async def run(self, interval: float, max_backoff: float = 30.0) -> None:
        try:
            await super().run(interval, max_backoff)
        finally:
            await asyncio.to_thread(self.leader.release)
