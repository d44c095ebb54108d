from prometheus_client import Counter

from services.budget.service import BatchResult
from services.common.metrics import REGISTRY

EVENTS = Counter("execwatch_budget_events_total", "budget events by outcome", ["outcome"], registry=REGISTRY)
ALERTS = Counter("execwatch_budget_alerts_total", "alerts emitted", ["rule"], registry=REGISTRY)


def record(result: BatchResult) -> None:
    for outcome in ("applied", "duplicates", "stale", "ignored"):
        EVENTS.labels(outcome=outcome).inc(getattr(result, outcome))
    ALERTS.labels(rule="execution_slipped").inc(result.alerts)
