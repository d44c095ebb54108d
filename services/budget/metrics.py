"""Budget metrics: counters per batch outcome (global registry) and, per runtime, gauges of
execution rate and gap per division (과), refreshed from the view in the background. Gauges
are per division, never per program, so cardinality stays bounded."""

from __future__ import annotations

import asyncio
from datetime import date

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.budget import domain
from services.budget.queries import latest_fiscal_year, rollup_lines
from services.budget.service import BatchResult, Config
from services.common.db import Database
from services.common.logging import get_logger
from services.common.metrics import REGISTRY

log = get_logger(__name__)

EVENTS = Counter("execwatch_budget_events_total", "budget events by outcome", ["outcome"], registry=REGISTRY)
SNAPSHOTS = Counter("execwatch_budget_snapshots_total",
                    "execution snapshots: applied, corrected (same as-of, higher revision), stale, duplicate",
                    ["outcome"], registry=REGISTRY)
ALERTS = Counter("execwatch_budget_alerts_total", "alert state changes emitted",
                 ["rule", "severity", "status"], registry=REGISTRY)

REAPPLIED = Counter("execwatch_budget_batches_reapplied_total",
                    "batches judged again under their locks: another writer had changed what they read "
                    "(or, on SQLite, they held events applied before: a redelivery)",
                    registry=REGISTRY)


def record(result: BatchResult) -> None:
    REAPPLIED.inc(result.reapplied)
    for outcome in ("applied", "duplicates", "stale", "ignored"):
        EVENTS.labels(outcome=outcome).inc(getattr(result, outcome))
    SNAPSHOTS.labels(outcome="applied").inc(result.snapshots - result.corrections)
    SNAPSHOTS.labels(outcome="corrected").inc(result.corrections)
    SNAPSHOTS.labels(outcome="stale").inc(result.stale)
    SNAPSHOTS.labels(outcome="duplicate").inc(result.snapshot_duplicates)
    for (rule, severity, status), n in result.alerts_by.items():
        ALERTS.labels(rule=rule, severity=severity, status=status).inc(n)


class DivisionGauges:
    """집행률 and gap (plan − actual, %p) per 과 of the current fiscal year."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["fiscal_year", "office", "division"]
        self.rate = Gauge("execwatch_budget_division_execution_rate_percent",
                          "지출 basis 집행률 per division", labels, registry=registry)
        self.commit_rate = Gauge("execwatch_budget_division_commit_rate_percent",
                                 "원인행위 basis 집행률 per division", labels, registry=registry)
        self.gap = Gauge("execwatch_budget_division_gap_points",
                         "planned minus actual 집행률 per division (positive = behind)", labels, registry=registry)
        self.programs = Gauge("execwatch_budget_division_programs", "programs with a budget line", labels,
                              registry=registry)

    def refresh(self, db: Database, cfg: Config, fiscal_year: int | None = None) -> int:
        """Gauges for `fiscal_year`, by default the latest year that has budget lines."""
        with db.read() as s:
            fiscal_year = fiscal_year or latest_fiscal_year(s) or date.today().year
            # The 세출 programs of record, as the summary counts them (기금 apart).
            divisions, _, _ = domain.rollup(domain.of_account(rollup_lines(s, cfg, fiscal_year, None), None))
        for gauge in (self.rate, self.commit_rate, self.gap, self.programs):
            gauge.clear()
        for (office, division), r in divisions.items():
            labels = {"fiscal_year": str(fiscal_year), "office": office or "", "division": division or ""}
            self.programs.labels(**labels).set(r.programs)
            for gauge, value in ((self.rate, r.rate), (self.commit_rate, r.commit_rate), (self.gap, r.gap)):
                if value is not None:
                    gauge.labels(**labels).set(float(value))
        return len(divisions)

    async def run(self, db: Database, cfg: Config, interval: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh, db, cfg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away; gauges just go stale
                log.warning("budget gauges not refreshed", error=str(exc))
            await asyncio.sleep(interval)
