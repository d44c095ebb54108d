"""Notify's Kafka side: alerts and the program register in; deliveries planned, then sent."""

from __future__ import annotations

from contracts.topics import ALERTS, PROGRAMS
from services.common.consumer import consume
from services.common.runtime import Runtime
from services.notify import service
from services.notify.render import Renderer


def register(rt: Runtime, sender: service.EmailSender, renderer: Renderer) -> None:
    async def after_commit(result: service.BatchResult) -> None:
        if result.planned:
            sender.wake()

    consume(
        rt,
        [ALERTS.name, PROGRAMS.name],
        group_id="execwatch-notify",
        apply=lambda events: service.apply_batch(rt.db, rt.settings, renderer, events),
        after_commit=after_commit,
        title="notify.alerts",
        description="Alerts to deliver, and program contacts to deliver them to",
    )
