"""Metrics shared by the runtime; each service adds its own in its module.

Two registries are exposed on /metrics: the process-wide `REGISTRY` (counters modules define at
import) and one per `Runtime` (`service_registry()`: process and platform collectors, FastStream's
message metrics, HTTP request metrics, per-service gauges).

No label is called `service`, `job` or `instance`: Prometheus attaches those to every scraped
series from the target, and a metric's own would be renamed `exported_service`. Where a series
must say which service counted it (tests and `execwatch up` may hold several in one registry)
the label is `execwatch_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

from services.common.logging import get_logger

log = get_logger(__name__)

#: One registry per process: each service runs as its own process; tests build apps with their own.
REGISTRY = CollectorRegistry(auto_describe=True)

DEAD_LETTERS = Counter(
    "execwatch_dead_letters_total", "messages sent to the dead-letter topic", ["execwatch_service", "stage"],
    registry=REGISTRY,
)

OUTBOX_PENDING = Gauge(
    "execwatch_outbox_pending", "outbox rows committed but not yet published (capped at one relay batch)",
    ["table"], registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "execwatch_outbox_published_total", "outbox rows published to Kafka", ["table"], registry=REGISTRY,
)

CONSUMER_LAG = Gauge(
    "execwatch_consumer_lag", "messages behind the end of each assigned partition",
    ["execwatch_service", "topic", "partition"], registry=REGISTRY,
)

OUTBOX_OLDEST_AGE = Gauge(
    "execwatch_outbox_oldest_pending_age_seconds",
    "age of the oldest outbox row not yet published (0 when the outbox is drained)", ["table"], registry=REGISTRY,
)
CONSUMER_STALLED = Gauge(
    "execwatch_consumer_stalled_seconds",
    "seconds since a consumer group last committed a batch while messages wait for it (0 when caught up)",
    ["execwatch_service", "group"], registry=REGISTRY,
)
BROKER_RESETS = Counter(
    "execwatch_broker_resets_total",
    "times the broker came back without its data (marker gone); the outbox window was re-published",
    ["execwatch_service"], registry=REGISTRY,
)

#: FastStream's prometheus middleware names its metrics `<prefix>_…`; ours is "execwatch".
FASTSTREAM_PREFIX = "execwatch"


def dead_lettered(service: str, stage: str) -> None:
    DEAD_LETTERS.labels(execwatch_service=service, stage=stage).inc()


def service_registry() -> CollectorRegistry:
    """A service's own registry, with the process, platform and garbage-collector collectors
    (`process_*`, `python_info`, `python_gc_*`) that prometheus_client puts on its default one."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def progress_counters(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    """FastStream's received and processed counters, created here with FastStream's own names and
    labels before its middleware (which reuses a metric already in the registry), so that
    `zero_progress` can give every handler its series before the first message."""
    received = Counter(f"{FASTSTREAM_PREFIX}_received_messages_total",
                       "Count of received messages by broker and handler",
                       ["app_name", "broker", "handler"], registry=registry)
    processed = Counter(f"{FASTSTREAM_PREFIX}_received_processed_messages_total",
                        "Count of received processed messages by broker, handler and status",
                        ["app_name", "broker", "handler", "status"], registry=registry)
    return received, processed


async def zero_progress(registry: CollectorRegistry, service: str, topics: Iterable[str]) -> None:
    """Series at 0 for every consumed topic: after a restart `rate()` and `increase()` see the
    first error instead of waiting for a second sample of a series that just appeared."""
    received = registry._names_to_collectors.get(f"{FASTSTREAM_PREFIX}_received_messages_total")
    processed = registry._names_to_collectors.get(f"{FASTSTREAM_PREFIX}_received_processed_messages_total")
    for topic in topics:
        if isinstance(received, Counter):
            received.labels(app_name=service, broker="kafka", handler=topic)
        if isinstance(processed, Counter):
            for status in ("acked", "error"):
                processed.labels(app_name=service, broker="kafka", handler=topic, status=status)


class LagSampler:
    """Consumer lag per assigned partition (end offset − position), sampled on a clock rather
    than only when a batch arrives: the series exist from start-up, read 0 when idle, and a
    replica drops the partitions a rebalance took from it (another replica reports them)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._reported: set[tuple[str, int]] = set()

    async def sample(self, consumers: Iterable[Any]) -> dict[tuple[str, int], int]:
        lags: dict[tuple[str, int], int] = {}
        for consumer in consumers:
            assigned: set[TopicPartition] = set()
            with contextlib.suppress(AttributeError, TypeError):  # a test broker's fake consumer
                assigned = set(consumer.assignment())
            if not assigned:
                continue
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(list(assigned)), timeout=10)
                for tp in assigned:
                    position = await asyncio.wait_for(consumer.position(tp), timeout=5)
                    lags[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a rebalance or a broker away: the next round tries again
                log.debug("lag not sampled", error=f"{type(exc).__name__}: {exc}"[:200])
                return lags
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(execwatch_service=self.service, topic=topic, partition=str(partition)).set(lag)
        for topic, partition in self._reported - lags.keys():
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.service, topic, str(partition))
        self._reported = set(lags)
        return lags

    async def run(self, consumers: Any, interval: float = 10.0) -> None:
        """`consumers()` returns the live consumers each round (they change when the broker restarts).
        The first rounds come quickly, so the series appear as soon as partitions are assigned."""
        delay = 0.5
        while True:
            await self.sample(consumers())
            await asyncio.sleep(delay)
            delay = min(interval, delay * 2)


def consumed_topics(broker: Any) -> list[str]:
    return [t for sub in broker.subscribers for t in getattr(sub, "topic_names_for_subscribe", ())]


async def watch_consumers(service: str, broker: Any, interval: float = 10.0) -> None:
    """A runtime background task: lag of every assigned partition, sampled for good."""
    await LagSampler(service).run(
        lambda: [c for sub in broker.subscribers if (c := getattr(sub, "consumer", None)) is not None], interval)


#: Read APIs answer from the database in milliseconds; ingest's batch POST may take a second or more.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """`execwatch_http_requests_total{handler, method, status}` and
    `execwatch_http_request_duration_seconds{handler, method, status}` on the service registry.
    `handler` is the route template (`/v1/programs/{program_id}`), so cardinality stays bounded;
    unknown paths count as `none`. Scrapes of /metrics are not counted."""
    common: dict[str, Any] = {"metric_namespace": FASTSTREAM_PREFIX, "registry": registry}
    instrumentator = Instrumentator(should_group_status_codes=False, should_group_untemplated=True,
                                    excluded_handlers=["^/metrics$"], registry=registry)
    instrumentator.add(http_metrics.requests(**common))
    instrumentator.add(http_metrics.latency(buckets=HTTP_BUCKETS, **common))
    instrumentator.instrument(app)
