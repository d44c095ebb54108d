"""Database runtime: engines for SQLite (embedded default) and PostgreSQL, a unit of work,
Alembic upgrades per service, and the outbox/inbox tables every service builds on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    MessageSizeTooLargeError,
    ProducerClosed,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, Session, SQLModel, col, select

from services.common.logging import get_logger
from services.common.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISHED, dead_lettered
from services.common.worker import Worker

log = get_logger(__name__)


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def redacted(url: str) -> str:
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets the read API query while a batch writes; NORMAL is durable at checkpoints.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A batch of 500 rows dirties a page per row in each index on random ids (ingest's
            # event ids), so the default 1,000-page autocheckpoint ran (and synced) after nearly
            # every commit, and the default 2 MB cache re-read those pages from the OS: 10,000 pages
            # (≈ 40 MB of WAL) and a cache of up to 64 MB took ≈ 13 % of the CPU and a fifth to a half
            # of the wall time off ingest's accept (docs/benchmarks.md, 2026-11-26 evening). Durability
            # is the same.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """One engine per service; `unit_of_work()` is the only way handlers write."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        #: the outbox relays writing from this database (they register themselves), so the
        #: runtime can watch their age and re-publish after a broker lost its data
        self.relays: list[OutboxRelay] = []

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """Commit on success, roll back on any error: a batch is all or nothing."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


# --- migrations ------------------------------------------------------------------------------------

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str, service: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_ROOT / service / "migrations"))
    cfg.attributes["url"] = normalise_url(url)
    cfg.attributes["service"] = service
    return cfg


def upgrade(url: str, service: str) -> None:
    command.upgrade(alembic_config(url, service), "head")


def run_alembic_env(context: Any, metadata: sa.MetaData, service: str) -> None:
    """Shared body of each service's migrations/env.py: own version table, own tables only."""
    cfg = context.config
    url = cfg.attributes.get("url") or normalise_url(cfg.get_main_option("sqlalchemy.url"))
    prefix = f"{service}_"

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        table_name = getattr(table, "name", name) or ""
        return table_name.startswith(prefix)

    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=f"alembic_version_{service}",
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


# --- outbox, inbox and dead letters ---------------------------------------------------------------


