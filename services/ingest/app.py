"""Wiring of the ingest service: broker, outbox relay, Kafka handlers, HTTP API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.common.leader import LeaderRelay
from services.common.logging import get_logger
from services.common.openapi import add_components
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.ingest import api, handlers
from services.ingest.store import IngestOutbox

log = get_logger(__name__)


def build(settings: Settings, *, start_broker: bool = True) -> FastAPI:
    rt = Runtime.create("ingest", settings)

    relay = LeaderRelay(rt.db, IngestOutbox, rt.publish_raw)
    if settings.ingest_relay_inline:
        rt.background.append(lambda: relay.run(settings.relay_interval_s))
    # else `execwatch serve ingest-relay` publishes the outbox; this relay is never run (waking it
    # does nothing) but still answers the outbox's age for /readyz and the metrics.
    app = http_app(rt, "execwatch ingest", start_broker=start_broker)
    # Both doors share one access object: the same keys, rights and program owners.
    handlers.register(rt, relay, app.state.access)
    app.state.relay = relay
    app.state.accepting = api.accept_turns(rt)
    app.include_router(api.router)
    add_components(app, api.EVENT_SCHEMAS)  # the event union POST /v1/events documents
    app.add_exception_handler(api.Refused, api.refused_response)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return app


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Access's refusals (401, 403, 429) and 404s answer like the rest of ingest: `{"error": …}`,
    keeping their headers (WWW-Authenticate, Retry-After)."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)


def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    """Even a bug answers JSON (the request's transaction was rolled back)."""
    log.error("unhandled error", error=f"{type(exc).__name__}: {exc}"[:300])
    return JSONResponse(status_code=500, content={"error": "internal error; nothing of this request was stored"})


def main() -> None:
    serve(build, "ingest", get_settings())
