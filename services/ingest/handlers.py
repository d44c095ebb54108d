"""Ingest's Kafka side: department systems that speak Kafka publish to the inbound topic.

Each record carries the envelope as its value and the source's token in the header
`x-execwatch-token`. Valid, authenticated events go to the same outbox as the HTTP path;
everything else is dead-lettered with the reason. Offsets are committed after the outbox commit.
"""

from __future__ import annotations

import asyncio

from faststream import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from contracts import AnyEvent
from contracts.topics import INBOUND
from services.common.auth import Access, Role, contact_problems
from services.common.consumer import batch_subscriber, record_lag
from services.common.db import OutboxRelay
from services.common.messaging import Incoming, dead_letter, decode_batch, header, records_of
from services.common.runtime import Runtime
from services.ingest import domain, store
from services.ingest.metrics import ACCEPTED, REJECTED

TOKEN_HEADER = "x-execwatch-token"


def register(rt: Runtime, relay: OutboxRelay) -> None:
    broker: KafkaBroker = rt.broker
    settings = rt.settings
    access = Access.create(settings, "ingest")  # the same publisher check as the HTTP door

    @batch_subscriber(rt, [INBOUND.name], group_id="execwatch-ingest", title="ingest.inbound",
                      description="Envelopes from department systems; token in header x-execwatch-token")
    async def on_inbound(_: list[bytes], message: KafkaMessage = Context("message")) -> None:
        good: list[AnyEvent] = []
        records = records_of(message.raw_message)
        record_lag("ingest", getattr(message, "consumer", None), records)
        for item in decode_batch(records):
            if item.event is None:
                REJECTED.labels(path="kafka", reason="contract").inc()
                await dead_letter(broker, settings, "ingest", item, "contract")
                continue
            reason, label = await asyncio.to_thread(_check, access, header(item.record, TOKEN_HEADER), item.event)
            if not reason:
                good.append(item.event)
                continue
            REJECTED.labels(path="kafka", reason=label).inc()
            await dead_letter(broker, settings, "ingest", Incoming(item.record, None, reason, item.raw), "auth")
        if good:
            accepted, _duplicates = await asyncio.to_thread(store.accept_committed, rt.db, good, settings.topic_prefix)
            ACCEPTED.labels(path="kafka").inc(len(accepted))
            relay.wake()



def _check(access: Access, token: str | None, event: AnyEvent) -> tuple[str | None, str]:
    """Why this record may not be accepted (reason, metric label), or (None, "") when it may."""
    who = access.resolve(token) if token else None
    if who is None or who.role not in (Role.system, Role.operator):
        return "unknown or missing token", "auth"
    problem = domain.publish_problem(event, who.name)
    if problem is not None:
        return f"{problem.field}: {problem.message}", "rights"
    contacts = contact_problems([event], access.settings.mail_domains)
    if contacts:
        return f"{contacts[0][1]}: {contacts[0][2]}", "contract"
    forbidden = access.publish_problems(who, [event])
    if forbidden:
        return f"key: {forbidden[0][1]}", "rights"
    access.claim(who, [event])
    return None, ""
