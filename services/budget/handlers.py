"""Budget's Kafka side: budget events in (batches), alerts out through the outbox."""

from __future__ import annotations

from contracts.topics import BUDGET, PROGRAMS
from services.budget import service
from services.budget.metrics import record
from services.common.consumer import consume
from services.common.db import OutboxRelay
from services.common.runtime import Runtime


def register(rt: Runtime, relay: OutboxRelay, cfg: service.Config) -> None:
    async def after_commit(result: service.BatchResult) -> None:
        record(result)
        if result.alerts:
            await relay.flush()

    consume(
        rt,
        # The programs topic brings the milestones: the plan curve starts at a program's first
        # funding milestone. Its other events are counted as ignored.
        [BUDGET.name, PROGRAMS.name],
        group_id=rt.settings.budget_consumer_group,
        apply=lambda events: service.apply_batch(rt.db, cfg, events),
        after_commit=after_commit,
        title="budget.events",
        description="Budget lines, amendments, execution snapshots, plans, division snapshots and milestones; "
                    "emits alerts",
    )
