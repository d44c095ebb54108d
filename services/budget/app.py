"""Wiring of the budget service: broker, batch handler, alert outbox relay, gauges, read API."""

from __future__ import annotations

from fastapi import FastAPI

from services.budget import api, handlers, service
from services.budget.metrics import DivisionGauges
from services.budget.store import BudgetOutbox
from services.common.leader import LeaderRelay
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings


def build(settings: Settings, *, start_broker: bool = True) -> FastAPI:
    rt = Runtime.create("budget", settings)
    cfg = service.Config.from_settings(settings)

    relay = LeaderRelay(rt.db, BudgetOutbox, rt.publish_raw)
    handlers.register(rt, relay, cfg)
    gauges = DivisionGauges(rt.registry)
    rt.background.append(lambda: relay.run(settings.relay_interval_s * 4))
    rt.background.append(lambda: gauges.run(rt.db, cfg, settings.budget_metrics_refresh_s))
    app = http_app(rt, "execwatch budget", start_broker=start_broker)
    app.state.gauges, app.state.budget_config = gauges, cfg
    app.include_router(api.router)
    return app


def main() -> None:
    serve(build, "budget", get_settings())
