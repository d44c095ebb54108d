"""The one use case of ingest: accept submitted events into the outbox, for both front doors.

HTTP (`api.py`) submits a request's events all or nothing; the inbound topic (`handlers.py`)
submits a batch of records, each on its own (one bad record is dead-lettered, the rest stored).
Either way the submission comes with the caller's identity (resolved by access before anything
is read: the `Publisher` dependency, or the record's token header), each event is checked
(`domain.check`), then the publisher's rights by 과 (`Rights.publish_problems`: access's rule),
and what passes is stored once per (source, event id):

- the same id with the same content (by content hash) is a duplicate: acknowledged, stored once;
- the same id with other content from the same source is a conflict, naming both hashes;
- another source's event under an id already published is its own event: it is published under
  an id derived from (source, id), so no system can shadow another's events downstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from contracts import AnyEvent, FieldError, dump_event
from services.common.auth import PUBLISHERS, Identity
from services.common.db import Database, utcnow
from services.common.settings import Settings
from services.ingest import domain, store
from services.ingest.domain import Checked, Policy, Problem


@dataclass(slots=True)
class Submission:
    """One event as received: a JSON object or an event the door validated already (HTTP), or a
    record's raw bytes (Kafka), and who sent it, as access resolved its credential (None when the
    token was missing or unknown). Not frozen, for what is made per event: a frozen dataclass sets
    each field through `object.__setattr__` (≈ 6 % of the HTTP door's instructions per event)."""

    data: Any
    who: Identity | None


class Rights(Protocol):
    """Access's publishing rights (`services.common.auth.Access`): which 과 a publisher may publish
    for, and the record of which 과 a program was first published for."""

    def publish_problems(self, who: Identity, events: Sequence[AnyEvent]) -> list[tuple[int, str]]: ...

    def claim(self, who: Identity, events: Sequence[AnyEvent]) -> None: ...


@dataclass(slots=True)
class Accepted:
    index: int
    event_id: str
    published_as: str


@dataclass(slots=True)
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
    rejected: list[Problem] = field(default_factory=list)   # token, contract, source, policy
    forbidden: list[Problem] = field(default_factory=list)  # another 과's program (stage rights)
    conflicts: list[Conflict] = field(default_factory=list)


def policy_from(settings: Settings) -> Policy:
    return Policy(topic_prefix=settings.topic_prefix, mail_domains=tuple(settings.mail_domains))


def accept(db: Database, submissions: Sequence[Submission], policy: Policy, rights: Rights, *,
           all_or_nothing: bool) -> Outcome:
    """Check every submission and store the good ones in one unit of work.

    all_or_nothing: any rejection, forbidden program or conflict stores nothing (HTTP: the caller
    fixes and resends). Otherwise each submission stands alone: what is good is stored, the rest
    is returned."""
    outcome = Outcome()
    good: list[tuple[Checked, Identity]] = []
    for index, submission in enumerate(submissions):
        who = submission.who
        result = _check(index, submission, policy)
        if isinstance(result, Problem):
            outcome.rejected.append(result)
        else:
            assert who is not None  # _check refuses a submission without an identity
            good.append((result, who))
    if not good or (all_or_nothing and outcome.rejected):
        return outcome
    forbidden = _forbidden(rights, good, all_or_nothing)
    if forbidden:
        outcome.forbidden = [Problem(i, "rights", (FieldError(field="key", message=why),))
                             for i, why in sorted(forbidden.items())]
        if all_or_nothing:
            return outcome
        good = [(item, who) for item, who in good if item.index not in forbidden]
        if not good:
            return outcome
    # Record the 과 of programs seen for the first time before storing (as access does for every
    # publisher): the rights were checked above, so a claim for an event that is then a conflict
    # or is redelivered only records what this publisher was allowed to say.
    for who, items in _by_identity(good).items():
        rights.claim(who, [i.event for i in items])
    checked = [item for item, _ in good]
    for attempt in (1, 2):
        try:
            with db.unit_of_work() as session:
                stored = _store(session, checked, all_or_nothing)
            break
        except IntegrityError:
            # A concurrent request stored one of these ids first; the retry sees what it stored.
            if attempt == 2:
                raise
    outcome.accepted, outcome.duplicates, outcome.conflicts = stored
    return outcome


def _check(index: int, submission: Submission, policy: Policy) -> Checked | Problem:
    who = submission.who
    if who is not None and who.role not in PUBLISHERS:  # HTTP's Publisher rule already says so
        return Problem(index, "auth", (FieldError(field="(token)", message=f"role {who.role} may not publish"),))
    return domain.check(index, submission.data, who.name if who else None, policy)


def _by_identity(items: list[tuple[Checked, Identity]]) -> dict[Identity, list[Checked]]:
    if items and all(who is items[0][1] for _, who in items):  # one caller (HTTP): no hash per event
        return {items[0][1]: [item for item, _ in items]}
    groups: dict[Identity, list[Checked]] = {}
    for item, who in items:
        groups.setdefault(who, []).append(item)
    return groups


def _forbidden(rights: Rights, items: list[tuple[Checked, Identity]], all_or_nothing: bool) -> dict[int, str]:
    """Submission index → why its publisher may not publish it (a program of a 과 not granted).

    A program's 과 may be stated by another event of the same batch (its program.registered); when
    records stand alone, one that is refused states nothing, so the rest are checked again without
    it until every remaining one is allowed."""
    out: dict[int, str] = {}
    for who, group in _by_identity(items).items():
        remaining = group
        while remaining:
            problems = rights.publish_problems(who, [i.event for i in remaining])
            if not problems:
                break
            refused = {remaining[i].index: why for i, why in problems}
            out |= refused
            if all_or_nothing:
                break
            remaining = [i for i in remaining if i.index not in refused]
    return out


def _store(session: Session, items: list[Checked], all_or_nothing: bool
           ) -> tuple[list[Accepted], list[Duplicate], list[Conflict]]:
    known, taken = store.known(session, [(i.source, i.source_event_id) for i in items])
    accepted: list[Accepted] = []
    duplicates: list[Duplicate] = []
    conflicts: list[Conflict] = []
    rows: list[store.NewRow] = []
    now = utcnow()
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
        rows.append((published_as, item.topic, item.key, value, now, item.source, sid, item.content_hash))
    if all_or_nothing and conflicts:
        return [], [], conflicts
    if rows:
        store.insert(session, rows)
    return accepted, duplicates, conflicts
