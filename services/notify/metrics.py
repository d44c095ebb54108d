"""Notify metrics: notifications by channel and outcome, active alerts, alert-to-delivery latency."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.common.metrics import REGISTRY
from services.notify.store import NotifyAlert, NotifyDelivery, aware

NOTIFICATIONS = Counter("execwatch_notify_notifications_total",
                        "delivery attempts by channel and outcome (sent, retry, failed)",
                        ["channel", "outcome"], registry=REGISTRY)
ACTIVE_ALERTS = Gauge("execwatch_notify_active_alerts", "firing alerts known to notify, by rule and severity",
                      ["rule", "severity"], registry=REGISTRY)
UNROUTABLE = Counter("execwatch_notify_unroutable_total",
                     "firing alerts that had nobody to tell (no contact, no division or office default)",
                     registry=REGISTRY)
UNROUTABLE_ALERTS = Gauge("execwatch_notify_unroutable_alerts",
                          "firing alerts held without any recipient right now", registry=REGISTRY)
OLDEST_UNDELIVERED = Gauge("execwatch_notify_oldest_undelivered_seconds",
                           "age of the oldest email or webhook delivery still pending (0: none)",
                           registry=REGISTRY)
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
    unroutable = session.exec(select(func.count()).select_from(NotifyAlert)
                              .where(NotifyAlert.status == "firing",
                                     col(NotifyAlert.awaiting_recipients).is_(True))).one()
    UNROUTABLE_ALERTS.set(unroutable)


def refresh_undelivered(session: Session, now: datetime) -> None:
    oldest = aware(session.exec(select(func.min(NotifyDelivery.created_at))
                                .where(NotifyDelivery.outcome == "pending",
                                       col(NotifyDelivery.channel).in_(["email", "webhook"]))).one())
    OLDEST_UNDELIVERED.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
