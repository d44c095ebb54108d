"""Database runtime: engines for SQLite (embedded default) and PostgreSQL, a unit of work,
Alembic upgrades per service, and the outbox/inbox tables every service builds on."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
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

from services.common import bulk
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
            # every commit: 10,000 pages (≈ 40 MB of WAL) instead. Durability is the same. The page
            # cache stays SQLite's default (2 MB per connection): a 64 MB cache showed no difference
            # beyond the noise on ingest's accept (100,000 events, alternating runs) and let each
            # pooled connection grow towards 64 MB as the file grew (docs/benchmarks.md, budget replay).
            cur.execute("PRAGMA wal_autocheckpoint=10000")
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
    # Not indexed: the rows still to publish are found by `pending_index` (each outbox table lists
    # it in its `__table_args__`), so marking a row published maintains one index fewer.
    published_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    failed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    error: str | None = Field(default=None, sa_type=sa.Text)


#: the rows the relay has still to settle, as `pending_index` and the relay's statements say it
PENDING = "published_at IS NULL AND failed_at IS NULL"


def pending_index(table: str) -> sa.Index:
    """A partial index of the outbox rows not yet published nor failed, on id: what the relay reads
    in id order. It replaced an index of `published_at` whose every entry the relay's mark
    rewrote: marking a round of 500 rows now removes them from this small index instead of
    inserting 500 entries into one as large as the table, and the reads no longer walk the
    published rows' entries (measured on PostgreSQL in docs/benchmarks.md, 2026-11-26 late)."""
    where = sa.text(PENDING)
    return sa.Index(f"ix_{table}_pending", "id", postgresql_where=where, sqlite_where=where)


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
#: (id, topic, key, value, event_id) of one outbox row
Row = tuple[int, str, str, bytes, str]
#: what the broker or client says about the message itself: retrying cannot help
REFUSALS = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError, TopicAuthorizationFailedError,
            CorruptRecordException)
#: rounds a row may fail with an error that is neither an outage nor a known refusal
ROW_ATTEMPTS = 3


@runtime_checkable
class DirectPublish(Protocol):
    """A publish function that also hands out the Kafka producer it publishes with (the runtime's
    `publish_raw`). The relay then appends a whole round to the producer's batches itself instead
    of going through FastStream's `publish` per record (its middlewares, metrics and command
    objects were most of the relay's time). `producer()` is None while there is no real producer
    (not connected yet, or FastStream's test broker): the relay then publishes row by row."""

    def __call__(self, topic: str, key: str, value: bytes) -> Awaitable[None]: ...

    def producer(self) -> AIOKafkaProducer | None: ...


def record_headers(event_id: str) -> list[tuple[str, bytes]]:
    """The headers FastStream's `publish` puts on a record of bytes (what FastStream consumers
    parse: no content type, a correlation id), the correlation id being the event id here so a
    record can be traced to its outbox row."""
    return [("content-type", b""), ("correlation_id", event_id.encode())]


