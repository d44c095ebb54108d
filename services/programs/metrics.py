from prometheus_client import Counter

from services.common.metrics import REGISTRY
from services.programs.service import BatchResult

EVENTS = Counter("execwatch_programs_events_total", "program events by outcome", ["outcome"], registry=REGISTRY)
ALERTS = Counter("execwatch_programs_alerts_total", "alert state changes emitted", registry=REGISTRY)


def record(result: BatchResult) -> None:
    for outcome in ("applied", "duplicates", "ignored"):
        EVENTS.labels(outcome=outcome).inc(getattr(result, outcome))
    ALERTS.inc(result.alerts)
