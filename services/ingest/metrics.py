from prometheus_client import Counter

from services.common.metrics import REGISTRY

ACCEPTED = Counter("execwatch_ingest_accepted_total", "events accepted into the outbox", ["path"],
                   registry=REGISTRY)
DUPLICATES = Counter("execwatch_ingest_duplicates_total", "events resubmitted with a known event_id",
                     ["path"], registry=REGISTRY)
REJECTED = Counter("execwatch_ingest_rejected_total", "events rejected", ["path", "reason"], registry=REGISTRY)
