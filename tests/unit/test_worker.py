"""A worker woken while it works runs again at once: the wake of a commit that landed during a
flush (after the rows that flush read) is not cleared when the flush ends."""

from __future__ import annotations

import asyncio

from services.common.worker import Worker


class Gated(Worker):
    """Its first flush waits until the test lets it finish; counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def flush(self) -> int:
        self.flushes += 1
        if self.flushes == 1:
            self.started.set()
            await self.release.wait()
        return 0


async def test_a_wake_during_a_flush_runs_another_flush_without_waiting_for_the_interval() -> None:
    worker = Gated()
    task = asyncio.create_task(worker.run(interval=3600))  # the interval would never come
    try:
        await worker.started.wait()
        worker.wake()  # a commit while the first flush runs
        worker.release.set()
        for _ in range(1000):
            if worker.flushes >= 2:
                break
            await asyncio.sleep(0)
        assert worker.flushes == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
