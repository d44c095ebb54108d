"""The one use case of ingest: accept submitted events into the outbox, for both front doors.

HTTP (`api.py`) submits a request's events all or nothing; the inbound topic (`handlers.py`)
submits a batch of records, each on its own (one bad record is dead-lettered, the rest stored).
Either way each event is checked (`domain.check`), then stored once per (source, event id):

- the same id with the same content (by content hash) is a duplicate: acknowledged, stored once;
- the same id with other content from the same source is a conflict, naming both hashes;
- another source's event under an id already published is its own event: it is published under
  an id derived from (source, id), so no system can shadow another's events downstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from contracts import FieldError, dump_event
from services.common.db import Database
from services.common.settings import Settings
from services.ingest import domain, store
from services.ingest.domain import Checked, Policy, Problem
from services.ingest.store import IngestOutbox


@dataclass(frozen=True)
class Submission:
    """One event as received: a JSON object (HTTP) or a record's raw bytes (Kafka), and the system
    whose token came with it (None when the token was missing or unknown)."""

    data: Any
    source: str | None


@dataclass(frozen=True)
class Accepted:
    index: int
    event_id: str
    published_as: str


@dataclass(frozen=True)
class Duplicate:
    index: int
    event_id: str


@dataclass(frozen=True)
class Conflict:
    index: int
    source: str
    event_id: str
    stored_hash: str
    submitted_hash: str

    @property
    def message(self) -> str:
        return domain.conflict_message(self.source, self.event_id, self.stored_hash, self.submitted_hash)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "source": self.source,
                "stored_hash": self.stored_hash, "submitted_hash": self.submitted_hash, "message": self.message}

    def as_problem(self) -> Problem:
        return Problem(self.index, "conflict", (FieldError(field="event_id", message=self.message),))


@dataclass
class Outcome:
    accepted: list[Accepted] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def policy_from(settings: Settings) -> Policy:
    return Policy(topic_prefix=settings.topic_prefix, mail_domains=tuple(settings.ingest_mail_domains))


def accept(db: Database, submissions: Sequence[Submission], policy: Policy, *, all_or_nothing: bool) -> Outcome:
    """Check every submission and store the good ones in one unit of work.

    all_or_nothing: any rejection or conflict stores nothing (HTTP: the caller fixes and resends).
    Otherwise each submission stands alone: what is good is stored, the rest is returned."""
    outcome = Outcome()
    good: list[Checked] = []
    for index, submission in enumerate(submissions):
        result = domain.check(index, submission.data, submission.source, policy)
        if isinstance(result, Problem):
            outcome.rejected.append(result)
        else:
            good.append(result)
    if not good or (all_or_nothing and outcome.rejected):
        return outcome
    for attempt in (1, 2):
        try:
            with db.unit_of_work() as session:
                stored = _store(session, good, all_or_nothing)
            break
        except IntegrityError:
            # A concurrent request stored one of these ids first; the retry sees what it stored.
            if attempt == 2:
                raise
    outcome.accepted, outcome.duplicates, outcome.conflicts = stored
    return outcome


def _store(session: Session, items: list[Checked], all_or_nothing: bool
           ) -> tuple[list[Accepted], list[Duplicate], list[Conflict]]:
    known: dict[tuple[str, str], store.Stored] = {}
    for source in {i.source for i in items}:
        ids = [i.source_event_id for i in items if i.source == source]
        known |= {(source, sid): v for sid, v in store.versions(session, source, ids).items()}
    taken = store.published_ids(session, [i.source_event_id for i in items])
    accepted: list[Accepted] = []
    duplicates: list[Duplicate] = []
    conflicts: list[Conflict] = []
    rows: list[IngestOutbox] = []
    for item in items:
        sid = item.source_event_id
        before = known.get((item.source, sid))
        if before is not None:
            if before.content_hash == item.content_hash:
                duplicates.append(Duplicate(item.index, sid))
            else:
                conflicts.append(Conflict(item.index, item.source, sid, before.content_hash, item.content_hash))
            continue
        published_as = sid
        while published_as in taken:  # another system published under this id: derive one
            published_as = domain.scoped_id(item.source, published_as)
            taken |= store.published_ids(session, [published_as])
        value = item.value
        if published_as != sid:
            value = dump_event(item.event.model_copy(update={"event_id": uuid.UUID(published_as)}))
        taken.add(published_as)
        known[(item.source, sid)] = store.Stored(published_as, item.content_hash)
        accepted.append(Accepted(item.index, sid, published_as))
        rows.append(IngestOutbox(event_id=published_as, topic=item.topic, key=item.key, value=value,
                                 source=item.source, source_event_id=sid, content_hash=item.content_hash))
    if all_or_nothing and conflicts:
        return [], [], conflicts
    session.add_all(rows)
    return accepted, duplicates, conflicts
