from prometheus_client import Counter, Histogram

from services.common.db import utcnow
from services.common.metrics import REGISTRY
from services.notify.store import NotifyDelivery

NOTIFICATIONS = Counter("execwatch_notify_notifications_total", "notification attempts by channel and outcome",
                        ["channel", "outcome"], registry=REGISTRY)
LATENCY = Histogram("execwatch_notify_alert_to_delivery_seconds", "delivery planned (alert consumed) to sent",
                    ["channel"], registry=REGISTRY,
                    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 86400))


def observe_delivery(d: NotifyDelivery, error: str | None) -> None:
    NOTIFICATIONS.labels(channel=d.channel, outcome="error" if error else "sent").inc()
    if error is None:
        LATENCY.labels(channel=d.channel).observe(max(0.0, (utcnow() - d.created_at).total_seconds()))
