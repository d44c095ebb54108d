"""Ingest HTTP API: `POST /v1/events` takes one envelope or a list, all or nothing.

The caller is resolved before the body is read (access's `Publisher` rule, a dependency, and no
body parameter FastAPI would read first), and the body is read as a stream with a cap: a caller
without a valid key, or with a body over `EXECWATCH_INGEST_MAX_BODY_BYTES`, costs no memory. Every
error is JSON `{"error": …}` (see `app.py`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter

from contracts import AnyEvent, parse_event_array
from services.common.auth import Access, Identity, Publisher, PublisherReader, access_of
from services.common.db import OutboxRelay
from services.common.leader import is_postgres
from services.common.logging import get_logger
from services.common.openapi import schema_with_defs
from services.common.runtime import Runtime
from services.ingest import service, store
from services.ingest.metrics import ACCEPTED, DUPLICATES, REJECTED

log = get_logger(__name__)


class Refused(Exception):
    """A request refused before its events were looked at: answered as JSON `{"error": …}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def refused_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return JSONResponse(status_code=exc.status, content={"error": exc.message}, headers=exc.headers)


class AcceptedEvents(BaseModel):
    accepted: int
    duplicates: int
    event_ids: list[str]
    published_as: dict[str, str]


class EventStatus(BaseModel):
    event_id: str
    source: str
    source_event_id: str
    content_hash: str
    topic: str
    accepted_at: str
    published_at: str | None


class IngestError(BaseModel):
    """Every refusal: 400 (not JSON), 401, 403 (role), 404, 413 (too large), 429, 503."""

    error: str


class Rejection(BaseModel):
    index: int = Field(description="the event's position in the request (0 for a single event)")
    field: str = Field(description="the field's path in the event, e.g. payload.original")
    message: str


class Rejected(BaseModel):
    """422: events that break their contract; 403: programs of a 과 the caller is not granted.
    Nothing of the request was stored."""

    error: str
    rejected: list[Rejection]


class Conflict(BaseModel):
    index: int
    event_id: str
    source: str
    stored_hash: str
    submitted_hash: str
    message: str


class Conflicts(BaseModel):
    """409: an event_id accepted before with other content. Nothing of the request was stored."""

    error: str
    conflicts: list[Conflict]


Event = Annotated[AnyEvent, Field(discriminator="event_type")]


class EventBatch(BaseModel):
    events: list[Event]


#: What `POST /v1/events` reads (itself, as a capped stream: FastAPI does not parse it). Its
#: schema is generated from the contracts, so the documentation is the door's own rule.
EventsBody = Annotated[
    Event | list[Event] | EventBatch,
    Field(description="one event envelope, a list of them, or {events: [...]}; all or nothing; "
                      "at most EXECWATCH_INGEST_MAX_BATCH events and EXECWATCH_INGEST_MAX_BODY_BYTES bytes"),
]
EVENTS_BODY_SCHEMA, EVENT_SCHEMAS = schema_with_defs(TypeAdapter(EventsBody))
_EVENTS_BODY = {"required": True, "content": {"application/json": {"schema": EVENTS_BODY_SCHEMA}}}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read chunk by chunk and refused as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"request body is {int(declared):,} bytes; at most {limit:,} bytes per request")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body is over {limit:,} bytes; at most {limit:,} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_items(body: bytes) -> list[Any]:
    """The body's events: validated in one pass when it is an array of valid events (most
    requests), else the JSON items, each then checked on its own so that errors name the event
    and field. JSON's non-standard constants (NaN, Infinity), which pydantic's reader would take,
    go the second way and are refused there."""
    if b"NaN" not in body and b"Infinity" not in body:
        events = parse_event_array(body)
        if events is not None:
            return events
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Refused(400, f"the body is not JSON: {str(exc)[:200]}") from exc
    items = data["events"] if isinstance(data, dict) and "events" in data else data
    return items if isinstance(items, list) else [items]


router = APIRouter(prefix="/v1", tags=["ingest"])


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def outbox_relay(request: Request) -> OutboxRelay:
    relay: OutboxRelay = request.app.state.relay
    return relay


@router.post("/events", status_code=202, response_model=AcceptedEvents, openapi_extra={"requestBody": _EVENTS_BODY},
             responses={400: {"model": IngestError}, 401: {"model": IngestError},
                        403: {"model": Rejected | IngestError}, 409: {"model": Conflicts},
                        413: {"model": IngestError}, 422: {"model": Rejected}, 429: {"model": IngestError},
                        503: {"model": IngestError}})
async def post_events(request: Request, who: Publisher,
                      rt: Annotated[Runtime, Depends(runtime)],
                      relay: Annotated[OutboxRelay, Depends(outbox_relay)]) -> Any:
    # `who` is resolved (401/403/429) before this line reads a byte of the body.
    source = who.name
    body = await read_body(request, rt.settings.ingest_max_body_bytes)
    # Parsing and validating 500 events takes milliseconds: in the worker thread with the rest of
    # the use case, so the event loop goes on reading other requests (and answering /readyz).
    async with accepting(request):
        outcome = await asyncio.to_thread(_accept, rt, body, who, access_of(request))
    if outcome.rejected:
        rejections = [r for p in outcome.rejected for r in p.rejections()]
        REJECTED.labels(path="http", reason="contract").inc(len(outcome.rejected))
        log.info("events rejected", source=source, rejected=[r.as_dict() for r in rejections[:20]])
        return JSONResponse(status_code=422, content={
            "error": "invalid events; nothing was accepted",
            "rejected": [r.as_dict() for r in rejections],
        })
    if outcome.forbidden:  # another 과's program: nothing of the batch is stored
        REJECTED.labels(path="http", reason="rights").inc(len(outcome.forbidden))
        log.info("events refused: not granted", source=source,
                 rejected=[r.as_dict() for p in outcome.forbidden[:20] for r in p.rejections()])
        return JSONResponse(status_code=403, content={
            "error": "not granted for these programs' 과; nothing was accepted",
            "rejected": [r.as_dict() for p in outcome.forbidden for r in p.rejections()],
        })
    if outcome.conflicts:
        REJECTED.labels(path="http", reason="conflict").inc(len(outcome.conflicts))
        log.warning("event ids reused with other content", source=source,
                    conflicts=[c.as_dict() for c in outcome.conflicts[:20]])
        return JSONResponse(status_code=409, content={
            "error": "an event_id was accepted before with other content; nothing was accepted",
            "conflicts": [c.as_dict() for c in outcome.conflicts],
        })
    accepted = [a.event_id for a in outcome.accepted]
    log.info("events accepted", source=source, accepted=len(accepted), duplicates=len(outcome.duplicates),
             event_ids=accepted[:20])
    ACCEPTED.labels(path="http").inc(len(accepted))
    DUPLICATES.labels(path="http").inc(len(outcome.duplicates))
    relay.wake()
    return AcceptedEvents(
        accepted=len(accepted), duplicates=len(outcome.duplicates), event_ids=accepted,
        published_as={a.event_id: a.published_as for a in outcome.accepted if a.published_as != a.event_id},
    )


def accept_turns(rt: Runtime) -> asyncio.Semaphore:
    """How many requests a process accepts at once (`EXECWATCH_INGEST_ACCEPT_CONCURRENCY`; 0: one
    on SQLite, four on PostgreSQL). The app keeps one (`app.state.accepting`)."""
    return asyncio.Semaphore(rt.settings.ingest_accept_concurrency or (4 if is_postgres(rt.db) else 1))


def accepting(request: Request) -> asyncio.Semaphore:
    turns: asyncio.Semaphore = request.app.state.accepting
    return turns


def _accept(rt: Runtime, body: bytes, who: Identity, access: Access) -> service.Outcome:
    items = parse_items(body)
    if len(items) > rt.settings.ingest_max_batch:
        raise Refused(413, f"at most {rt.settings.ingest_max_batch} events per request")
    return service.accept(rt.db, [service.Submission(item, who) for item in items], service.policy_from(rt.settings),
                          access, all_or_nothing=True)


@router.get("/events/{event_id}", response_model=EventStatus,
            responses={code: {"model": IngestError} for code in (401, 403, 404, 429, 503)})
async def event_status(event_id: uuid.UUID, who: PublisherReader, rt: Annotated[Runtime, Depends(runtime)]) -> Any:
    """Where an event is: by the id it is published under, else by the id its source sent."""
    row = await asyncio.to_thread(_status, rt, str(event_id))
    if row is None:
        raise Refused(404, "no such event")
    return row


def _status(rt: Runtime, event_id: str) -> EventStatus | None:
    with rt.db.read() as session:
        row = store.status_of(session, event_id)
        if row is None:
            return None
        return EventStatus(
            event_id=row.event_id, source=row.source, source_event_id=row.source_event_id or row.event_id,
            content_hash=row.content_hash, topic=row.topic, accepted_at=row.created_at.isoformat(),
            published_at=row.published_at.isoformat() if row.published_at else None,
        )
