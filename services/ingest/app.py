"""Wiring of the ingest service: broker, outbox relay, Kafka handlers, HTTP API."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.leader import LeaderRelay
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.ingest import api, handlers
from services.ingest.store import IngestOutbox


def build(settings: Settings, *, start_broker: bool = True) -> FastAPI:
    rt = Runtime.create("ingest", settings)

    relay = LeaderRelay(rt.db, IngestOutbox, rt.publish_raw)
    handlers.register(rt, relay)
    rt.background.append(lambda: relay.run(settings.relay_interval_s))
    app = http_app(rt, "execwatch ingest", start_broker=start_broker)
    app.state.relay = relay
    app.include_router(api.router(rt, relay))
    return app


def main() -> None:
    serve(build, "ingest", get_settings())
