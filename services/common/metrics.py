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

OUTBOX_OLDEST_AGE = Gauge(
    "execwatch_outbox_oldest_pending_age_seconds",
    "age of the oldest outbox row not yet published (0 when the outbox is drained)", ["table"], registry=REGISTRY,
)
CONSUMER_STALLED = Gauge(
    "execwatch_consumer_stalled_seconds",
    "seconds since a consumer group last committed a batch while messages wait for it (0 when caught up)",
    ["service", "group"], registry=REGISTRY,
)
BROKER_RESETS = Counter(
    "execwatch_broker_resets_total",
    "times the broker came back without its data (marker gone); the outbox window was re-published",
    ["service"], registry=REGISTRY,
)
