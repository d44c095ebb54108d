"""The pipelined consumer's ordering rules, with a recording stand-in for the Kafka consumer: each
batch's offsets are committed only after that batch was applied, batches are applied in fetch
order, a failed apply is retried before any later batch, a rebalance drains the queue first, and
stopping never leaves a handler blocked. (Over the real broker: tests/integration/test_pipeline.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from services.common.consumer import Batch, Pipeline, next_offsets
from services.common.messaging import Incoming


class Recorder:
    """The consumer (commits) and the apply step, writing one shared log."""

    def __init__(self, fail: dict[int, int] | None = None, fail_commits: set[int] | None = None) -> None:
        self.log: list[tuple[str, int]] = []
        self.fail = dict(fail or {})  # batch number → how many times its apply fails first
        self.fail_commits = fail_commits or set()
        self.gate: asyncio.Event | None = None

    async def process(self, items: list[Incoming]) -> None:
        n = int(items[0].raw)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail.get(n, 0) > 0:
            self.fail[n] -= 1
            self.log.append(("failed", n))
            raise RuntimeError("database unavailable")
        self.log.append(("applied", n))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        (offset,) = offsets.values()
        n = offset - 1  # batch n holds the one record at offset n
        if n in self.fail_commits:
            raise CommitFailedError("rebalanced")
        self.log.append(("committed", n))


def batch(rec: Recorder, n: int) -> Batch:
    return Batch(rec, [Incoming(None, None, None, str(n).encode())], {TopicPartition("t", 0): n + 1})


async def run_all(pipeline: Pipeline, rec: Recorder, numbers: list[int]) -> asyncio.Task[None]:
    worker = asyncio.create_task(pipeline.run())
    for n in numbers:
        await pipeline.submit(batch(rec, n))
    await pipeline.drain(timeout=10)
    return worker


async def stop(worker: asyncio.Task[None]) -> None:
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def test_each_commit_follows_its_apply_in_fetch_order() -> None:
    rec = Recorder()
    pipeline = Pipeline("budget", rec.process, depth=2)
    worker = await run_all(pipeline, rec, list(range(6)))
    await stop(worker)
    applied = [n for what, n in rec.log if what == "applied"]
    committed = [n for what, n in rec.log if what == "committed"]
    assert applied == committed == list(range(6))
    for n in range(6):  # never ahead of the database
        assert rec.log.index(("applied", n)) < rec.log.index(("committed", n))


async def test_a_failed_apply_is_retried_before_any_later_batch() -> None:
    rec = Recorder(fail={2: 2})
    pipeline = Pipeline("budget", rec.process, depth=1)
    worker = await run_all(pipeline, rec, [0, 1, 2, 3])
    await stop(worker)
    applies = [entry for entry in rec.log if entry[0] != "committed"]
    assert applies == [("applied", 0), ("applied", 1), ("failed", 2), ("failed", 2), ("applied", 2), ("applied", 3)]
    assert [n for what, n in rec.log if what == "committed"] == [0, 1, 2, 3]
    assert rec.log.index(("committed", 2)) > rec.log.index(("applied", 2))


async def test_a_refused_commit_is_not_fatal_and_later_batches_commit() -> None:
    rec = Recorder(fail_commits={1})
    pipeline = Pipeline("budget", rec.process, depth=1)
    worker = await run_all(pipeline, rec, [0, 1, 2])
    await stop(worker)
    assert [n for what, n in rec.log if what == "applied"] == [0, 1, 2]
    assert [n for what, n in rec.log if what == "committed"] == [0, 2]  # 1 would be redelivered


async def test_revoking_partitions_waits_until_every_fetched_batch_is_committed() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    pipeline = Pipeline("budget", rec.process, depth=2)
    worker = asyncio.create_task(pipeline.run())
    for n in range(3):
        await pipeline.submit(batch(rec, n))
    revoke = asyncio.create_task(pipeline.on_partitions_revoked({TopicPartition("t", 0)}))
    await asyncio.sleep(0.05)
    assert not revoke.done() and rec.log == []  # held while batches are queued
    rec.gate.set()
    await asyncio.wait_for(revoke, 10)
    assert [n for what, n in rec.log if what == "committed"] == [0, 1, 2]
    await stop(worker)


async def test_stopping_the_worker_releases_a_handler_waiting_on_a_full_queue() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()  # the apply never finishes
    pipeline = Pipeline("budget", rec.process, depth=1)
    worker = asyncio.create_task(pipeline.run())
    await pipeline.submit(batch(rec, 0))  # taken by the worker
    await asyncio.sleep(0.01)
    await pipeline.submit(batch(rec, 1))  # waits in the queue
    blocked = asyncio.create_task(pipeline.submit(batch(rec, 2)))  # the fetch waits here
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await stop(worker)
    await asyncio.wait_for(blocked, 5)
    assert pipeline.pending == 0 and pipeline.idle.is_set()
    assert not any(what == "committed" for what, _ in rec.log)  # nothing applied, nothing committed
    await pipeline.drain(timeout=1)  # and a rebalance after the stop does not wait


def test_next_offsets_are_per_partition_last_plus_one() -> None:
    class R:
        def __init__(self, topic: str, partition: int, offset: int) -> None:
            self.topic, self.partition, self.offset = topic, partition, offset

    records: list[Any] = [R("a", 0, 5), R("a", 1, 9), R("a", 0, 7), R("b", 0, 0), R("a", 0, 6)]
    assert next_offsets(records) == {TopicPartition("a", 0): 8, TopicPartition("a", 1): 10,
                                     TopicPartition("b", 0): 1}


def test_the_subscriber_takes_its_fetch_wait_and_batch_settings(monkeypatch, tmp_path):
    """A broker may hold an empty fetch for the whole fetch wait even when records arrive (tansu
    does): the setting must reach the consumer, not only aiokafka's 500 ms default."""
    from services.common.consumer import batch_subscriber
    from services.common.runtime import Runtime
    from services.common.settings import Settings

    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/x.db",
                        consumer_fetch_max_wait_ms=77, consumer_batch_size=123, consumer_batch_timeout_ms=45)
    rt = Runtime.create("budget", settings)
    seen: dict[str, Any] = {}
    real = rt.broker.subscriber

    def recording(*topics: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*topics, **kwargs)

    monkeypatch.setattr(rt.broker, "subscriber", recording)
    batch_subscriber(rt, ["execwatch.budget"], group_id="g", title="t", description="d")
    assert (seen["fetch_max_wait_ms"], seen["max_records"], seen["batch_timeout_ms"]) == (77, 123, 45)
    assert Settings(_env_file=None).consumer_fetch_max_wait_ms == 50
