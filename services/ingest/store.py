"""Ingest's outbox: every accepted event is committed here before the caller hears 202.

Event ids are scoped by the publishing system: (`source`, `source_event_id`) is what a sender
resends, `content_hash` tells a resend from another event under the same id, and `event_id` is
the id the event is published under (the sender's own, unless another system already published
under it: see `service.accept`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Field, Session, col, select

from services.common.db import OutboxBase


class IngestOutbox(OutboxBase, table=True):
    __tablename__ = "ingest_outbox"
    __table_args__ = (sa.UniqueConstraint("source", "source_event_id", name="uq_ingest_outbox_source_event"),)

    source: str = ""
    source_event_id: str = Field(default="", max_length=36, description="the event_id as its source sent it")
    content_hash: str = Field(default="", max_length=64, description="sha256 of the event's canonical JSON")


@dataclass(frozen=True)
class Stored:
    """What the outbox holds for one (source, event id)."""

    event_id: str
    content_hash: str


def versions(session: Session, source: str, source_event_ids: Iterable[str]) -> dict[str, Stored]:
    """The stored version of each of `source`'s event ids that ingest has seen before."""
    ids = sorted(set(source_event_ids))
    if not ids:
        return {}
    rows = session.exec(
        select(IngestOutbox.source_event_id, IngestOutbox.event_id, IngestOutbox.content_hash)
        .where(IngestOutbox.source == source, col(IngestOutbox.source_event_id).in_(ids))
    )
    return {sid: Stored(event_id, digest) for sid, event_id, digest in rows}


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
    return int(session.exec(
        select(sa.func.count()).select_from(IngestOutbox).where(col(IngestOutbox.published_at).is_(None))
    ).one())
