"""Events stored before ids were scoped (ingest_0001) keep deduplicating after ingest_0002: a
resend is a duplicate, other content under the old id a conflict."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import command

from contracts import AnyEvent, content_hash, parse_event
from services.common.auth import ALL_DIVISIONS, Identity, Role
from services.common.db import Database, alembic_config, make_engine, upgrade
from services.ingest import service
from services.ingest.domain import Policy
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