class OutboxBase(SQLModel):
    """Events written in the same transaction as the state that caused them, published after
    commit by the relay: a crash between commit and publish delays an event, never loses it.
    A row the broker refuses for good (too large, invalid topic) is marked failed with the
    reason, kept as a dead letter, and skipped: one row never stalls the rows behind it."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36, unique=True)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    value: bytes
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    published_at: datetime | None = Field(default=None, index=True, sa_type=sa.DateTime(timezone=True))
    failed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    error: str | None = Field(default=None, sa_type=sa.Text)


class InboxBase(SQLModel):
    """Event ids already applied: redelivery of the same id changes nothing."""

    event_id: str = Field(max_length=36, primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class DeadLetterBase(SQLModel):
    """What a service set aside (a message it could not use, a row the broker refused) and why,
    kept in the service's own database so a broker restart does not erase it. `ref` says where
    it came from (topic:partition:offset, or outbox:id) and makes recording it twice harmless."""

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=300, unique=True)
    stage: str = Field(max_length=20)
    error: str = Field(sa_type=sa.Text)
    topic: str = Field(max_length=300)
    partition: int | None = None
    offset: int | None = Field(default=None, sa_type=sa.BigInteger)
    key: bytes | None = None
    value: bytes
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=sa.DateTime(timezone=True))
    redriven_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class IngestDeadLetter(DeadLetterBase, table=True):
    __tablename__ = "ingest_deadletter"


class BudgetDeadLetter(DeadLetterBase, table=True):
    __tablename__ = "budget_deadletter"


class ProgramsDeadLetter(DeadLetterBase, table=True):
    __tablename__ = "programs_deadletter"


class NotifyDeadLetter(DeadLetterBase, table=True):
    __tablename__ = "notify_deadletter"


DEAD_LETTER_TABLES: dict[str, type[DeadLetterBase]] = {
    "ingest": IngestDeadLetter, "budget": BudgetDeadLetter, "programs": ProgramsDeadLetter,
    "notify": NotifyDeadLetter,
}


def record_dead_letter(db: Database, table: type[DeadLetterBase], *, ref: str, stage: str, error: str,
                       topic: str, key: bytes | None, value: bytes, partition: int | None = None,
                       offset: int | None = None) -> None:
    """Store one dead letter, once per `ref` (a redelivered poison message is recorded once)."""
    with db.unit_of_work() as s:
        if s.exec(select(table.id).where(table.ref == ref)).first() is not None:
            return
        s.add(table(ref=ref, stage=stage, error=error[:20_000], topic=topic, partition=partition,
                    offset=offset, key=key, value=value))


def seen_event_ids(session: Session, table: type[InboxBase], ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = session.exec(select(table.event_id).where(col(table.event_id).in_(list(ids))))
    return set(rows)


PublishFn = Callable[[str, str, bytes], Awaitable[None]]
Row = tuple[int, str, str, bytes]
#: what the broker or client says about the message itself: retrying cannot help
REFUSALS = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError, TopicAuthorizationFailedError,
            CorruptRecordException)
#: rounds a row may fail with an error that is neither an outage nor a known refusal
ROW_ATTEMPTS = 3


class OutboxRelay(Worker):
    """Publishes unpublished outbox rows in id order, a key's rows one after another (order per
    program), different keys concurrently; marks each row published once the broker confirms it.

    A row that fails for a reason that will not go away (anything but a broker outage) is marked
    failed and dead-lettered with the reason, and the key's later rows go on. A broker outage stops
    the round: what was confirmed is marked, the rest waits for the next round (never sent twice
    because a neighbour failed)."""

    def __init__(self, db: Database, table: type[OutboxBase], publish: PublishFn, batch: int = 500) -> None:
        super().__init__()
        self.db, self.table, self.publish, self.batch = db, table, publish, batch
        self.name = f"outbox relay {table.__tablename__}"
        self.service = str(table.__tablename__).removesuffix("_outbox")
        self.dead_letters = DEAD_LETTER_TABLES.get(self.service)
        #: answers "is the broker reachable?" when a publish fails in a way we do not recognise;
        #: set by the runtime. Without it an unrecognised error counts as the row's fault.
        self.broker_up: Callable[[], Awaitable[bool]] | None = None
        #: checks the broker still holds its data (set by the runtime's broker watch); called
        #: before each flush publishes, so that what was in flight is sent again first
        self.verify_broker: Callable[[], Awaitable[None]] | None = None
        #: after the broker lost its data: re-send what was published in this window (seconds,
        #: at most this many rows), in id order, before anything newer
        self.republish: tuple[float, int] | None = None
        self._attempts: dict[int, int] = {}
        self._lock = asyncio.Lock()
        db.relays.append(self)

    def _unsettled(self) -> Any:
        return sa.and_(col(self.table.published_at).is_(None), col(self.table.failed_at).is_(None))

    def _pending(self) -> list[Row]:
        with self.db.read() as s:
            rows = s.exec(
                select(self.table.id, self.table.topic, self.table.key, self.table.value)
                .where(self._unsettled())
                .order_by(col(self.table.id))
                .limit(self.batch)
            ).all()
        return [(int(r[0] or 0), r[1], r[2], r[3]) for r in rows]

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest row still waiting to be published was committed (0 if none)."""
        with self.db.read() as s:
            oldest = s.exec(select(self.table.created_at).where(self._unsettled())
                            .order_by(col(self.table.id)).limit(1)).first()
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:  # SQLite returns naive datetimes (stored as UTC)
            oldest = oldest.replace(tzinfo=UTC)
        return max(0.0, (utcnow() - oldest).total_seconds())

    def _mark(self, ids: list[int]) -> None:
        with self.db.unit_of_work() as s:
            s.execute(
                sa.update(self.table).where(col(self.table.id).in_(ids)).values(published_at=utcnow())
            )

    def _fail(self, row: Row, error: str) -> None:
        row_id, topic, key, value = row
        with self.db.unit_of_work() as s:
            s.execute(sa.update(self.table).where(col(self.table.id) == row_id)
                      .values(failed_at=utcnow(), error=error[:20_000]))
        if self.dead_letters is not None:
            record_dead_letter(self.db, self.dead_letters, ref=f"{self.table.__tablename__}:{row_id}",
                               stage="relay", error=error, topic=topic, key=key.encode(), value=value)

    async def _is_transient(self, exc: BaseException) -> bool:
        if is_transient(exc):
            return True
        if self.broker_up is None:
            return False
        try:
            return not await self.broker_up()
        except Exception:  # cannot even ask: treat as an outage, the row keeps its place
            return True

    async def _judge(self, row_id: int, exc: Exception) -> str:
        """"outage" (the broker: stop the round), "retry" (maybe the row: stop its key, try again
        next round) or "refused" (the row: set it aside). A row the broker keeps refusing with an
        error we do not know is set aside after ROW_ATTEMPTS rounds, so nothing stalls for ever."""
        if await self._is_transient(exc):
            return "outage"
        if isinstance(exc, REFUSALS):
            return "refused"
        self._attempts[row_id] = attempts = self._attempts.get(row_id, 0) + 1
        return "refused" if attempts >= ROW_ATTEMPTS else "retry"

    async def _send_round(self, rows: list[Row]) -> tuple[list[int], list[tuple[Row, str]], BaseException | None]:
        """Publish one batch: (ids confirmed, rows refused for good with why, the error to retry
        after if any). Each key's rows go in order; a key stops at its first row not confirmed."""
        by_key: dict[str, list[Row]] = {}
        for row in rows:
            by_key.setdefault(row[2], []).append(row)
        done: list[int] = []
        failed: list[tuple[Row, str]] = []
        outage: list[BaseException] = []
        retry: list[BaseException] = []

        async def send_in_order(items: list[Row]) -> None:
            for row in items:
                if outage:
                    return
                try:
                    await self.publish(row[1], row[2], row[3])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    verdict = await self._judge(row[0], exc)
                    if verdict == "refused":
                        failed.append((row, f"{type(exc).__name__}: {exc}"))
                        self._attempts.pop(row[0], None)
                        continue
                    (outage if verdict == "outage" else retry).append(exc)
                    return  # keep this key's order: the rest of it waits for the next round
                self._attempts.pop(row[0], None)
                done.append(row[0])

        await asyncio.gather(*(send_in_order(items) for items in by_key.values()))
        return done, failed, (outage[0] if outage else retry[0] if retry else None)

    async def flush(self) -> int:
        sent = 0
        table = self.table.__tablename__
        async with self._lock:
            verified = False
            while True:
                rows = await asyncio.to_thread(self._pending)
                OUTBOX_PENDING.labels(table=table).set(len(rows))
                OUTBOX_OLDEST_AGE.labels(table=table).set(await asyncio.to_thread(self.oldest_pending_age)
                                                          if rows else 0.0)
                if not rows and self.republish is None:
                    break
                if not verified and self.verify_broker is not None:
                    # Before publishing anything new: does the broker still hold what we sent? If
                    # it lost it, `republish` is set and the old window goes out first, so every
                    # program's events keep their order. (A few milliseconds: one marker read.)
                    try:
                        await self.verify_broker()
                    except Exception as exc:
                        if await self._is_transient(exc):
                            raise  # the broker is away: publish nothing until it is back and checked
                        # The marker cannot be read or written (e.g. no rights on a managed
                        # cluster): never let that hold events back.
                        log.warning("broker marker unavailable; publishing without the check",
                                    table=table, error=f"{type(exc).__name__}: {exc}"[:300])
                    verified = True
                if self.republish is not None:
                    await self._republish_recent(*self.republish)
                    self.republish = None
                    continue
                done, failed, outage = await self._send_round(rows)
                if done:
                    await asyncio.to_thread(self._mark, done)
                    OUTBOX_PUBLISHED.labels(table=table).inc(len(done))
                    sent += len(done)
                for row, error in failed:
                    log.error("outbox row refused by the broker; set aside", table=table, id=row[0],
                              topic=row[1], size=len(row[3]), error=error[:500])
                    await asyncio.to_thread(self._fail, row, error)
                    dead_lettered(self.service, "relay")
                if outage is not None:
                    raise outage
        return sent

    def _recent(self, since: datetime, limit: int) -> list[Row]:
        with self.db.read() as s:
            rows = s.exec(
                select(self.table.id, self.table.topic, self.table.key, self.table.value)
                .where(col(self.table.published_at) >= since)
                .order_by(col(self.table.id).desc())
                .limit(limit)
            ).all()
        return [(int(r[0] or 0), r[1], r[2], r[3]) for r in reversed(rows)]

    async def _republish_recent(self, window_s: float, max_rows: int) -> int:
        """Send again what was published in the last `window_s` seconds (at most `max_rows`, the
        newest), in id order: after a broker lost its data, consumers re-apply what was in flight
        (they are idempotent, so what they had already applied changes nothing)."""
        rows = await asyncio.to_thread(self._recent, utcnow() - timedelta(seconds=window_s), max_rows)
        done, failed, outage = await self._send_round(rows)
        if outage is not None:
            raise outage  # `republish` stays set: the whole window is sent again next round
        log.warning("outbox re-published after the broker lost its data", table=self.table.__tablename__,
                    rows=len(done), refused=len(failed), window_s=window_s,
                    errors=sorted({error[:200] for _, error in failed})[:3])
        return len(done)


def _driver_outages() -> tuple[type[BaseException], ...]:
    """The drivers' own outage classes (PEP 249 OperationalError / InterfaceError), for a driver
    error that reaches us unwrapped (code that works on the DB-API connection directly)."""
    found: list[type[BaseException]] = [sqlite3.OperationalError, sqlite3.InterfaceError]
    with suppress(ImportError):
        import psycopg

        found += [psycopg.OperationalError, psycopg.InterfaceError]
    return tuple(found)


#: outages, as SQLAlchemy or the drivers raise them, and the network's own
_OUTAGES: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError, ConnectionError,
    TimeoutError, *_driver_outages())


def is_transient(exc: BaseException) -> bool:
    """An outage that will pass (database or broker unreachable, timeouts), as opposed to
    something wrong with one event or row, which retrying cannot fix. (The consumer asks the
    database before it believes a database error is an outage: "database is locked" or a
    syntax error on an answering database is the event's, after a few tries.)"""
    if isinstance(exc, _OUTAGES):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or isinstance(
            exc, KafkaTimeoutError | KafkaConnectionError | KafkaUnavailableError | ProducerClosed)
    return False
