"""Running service apps in-process for tests: lifespans entered, HTTP through httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from kafka import KafkaConsumer
from kafka import TopicPartition as SyncTopicPartition

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


async def topic_reader(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    """A started consumer of every partition of `topics` from the beginning, in no consumer group.
    A probe needs no group, and a group's first join waits about half its session timeout on
    tansu (5 s with aiokafka's default): the caller stops it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata, so that every topic's partitions are known
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert {tp.topic for tp in parts} == set(topics), f"unknown topic among {topics}"
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record on `topic` up to the end offsets read at the start (kafka-python, no group):
    stops when each partition reached its end, instead of waiting out a consumer timeout.

    tansu reports a partition's end as its last batch's base offset + 1, not past its last record;
    a poll returns whole fetched batches only when nothing caps it (`max_poll_records`), so a
    position at or past that end means the last batch was read whole."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_poll_records=1_000_000)
    try:
        parts = [SyncTopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert parts, f"no partitions for {topic}"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} to its end offsets {ends}")
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()
