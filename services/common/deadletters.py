"""What was set aside, by whom, and why: kept in each service's database (the record of truth,
which `execwatch deadletter list|redrive` reads), and published to the dead-letter topic."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from contracts.topics import DEADLETTER
from services.common.db import DEAD_LETTER_TABLES, Database, DeadLetterBase, normalise_url, utcnow
from services.common.settings import SERVICES, ServiceName, Settings


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes

    @property
    def error(self) -> str:
        return self.headers.get("x-error", "")


def read_dead_letters(bootstrap: str, prefix: str = "", limit: int = 100, timeout_ms: int = 3000
                      ) -> list[DeadLetter]:
    """The newest `limit` dead letters per partition, oldest first, without joining a group
    (reading never moves anyone's offsets). Reads each partition up to the end offset it had when
    the read started, then stops (no waiting out an idle timeout); `timeout_ms` without a record
    while short of that end ends the read early.

    The embedded broker reports an end offset per batch, not per message (the last batch's base
    offset + 1): a poll returns whole batches when `max_poll_records` does not cut them, so a
    position at or past that end means the last batch was read whole, there as on Kafka."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=1_000_000)
    try:
        topic = f"{prefix}{DEADLETTER.name}"
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        newest: dict[int, deque[DeadLetter]] = {tp.partition: deque(maxlen=limit) for tp in partitions}
        idle_until = time.monotonic() + timeout_ms / 1000
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < idle_until:
            for records in consumer.poll(timeout_ms=200).values():
                idle_until = time.monotonic() + timeout_ms / 1000
                for record in records:
                    newest[record.partition].append(DeadLetter(
                        record.partition, record.offset, record.key.decode("utf-8", "replace") if record.key else None,
                        {k: v.decode("utf-8", "replace") for k, v in record.headers or []}, record.value or b""))
        return [d for p in sorted(newest) for d in newest[p]]
    finally:
        consumer.close()


# --- what services kept in their databases ---------------------------------------------------------


@dataclass(frozen=True)
class StoredDeadLetter:
    service: str
    id: int
    stage: str
    error: str
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes
    created_at: datetime
    redriven_at: datetime | None

    @property
    def ref(self) -> str:
        """How operators name it: `budget:17`."""
        return f"{self.service}:{self.id}"


def _databases(settings: Settings, services: Sequence[ServiceName]) -> Iterator[tuple[ServiceName, Database]]:
    opened: dict[str, Database] = {}
    try:
        for service in services:
            url = settings.database_url_for(service)
            sqlite_file = make_url(normalise_url(url)).database if url.startswith("sqlite") else None
            if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
                continue  # never ran here: nothing set aside (and no empty file left behind)
            if url not in opened:
                opened[url] = Database(url)
            yield service, opened[url]
    finally:
        for db in opened.values():
            db.dispose()


def _has_table(db: Database, table: type[DeadLetterBase]) -> bool:
    return sa.inspect(db.engine).has_table(str(table.__tablename__))


def stored_dead_letters(settings: Settings, services: Sequence[ServiceName] = SERVICES, limit: int = 50,
                        pending_only: bool = False) -> list[StoredDeadLetter]:
    """The newest `limit` dead letters of each service, oldest first, from the services' own
    databases (a service whose database is not migrated yet has none)."""
    out: list[StoredDeadLetter] = []
    for service, db in _databases(settings, services):
        table = DEAD_LETTER_TABLES[service]
        if not _has_table(db, table):
            continue
        query = select(table).order_by(col(table.id).desc()).limit(limit)
        if pending_only:
            query = query.where(col(table.redriven_at).is_(None))
        with db.read() as s:
            rows = list(s.exec(query).all())
        out += [StoredDeadLetter(service, int(r.id or 0), r.stage, r.error, r.topic, r.partition, r.offset, r.key,
                                 r.value, r.created_at, r.redriven_at) for r in reversed(rows)]
    return out


def parse_ref(ref: str) -> tuple[ServiceName, int]:
    service, _, number = ref.partition(":")
    if service not in SERVICES or not number.isdigit():
        raise ValueError(f"{ref!r}: expected SERVICE:ID, e.g. budget:17")
    return service, int(number)


Publish = Callable[[str, bytes | None, bytes], None]


def redrive(settings: Settings, publish: Publish, refs: Sequence[str] = (), *, everything: bool = False
            ) -> list[StoredDeadLetter]:
    """Publish dead letters again to the topic they came from and mark them redriven: the given
    `SERVICE:ID`s, or with `everything` each one not redriven yet. Consumers are idempotent (event
    ids), so redriving something that was applied meanwhile changes nothing."""
    wanted: dict[str, set[int]] = {}
    for ref in refs:
        service, number = parse_ref(ref)
        wanted.setdefault(service, set()).add(number)
    services = [s for s in SERVICES if everything or s in wanted]
    done: list[StoredDeadLetter] = []
    for service, db in _databases(settings, services):
        table = DEAD_LETTER_TABLES[service]
        if not _has_table(db, table):
            continue
        query = select(table).order_by(col(table.id))
        query = (query.where(col(table.redriven_at).is_(None)) if everything
                 else query.where(col(table.id).in_(sorted(wanted[service]))))
        with db.read() as s:
            rows = list(s.exec(query).all())
        missing = wanted.get(service, set()) - {int(r.id or 0) for r in rows}
        if missing and not everything:
            raise LookupError(f"no dead letter {', '.join(f'{service}:{m}' for m in sorted(missing))}")
        for r in rows:
            publish(r.topic, r.key, r.value)
            with db.unit_of_work() as s:
                s.execute(sa.update(table).where(col(table.id) == r.id).values(redriven_at=utcnow()))
            done.append(StoredDeadLetter(service, int(r.id or 0), r.stage, r.error, r.topic, r.partition, r.offset,
                                         r.key, r.value, r.created_at, utcnow()))
    return done
