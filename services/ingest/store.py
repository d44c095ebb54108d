"""Ingest's outbox: every accepted event is committed here before the caller hears 202."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from contracts import AnyEvent, dump_event
from contracts.topics import message_key, topic_for
from services.common.db import Database, OutboxBase


class IngestOutbox(OutboxBase, table=True):
    __tablename__ = "ingest_outbox"
    source: str = ""


def accept(session: Session, events: Sequence[AnyEvent], topic_prefix: str) -> tuple[list[str], list[str]]:
    """Store events not seen before; return (accepted ids, duplicate ids). A repeated event_id is a
    retry of the same fact, so it is acknowledged again but stored and published once."""
    ids = [str(e.event_id) for e in events]
    existing = set(session.exec(select(IngestOutbox.event_id).where(col(IngestOutbox.event_id).in_(ids))))
    accepted: list[str] = []
    seen: set[str] = set(existing)
    rows = []
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            continue
        seen.add(event_id)
        accepted.append(event_id)
        rows.append(
            IngestOutbox(
                event_id=event_id,
                topic=topic_prefix + topic_for(event.event_type).name,
                key=message_key(event.key).decode(),
                value=dump_event(event),
                source=event.source,
            )
        )
    session.add_all(rows)
    duplicates = [i for i in ids if i not in accepted]
    return accepted, duplicates


def accept_committed(db: Database, events: Sequence[AnyEvent], topic_prefix: str) -> tuple[list[str], list[str]]:
    """`accept` in its own transaction, for both front doors (HTTP and the inbound topic)."""
    for attempt in (1, 2):
        try:
            with db.unit_of_work() as session:
                return accept(session, events, topic_prefix)
        except IntegrityError:
            # A concurrent request stored one of these ids first; the retry sees it as a duplicate.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def status_of(session: Session, event_id: str) -> IngestOutbox | None:
    return session.exec(select(IngestOutbox).where(IngestOutbox.event_id == event_id)).first()


def pending_count(session: Session) -> int:
    return int(session.exec(
        select(sa.func.count()).select_from(IngestOutbox).where(col(IngestOutbox.published_at).is_(None))
    ).one())
