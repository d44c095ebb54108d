"""Ingest's Kafka side: department systems that speak Kafka publish to the inbound topic.

Each record carries the envelope as its value and the source's token in the header
`x-execwatch-token`. Valid, authenticated events go to the same outbox as the HTTP path;
everything else is dead-lettered with the reason. Offsets are committed after the outbox commit.
"""

from __future__ import annotations

import asyncio

from faststream import Context
from faststream.kafka.message import KafkaMessage

from contracts import AnyEvent
from contracts.topics import INBOUND
from services.common.consumer import batch_subscriber, record_lag
from services.common.db import OutboxRelay
from services.common.messaging import Incoming, decode_batch, header, records_of
from services.common.runtime import Runtime
from services.ingest import domain, store
from services.ingest.metrics import ACCEPTED, REJECTED

TOKEN_HEADER = "x-execwatch-token"


def register(rt: Runtime, relay: OutboxRelay) -> None:
    settings = rt.settings
    tokens = {s: t.get_secret_value() for s, t in settings.ingest_sources.items()}

    @batch_subscriber(rt, [INBOUND.name], group_id="execwatch-ingest", title="ingest.inbound",
                      description="Envelopes from department systems; token in header x-execwatch-token")
    async def on_inbound(_: list[bytes], message: KafkaMessage = Context("message")) -> None:
        good: list[AnyEvent] = []
        records = records_of(message.raw_message)
        record_lag("ingest", getattr(message, "consumer", None), records)
        for item in decode_batch(records):
            if item.event is None:
                REJECTED.labels(path="kafka", reason="contract").inc()
                await rt.dead_letter(item, "contract")
                continue
            source = domain.authenticate(tokens, header(item.record, TOKEN_HEADER))
            problem = domain.publish_problem(item.event, source) if source else None
            if source is None:
                reason, label = "unknown or missing token", "auth"
            elif problem is not None:
                reason, label = f"{problem.field}: {problem.message}", "rights"
            else:
                good.append(item.event)
                continue
            REJECTED.labels(path="kafka", reason=label).inc()
            await rt.dead_letter(Incoming(item.record, None, reason, item.raw), "auth")
        if good:
            accepted, _duplicates = await asyncio.to_thread(store.accept_committed, rt.db, good, settings.topic_prefix)
            ACCEPTED.labels(path="kafka").inc(len(accepted))
            relay.wake()

