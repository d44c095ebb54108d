"""Running service apps in-process for tests: lifespans entered, HTTP through httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

T = TypeVar("T")


def bearer(app: FastAPI, role: str = "operator", name: str | None = None, **fields: Any) -> dict[str, str]:
    """An API key of this role in the app's access tables (after its lifespan started), as headers."""
    _, key = app.state.access.store.create(name=name or f"test-{role}", role=role, **fields)
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def running(*apps: FastAPI, as_role: str | None = "operator") -> AsyncIterator[list[httpx.AsyncClient]]:
    """Start each app's lifespan (migrations, broker, background tasks); yield HTTP clients that
    send an API key of `as_role` (an operator by default; None: anonymous)."""
    async with AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            headers = bearer(app, as_role) if as_role else {}
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc",
                                       headers=headers)
            await stack.enter_async_context(client)
            clients.append(client)
        yield clients


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0,
                     interval: float = 0.1, what: str = "condition") -> T:
    """Poll until probe returns something truthy; fail with what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
