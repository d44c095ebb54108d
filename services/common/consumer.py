"""The one way services consume: batches, poison aside, one DB commit, then the offset.

`consume()` registers a FastStream batch subscriber with AckPolicy.NACK_ON_ERROR: the offsets
of a batch are committed only when the handler returns, i.e. after the database commit. A
database outage raises, so the batch is redelivered; a message the database rejects on its own
(a constraint or data error) is isolated by applying the batch one event at a time, and
dead-lettered, so one bad event cannot stall its partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka.message import KafkaMessage
from faststream.message import StreamMessage
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from contracts import AnyEvent
from services.common.logging import get_logger
from services.common.messaging import Incoming, dead_letter, decode_batch, documented_as_events, records_of
from services.common.metrics import CONSUMER_LAG
from services.common.runtime import Runtime

log = get_logger(__name__)
R = TypeVar("R")

#: Errors that say "this event", not "the database": retried one by one, then dead-lettered.
EVENT_ERRORS = (IntegrityError, DataError, ValueError)


Handler = Callable[..., Awaitable[None]]


async def raw_batch(msg: StreamMessage[Any]) -> list[bytes]:
    """Decoder for our batch subscribers: the record values as they are. FastStream's default
    re-parses every record and tries JSON on it; handlers validate the bytes against the
    contracts themselves (poison → dead letter), so that work was thrown away."""
    return [b if isinstance(b, bytes) else bytes(b or b"") for b in msg.body]


def batch_subscriber(
    rt: Runtime, topics: list[str], *, group_id: str, title: str, description: str
) -> Callable[[Handler], object]:
    """A FastStream batch subscriber whose offsets are committed when the handler returns."""
    s = rt.settings
    decorator: Callable[[Handler], object] = rt.broker.subscriber(
        *[s.topic(t) for t in topics],
        group_id=group_id,
        batch=True,
        max_records=s.consumer_batch_size,
        batch_timeout_ms=s.consumer_batch_timeout_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=raw_batch,
        session_timeout_ms=s.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(100, s.consumer_session_timeout_ms // 5),
        title=title,
        description=description,
    )
    return decorator


def record_lag(service: str, consumer: Any, records: Sequence[ConsumerRecord[Any, Any]]) -> dict[tuple[str, int], int]:
    """How far behind each partition of the batch is (high-water mark − next offset): what
    operators ask first. Partitions without records in this batch keep their last value."""
    last: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        last[key] = max(last.get(key, -1), r.offset)
    lags: dict[tuple[str, int], int] = {}
    for (topic, partition), offset in last.items():
        try:
            highwater = consumer.highwater(TopicPartition(topic, partition))
        except (AttributeError, TypeError):  # TestKafkaBroker's fake consumer has none
            continue
        if highwater is None:
            continue
        lags[(topic, partition)] = lag = max(0, highwater - offset - 1)
        CONSUMER_LAG.labels(execwatch_service=service, topic=topic, partition=str(partition)).set(lag)
    return lags


def consume(
    rt: Runtime,
    topics: list[str],
    *,
    group_id: str,
    apply: Callable[[list[AnyEvent]], R],
    after_commit: Callable[[R], Awaitable[None]] | None = None,
    title: str,
    description: str,
) -> None:
    @batch_subscriber(rt, topics, group_id=group_id, title=title, description=description)
    @documented_as_events(topics)
    async def handle(values: list[bytes], message: KafkaMessage = Context("message")) -> None:
        records = records_of(message.raw_message)
        record_lag(rt.name, getattr(message, "consumer", None), records)
        items = decode_batch(records)
        for bad in (i for i in items if i.event is None):
            await dead_letter(rt.broker, rt.settings, rt.name, bad, "contract")
        good = [i for i in items if i.event is not None]
        if not good:
            return
        results = await _apply_isolating_poison(rt, good, apply)
        if after_commit is not None:
            for result in results:
                await after_commit(result)


async def _apply_isolating_poison(rt: Runtime, items: list[Incoming],
                                  apply: Callable[[list[AnyEvent]], R]) -> list[R]:
    events = [i.event for i in items if i.event is not None]
    try:
        return [await asyncio.to_thread(apply, events)]
    except OperationalError:
        # The database is unreachable: nothing is committed, so nack and let Kafka redeliver.
        log.error("database unavailable; batch will be redelivered", events=len(events))
        await asyncio.sleep(1.0)
        raise
    except (*EVENT_ERRORS, StatementError) as exc:
        if len(items) == 1:
            await dead_letter(rt.broker, rt.settings, rt.name,
                              Incoming(items[0].record, None, f"{type(exc).__name__}: {exc}"[:2000],
                                       items[0].raw), "apply")
            return []
        log.warning("batch rejected by the database; applying one by one", error=str(exc)[:500])
        out: list[Any] = []
        for item in items:
            out += await _apply_isolating_poison(rt, [item], apply)
        return out
