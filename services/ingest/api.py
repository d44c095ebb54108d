"""Ingest HTTP API: `POST /v1/events` takes one envelope or a list, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import JSONResponse

from services.common.auth import Publisher, PublisherReader, access_of, contact_problems
from services.common.db import OutboxRelay
from services.common.logging import get_logger
from services.common.runtime import Runtime
from services.ingest import domain, store
from services.ingest.metrics import ACCEPTED, DUPLICATES, REJECTED

log = get_logger(__name__)


def router(rt: Runtime, relay: OutboxRelay) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["ingest"])

    @api.post("/events", status_code=202, responses={401: {}, 403: {}, 413: {}, 422: {}, 429: {}})
    async def post_events(
        request: Request,
        who: Publisher,
        body: Annotated[Any, Body(description="one event envelope, a list of them, or {events: [...]}")],
    ) -> Any:
        source = who.name
        items = body["events"] if isinstance(body, dict) and "events" in body else body
        items = items if isinstance(items, list) else [items]
        if len(items) > rt.settings.ingest_max_batch:
            raise HTTPException(413, f"at most {rt.settings.ingest_max_batch} events per request")
        events, rejections = domain.validate_batch(items, source)
        rejections += [domain.Rejection(i, f, m) for i, f, m in contact_problems(events, rt.settings.mail_domains)]
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
        forbidden = await asyncio.to_thread(access_of(request).publish_problems, who, events)
        if forbidden:  # another 과's program: nothing of the batch is stored
            REJECTED.labels(path="http", reason="rights").inc(len(forbidden))
            return JSONResponse(status_code=403, content={
                "error": "not granted for these programs' 과; nothing was accepted",
                "rejected": [{"index": i, "field": "key", "message": m} for i, m in forbidden]})
        await asyncio.to_thread(access_of(request).claim, who, events)
        accepted, duplicates = await asyncio.to_thread(store.accept_committed, rt.db, events,
                                                       rt.settings.topic_prefix)
        log.info("events accepted", source=source, accepted=len(accepted), duplicates=len(duplicates),
                 event_ids=accepted[:20], program_ids=sorted({e.key for e in events})[:20])
        ACCEPTED.labels(path="http").inc(len(accepted))
        DUPLICATES.labels(path="http").inc(len(duplicates))
        relay.wake()
        return {"accepted": len(accepted), "duplicates": len(duplicates), "event_ids": accepted}

    @api.get("/events/{event_id}")
    async def event_status(event_id: str, who: PublisherReader) -> dict[str, Any]:
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
