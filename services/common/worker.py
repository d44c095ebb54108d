"""A background job that works when woken, or every `interval` seconds, and survives failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger

log = get_logger(__name__)


class Worker:
    """Subclasses implement `flush()`; `wake()` asks for a run now (e.g. right after a commit)."""

    name = "worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()

    async def flush(self) -> int:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    async def run(self, interval: float, max_backoff: float = 30.0) -> None:
        failures = 0
        while True:
            # Cleared before the flush, not after: a commit that wakes the worker while a flush
            # runs (past the rows that flush read) gets a flush of its own right away, instead of
            # its wake being cleared and the row waiting for the interval.
            self._wake.clear()
            try:
                await self.flush()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker, database or mail server down: keep the work, try again
                failures += 1
                if failures == 1 or failures % 10 == 0:  # say it once, then now and then, not every tick
                    log.warning(f"{self.name} failed; will retry", error=f"{type(exc).__name__}: {exc}",
                                failures=failures)
            wait = interval if not failures else min(max_backoff, interval * 2 ** min(failures, 10))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives as
            # the event is set (a wake right before shutdown), and the worker would then run for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

async def every(interval: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` every `interval` seconds for ever; a failing round is logged and the next one tried."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{name} failed; will retry", error=str(exc))
        await asyncio.sleep(interval)
