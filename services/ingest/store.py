"""Ingest's outbox: every accepted event is committed here before the caller hears 202.

Event ids are scoped by the publishing system: (`source`, `source_event_id`) is what a sender
resends, `content_hash` tells a resend from another event under the same id, and `event_id` is
the id the event is published under (the sender's own, unless another system already published
under it: see `service.accept`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Field, Session, col, select

from services.common import bulk
from services.common.db import PENDING, OutboxBase, pending_index

#: The rows published under an id other than the one their source sent (another system had
#: published under it first: `service.accept`); a few, next to the rows published as sent.
SCOPED = "source_event_id <> event_id"


class IngestOutbox(OutboxBase, table=True):
    """One row per (source, source event id). For the rows published as sent (nearly all) the
    unique `event_id` says so already; only the scoped rows need an index of the pair, so each
    new row updates one index keyed by a random id instead of two (on SQLite, whose work runs in
    the accepting process, the second one cost ≈ 5 % of its instructions per event and half of
    the pages each commit writes: docs/benchmarks.md, "ingest CPU per event"). The pair cannot
    be stored once as sent and once scoped: an event is scoped only when its id is published
    already, and rows are never deleted, so the same pair sent as it is would meet either its
    own row (a duplicate) or the unique `event_id`."""

    __tablename__ = "ingest_outbox"
    __table_args__ = (sa.Index("uq_ingest_outbox_scoped_source_event", "source", "source_event_id", unique=True,
                               sqlite_where=sa.text(SCOPED), postgresql_where=sa.text(SCOPED)),
                      pending_index("ingest_outbox"))

    source: str = ""
    source_event_id: str = Field(default="", max_length=36, description="the event_id as its source sent it")
    content_hash: str = Field(default="", max_length=64, description="sha256 of the event's canonical JSON")


class Stored(NamedTuple):
    """What the outbox holds for one (source, event id)."""

    event_id: str
    content_hash: str


#: The columns `insert` writes, in the order of its rows.
INSERT_COLUMNS = ("event_id", "topic", "key", "value", "created_at", "source", "source_event_id", "content_hash")
NewRow = tuple[str, str, str, bytes, datetime, str, str, str]


def known(session: Session, pairs: Sequence[tuple[str, str]]
          ) -> tuple[dict[tuple[str, str], Stored], set[str]]:
    """What the outbox holds for these (source, source event id) pairs, and which of their event
    ids a row is already published under (by any source): one query (per chunk of ids on SQLite,
    one `= ANY(array)` round trip on PostgreSQL) for the whole submission. A pair stored as sent
    is found by its event id; a scoped one by the partial index of the pair (the query states the
    index's condition, `SCOPED`, so that the databases use it)."""
    if not pairs:
        return {}, set()
    wanted = set(pairs)
    ids = sorted({sid for _, sid in pairs})
    sources = sorted({source for source, _ in pairs})
    conn = session.connection()
    rows: list[bulk.Row] = []
    if conn.dialect.name == "postgresql":
        sql = ("SELECT source, source_event_id, event_id, content_hash FROM ingest_outbox"
               f" WHERE (source = ANY(%s) AND source_event_id = ANY(%s) AND {SCOPED}) OR event_id = ANY(%s)")
        rows = _fetch(conn, sql, [sources, ids, ids])
    else:
        ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(ids), 400):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 400]
            marks, source_marks = ", ".join([ph] * len(chunk)), ", ".join([ph] * len(sources))
            sql = ("SELECT source, source_event_id, event_id, content_hash FROM ingest_outbox"
                   f" WHERE (source IN ({source_marks}) AND source_event_id IN ({marks}) AND {SCOPED})"
                   f" OR event_id IN ({marks})")
            rows += _fetch(conn, sql, [*sources, *chunk, *chunk])
    versions: dict[tuple[str, str], Stored] = {}
    taken: set[str] = set()
    id_set = set(ids)
    for source, sid, event_id, digest in rows:
        if (source, sid) in wanted:
            versions[(source, sid)] = Stored(event_id, digest)
        if event_id in id_set:
            taken.add(event_id)
    return versions, taken


def _fetch(conn: sa.Connection, sql: str, params: list[Any]) -> list[bulk.Row]:
    def fetch(cur: Any) -> list[bulk.Row]:
        cur.execute(sql, params)
        found: list[bulk.Row] = cur.fetchall()
        return found
    rows: list[bulk.Row] = bulk.run(conn, sql, fetch)
    return rows


def insert(session: Session, rows: list[NewRow]) -> None:
    """New outbox rows (`INSERT_COLUMNS`), as one executemany (COPY on PostgreSQL) of plain tuples:
    the ORM's per-object construction and flush were most of the accept time."""
    conn = session.connection()
    table: sa.Table = IngestOutbox.__table__  # type: ignore[attr-defined]
    statements = _STATEMENTS.get(conn.dialect.name)
    if statements is None:
        statements = _STATEMENTS[conn.dialect.name] = bulk.Statements(table, INSERT_COLUMNS, conn.dialect)
    statements.insert(conn, list(rows))


_STATEMENTS: dict[str, bulk.Statements] = {}


def published_ids(session: Session, event_ids: Iterable[str]) -> set[str]:
    """Which of these ids an outbox row is already published under (by any source)."""
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    return set(session.exec(select(IngestOutbox.event_id).where(col(IngestOutbox.event_id).in_(ids))))


def status_of(session: Session, event_id: str) -> IngestOutbox | None:
    """The row published under `event_id`, else the first stored under that id by its source."""
    row = session.exec(select(IngestOutbox).where(IngestOutbox.event_id == event_id)).first()
    if row is not None:
        return row
    return session.exec(
        select(IngestOutbox).where(IngestOutbox.source_event_id == event_id).order_by(col(IngestOutbox.id))
    ).first()


def pending_count(session: Session) -> int:
    """Rows waiting for the relay: the relay's own condition, which its partial index answers."""
    return int(session.exec(
        select(sa.func.count()).select_from(IngestOutbox).where(sa.text(PENDING))
    ).one())
