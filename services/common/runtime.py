"""What every service process is made of, and the HTTP shell around it.

A `Runtime` holds the service's broker, database, metrics registry, consumers and background
tasks; `http_app` wraps it in FastAPI with /livez, /readyz (/healthz), /metrics and
/asyncapi.json, starting and stopping everything in the lifespan. `serve` runs it under uvicorn.

A `BrokerWatch` runs beside the consumers: it measures each consumer group's lag and progress,
resets a partition whose position lies beyond its end, and notices a broker that came back
without its data (the marker record written when the broker was first used is gone), in which
case consumers read their partitions again from the start and every outbox relay re-publishes
its recent window: idempotent consumers re-apply whatever was in flight, nothing is lost.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import OperationalError

from contracts.topics import ALL_TOPICS, TopicSpec
from services.common.auth import PUBLIC, install, startup_problems, unruled_routes
from services.common.db import Database, redacted, upgrade
from services.common.leader import exclusive
from services.common.logging import configure_logging, get_logger
from services.common.messaging import Incoming, dead_letter, ensure_topics, make_broker
from services.common.metrics import (
    BROKER_RESETS,
    CONSUMER_STALLED,
    OUTBOX_OLDEST_AGE,
    REGISTRY,
    consumed_topics,
    instrument_http,
    service_registry,
    watch_consumers,
    zero_progress,
)
from services.common.params import RefuseControlCharacters
from services.common.settings import ServiceName, Settings

log = get_logger(__name__)

Task = Callable[[], Coroutine[Any, Any, None]]

#: One record, written when a broker is first used. If it is gone the broker lost its data (the
#: embedded broker keeps memory only): see BrokerWatch.
MARKER = TopicSpec("execwatch.marker", 1, (), "a marker record: if it is gone, the broker lost its data")


@dataclass(frozen=True)
class Check:
    """One line of /readyz: is this part well, and what was measured."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Awaitable[Check]]


@dataclass
class ConsumerGroup:
    """A subscriber the runtime watches: its lag, and when it last committed a batch."""

    group_id: str
    subscriber: Any  # FastStream's batch subscriber; `.consumer` is its AIOKafkaConsumer once started
    progressed_at: float = field(default_factory=time.monotonic)
    caught_up_at: float = field(default_factory=time.monotonic)
    lag: int | None = None
    stalled_s: float = 0.0


@dataclass(frozen=True)
class RawPublisher:
    """Publishes bytes as stored, keyed by program, through the service's broker; also hands the
    outbox relay the broker's own aiokafka producer (same settings: acks, idempotence, request
    size) so that it can append whole rounds to it (`services.common.db.DirectPublish`)."""

    broker: KafkaBroker

    async def __call__(self, topic: str, key: str, value: bytes) -> None:
        await self.broker.publish(value, topic, key=key.encode())

    def producer(self) -> AIOKafkaProducer | None:
        """The started aiokafka producer, or None (not connected, or FastStream's test broker,
        whose fake producer routes to the subscribers in process)."""
        impl = self.broker.config.producer
        if not isinstance(impl, AioKafkaFastProducerImpl) or not impl or impl.closed:
            return None
        return impl._producer.producer


