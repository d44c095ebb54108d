"""Wiring of the notify service: routing file (validated here, so a bad file stops the start),
batch handler, scheduler, dispatcher, dead-letter relay, read API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.common.db import OutboxRelay, utcnow
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.notify import api, auth_api, handlers, routing, service
from services.notify.render import Renderer
from services.notify.store import NotifyOutbox


def build(settings: Settings, *, start_broker: bool = True, clock: service.Clock = utcnow) -> FastAPI:
    rules = routing.load(settings)
    rt = Runtime.create("notify", settings)
    base = settings.notify_public_url.rstrip("/") if settings.notify_public_url else None
    secret = settings.notify_ack_secret.get_secret_value()

    def ack_url(fingerprint: str) -> str | None:
        if base is None:
            return None
        return f"{base}/v1/alerts/{fingerprint}/ack?token={service.ack_token(secret, fingerprint)}"

    renderer = Renderer(Path(settings.notify_templates_dir) if settings.notify_templates_dir else None, ack_url)
    notifier = service.Notifier(rt.db, settings, rules, renderer, clock)
    dispatcher = service.Dispatcher(rt.db, settings, rules, clock)
    relay = OutboxRelay(rt.db, NotifyOutbox, handlers.dead_letter_publisher(rt))
    handlers.register(rt, notifier)
    rt.background.append(lambda: service.run_scheduler(notifier, dispatcher, settings.notify_tick_s))
    rt.background.append(lambda: dispatcher.run(5.0))
    rt.background.append(lambda: relay.run(settings.relay_interval_s * 4))
    app = http_app(rt, "execwatch notify", start_broker=start_broker)
    app.state.notifier, app.state.dispatcher, app.state.relay = notifier, dispatcher, relay
    app.include_router(api.router(rt, notifier))
    app.include_router(auth_api.router(rt))
    return app


def main() -> None:
    serve(build, "notify", get_settings())
