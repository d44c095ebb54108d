"""Turning an alert decision into an outbox row: one place, so both emitters agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from contracts import AlertEvent, deterministic_id, dump_event
from contracts.alerts import Alert
from contracts.topics import ALERTS, message_key
from services.common.db import OutboxBase, utcnow

OutboxT = TypeVar("OutboxT", bound=OutboxBase)


def alert_values(alert: Alert, at: datetime, prefix: str, *id_parts: object) -> dict[str, Any]:
    """The outbox row of an alert, as column values (for bulk inserts). The alert's event_id is
    derived from its fingerprint, state and what caused it, so the same decision made again
    (redelivery, replay) is the same event, and notify drops it."""
    event_id = deterministic_id("alert", alert.fingerprint, alert.status, alert.severity, *id_parts)
    envelope = AlertEvent(event_id=event_id, occurred_at=at, source=f"execwatch-{alert.generator}",
                          key=alert.program_id, payload=alert)
    return {"event_id": str(event_id), "topic": prefix + ALERTS.name, "key": message_key(alert.program_id).decode(),
            "value": dump_event(envelope), "created_at": utcnow(), "published_at": None}


def alert_row(table: type[OutboxT], alert: Alert, at: datetime, prefix: str, *id_parts: object) -> OutboxT:
    return table(**alert_values(alert, at, prefix, *id_parts))