@dataclass
class Runtime:
    name: ServiceName
    settings: Settings
    broker: KafkaBroker
    db: Database
    registry: CollectorRegistry
    background: list[Task] = field(default_factory=list)
    on_start: list[Task] = field(default_factory=list)
    consumers: list[ConsumerGroup] = field(default_factory=list)
    #: named readiness checks beside the database, the broker, the outboxes and the consumers;
    #: register with `add_health_check` (e.g. notify's oldest undelivered mail)
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    loop_lag_s: float = 0.0
    watch: BrokerWatch | None = None

    @classmethod
    def create(cls, name: ServiceName, settings: Settings) -> Runtime:
        registry = service_registry()
        runtime = cls(
            name=name,
            settings=settings,
            broker=make_broker(settings, name, registry),
            db=Database(settings.database_url_for(name)),
            registry=registry,
        )
        # Lag and progress series from start-up, not only once a message arrives.
        runtime.on_start.append(lambda: zero_progress(registry, name, consumed_topics(runtime.broker)))
        runtime.background.append(lambda: watch_consumers(name, runtime.broker))
        return runtime

    @property
    def publish_raw(self) -> RawPublisher:
        """What outbox relays publish with: bytes as stored, keyed by program."""
        return RawPublisher(self.broker)

    async def dead_letter(self, item: Incoming, stage: str) -> None:
        """Set one message aside: the dead-letter topic and this service's own database."""
        await dead_letter(self.broker, self.settings, self.name, item, stage, db=self.db)

    async def broker_up(self) -> bool:
        try:
            return bool(await self.broker.ping(timeout=2.0))
        except Exception:
            return False

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Register a readiness check; /readyz answers 503 while any check is not ok."""
        self.health_checks[name] = check

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Database and broker reachable, no outbox row and no consumer stuck past its threshold,
        every registered check ok."""
        s = self.settings
        db_ok = await asyncio.to_thread(self.db.ping)
        broker_ok = await self.broker_up()
        checks: dict[str, Check] = {}
        if db_ok:
            for relay in self.db.relays:
                table = relay.table.__tablename__
                age = await asyncio.to_thread(relay.oldest_pending_age)
                OUTBOX_OLDEST_AGE.labels(table=table).set(age)
                checks[f"outbox:{table}"] = Check(age <= s.health_outbox_max_age_s,
                                                  {"oldest_pending_age_s": round(age, 1)})
        for group in self.consumers:
            checks[f"consumer:{group.group_id}"] = Check(group.stalled_s <= s.health_consumer_stall_s,
                                                         {"lag": group.lag, "stalled_s": round(group.stalled_s, 1)})
        for name, check in self.health_checks.items():
            try:
                checks[name] = await check()
            except Exception as exc:
                checks[name] = Check(False, {"error": f"{type(exc).__name__}: {exc}"[:300]})
        ok = db_ok and broker_ok and all(c.ok for c in checks.values())
        return ok, {"service": self.name, "database": db_ok, "broker": broker_ok,
                    "checks": {n: {"ok": c.ok, **c.detail} for n, c in checks.items()}}

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """The process runs, its event loop answers, and no background task has died."""
        dead = [t.get_name() for t in self.tasks if t.done() and not t.cancelled() and t.exception() is not None]
        return not dead, {"service": self.name, "loop_lag_s": round(self.loop_lag_s, 3), "dead_tasks": dead}

    async def _measure_loop(self, period: float = 0.5) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(period)
            self.loop_lag_s = max(0.0, time.monotonic() - started - period)

    def migrate(self) -> None:
        # Replicas starting together would race to create the same tables: one at a time.
        with exclusive(self.db, f"migrate:{self.name}"):
            upgrade(self.db.url, self.name)

    async def connect_broker(self) -> None:
        """Create missing topics and start the broker (producer and subscribers)."""
        if self.settings.ensure_topics and self.settings.kafka_bootstrap_servers:
            await asyncio.to_thread(ensure_topics, self.settings.kafka_bootstrap_servers, self.settings.topic_prefix,
                                    [*ALL_TOPICS, MARKER])
        await self.broker.start()

    async def _keep_connecting(self, first_error: Exception) -> None:
        """Kafka was down at start: keep trying, with backoff, while the HTTP side serves."""
        delay, error = 1.0, first_error
        while True:
            log.warning("Kafka unavailable; retrying", error=f"{type(error).__name__}: {error}"[:300], retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self.broker.stop()  # drop whatever half-started
                await asyncio.wait_for(self.connect_broker(), timeout=self.settings.broker_connect_timeout_s)
                log.info("Kafka connected")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc

    @asynccontextmanager
    async def running(self, *, start_broker: bool = True) -> AsyncIterator[Runtime]:
        """Migrate, start the broker and background tasks; undo it all on exit.

        If Kafka cannot be reached at start the service still comes up: the read API serves and
        ingest keeps accepting into its outbox, while the broker is retried in the background."""
        await asyncio.to_thread(self.migrate)
        tasks = self.tasks
        watch = self.watch = BrokerWatch(self) if start_broker and self.settings.kafka_bootstrap_servers else None
        for relay in self.db.relays:
            relay.broker_up = self.broker_up
            relay.verify_broker = watch.check_marker if watch is not None else None
            relay.verify_max_age = self.settings.relay_marker_max_age_s
        tasks.append(asyncio.create_task(self._measure_loop(), name=f"{self.name}-loop"))
        if start_broker:
            try:
                await asyncio.wait_for(self.connect_broker(), timeout=self.settings.broker_connect_timeout_s)
            except Exception as exc:  # unreachable, timed out, refused: serve anyway, keep trying
                tasks.append(asyncio.create_task(self._keep_connecting(exc), name=f"{self.name}-connect"))
            else:
                if watch is not None:
                    # Know the broker's marker before anything is published: a broker that loses
                    # its data from here on is noticed (the watch re-reads it every round).
                    with suppress(Exception):
                        await asyncio.wait_for(watch.check_marker(), timeout=15.0)
        for hook in self.on_start:
            await hook()
        tasks += [asyncio.create_task(job(), name=f"{self.name}-bg") for job in self.background]
        if watch is not None:
            tasks.append(asyncio.create_task(watch.run(), name=f"{self.name}-broker-watch"))
        log.info("service started", db=redacted(self.db.url),
                 kafka=self.settings.kafka_bootstrap_servers, topic_prefix=self.settings.topic_prefix)
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()
            if start_broker:
                await self.broker.stop()
            self.db.dispose()
            log.info("service stopped")

    def metrics_text(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.registry)

    def asyncapi(self) -> dict[str, Any]:
        spec = AsyncAPI(self.broker, title=f"execwatch {self.name}", version="1.0.0")
        data: dict[str, Any] = spec.to_specification().to_jsonable()
        return data


def http_app(runtime: Runtime, title: str, *, start_broker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(start_broker=start_broker):
            yield

    app = FastAPI(title=title, lifespan=lifespan, version="1.0.0")
    app.state.runtime = runtime
    app.add_middleware(RefuseControlCharacters)  # before routing: no NUL reaches a query
    instrument_http(app, runtime.registry)
    install(app, runtime.settings, runtime.name)

    @app.exception_handler(OperationalError)
    async def database_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        # Nothing was committed: the caller may safely retry the same request (same event ids).
        log.error("database unavailable", error=str(exc.orig)[:300])
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"error": "database unavailable; nothing was stored, retry later"})

    @app.get("/livez", tags=["ops"], dependencies=[PUBLIC])
    async def livez(response: Response) -> dict[str, Any]:
        """Restart me if not 200: the process is wedged or a background task died."""
        ok, body = runtime.liveness()
        if not ok:
            response.status_code = 503
        return body

    @app.get("/readyz", tags=["ops"], dependencies=[PUBLIC])
    async def readyz(response: Response) -> dict[str, Any]:
        """Route work to me only if 200: database and broker reachable, no pipeline stuck."""
        ok, body = await runtime.readiness()
        if not ok:
            response.status_code = 503
        return body

    @app.get("/healthz", tags=["ops"], dependencies=[PUBLIC])
    async def healthz(response: Response) -> dict[str, Any]:
        """Readiness, under the name older tooling asks for."""
        return await readyz(response)

    @app.get("/metrics", tags=["ops"], dependencies=[PUBLIC])
    async def metrics() -> Response:
        return Response(runtime.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["ops"], dependencies=[PUBLIC])
    async def asyncapi() -> dict[str, Any]:
        return runtime.asyncapi()

    return app


