"""The one way services consume: batches, poison aside, one DB commit, then the offset.

`consume()` registers a FastStream batch subscriber. Pipelined (`consumer_pipeline_depth` ≥ 1,
the default): the handler only decodes a batch and queues it; a worker applies the queued batches
one after the other, in fetch order, and after each database commit commits that batch's offsets
itself (`{partition: last offset + 1}`, AckPolicy.MANUAL), so fetching and decoding the next batch
overlap the apply and the commit of this one. Serial (depth 0): AckPolicy.NACK_ON_ERROR, the
offsets of a batch are committed when the handler returns, i.e. after the database commit.

Either way an offset is committed only after the database commit of every event before it in its
partition: the worker applies batches in the order they were fetched, and a partition's fetch
stream always starts at a committed offset (at assignment) and is contiguous. An outage (the
database unreachable) makes the worker apply the same batch again until it succeeds, holding the
later ones; a crash at any point redelivers from the last committed offset, and the idempotent
handlers (inbox of event ids) absorb what was applied twice. On a rebalance the revoked member
first drains its queue (applies and commits what it fetched) before the partitions move. Any other
error says "one of these events" and is isolated by applying the batch one event at a time: the
event that fails alone is dead-lettered with the reason, the others are applied. So one bad event
cannot stall its partition, whatever it raises — by construction, not by a list of exception types.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka.message import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter

from contracts import AnyEvent
from services.common.db import is_transient
from services.common.logging import get_logger
from services.common.messaging import Incoming, decode_batch, documented_as_events, records_of
from services.common.metrics import CONSUMER_LAG, FASTSTREAM_PREFIX
from services.common.runtime import ConsumerGroup, Runtime

log = get_logger(__name__)
R = TypeVar("R")

#: A lone event that fails with an outage-like error while the database answers is tried this
#: many times (a lock, a failover) before it is judged to be the event's own fault.
LONE_EVENT_ATTEMPTS = 3

#: A revoked member waits this long for its queued batches to be applied and committed before it
#: lets the partitions go (what is not committed by then is delivered again to the next owner).
DRAIN_TIMEOUT_S = 30.0

Handler = Callable[..., Awaitable[None]]


async def raw_batch(msg: StreamMessage[Any]) -> list[bytes]:
    """Decoder for our batch subscribers: the record values as they are. FastStream's default
    re-parses every record and tries JSON on it; handlers validate the bytes against the
    contracts themselves (poison → dead letter), so that work was thrown away."""
    return [b if isinstance(b, bytes) else bytes(b or b"") for b in msg.body]


def batch_subscriber(
    rt: Runtime, topics: list[str], *, group_id: str, title: str, description: str,
    pipeline: Pipeline | None = None,
) -> Callable[[Handler], object]:
    """A FastStream batch subscriber whose offsets are committed when the handler returns, or,
    with a `pipeline`, by the pipeline once each batch is applied. The runtime learns of it (lag,
    progress, offsets beyond a partition's end after a broker reset)."""
    s = rt.settings
    subscriber = rt.broker.subscriber(
        *[s.topic(t) for t in topics],
        group_id=group_id,
        batch=True,
        max_records=s.consumer_batch_size,
        batch_timeout_ms=s.consumer_batch_timeout_ms,
        fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR if pipeline is None else AckPolicy.MANUAL,
        listener=pipeline,
        auto_offset_reset="earliest",
        decoder=raw_batch,
        session_timeout_ms=s.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(100, s.consumer_session_timeout_ms // 5),
        title=title,
        description=description,
    )
    group = ConsumerGroup(group_id, subscriber)
    rt.consumers.append(group)
    if pipeline is not None:
        pipeline.group = group
        rt.background.append(pipeline.run)

    def decorate(handler: Handler) -> object:
        @functools.wraps(handler)  # FastStream reads the handler's signature (Context arguments)
        async def tracked(*args: Any, **kwargs: Any) -> None:
            await handler(*args, **kwargs)
            if pipeline is None:
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
    async def process(items: list[Incoming]) -> None:
        """One decoded batch: poison aside, the rest in one unit of work, then after-commit steps."""
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

    depth = rt.settings.consumer_pipeline_depth
    pipeline = Pipeline(rt.name, process, depth, rt.registry) if depth > 0 else None

    @batch_subscriber(rt, topics, group_id=group_id, title=title, description=description, pipeline=pipeline)
    @documented_as_events(topics)
    async def handle(values: list[bytes], message: KafkaMessage = Context("message")) -> None:
        records = records_of(message.raw_message)
        consumer = getattr(message, "consumer", None)
        record_lag(rt.name, consumer, records)
        if pipeline is None or not isinstance(consumer, AIOKafkaConsumer):
            # Serial: FastStream commits when this returns (TestKafkaBroker's fake consumer too:
            # there the handler is expected to have applied the batch when publish returns).
            await process(decode_batch(records))
            return
        try:
            items = decode_batch(records)
        except BaseException:
            await message.nack()  # rewind to the batch's first offsets: nothing of it is skipped
            raise
        await pipeline.submit(Batch(consumer, items, next_offsets(records)))


def next_offsets(records: Iterable[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """What to commit once these records are applied: per partition, its last offset + 1."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


@dataclass(frozen=True)
class Batch:
    """A fetched, decoded batch waiting to be applied, and the offsets its apply allows to commit."""

    consumer: Any  # the AIOKafkaConsumer that fetched it (commits must come from the group member)
    items: list[Incoming]
    offsets: dict[TopicPartition, int]


class Pipeline(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Decoded batches queued for one worker, which applies them in fetch order and commits each
    one's offsets after its database commit. At most `depth` batches wait in the queue (the
    handler, hence the fetch, waits when it is full). As the group's rebalance listener it drains
    the queue before partitions are revoked: what this member fetched is applied and committed
    while it still owns the partitions."""

    def __init__(self, service: str, process: Callable[[list[Incoming]], Awaitable[None]], depth: int,
                 registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry
        self.process = process
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=depth)
        self.group: ConsumerGroup | None = None
        self.pending = 0  # submitted, not yet applied and committed
        self.idle = asyncio.Event()
        self.idle.set()
        self.running = False
        self.closed = False

    async def submit(self, batch: Batch) -> None:
        if self.closed:
            return  # shutting down: neither applied nor committed, so delivered again after a restart
        self.pending += 1
        self.idle.clear()
        try:
            await self.queue.put(batch)
        except BaseException:  # cancelled while waiting (shutdown): the batch is not ours any more
            self._done()
            raise
        if self.closed:  # the worker stopped while this waited for room
            self._discard_queued()

    def _discard_queued(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
            self._done()

    def _done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.idle.set()

    async def run(self) -> None:
        self.running, self.closed = True, False
        committing: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self.queue.get()
                try:
                    await self._apply(batch)
                except BaseException:
                    self._done()
                    raise
                # The offset commit (a broker round trip) runs while the next batch is applied;
                # one at a time, so they reach the broker in order and never pile up.
                if committing is not None:
                    await committing
                committing = asyncio.create_task(self._commit(batch.consumer, batch.offsets))
        finally:
            # Stopped (the service shuts down): drop what waits, so a handler blocked on the full
            # queue returns and the subscriber stops at once; none of it was committed.
            if committing is not None:
                committing.cancel()
            self.running, self.closed = False, True
            self._discard_queued()

    async def _apply(self, batch: Batch) -> None:
        """Apply the batch, again and again while it fails (an outage: isolate_poison raises only
        then, or when a dead letter cannot be published). The later batches wait: skipping one
        would let their offsets be committed past events that were never applied."""
        attempts = 0
        while True:
            try:
                await self.process(batch.items)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempts += 1
                self._count_failed(batch)
                log.error("batch failed; applying it again", events=len(batch.items), attempts=attempts,
                          error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(min(30.0, 0.5 * attempts))

    def _count_failed(self, batch: Batch) -> None:
        """What FastStream counts when a serial handler raises (ExecwatchHandlerErrors alerts on
        it): here the handler returned when the batch was queued, so the worker counts it."""
        processed = self.registry._names_to_collectors.get(  # created by metrics.progress_counters
            f"{FASTSTREAM_PREFIX}_received_processed_messages_total") if self.registry is not None else None
        first = batch.items[0].record if batch.items else None
        if isinstance(processed, Counter) and first is not None:
            processed.labels(app_name=self.service, broker="kafka", handler=first.topic,
                             status="error").inc(len(batch.items))

    async def _commit(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        """Commit an applied batch's offsets; never raises but when cancelled."""
        try:
            await consumer.commit(offsets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Revoked, fenced by a rebalance, the broker gone, the consumer stopped: these events
            # are delivered again (to this member or the partition's next owner), and deduplicated.
            log.warning("offsets not committed; the batch will be delivered again",
                        offsets={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()},
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return
        finally:
            self._done()
        if self.group is not None:
            self.group.progressed_at = time.monotonic()

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait until every submitted batch is applied and committed (not if no worker runs)."""
        if not self.running or self.idle.is_set():
            return
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            log.warning("revoked before the queued batches were applied; their events will be delivered again",
                        batches=self.pending)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.drain()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


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
