"""The one way services consume: batches, poison aside, one DB commit, then the offset.

`consume()` registers a FastStream batch subscriber with AckPolicy.NACK_ON_ERROR: the offsets
of a batch are committed only when the handler returns, i.e. after the database commit. Only an
outage (the database unreachable) makes the batch fail and be redelivered; any other error says
"one of these events" and is isolated by applying the batch one event at a time: the event that
fails alone is dead-lettered with the reason, the others are applied. So one bad event cannot stall
its partition, whatever it raises — by construction, not by a list of exception types.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka.message import KafkaMessage
from faststream.message import StreamMessage

from contracts import AnyEvent
from services.common.db import is_transient
from services.common.logging import get_logger
from services.common.messaging import Incoming, decode_batch, documented_as_events, records_of
from services.common.metrics import CONSUMER_LAG
from services.common.runtime import ConsumerGroup, Runtime

log = get_logger(__name__)
R = TypeVar("R")

#: A lone event that fails with an outage-like error while the database answers is tried this
#: many times (a lock, a failover) before it is judged to be the event's own fault.
LONE_EVENT_ATTEMPTS = 3

Handler = Callable[..., Awaitable[None]]


async def raw_batch(msg: StreamMessage[Any]) -> list[bytes]:
    """Decoder for our batch subscribers: the record values as they are. FastStream's default
    re-parses every record and tries JSON on it; handlers validate the bytes against the
    contracts themselves (poison → dead letter), so that work was thrown away."""
    return [b if isinstance(b, bytes) else bytes(b or b"") for b in msg.body]


def batch_subscriber(
    rt: Runtime, topics: list[str], *, group_id: str, title: str, description: str
) -> Callable[[Handler], object]:
    """A FastStream batch subscriber whose offsets are committed when the handler returns. The
    runtime learns of it (lag, progress, offsets beyond a partition's end after a broker reset)."""
    s = rt.settings
    subscriber = rt.broker.subscriber(
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
    group = ConsumerGroup(group_id, subscriber)
    rt.consumers.append(group)

    def decorate(handler: Handler) -> object:
        @functools.wraps(handler)  # FastStream reads the handler's signature (Context arguments)
        async def tracked(*args: Any, **kwargs: Any) -> None:
            await handler(*args, **kwargs)
            group.progressed_at = time.monotonic()  # returned: the batch's offsets are committed

        decorated: object = subscriber(tracked)
        return decorated

    return decorate


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
            await rt.dead_letter(bad, "contract")
        good = [i for i in items if i.event is not None]
        if not good:
            return
        results = await apply_isolating_poison(rt, good, apply)
        if after_commit is not None:
            for result in results:
                try:
                    await after_commit(result)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # committed is committed: redelivering would change nothing
                    log.warning("after-commit step failed; its worker retries",
                                error=f"{type(exc).__name__}: {exc}"[:300])


async def apply_isolating_poison(rt: Runtime, items: list[Incoming],
                                 apply: Callable[[list[AnyEvent]], R]) -> list[R]:
    """Apply the events in one unit of work; if that fails for any reason but an outage, apply
    them one by one and dead-letter each event that fails on its own ("apply" stage)."""

    def apply_events(batch: list[Incoming]) -> R:
        return apply([i.event for i in batch if i.event is not None])

    return await isolate_poison(rt, items, apply_events)


async def isolate_poison(rt: Runtime, items: list[Incoming], apply: Callable[[list[Incoming]], R]) -> list[R]:
    """`apply(items)` in a thread; if it fails for any reason but an outage, `apply([item])` for each
    item, and dead-letter ("apply" stage) each one that fails on its own. An outage (the database
    does not answer) raises, so the batch is redelivered."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return [await asyncio.to_thread(apply, items)]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc):
                if not await asyncio.to_thread(rt.db.ping):
                    # The database is unreachable: nothing is committed, so nack and let Kafka redeliver.
                    log.error("database unavailable; batch will be redelivered", events=len(items),
                              error=f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(1.0)
                    raise
                if len(items) == 1 and attempts < LONE_EVENT_ATTEMPTS:
                    await asyncio.sleep(0.5 * attempts)  # a lock or a failover: try the event again
                    continue
            if len(items) == 1:
                error = f"{type(exc).__name__}: {exc}"[:4000]
                await rt.dead_letter(Incoming(items[0].record, None, error, items[0].raw), "apply")
                return []
            log.warning("batch failed; applying one by one", events=len(items),
                        error=f"{type(exc).__name__}: {exc}"[:500])
            out: list[R] = []
            for item in items:
                out += await isolate_poison(rt, [item], apply)
            return out
