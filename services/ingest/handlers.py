"""Ingest's Kafka side: department systems that speak Kafka publish to the inbound topic.

Each record carries the envelope as its value and the system's key (or configured token) in the
header `x-execwatch-token`, resolved by access as on the HTTP door. Records go through the same
use case as HTTP (`service.accept`), each on its own: what is valid is stored in the outbox,
everything else is dead-lettered with the reason (stage auth — token and publishing rights —,
contract, policy or conflict). Offsets are committed after the outbox commit.
"""

from __future__ import annotations

import asyncio
import json

from faststream import Context
from faststream.kafka.message import KafkaMessage

from contracts import MAX_EVENT_BYTES
from contracts.topics import INBOUND
from services.common.auth import Access, Identity
from services.common.consumer import batch_subscriber, isolate_poison, record_lag
from services.common.db import OutboxRelay
from services.common.messaging import Incoming, documented_as_events, header, records_of
from services.common.runtime import Runtime
from services.ingest import service
from services.ingest.domain import Problem
from services.ingest.metrics import ACCEPTED, DUPLICATES, REJECTED

TOKEN_HEADER = "x-execwatch-token"


def reason(problem: Problem, note: str = "") -> str:
    """The `x-error` header: a plain sentence for auth, rights and conflicts; the field errors as
    JSON for contract and policy problems (as `execwatch deadletter list` shows them)."""
    if problem.stage == "auth":
        return problem.errors[0].message + note
    if problem.stage in ("rights", "conflict"):
        return "; ".join(f"{e.field}: {e.message}" for e in problem.errors) + note
    errors = [{**e.model_dump(mode="json"), "message": e.message + note} for e in problem.errors]
    return json.dumps(errors, ensure_ascii=False)


def identities(access: Access, tokens: list[str | None]) -> list[Identity | None]:
    """Who sent each record: its token resolved by access (once per distinct token in a batch)."""
    known: dict[str, Identity | None] = {}
    for token in {t for t in tokens if t}:
        known[token] = access.resolve(token)
    return [known[t] if t else None for t in tokens]


def register(rt: Runtime, relay: OutboxRelay, access: Access) -> None:
    settings = rt.settings
    policy = service.policy_from(settings)

    @batch_subscriber(rt, [INBOUND.name], group_id="execwatch-ingest", title="ingest.inbound",
                      description="Envelopes from department systems; token in header x-execwatch-token")
    @documented_as_events([INBOUND.name])
    async def on_inbound(values: list[bytes], message: KafkaMessage = Context("message")) -> None:
        records = records_of(message.raw_message)
        record_lag("ingest", getattr(message, "consumer", None), records)
        items = [Incoming(r, None, None, r.value if isinstance(r.value, bytes) else bytes(r.value or b""))
                 for r in records]
        who = await asyncio.to_thread(identities, access, [header(rec, TOKEN_HEADER) for rec in records])
        sender = {id(item): w for item, w in zip(items, who, strict=True)}

        def accept(batch: list[Incoming]) -> tuple[list[Incoming], service.Outcome]:
            submissions = [service.Submission(i.raw, sender[id(i)]) for i in batch]
            return batch, service.accept(rt.db, submissions, policy, access, all_or_nothing=False)

        # One unit of work for the batch; a record that makes it fail for any reason but an outage
        # is found by accepting them one by one, and dead-lettered (stage apply).
        for batch, outcome in await isolate_poison(rt, items, accept):
            await _after_accept(rt, relay, batch, outcome)


async def _after_accept(rt: Runtime, relay: OutboxRelay, batch: list[Incoming], outcome: service.Outcome) -> None:
    if outcome.accepted:
        ACCEPTED.labels(path="kafka").inc(len(outcome.accepted))
        relay.wake()
    DUPLICATES.labels(path="kafka").inc(len(outcome.duplicates))
    # After the outbox commit: a failure here redelivers the batch, whose stored events are
    # then duplicates, and the dead letters are sent again (at least once).
    problems = [*outcome.rejected, *outcome.forbidden, *(c.as_problem() for c in outcome.conflicts)]
    for problem in sorted(problems, key=lambda p: p.index):
        rec, raw = batch[problem.index].record, batch[problem.index].raw
        note = ""
        if len(raw) > MAX_EVENT_BYTES:  # the dead letter must itself be publishable
            raw, note = raw[:MAX_EVENT_BYTES], f" (dead letter holds its first {MAX_EVENT_BYTES:,} bytes)"
        why = reason(problem, note)
        REJECTED.labels(path="kafka", reason=problem.stage).inc()
        stage = "auth" if problem.stage == "rights" else problem.stage
        await rt.dead_letter(Incoming(rec, None, why, raw), stage)
