"""What every service process is made of, and the HTTP shell around it.

A `Runtime` holds the service's broker, database, metrics registry and background tasks;
`http_app` wraps it in FastAPI with /healthz, /metrics and /asyncapi.json, starting and
stopping everything in the lifespan. `serve` runs it under uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import OperationalError

from services.common.auth import PUBLIC, install, startup_problems, unruled_routes
from services.common.db import Database, redacted, upgrade
from services.common.leader import exclusive
from services.common.logging import configure_logging, get_logger
from services.common.messaging import ensure_topics, make_broker
from services.common.metrics import (
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


@dataclass
class Runtime:
    name: ServiceName
    settings: Settings
    broker: KafkaBroker
    db: Database
    registry: CollectorRegistry
    background: list[Task] = field(default_factory=list)
    on_start: list[Task] = field(default_factory=list)

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

    async def publish_raw(self, topic: str, key: str, value: bytes) -> None:
        """What outbox relays publish with: bytes as stored, keyed by program."""
        await self.broker.publish(value, topic, key=key.encode())

    def migrate(self) -> None:
        # Replicas starting together would race to create the same tables: one at a time.
        with exclusive(self.db, f"migrate:{self.name}"):
            upgrade(self.db.url, self.name)

    async def connect_broker(self) -> None:
        """Create missing topics and start the broker (producer and subscribers)."""
        if self.settings.ensure_topics and self.settings.kafka_bootstrap_servers:
            await asyncio.to_thread(ensure_topics, self.settings.kafka_bootstrap_servers, self.settings.topic_prefix)
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
        tasks: list[asyncio.Task[None]] = []
        if start_broker:
            try:
                await asyncio.wait_for(self.connect_broker(), timeout=self.settings.broker_connect_timeout_s)
            except Exception as exc:  # unreachable, timed out, refused: serve anyway, keep trying
                tasks.append(asyncio.create_task(self._keep_connecting(exc), name=f"{self.name}-connect"))
        for hook in self.on_start:
            await hook()
        tasks += [asyncio.create_task(job(), name=f"{self.name}-bg") for job in self.background]
        log.info("service started", db=redacted(self.db.url),
                 kafka=self.settings.kafka_bootstrap_servers, topic_prefix=self.settings.topic_prefix)
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
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

    @app.get("/healthz", tags=["ops"], dependencies=[PUBLIC])
    async def healthz(response: Response) -> dict[str, Any]:
        db_ok = await asyncio.to_thread(runtime.db.ping)
        broker_ok = await runtime.broker.ping(timeout=2.0)
        if not (db_ok and broker_ok):
            response.status_code = 503
        return {"service": runtime.name, "database": db_ok, "broker": broker_ok}

    @app.get("/metrics", tags=["ops"], dependencies=[PUBLIC])
    async def metrics() -> Response:
        return Response(runtime.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["ops"], dependencies=[PUBLIC])
    async def asyncapi() -> dict[str, Any]:
        return runtime.asyncapi()

    return app


def serve(app_factory: Callable[[Settings], FastAPI], name: ServiceName, settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_json, service=name)
    refuse(name, startup_problems(settings))  # demo credentials would let anyone in
    app = app_factory(settings)
    refuse(name, [f"route without an access rule: {r}" for r in unruled_routes(app)])
    # log_config=None: uvicorn's loggers keep the JSON handler configure_logging installed.
    uvicorn.run(app, host=settings.http_host, port=settings.port_for(name), log_level="info",
                access_log=False, log_config=None)


def refuse(name: str, problems: list[str]) -> None:
    if problems:
        for problem in problems:
            log.error("refusing to start", problem=problem)
        raise SystemExit(f"{name}: refusing to start: " + "; ".join(problems))
