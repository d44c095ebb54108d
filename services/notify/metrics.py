"""Notify metrics: notifications by channel and outcome, active alerts, alert-to-delivery latency."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func
from sqlmodel import Session, select

from services.common.metrics import REGISTRY
from services.notify.store import NotifyAlert

NOTIFICATIONS = Counter("execwatch_notify_notifications_total",
                        "delivery attempts by channel and outcome (sent, retry, failed)",
                        ["channel", "outcome"], registry=REGISTRY)
ACTIVE_ALERTS = Gauge("execwatch_notify_active_alerts", "firing alerts known to notify, by rule and severity",
                      ["rule", "severity"], registry=REGISTRY)
LATENCY = Histogram("execwatch_notify_alert_to_delivery_seconds",
                    "alert received by notify to message delivered (includes group_wait and quiet hours)",
                    ["channel"], registry=REGISTRY,
                    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400))


def observe(channel: str, outcome: str, alert_at: datetime | None, at: datetime) -> None:
    if outcome == "gone":
        return
    NOTIFICATIONS.labels(channel=channel, outcome=outcome).inc()
    if outcome == "sent" and alert_at is not None:
        LATENCY.labels(channel=channel).observe(max(0.0, (at - alert_at).total_seconds()))


def refresh_active(session: Session) -> None:
    rows = session.exec(select(NotifyAlert.rule, NotifyAlert.severity, func.count())
                        .where(NotifyAlert.status == "firing")
                        .group_by(NotifyAlert.rule, NotifyAlert.severity)).all()
    ACTIVE_ALERTS.clear()
    for rule, severity, count in rows:
        ACTIVE_ALERTS.labels(rule=rule, severity=severity).set(count)
