"""Notify's time: an injected clock (tests and replays drive it instead of sleeping), always UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc(value: datetime) -> datetime:
    """Always store UTC: SQLite keeps the wall time and drops the zone."""
    return value.astimezone(UTC)


class ManualClock:
    """A clock that moves only when told: tests and replays drive the scheduler with it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return self.now
