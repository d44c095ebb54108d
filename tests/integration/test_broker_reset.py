"""A broker that comes back empty (the embedded one keeps memory only): every service notices
(the marker record is gone), its consumers read their partitions from the start, and every outbox
relay re-publishes its recent window. Idempotent consumers make that exactly-once in the view."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import func, select

from services.budget.app import build as build_budget
from services.budget.store import BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.embedded import EmbeddedBroker, free_port
from services.common.metrics import REGISTRY
from services.ingest.app import build as build_ingest
from tests import factories as f
from tests.helpers import eventually, running

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


def _events(programs: range, days: range) -> list[dict]:
    events = [f.budget_line(f"P{p:03d}", original=1_000_000_000) for p in programs]
    for d in days:
        events += [f.snapshot(f"P{p:03d}", date(2025, 2, 1) + timedelta(days=d), spent=(d + 1) * 1000 + p)
                   for p in programs]
    return events


async def test_broker_that_lost_its_data_gets_what_was_in_flight_again(db_url, make_settings, tmp_path):
    port = free_port()
    broker = EmbeddedBroker.start(port=port, log_path=tmp_path / "tansu.log")
    settings = make_settings(kafka_bootstrap_servers=broker.bootstrap, database_url=db_url,
                             broker_watch_interval_s=0.5, consumer_batch_size=20)
    ingest, budget = build_ingest(settings), build_budget(settings)
    rt = budget.state.runtime
    programs, days = range(20), 8
    events = _events(programs, range(days))
    first = len(programs) * 4
    resets_before = REGISTRY.get_sample_value("execwatch_broker_resets_total", {"execwatch_service": "budget"}) or 0.0
    try:
        async with running(ingest, budget) as (client, _):
            assert all(app.state.runtime.watch.epoch for app in (ingest, budget))  # read at start
            assert (await client.post("/v1/events", headers=AUTH, json=events[:first])).status_code == 202

            async def some_applied() -> bool:
                with rt.db.read() as s:
                    return int(s.exec(select(func.count()).select_from(BudgetInbox)).one()) > 0
            await eventually(some_applied, what="budget consuming")
            broker.process.kill()
            broker.process.wait()
            assert (await client.post("/v1/events", headers=AUTH, json=events[first:])).status_code == 202
            broker = EmbeddedBroker.start(port=port, log_path=tmp_path / "tansu.log")

            async def all_applied() -> int | None:
                with rt.db.read() as s:
                    applied = int(s.exec(select(func.count()).select_from(BudgetInbox)).one())
                return applied if applied == len(events) else None
            await eventually(all_applied, timeout=120, interval=0.5, what=f"{len(events)} events applied")
            with rt.db.read() as s:
                rows = {r.program_id: r.spent for r in s.exec(select(BudgetProgram)).all()}
                per_program = dict(s.exec(select(BudgetSnapshot.program_id, func.count())
                                          .group_by(BudgetSnapshot.program_id)).all())
            assert rows == {f"P{p:03d}": days * 1000 + p for p in programs}
            assert per_program == {f"P{p:03d}": days for p in programs}
            resets = REGISTRY.get_sample_value("execwatch_broker_resets_total", {"execwatch_service": "budget"})
            assert resets == resets_before + 1
    finally:
        broker.stop()


async def test_once_the_epoch_is_known_the_marker_is_read_without_asking_its_end_offset(kafka, sqlite_url,
                                                                                        make_settings,
                                                                                        monkeypatch):
    """The end offset tells a fresh (empty) marker from a written one at start; afterwards the
    relays read the marker every few seconds before publishing, and asking the end offset cost
    ≈ 0.5 s against tansu each time, which every row committed meanwhile waited for."""
    from aiokafka import AIOKafkaConsumer

    from services.common.runtime import Runtime, http_app

    rt = Runtime.create("ingest", make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=sqlite_url))
    async with running(http_app(rt, "test", start_broker=True)):
        assert rt.watch is not None and rt.watch.epoch is not None  # read at start
        epoch, asked = rt.watch.epoch, []
        real = AIOKafkaConsumer.end_offsets

        async def counted(self, partitions):  # type: ignore[no-untyped-def]
            asked.append(partitions)
            return await real(self, partitions)
        monkeypatch.setattr(AIOKafkaConsumer, "end_offsets", counted)
        await rt.watch.check_marker()
        assert asked == [] and rt.watch.epoch == epoch