def serve(app_factory: Callable[[Settings], FastAPI], name: ServiceName, settings: Settings, *,
          role: str | None = None, port: int | None = None) -> None:
    """Run a service's app with uvicorn. `role` names a process of the service other than its main
    one (ingest's relay) in the logs, listening on `port` instead of the service's."""
    configure_logging(settings.log_level, settings.log_json, service=role or name)
    refuse(name, startup_problems(settings))  # demo credentials would let anyone in
    app = app_factory(settings)
    refuse(name, [f"route without an access rule: {r}" for r in unruled_routes(app)])
    tune_gc()
    # log_config=None: uvicorn's loggers keep the JSON handler configure_logging installed.
    uvicorn.run(app, host=settings.http_host, port=port or settings.port_for(name), log_level="info",
                access_log=False, log_config=None)


def tune_gc() -> None:
    """For a service's own process, once its app is built (not for tests: they build many apps in
    one process, whose cycles must stay collectable). Every object made so far (modules, contract
    schemas, the app) moves out of the collector's generations, and a young collection runs after
    10,000 net allocations instead of 700. A full collection walked the whole startup heap (≈ 0.1 s
    each: a fifth of ingest's accept CPU) and a batch of 500 events made about seven young ones;
    measured on benchmarks/ingest_accept.py: 0.2–0.3 s of collections per 40,000 events with the
    freeze alone, none with both (docs/benchmarks.md, 2026-11-26 evening). Budget's state cache
    (up to `budget_cache_programs` programs) is what full collections would scan there."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def refuse(name: str, problems: list[str]) -> None:
    if problems:
        for problem in problems:
            log.error("refusing to start", problem=problem)
        raise SystemExit(f"{name}: refusing to start: " + "; ".join(problems))


class BrokerWatch:
    """Every `broker_watch_interval_s`: measure each consumer group's lag and progress, reset
    partitions whose position lies beyond their end, and check the broker still has its data."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.epoch: str | None = None
        self._marker = TopicPartition(rt.settings.topic(MARKER.name), 0)
        self._checking = asyncio.Lock()
        #: when (monotonic) the last successful check started: the broker held its data then
        self.checked_at: float | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.rt.settings.broker_watch_interval_s)
            limit = max(15.0, 3 * self.rt.settings.broker_watch_interval_s)  # never wedge the watch
            try:
                await asyncio.wait_for(self.measure_consumers(), timeout=limit)
                await asyncio.wait_for(self.check_marker(), timeout=limit)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down or restarting: the next round tries again
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("broker watch failed; will retry", error=f"{type(exc).__name__}: {exc}"[:300])

    async def measure_consumers(self) -> None:
        now = time.monotonic()
        for group in self.rt.consumers:
            consumer = getattr(group.subscriber, "consumer", None)
            if consumer is None:
                continue
            total, known = 0, False
            for tp in list(consumer.assignment()):
                highwater = consumer.highwater(tp)
                try:
                    position = await asyncio.wait_for(consumer.position(tp), timeout=1.0)
                except Exception:  # being reassigned or reset right now: measure next round
                    continue
                if highwater is None:
                    continue
                known = True
                if position > highwater:
                    # The partition is shorter than where we stand: the broker lost its data (or
                    # the log was truncated). Not every client/broker pair reports this as out of
                    # range, so do what auto_offset_reset=earliest would have done.
                    log.warning("position beyond the end of the partition; reading it from the start",
                                group=group.group_id, topic=tp.topic, partition=tp.partition,
                                position=position, end=highwater)
                    with suppress(Exception):  # offset 0: below a real log's start, the reset policy applies
                        consumer.seek(tp, 0)
                    continue
                # Behind = not yet committed (a batch fetched but stuck in the handler still counts).
                try:
                    committed = await asyncio.wait_for(consumer.committed(tp), timeout=1.0)
                except Exception:
                    committed = None
                # nothing committed yet: the group starts from the beginning (auto_offset_reset)
                lag = max(0, highwater - (committed if committed is not None else 0))
                total += lag  # (execwatch_consumer_lag, against the position, is the LagSampler's)
            if not known:
                continue
            group.lag = total
            if total == 0:
                group.caught_up_at = now
            group.stalled_s = 0.0 if total == 0 else now - max(group.progressed_at, group.caught_up_at)
            CONSUMER_STALLED.labels(execwatch_service=self.rt.name, group=group.group_id).set(group.stalled_s)

    async def _read_marker(self) -> str | None:
        """The marker's value, read by a fresh consumer each time: a long-lived one may answer
        from records it fetched before the broker restarted."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.rt.settings.kafka_bootstrap_servers, group_id=None,
                                  enable_auto_commit=False, client_id=f"execwatch-{self.rt.name}-watch")
        try:
            await reader.start()
            if self._marker.topic not in await reader.topics():
                return None
            reader.assign([self._marker])
            # An empty marker partition (a fresh broker or topic prefix: every first start) is
            # known from its end offset; a fetch would wait out its whole timeout for nothing. Only
            # until the epoch is known: asking the end offset costs ≈ 0.5 s against tansu, and the
            # relays read the marker every few seconds before publishing (every row committed
            # meanwhile waited for it: publish → view p99 150 → 582 ms at 2,000 events/s).
            if self.epoch is None and not (await reader.end_offsets([self._marker])).get(self._marker):
                return None
            reader.seek(self._marker, 0)
            records = await reader.getmany(self._marker, timeout_ms=2000, max_records=1)
            for batch in records.values():
                for record in batch:
                    return bytes(record.value or b"").decode("utf-8", "replace")
            return None
        finally:
            await reader.stop()

    def _fresh(self, max_age: float) -> bool:
        return self.checked_at is not None and time.monotonic() - self.checked_at <= max_age

    async def check_marker(self, max_age: float = 0.0) -> None:
        """Check the broker still holds its data, unless a check that started at most `max_age`
        seconds ago succeeded (the relays accept one a few seconds old: reading the marker starts
        a consumer, too much for every flush; the watch itself always reads)."""
        if self._fresh(max_age):
            return
        async with self._checking:  # the watch and the relays (before a flush) both ask
            if self._fresh(max_age):  # checked while we waited
                return
            started = time.monotonic()
            if await self._check_marker():
                self.checked_at = started

    async def _check_marker(self) -> bool:
        s = self.rt.settings
        value = await self._read_marker()
        if value is None:
            bootstrap = s.kafka_bootstrap_servers or ""
            specs = [*ALL_TOPICS, MARKER] if s.ensure_topics else [MARKER]
            await asyncio.to_thread(ensure_topics, bootstrap, s.topic_prefix, specs)
            await self.rt.broker.publish(uuid.uuid4().hex.encode(), self._marker.topic, key=b"marker")
            value = await self._read_marker()  # whoever wrote first (offset 0) names the epoch
            if value is None:
                return False
        if self.epoch is not None and value != self.epoch:
            self.on_broker_reset()
        self.epoch = value
        return True

    def on_broker_reset(self) -> None:
        s = self.rt.settings
        BROKER_RESETS.labels(execwatch_service=self.rt.name).inc()
        log.warning("the broker lost its data; consumers read from the start, the outbox window is re-published",
                    window_s=s.relay_republish_window_s)
        for group in self.rt.consumers:
            consumer = getattr(group.subscriber, "consumer", None)
            if consumer is not None:
                for tp in list(consumer.assignment()):
                    with suppress(Exception):  # a rebalance in progress resets positions anyway
                        consumer.seek(tp, 0)
        for relay in self.rt.db.relays:
            relay.republish = (s.relay_republish_window_s, s.relay_republish_max_rows)
            relay.wake()
