"""Notify's Kafka side: alerts and the program register in (grouped in one DB commit, then the
offset); failed deliveries out to the dead-letter topic through the outbox."""

from __future__ import annotations

import json

from contracts.topics import ALERTS, PROGRAMS
from services.common.consumer import consume
from services.common.db import PublishFn
from services.common.metrics import dead_lettered
from services.common.runtime import Runtime
from services.notify import service


def register(rt: Runtime, notifier: service.Notifier) -> None:
    consume(
        rt,
        [ALERTS.name, PROGRAMS.name],
        group_id=rt.settings.notify_consumer_group,
        apply=notifier.apply_batch,
        title="notify.alerts",
        description="Alerts to deliver, and program contacts to deliver them to",
    )


def dead_letter_publisher(rt: Runtime) -> PublishFn:
    """Publishes outbox rows of failed deliveries with the x-error headers every dead letter has."""

    async def publish(topic: str, key: str, value: bytes) -> None:
        doc = json.loads(value)
        headers = {"x-error": str(doc.get("error") or "")[:4000], "x-error-stage": "deliver",
                   "x-error-service": rt.name, "x-original-topic": "", "x-channel": str(doc.get("channel", ""))}
        await rt.broker.publish(value, topic, key=key.encode(), headers=headers)
        dead_lettered(rt.name, "deliver")

    return publish
