"""Ingest HTTP API: `POST /v1/events` takes one envelope or a list, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from services.common.db import OutboxRelay
from services.common.logging import get_logger
from services.common.runtime import Runtime
from services.ingest import domain, store
from services.ingest.metrics import ACCEPTED, DUPLICATES, REJECTED

log = get_logger(__name__)


def router(rt: Runtime, relay: OutboxRelay) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["ingest"])
    tokens = {s: t.get_secret_value() for s, t in rt.settings.ingest_sources.items()}

    @api.post("/events", status_code=202, responses={401: {}, 413: {}, 422: {}})
    async def post_events(
        request: Request,
        body: Annotated[Any, Body(description="one event envelope, a list of them, or {events: [...]}")],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Any:
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        source = domain.authenticate(tokens, token)
        if source is None:
            REJECTED.labels(path="http", reason="auth").inc()
            raise HTTPException(401, "missing or unknown token: send Authorization: Bearer <token>")
        items = body["events"] if isinstance(body, dict) and "events" in body else body
        items = items if isinstance(items, list) else [items]
        if len(items) > rt.settings.ingest_max_batch:
            raise HTTPException(413, f"at most {rt.settings.ingest_max_batch} events per request")
        events, rejections = domain.validate_batch(items, source)
        if rejections:
            REJECTED.labels(path="http", reason="contract").inc(len({r.index for r in rejections}))
            log.info("events rejected", source=source, rejected=[r.as_dict() for r in rejections[:20]])
            return JSONResponse(
                status_code=422,
                content={
                    "error": "invalid events; nothing was accepted",
                    "rejected": [r.as_dict() for r in rejections],
                },
            )
        accepted, duplicates = await asyncio.to_thread(store.accept_committed, rt.db, events,
                                                       rt.settings.topic_prefix)
        log.info("events accepted", source=source, accepted=len(accepted), duplicates=len(duplicates),
                 event_ids=accepted[:20], program_ids=sorted({e.key for e in events})[:20])
        ACCEPTED.labels(path="http").inc(len(accepted))
        DUPLICATES.labels(path="http").inc(len(duplicates))
        relay.wake()
        return {"accepted": len(accepted), "duplicates": len(duplicates), "event_ids": accepted}

    @api.get("/events/{event_id}")
    async def event_status(event_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(_status, rt, event_id)
        if row is None:
            raise HTTPException(404, "no such event")
        return row

    return api


def _status(rt: Runtime, event_id: str) -> dict[str, Any] | None:
    with rt.db.read() as session:
        row = store.status_of(session, event_id)
        if row is None:
            return None
        return {
            "event_id": row.event_id,
            "topic": row.topic,
            "accepted_at": row.created_at.isoformat(),
            "published_at": row.published_at.isoformat() if row.published_at else None,
        }
