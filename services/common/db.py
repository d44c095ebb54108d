"""Database runtime: engines for SQLite (embedded default) and PostgreSQL, a unit of work,
Alembic upgrades per service, and the outbox/inbox tables every service builds on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, Session, SQLModel, col, select

from services.common.logging import get_logger
from services.common.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED
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


# --- outbox and inbox ------------------------------------------------------------------------------


class OutboxBase(SQLModel):
    """Events written in the same transaction as the state that caused them, published after
    commit by the relay: a crash between commit and publish delays an event, never loses it."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36, unique=True)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    value: bytes
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    published_at: datetime | None = Field(default=None, index=True, sa_type=sa.DateTime(timezone=True))


class InboxBase(SQLModel):
    """Event ids already applied: redelivery of the same id changes nothing."""

    event_id: str = Field(max_length=36, primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


def seen_event_ids(session: Session, table: type[InboxBase], ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = session.exec(select(table.event_id).where(col(table.event_id).in_(list(ids))))
    return set(rows)


PublishFn = Callable[[str, str, bytes], Awaitable[None]]


class OutboxRelay(Worker):
    """Publishes unpublished outbox rows in id order, a key's rows one after another (order per
    program), different keys concurrently; marks them published after the broker confirms."""

    def __init__(self, db: Database, table: type[OutboxBase], publish: PublishFn, batch: int = 500) -> None:
        super().__init__()
        self.db, self.table, self.publish, self.batch = db, table, publish, batch
        self.name = f"outbox relay {table.__tablename__}"
        self._lock = asyncio.Lock()

    def _pending(self) -> list[tuple[int, str, str, bytes]]:
        with self.db.read() as s:
            rows = s.exec(
                select(self.table.id, self.table.topic, self.table.key, self.table.value)
                .where(col(self.table.published_at).is_(None))
                .order_by(col(self.table.id))
                .limit(self.batch)
            ).all()
        return [(int(r[0] or 0), r[1], r[2], r[3]) for r in rows]

    def _mark(self, ids: list[int]) -> None:
        with self.db.unit_of_work() as s:
            s.execute(
                sa.update(self.table).where(col(self.table.id).in_(ids)).values(published_at=utcnow())
            )

    async def flush(self) -> int:
        sent = 0
        async with self._lock:
            while True:
                rows = await asyncio.to_thread(self._pending)
                OUTBOX_PENDING.labels(table=self.table.__tablename__).set(len(rows))
                if not rows:
                    break
                by_key: dict[str, list[tuple[int, str, str, bytes]]] = {}
                for row in rows:
                    by_key.setdefault(row[2], []).append(row)

                async def send_in_order(items: list[tuple[int, str, str, bytes]]) -> None:
                    for _, topic, key, value in items:
                        await self.publish(topic, key, value)

                await asyncio.gather(*(send_in_order(items) for items in by_key.values()))
                await asyncio.to_thread(self._mark, [r[0] for r in rows])
                OUTBOX_PUBLISHED.labels(table=self.table.__tablename__).inc(len(rows))
                sent += len(rows)
        return sent
