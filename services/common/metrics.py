"""Process-wide counters shared by the runtime; each service adds its own in its module."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

#: One registry per process: each service runs as its own process; tests build apps with their own.
REGISTRY = CollectorRegistry(auto_describe=True)

DEAD_LETTERS = Counter(
    "execwatch_dead_letters_total", "messages sent to the dead-letter topic", ["service", "stage"],
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
    "execwatch_consumer_lag", "messages behind the end of the partition after the last handled batch",
    ["service", "topic", "partition"], registry=REGISTRY,
)
