"""Reading the dead-letter topic: what was set aside, by whom, and why."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from contracts.topics import DEADLETTER


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes

    @property
    def error(self) -> str:
        return self.headers.get("x-error", "")


def read_dead_letters(bootstrap: str, prefix: str = "", limit: int = 100, timeout_ms: int = 3000
                      ) -> list[DeadLetter]:
    """The newest `limit` dead letters per partition, oldest first, without joining a group
    (reading never moves anyone's offsets). Reads the topic to its end rather than trusting
    end offsets, which the embedded broker reports per batch, not per message."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=timeout_ms)
    try:
        topic = f"{prefix}{DEADLETTER.name}"
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        newest: dict[int, deque[DeadLetter]] = {tp.partition: deque(maxlen=limit) for tp in partitions}
        for record in consumer:
            newest[record.partition].append(DeadLetter(
                record.partition, record.offset, record.key.decode("utf-8", "replace") if record.key else None,
                {k: v.decode("utf-8", "replace") for k, v in record.headers or []}, record.value or b""))
        return [d for p in sorted(newest) for d in newest[p]]
    finally:
        consumer.close()
