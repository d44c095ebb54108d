"""Wiring of the programs service: broker, batch handler, periodic check, relay, read API."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.leader import LeaderRelay
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.programs import api, handlers, service
from services.programs.store import ProgramsOutbox


def build(settings: Settings, *, start_broker: bool = True, clock: service.Clock | None = None) -> FastAPI:
    rt = Runtime.create("programs", settings)
    clock = clock or service.clock_from_settings(settings)
    cfg = service.Config.from_settings(settings)
    relay = LeaderRelay(rt.db, ProgramsOutbox, rt.publish_raw)
    handlers.register(rt, relay, cfg, clock)
    rt.background.append(lambda: relay.run(settings.relay_interval_s * 4))
    app = http_app(rt, "execwatch programs", start_broker=start_broker)
    app.state.clock, app.state.programs_config = clock, cfg
    app.include_router(api.router)
    return app


def main(settings: Settings | None = None) -> None:
    serve(build, "programs", settings or get_settings())
