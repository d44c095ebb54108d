"""Wiring of the notify service: routing file (validated here, so a bad file stops the start),
batch handler (intake), scheduler and dead-letter relay (on the leading replica), dispatcher (on
every replica, on the deliveries it claims), read API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI

from services.common.db import utcnow
from services.common.leader import LeaderRelay
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import DEMO_ACK_SECRET, Settings, get_settings
from services.notify import api, auth_api, handlers, links, routing, scheduler, service
from services.notify.dispatcher import Dispatcher
from services.notify.domain import Recipient
from services.notify.render import Renderer
from services.notify.store import NotifyOutbox


class InsecureSettings(RuntimeError):
    """Notify would start with a secret anyone can read in the source."""


def check_secrets(settings: Settings) -> None:
    """Acknowledge links are the only proof of who acknowledged: with the demo's published secret
    anyone could forge them. Only the demo (EXECWATCH_DEMO=true, set by `execwatch up --demo`) may
    use it."""
    secret = settings.notify_ack_secret.get_secret_value()
    if not secret:
        raise InsecureSettings("EXECWATCH_NOTIFY_ACK_SECRET is empty: set a long random secret")
    if secret == DEMO_ACK_SECRET and not settings.demo:
        raise InsecureSettings("EXECWATCH_NOTIFY_ACK_SECRET is the demo's secret: set a long random secret "
                               "(or run the demo with EXECWATCH_DEMO=true)")


def program_url_template(settings: Settings) -> str:
    return settings.notify_program_url or (
        f"http://{settings.http_host}:{settings.budget_port}/v1/budget/programs/{{program_id}}")


def build(settings: Settings, *, start_broker: bool = True, clock: service.Clock = utcnow) -> FastAPI:
    check_secrets(settings)
    rules = routing.load(settings)
    rt = Runtime.create("notify", settings)
    base = settings.notify_public_url.rstrip("/") if settings.notify_public_url else None
    secret = settings.notify_ack_secret.get_secret_value()
    ttl = timedelta(seconds=settings.notify_ack_link_ttl_s)
    program_page = program_url_template(settings)

    def ack_url(fingerprint: str, recipient: Recipient) -> str | None:
        if base is None:
            return None
        token = links.sign(secret, "ack", fingerprint, recipient.address, recipient.name, clock() + ttl)
        return f"{base}/v1/ack?token={token}"

    def program_url(program_id: str) -> str:
        # Program ids contain "/" (과/사업명) and Korean: one path segment, fully encoded.
        return program_page.replace("{program_id}", quote(program_id, safe=""))

    renderer = Renderer(Path(settings.notify_templates_dir) if settings.notify_templates_dir else None, ack_url,
                        program_url)
    notifier = service.Notifier(rt.db, settings, rules, renderer, clock)
    dispatcher = Dispatcher(rt.db, settings, rules, clock)
    relay = LeaderRelay(rt.db, NotifyOutbox, handlers.dead_letter_publisher(rt))
    handlers.register(rt, notifier)
    rt.background.append(lambda: scheduler.run_scheduler(notifier, dispatcher, settings.notify_tick_s))
    rt.background.append(lambda: dispatcher.run(5.0))
    rt.background.append(lambda: relay.run(settings.relay_interval_s * 4))
    app = http_app(rt, "execwatch notify", start_broker=start_broker)
    app.state.notifier, app.state.dispatcher, app.state.relay = notifier, dispatcher, relay
    app.state.renderer = renderer
    app.include_router(api.router)
    app.include_router(auth_api.router)
    return app


def main() -> None:
    serve(build, "notify", get_settings())
