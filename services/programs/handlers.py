"""Programs' Kafka side: program events in (batches); alerts out through the outbox; the
time-driven checks run on a schedule beside the consumer, on the injected clock, by the leading
replica."""

from __future__ import annotations

import asyncio

from contracts.topics import PROGRAMS
from services.common.consumer import consume
from services.common.db import OutboxRelay
from services.common.leader import Leader
from services.common.runtime import Runtime
from services.programs import metrics, service


def register(rt: Runtime, relay: OutboxRelay, cfg: service.Config, clock: service.Clock) -> None:
    async def after_commit(result: service.BatchResult) -> None:
        metrics.record(result)
        if result.alerts:
            await relay.flush()
        if result.applied:
            await asyncio.to_thread(metrics.refresh, rt.db)

    consume(
        rt,
        [PROGRAMS.name],
        group_id=rt.settings.programs_group_id,
        apply=lambda events: service.apply_batch(rt.db, cfg, events, clock()),
        after_commit=after_commit,
        title="programs.events",
        description="Program register, milestones and targets; emits schedule and target alerts",
    )

    async def check() -> None:
        result = await asyncio.to_thread(service.check_all, rt.db, cfg, clock())
        metrics.record(result)
        if result.alerts:
            await relay.flush()
        await asyncio.to_thread(metrics.refresh, rt.db)

    async def periodic_check() -> None:
        # Clock-driven: with several replicas only the leader judges every milestone (a second
        # one would find nothing new, serialized behind the same lock, but do all the work).
        await Leader(rt.db, "programs:checks").run(rt.settings.check_interval_s, check, "programs check")

    rt.background.append(periodic_check)
