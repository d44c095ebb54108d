"""Wiring of the notify service: broker, batch handler, email sender, read API."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.notify import api, handlers, service
from services.notify.render import Renderer


def build(settings: Settings, *, start_broker: bool = True) -> FastAPI:
    rt = Runtime.create("notify", settings)
    sender = service.EmailSender(rt.db, settings)
    handlers.register(rt, sender, Renderer())
    rt.background.append(lambda: sender.run(5.0))
    app = http_app(rt, "execwatch notify", start_broker=start_broker)
    app.state.sender = sender
    app.include_router(api.router(rt))
    return app


def main() -> None:
    serve(build, "notify", get_settings())
