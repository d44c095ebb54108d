"""Events stored before a migration keep deduplicating after it: before ids were scoped (ingest_0001,
then ingest_0002), and before the (source, id) pair was indexed only for scoped rows (ingest_0005): a
resend is a duplicate, other content under the old id a conflict."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

from contracts import AnyEvent, content_hash, parse_event
from services.common.auth import ALL_DIVISIONS, Identity, Role
from services.common.db import Database, alembic_config, make_engine, upgrade, utcnow
from services.ingest import service, store
from services.ingest.domain import Policy, scoped_id
from tests import factories as f

SYSTEM = Identity(f.SOURCE, Role.system, frozenset({ALL_DIVISIONS}), via="config")


class EveryDivision:
    """Publishing rights that grant everything: this test is about ids, not 과."""

    def publish_problems(self, who: Identity, events: Sequence[AnyEvent]) -> list[tuple[int, str]]:
        return []

    def claim(self, who: Identity, events: Sequence[AnyEvent]) -> None:
        return None


def test_rows_stored_before_scoping_are_backfilled(db_url):
    command.upgrade(alembic_config(db_url, "ingest"), "ingest_0001")
    event = f.snapshot(spent=5)
    stored = parse_event(event).model_dump_json().encode()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO ingest_outbox (event_id, topic, key, value, created_at, source) "
            "VALUES (:id, 'execwatch.budget', 'P-RND', :value, CURRENT_TIMESTAMP, :source)"),
            {"id": event["event_id"], "value": stored, "source": f.SOURCE})
    upgrade(db_url, "ingest")
    with engine.connect() as conn:
        sid, digest = conn.execute(sa.text("SELECT source_event_id, content_hash FROM ingest_outbox")).one()
    engine.dispose()
    assert (sid, digest) == (event["event_id"], content_hash(parse_event(event)))

    db = Database(db_url)
    try:
        again = service.accept(db, [service.Submission(json.loads(json.dumps(event)), SYSTEM)], Policy(),
                               EveryDivision(), all_or_nothing=True)
        assert [d.event_id for d in again.duplicates] == [event["event_id"]] and again.accepted == []
        other = f.snapshot(spent=6, event_id=event["event_id"])
        clash = service.accept(db, [service.Submission(other, SYSTEM)], Policy(), EveryDivision(),
                               all_or_nothing=True)
        assert [(c.stored_hash, c.submitted_hash) for c in clash.conflicts] == [
            (digest, content_hash(parse_event(other)))]
    finally:
        db.dispose()


def _accept(db: Database, *events: tuple[dict[str, object], Identity]) -> service.Outcome:
    return service.accept(db, [service.Submission(json.loads(json.dumps(e)), who) for e, who in events], Policy(),
                          EveryDivision(), all_or_nothing=True)


def test_rows_stored_before_the_pair_was_indexed_only_when_scoped_still_deduplicate(db_url):
    """ingest_0005 keeps the (source, id) pair unique by an index of the scoped rows alone: what
    was stored before, as sent and scoped, is still a duplicate when resent and a conflict with
    other content, and the database itself still refuses a second row of a scoped pair."""
    other = Identity("other-system", Role.system, frozenset({ALL_DIVISIONS}), via="config")
    mine = f.snapshot(spent=5)
    theirs = f.snapshot(spent=9, event_id=uuid.UUID(str(mine["event_id"])))
    theirs["source"] = other.name
    command.upgrade(alembic_config(db_url, "ingest"), "ingest_0004")
    db = Database(db_url)
    try:
        first = _accept(db, (mine, SYSTEM), (theirs, other))
        scoped = scoped_id(other.name, str(mine["event_id"]))
        assert [a.published_as for a in first.accepted] == [mine["event_id"], scoped]
        db.dispose()
        upgrade(db_url, "ingest")
        again = _accept(db, (mine, SYSTEM), (theirs, other))
        assert (len(again.accepted), [d.index for d in again.duplicates]) == (0, [0, 1])
        changed = {**theirs, "payload": {**theirs["payload"], "spent": 10}}  # type: ignore[dict-item]
        clash = _accept(db, (changed, other))
        assert [(c.source, c.event_id) for c in clash.conflicts] == [(other.name, mine["event_id"])]
        with pytest.raises(IntegrityError), db.unit_of_work() as session:
            store.insert(session, [(str(uuid.uuid4()), "t", "k", b"{}", utcnow(), other.name, str(mine["event_id"]),
                                    "0" * 64)])
    finally:
        db.dispose()