class OutboxRelay(Worker):
    """Publishes unpublished outbox rows in id order and marks each row published once the broker
    confirms it. A key's rows (one program's events) go to one partition in id order.

    With a `DirectPublish` (the runtime's), a round's rows are handed to the aiokafka producer in
    waves, each key's next row after its previous one was confirmed (`_send_direct`); otherwise
    (FastStream's test broker, notify's dead-letter publisher) a key's rows are published one after
    another and different keys concurrently (`_send_round`). Either way a key's row goes out only
    after its previous row was confirmed.

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
        #: checks the broker still holds its data (set by the runtime's broker watch), accepting a
        #: successful check at most this many seconds old; called before a flush publishes, so
        #: that what was in flight is sent again first
        self.verify_broker: Callable[[float], Awaitable[None]] | None = None
        #: how old a successful marker check may be for a flush to rely on it (set by the runtime
        #: from `relay_marker_max_age_s`); after a flush that failed the next one checks afresh
        self.verify_max_age = 0.0
        self._must_verify = False
        self._unverifiable_until = 0.0
        self._checked_connections: tuple[object, ...] | None = None
        #: after the broker lost its data: re-send what was published in this window (seconds,
        #: at most this many rows), in id order, before anything newer
        self.republish: tuple[float, int] | None = None
        self._attempts: dict[int, int] = {}
        self._lock = asyncio.Lock()
        self._sql: dict[str, tuple[str, str, str]] = {}
        db.relays.append(self)

    def _unsettled(self) -> Any:
        return sa.text(PENDING)

    def _statements(self, dialect: sa.Dialect) -> tuple[str, str, str]:
        """The pending rows' SELECT and the UPDATE marking rows published, by DB-API (the ORM's
        per-row processing cost more than the database's own work)."""
        if dialect.name not in self._sql:
            quote = dialect.identifier_preparer.quote
            name = quote(str(self.table.__tablename__))
            ph = "%s" if dialect.name == "postgresql" else "?"
            select_sql = (f"SELECT id, topic, {quote('key')}, value, event_id, created_at FROM {name}"
                          f" WHERE {PENDING} ORDER BY id LIMIT {int(self.batch)}")
            # The rows after a round's last id: a range of the primary key, not another walk
            # through every unpublished (and not yet vacuumed) entry of the published_at index.
            after_sql = (f"SELECT id, topic, {quote('key')}, value, event_id, created_at FROM {name}"
                         f" WHERE id > {ph} AND {PENDING}"
                         f" ORDER BY id LIMIT {int(self.batch)}")
            # One statement for the round's ids: an array on PostgreSQL, a JSON list on SQLite
            # (json_each is built into SQLite since 3.38), instead of an IN of hundreds of placeholders.
            mark_sql = (f"UPDATE {name} SET published_at = %s WHERE id = ANY(%s)" if dialect.name == "postgresql"
                        else f"UPDATE {name} SET published_at = ? WHERE id IN (SELECT value FROM json_each(?))")
            self._sql[dialect.name] = (select_sql, after_sql, mark_sql)
        return self._sql[dialect.name]

    def _column(self, name: str) -> sa.Column[Any]:
        column: sa.Column[Any] = self.table.__table__.c[name]  # type: ignore[attr-defined]
        return column

    def _pending(self, after: int | None = None) -> tuple[list[Row], datetime | None]:
        """Up to `batch` unsettled rows in id order (after the id `after`, if given), and when the
        first of them was committed (the oldest pending row, when `after` is None)."""
        with self.db.read() as s:
            conn = s.connection()
            sql = self._statements(conn.dialect)[0 if after is None else 1]

            def fetch(cur: Any) -> list[Any]:
                cur.execute(sql, [] if after is None else [after])
                found: list[Any] = cur.fetchall()
                return found
            raw = bulk.run(conn, sql, fetch)
            oldest: datetime | None = None
            if raw:
                created = self._column("created_at").type._cached_result_processor(conn.dialect, None)
                oldest = created(raw[0][5]) if created is not None else raw[0][5]
        rows = [(int(r[0]), r[1], r[2], r[3] if isinstance(r[3], bytes) else bytes(r[3]), r[4]) for r in raw]
        return rows, oldest

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest row still waiting to be published was committed (0 if none)."""
        with self.db.read() as s:
            oldest = s.exec(select(self.table.created_at).where(self._unsettled())
                            .order_by(col(self.table.id)).limit(1)).first()
        return _age(oldest)

    def _mark(self, ids: list[int]) -> None:
        with self.db.unit_of_work() as s:
            conn = s.connection()
            sql = self._statements(conn.dialect)[2]
            stamp = self._column("published_at").type._cached_bind_processor(conn.dialect)
            now: Any = utcnow() if stamp is None else stamp(utcnow())
            listed: Any = ids if conn.dialect.name == "postgresql" else json.dumps(ids)
            bulk.run(conn, sql, lambda cur: cur.execute(sql, [now, listed]))

    def _fail(self, row: Row, error: str) -> None:
        row_id, topic, key, value, _ = row
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

    async def _judge(self, row_id: int, exc: Exception, asked: dict[tuple[type, str], bool] | None = None) -> str:
        """"outage" (the broker: stop the round), "retry" (maybe the row: stop its key, try again
        next round) or "refused" (the row: set it aside). A row the broker keeps refusing with an
        error we do not know is set aside after ROW_ATTEMPTS rounds, so nothing stalls for ever.
        `asked` keeps what the broker said about an error within a round (a failed batch fails
        all its rows with the same error: one question, not one per row)."""
        memo = (type(exc), str(exc))
        if asked is not None and memo in asked:
            transient = asked[memo]
        else:
            transient = await self._is_transient(exc)
            if asked is not None:
                asked[memo] = transient
        if transient:
            return "outage"
        if isinstance(exc, REFUSALS):
            return "refused"
        self._attempts[row_id] = attempts = self._attempts.get(row_id, 0) + 1
        return "refused" if attempts >= ROW_ATTEMPTS else "retry"

    async def _send(self, rows: list[Row]) -> tuple[list[int], list[tuple[Row, str]], BaseException | None]:
        producer = self._producer()
        if producer is None:
            return await self._send_round(rows)
        return await self._send_direct(producer, rows)

    async def _send_direct(self, producer: AIOKafkaProducer, rows: list[Row]
                           ) -> tuple[list[int], list[tuple[Row, str]], BaseException | None]:
        """Publish one batch through the producer, in waves: the first row of every key, then the
        second row of every key still going, and so on. A wave's rows are handed over in id order
        (`send` only appends a record to its partition's batch, keyed as FastStream keys it, so the
        default partitioner puts a program where it always did) and confirmed together: one
        round trip for hundreds of rows when a round spans many programs, as ingest's do.

        Waiting for a wave before the next keeps what `_send_round` promises: a key's row goes
        out only after its previous row was confirmed, so a failed row (which the broker may
        refuse while accepting a later batch of the same partition) never ends up behind its
        key's later rows. A refused row is set aside and its key goes on; a row to retry stops
        its key; an outage stops the round (nothing more is handed over)."""
        waves: list[list[Row]] = []
        seen: dict[str, int] = {}
        for row in rows:
            depth = seen.get(row[2], 0)
            seen[row[2]] = depth + 1
            if depth == len(waves):
                waves.append([])
            waves[depth].append(row)
        done: list[int] = []
        failed: list[tuple[Row, str]] = []
        outage: BaseException | None = None
        retry: BaseException | None = None
        stopped: set[str] = set()  # keys whose row is to be retried: the rest of the key waits
        asked: dict[tuple[type, str], bool] = {}
        for wave in waves:
            handed: list[tuple[Row, asyncio.Future[Any]]] = []
            said: list[tuple[Row, Exception]] = []
            for row in wave:
                if row[2] in stopped:
                    continue
                try:
                    future = await producer.send(row[1], row[3], key=row[2].encode(),
                                                 headers=record_headers(row[4]))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if is_transient(exc):  # the client cannot reach the broker: hand over no more
                        outage = exc
                        break
                    said.append((row, exc))  # refused before sending (e.g. over the request limit)
                    continue
                handed.append((row, future))
            results = await asyncio.gather(*(future for _, future in handed), return_exceptions=True)
            outcomes: list[tuple[Row, BaseException | None]] = [
                (row, result if isinstance(result, BaseException) else None)
                for (row, _), result in zip(handed, results, strict=True)]
            for row, error in [*outcomes, *said]:
                if error is None:
                    self._attempts.pop(row[0], None)
                    done.append(row[0])
                    continue
                if not isinstance(error, Exception):
                    raise error
                verdict = await self._judge(row[0], error, asked)
                if verdict == "refused":
                    failed.append((row, f"{type(error).__name__}: {error}"))
                    self._attempts.pop(row[0], None)
                    continue
                stopped.add(row[2])
                if verdict == "outage":
                    outage = outage or error
                else:
                    retry = retry or error
            if outage is not None:
                break
        return done, failed, (outage if outage is not None else retry)

    async def _send_round(self, rows: list[Row]) -> tuple[list[int], list[tuple[Row, str]], BaseException | None]:
        """Publish one batch row by row: (ids confirmed, rows refused for good with why, the error
        to retry after if any). Each key's rows go in order; a key stops at its first row not
        confirmed."""
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

    def _producer(self) -> AIOKafkaProducer | None:
        return self.publish.producer() if isinstance(self.publish, DirectPublish) else None

    async def _verify(self, table: str) -> None:
        """Before publishing anything new: does the broker still hold what we sent? If it lost it,
        `republish` is set and the old window goes out first, so every program's events keep their
        order. Reading the marker starts a consumer (milliseconds), too much for every flush, so a
        successful check at most `verify_max_age` old counts, as long as the producer still talks
        to the broker over the connections it had then (a broker that restarted closed them, and
        records handed to a producer reconnecting would land in the new broker before the window)
        and no flush failed since."""
        if self.verify_broker is None or time.monotonic() < self._unverifiable_until:
            return
        producer = self._producer()
        max_age = self.verify_max_age if self._connections_intact() and not self._must_verify else 0.0
        try:
            await self.verify_broker(max_age)
            self._must_verify = False
            self._checked_connections = _open_connections(producer) if producer is not None else None
        except Exception as exc:
            if await self._is_transient(exc):
                raise  # the broker is away: publish nothing until it is back and checked
            # The marker cannot be read or written (e.g. no rights on a managed cluster): never let
            # that hold events back (asked again after `verify_max_age`).
            self._unverifiable_until = time.monotonic() + self.verify_max_age
            log.warning("broker marker unavailable; publishing without the check",
                        table=table, error=f"{type(exc).__name__}: {exc}"[:300])

    def _connections_intact(self) -> bool:
        """Whether every connection the producer had at the last marker check (or opened by the
        flushes since, which went well) is still open: a broker that restarted closed them."""
        return self._checked_connections is not None and all(
            getattr(conn, "connected", lambda: False)() for conn in self._checked_connections)

    async def flush(self) -> int:
        async with self._lock:
            try:
                sent = await self._flush()
            except BaseException:
                # Whatever failed (the broker, the database, a cancel mid-round), the next flush
                # reads the marker afresh before it publishes.
                self._must_verify = True
                raise
            producer = self._producer()
            if producer is not None and self._checked_connections is not None:
                if self._connections_intact():
                    # Connections opened during this flush (to a partition's leader, say) are
                    # watched from now on too: the next flush relies on them as on the others.
                    self._checked_connections = _open_connections(producer)
                else:
                    self._must_verify = True  # a connection broke during the flush
            return sent

    async def _flush(self) -> int:
        """Rounds of `batch` rows until nothing is pending. While a round is being sent, the next
        one is read (rows after this round's last id: a row committed late under a lower id is
        found by the next flush, which its commit wakes) and the rounds confirmed before it are
        marked (`_Marks`), so the database's time hides behind the broker's. A round is sent only
        once the previous one was confirmed (or judged), so an outage still stops everything after
        it."""
        table = str(self.table.__tablename__)
        verified = False
        marks = _Marks(self._mark, OUTBOX_PUBLISHED.labels(table=table).inc, limit=MARKS_BEHIND * self.batch)
        ahead: asyncio.Task[tuple[list[Row], datetime | None]] | None = None
        try:
            rows, oldest = await asyncio.to_thread(self._pending, None)
            while True:
                OUTBOX_PENDING.labels(table=table).set(len(rows))
                OUTBOX_OLDEST_AGE.labels(table=table).set(_age(oldest))
                if not rows and self.republish is None:
                    break
                if not verified:
                    await self._verify(table)
                    verified = True
                if self.republish is not None:
                    await marks.drain()  # the window must include what was just confirmed
                    await self._republish_recent(*self.republish)
                    self.republish = None
                    rows, oldest = await asyncio.to_thread(self._pending, None)
                    continue
                if len(rows) == self.batch:
                    ahead = asyncio.create_task(asyncio.to_thread(self._pending, rows[-1][0]))
                done, failed, outage = await self._send(rows)
                await marks.add(done)
                for row, error in failed:
                    log.error("outbox row refused by the broker; set aside", table=table, id=row[0],
                              topic=row[1], size=len(row[3]), error=error[:500])
                    await asyncio.to_thread(self._fail, row, error)
                    dead_lettered(self.service, "relay")
                if outage is not None:
                    raise outage
                if ahead is None:
                    if self.republish is None:
                        # Everything pending was settled: a row committed since then woke the
                        # relay again (or the next interval's poll finds it), no need to ask now.
                        OUTBOX_PENDING.labels(table=table).set(0)
                        OUTBOX_OLDEST_AGE.labels(table=table).set(0.0)
                        break
                    rows, oldest = await asyncio.to_thread(self._pending, None)
                    continue
                rows, oldest = await ahead
                ahead = None
        finally:
            # What the broker confirmed is marked even when the round ends in an outage (never
            # sent twice because a neighbour failed); a read ahead is let finish and dropped.
            if ahead is not None:
                await asyncio.gather(ahead, return_exceptions=True)
            await marks.drain()
        return marks.marked

    def _recent(self, since: datetime, limit: int) -> list[Row]:
        # No index of published_at (it made every mark costlier): the newest ids are walked back
        # until `limit` rows of the window are found, the whole table if the window holds fewer.
        # This runs only after the broker lost its data.
        with self.db.read() as s:
            rows = s.execute(
                sa.select(col(self.table.id), col(self.table.topic), col(self.table.key), col(self.table.value),
                          col(self.table.event_id))
                .where(col(self.table.published_at) >= since)
                .order_by(col(self.table.id).desc())
                .limit(limit)
            ).all()
        return [(int(r[0] or 0), r[1], r[2], r[3], r[4]) for r in reversed(rows)]

    async def _republish_recent(self, window_s: float, max_rows: int) -> int:
        """Send again what was published in the last `window_s` seconds (at most `max_rows`, the
        newest), in id order: after a broker lost its data, consumers re-apply what was in flight
        (they are idempotent, so what they had already applied changes nothing)."""
        rows = await asyncio.to_thread(self._recent, utcnow() - timedelta(seconds=window_s), max_rows)
        done, failed, outage = await self._send(rows)
        if outage is not None:
            raise outage  # `republish` stays set: the whole window is sent again next round
        log.warning("outbox re-published after the broker lost its data", table=self.table.__tablename__,
                    rows=len(done), refused=len(failed), window_s=window_s,
                    errors=sorted({error[:200] for _, error in failed})[:3])
        return len(done)


#: rounds' worth of confirmed ids that may wait for their mark before the sends wait for it
MARKS_BEHIND = 4


class _Marks:
    """Marks confirmed rows published behind the sends, one statement at a time, in the order the
    rows were confirmed; each statement takes every id confirmed while the previous one ran. A
    database slower than the broker then marks more rows per statement (one index walk, one
    commit) instead of holding each round until the previous round's mark committed, which kept
    the relay at the pace of PostgreSQL's mark (docs/benchmarks.md, 2026-11-26 late).

    What the guarantees rest on: a row is handed here only after the broker confirmed it; the
    statements run one after another in confirmation order, so the rows confirmed and not (yet)
    marked are always the last ones confirmed, whatever fails: a failed mark ends the marking,
    its error is raised to the flush (by `add` or `drain`), and those rows stay pending, to be
    published again, in id order, by a later flush (at-least-once, as after a crash between a
    confirmation and its mark). At most `limit` ids wait beside the statement running: past
    that, `add` waits for the marks to catch up."""

    def __init__(self, mark: Callable[[list[int]], None], counted: Callable[[int], object], limit: int) -> None:
        self._mark, self._counted, self._limit = mark, counted, limit
        self._waiting: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self.marked = 0

    async def _run(self) -> None:
        while self._waiting:
            ids, self._waiting = self._waiting, []
            await asyncio.to_thread(self._mark, ids)
            self._counted(len(ids))
            self.marked += len(ids)

    async def add(self, ids: list[int]) -> None:
        """Queue confirmed ids for a mark; raises what a previous mark raised."""
        if self._task is not None and self._task.done():
            await self.drain()  # a finished task: its error, if any, is raised here
        if not ids:
            return
        self._waiting.extend(ids)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        elif len(self._waiting) > self._limit:
            await self.drain()

    async def drain(self) -> None:
        """Wait until every id queued is marked (or a mark failed: raised, the rest dropped: they
        stay pending in the table)."""
        task = self._task
        if task is None:
            return
        try:
            await task
        finally:
            self._task = None
            if task.done() and not task.cancelled() and task.exception() is not None:
                self._waiting = []


def _open_connections(producer: AIOKafkaProducer) -> tuple[object, ...]:
    """The producer's open connections to the brokers, the objects themselves (compared by
    identity: a reconnection makes new ones). aiokafka keeps them in its client's `_conns`; if a
    version stops doing so the tuple is empty and only `verify_max_age` bounds the check's age."""
    conns = getattr(getattr(producer, "client", None), "_conns", None)
    if not isinstance(conns, dict):
        return ()
    return tuple(conn for conn in conns.values() if conn.connected())


def _age(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite returns naive datetimes (stored as UTC)
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - oldest).total_seconds())


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
