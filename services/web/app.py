"""Wiring of the staff web: read clients, templates, sessions, static files, the pages.

It owns no business data and consumes no topics; it reads the budget, programs and notify
APIs over HTTP (with the service credential from settings) and renders Korean pages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from services.common.logging import configure_logging, get_logger
from services.common.runtime import refuse
from services.common.settings import Settings, get_settings
from services.web import domain, pages, signin
from services.web.clients import Upstream, UpstreamError
from services.web.session import (
    Identity,
    SignInRequired,
    codec_from_settings,
    end,
    optional_identity,
    startup_problems,
)

HERE = Path(__file__).resolve().parent
log = get_logger(__name__)


def _templates(tz: ZoneInfo) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.autoescape = True  # the templates end in .j2, which the default selection would not escape
    env.filters.update(
        amount=domain.amount, percent=domain.percent, signed_pp=domain.signed_pp, source=domain.source_text,
        window=lambda m: domain.window_text(m.window_start, m.window_end, m.window_text),
        program_url=pages.program_url,
        local=lambda v: v.astimezone(tz).strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else (v or "-"),
    )
    env.globals.update(severity_labels=domain.SEVERITY_LABELS, state_labels=domain.STATE_LABELS,
                       rule_labels=domain.RULE_LABELS, versus=domain.versus_plan,
                       qs=lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")}))
    return templates


def build(settings: Settings, *, transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    tz = ZoneInfo(settings.notify_timezone)
    registry = CollectorRegistry(auto_describe=True)
    latency = Histogram("execwatch_web_page_seconds", "time to answer a page", ["route"], registry=registry,
                        buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = Upstream.from_settings(settings, transports)
        try:
            yield
        finally:
            await app.state.upstream.aclose()

    app = FastAPI(title="execwatch web", lifespan=lifespan, version="1.0.0", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = codec_from_settings(settings)
    app.state.templates = _templates(tz)
    app.state.tz = tz
    app.state.clock = date.fromisoformat(settings.clock) if settings.clock else None
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(signin.router)
    app.include_router(pages.router)

    @app.middleware("http")
    async def timed(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        latency.labels(getattr(route, "path", "other")).observe(time.perf_counter() - started)
        return response

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        identity: Identity | None = optional_identity(request)
        return pages.render(request, "error.html.j2", identity, status_code=status, status=status, message=message)

    def to_sign_in(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/today"
        return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, _: SignInRequired) -> RedirectResponse:
        return to_sign_in(request)

    @app.exception_handler(UpstreamError)
    async def upstream(request: Request, exc: UpstreamError) -> Response:
        if exc.status == 401:  # the person's session expired or their key was revoked
            response = to_sign_in(request)
            end(response)
            return response
        if exc.status == 403:  # the API's rule, whatever the page offered
            return error_page(request, 403, f"이 작업을 할 권한이 없습니다 ({exc.service}: {exc.detail})")
        if exc.status == 429:
            return error_page(request, 429, "요청이 너무 많습니다. 잠시 뒤 다시 시도하세요.")
        if exc.status == 404:
            return error_page(request, 404, "찾는 항목이 없습니다.")
        log.warning("API failed", service=exc.service, status=exc.status, detail=exc.detail[:200])
        return error_page(request, 502, f"{exc.service} 서비스가 응답하지 않았습니다. 잠시 뒤 다시 시도하세요.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        return error_page(request, exc.status_code, str(exc.detail))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        return {"service": "web"}

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json, service="web")
    refuse("web", startup_problems(settings))  # the demo secret would let anyone forge a sign-in
    uvicorn.run(build(settings), host=settings.http_host, port=settings.web_port, log_level="warning",
                access_log=False)
