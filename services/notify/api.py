"""Notify HTTP API: deliveries, an inbox per recipient, alerts with their state and
acknowledgement, silences. The queries are in `queries`, the bodies in `schemas`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from services.common.api_types import ACCESS_ERRORS, errors
from services.common.auth import Public, Reader, StaffWriter, access_of
from services.common.params import Offset, RowId
from services.common.runtime import Runtime
from services.notify import domain, links, queries, schemas, service
from services.notify.access import check_alert, check_existing_silence, check_silence, own_address
from services.notify.deps import NotifierDep, ReadSession, RendererDep, RuntimeDep
from services.notify.render import Renderer
from services.notify.store import NotifyAlert

# Re-exported: the request models are part of this API.
MatcherIn, SilenceIn, AckIn = schemas.MatcherIn, schemas.SilenceIn, schemas.AckIn


def _alert_page(a: NotifyAlert | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"summary": a.summary, "status": a.status, "program_id": a.program_id,
            "program_title": a.payload.get("program_title"), "division": a.division,
            "acked_at": queries.iso(a.acked_at), "acked_by": a.acked_by}


#: Link pages carry a token in their URL: keep them out of caches, referrers and search indexes.
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
_LINK_STATUS = {"invalid": 403, "expired": 410, "missing": 404}
MAX_COMMENT = 2000
_LINK_PAGES: dict[int | str, dict[str, Any]] = {
    code: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": why}
    for code, why in ((403, "the link is not valid"), (404, "no such alert"), (410, "the link has expired"))}

router = APIRouter(prefix="/v1", tags=["notify"])


@router.get("/notifications", response_model=schemas.Deliveries, responses={**ACCESS_ERRORS})
def notifications(who: Reader, session: ReadSession, recipient: str | None = None,
                  status: str | None = Query(None, description="pending, sent, failed"),
                  outcome: str | None = None, channel: str | None = None,
                  limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
    """Deliveries, newest first; staff see their own address's."""
    recipient = own_address(who, recipient)
    return {"items": queries.deliveries(session, recipient=recipient, outcome=status or outcome, channel=channel,
                                        limit=limit, offset=offset)}


@router.get("/inbox/{recipient}", response_model=schemas.Inbox, responses={**ACCESS_ERRORS})
def inbox(who: Reader, session: ReadSession, recipient: str, unread: bool = False,
          limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """What one person was told, newest first (the inbox channel)."""
    own_address(who, recipient)
    return queries.inbox(session, recipient, unread=unread, limit=limit)


@router.post("/inbox/{recipient}/{delivery_id}/read", response_model=schemas.Delivery,
             responses={**ACCESS_ERRORS, **errors(404)})
def mark_read(who: StaffWriter, notifier: NotifierDep, recipient: str, delivery_id: RowId) -> dict[str, Any]:
    own_address(who, recipient)
    row = notifier.mark_read(recipient, delivery_id)
    if row is None:
        raise HTTPException(404, "no such inbox message")
    return queries.delivery_json(row)


@router.get("/alerts", response_model=schemas.Alerts, responses={**ACCESS_ERRORS})
def alerts(who: Reader, session: ReadSession, notifier: NotifierDep,
           status: str | None = Query("firing", description="firing, resolved, or empty for all")) -> dict[str, Any]:
    """Alerts with their state (silenced, inhibited, acknowledged) and whom they were told to."""
    return {"items": queries.alerts(session, notifier.alert_states(status or None))}


@router.post("/alerts/{fingerprint}/ack", response_model=schemas.Acked, responses={**ACCESS_ERRORS, **errors(404)})
async def ack(request: Request, who: StaffWriter, rt: RuntimeDep, notifier: NotifierDep, fingerprint: str,
              body: schemas.AckIn) -> dict[str, Any]:
    await asyncio.to_thread(check_alert, who, rt.db, fingerprint)
    row = await asyncio.to_thread(notifier.ack, fingerprint, who.label, body.comment)
    if row is None:
        raise HTTPException(404, "no such alert")
    await access_of(request).audit(request, who, "alert.ack", fingerprint, comment=body.comment)
    return {"fingerprint": fingerprint, "status": row.status, "acked_at": queries.iso(row.acked_at),
            "acked_by": row.acked_by}


def _page(pages: Renderer, state: str, *, alert: NotifyAlert | None = None, claims: links.Claims | None = None,
          action: str = "", message: str | None = None) -> HTMLResponse:
    html = pages.page("ack.html.j2", state=state, alert=_alert_page(alert), claims=claims, action=action,
                      message=message)
    return HTMLResponse(html, status_code=_LINK_STATUS.get(state, 200), headers=_PAGE_HEADERS)


def _claims(rt: Runtime, notifier: service.Notifier, pages: Renderer, token: str) -> links.Claims | HTMLResponse:
    """The acknowledge link's claims, or the page saying why the link cannot be used."""
    secret = rt.settings.notify_ack_secret.get_secret_value()
    try:
        return links.verify(secret, token, "ack", service.utc(notifier.clock()))
    except links.LinkError as exc:
        return _page(pages, exc.reason)


@router.get("/ack", response_class=HTMLResponse, responses=_LINK_PAGES)
async def ack_page(who: Public, notifier: NotifierDep, pages: RendererDep,
                   token: Annotated[str, Query(max_length=4000)], rt: RuntimeDep) -> Response:
    """The link in the mail opens a confirmation page; it acknowledges nothing (mail scanners
    and previews open links too). Its form POSTs to the same URL."""
    claims = _claims(rt, notifier, pages, token)
    if isinstance(claims, HTMLResponse):
        return claims
    row = await asyncio.to_thread(notifier.alert, claims.fingerprint)
    if row is None:
        return _page(pages, "missing")
    return _page(pages, "confirm", alert=row, claims=claims, action=f"ack?token={token}")


@router.post("/ack", response_class=HTMLResponse, responses=_LINK_PAGES, openapi_extra=schemas.ACK_FORM)
async def ack_confirm(request: Request, who: Public, notifier: NotifierDep, pages: RendererDep,
                      token: Annotated[str, Query(max_length=4000)], rt: RuntimeDep) -> Response:
    """The confirmation page's form: acknowledges as the signed-in person, else as the recipient the
    link was sent to (the signed link is the credential: the rule is the token)."""
    claims = _claims(rt, notifier, pages, token)
    if isinstance(claims, HTMLResponse):
        return claims
    body = await request.body()
    form = parse_qs(body[:16_384].decode("utf-8", "replace"))
    comment = " ".join((form.get("comment") or [""])[0].split())[:MAX_COMMENT] or None
    recipient = f"{domain.header_text(claims.name, 40)} <{claims.address}>" if claims.name else claims.address
    by = who.label if who else recipient
    row = await asyncio.to_thread(notifier.ack, claims.fingerprint, by, comment)
    if row is None:
        return _page(pages, "missing")
    await access_of(request).audit(request, who, "alert.ack", claims.fingerprint, by=by, via="mail link")
    return _page(pages, "done", alert=row, claims=claims, message=row.ack_comment)


@router.get("/silences", response_model=schemas.Silences, responses={**ACCESS_ERRORS})
def silences(who: Reader, session: ReadSession, notifier: NotifierDep,
             state: Literal["active", "pending", "expired"] | None = None) -> dict[str, Any]:
    return {"items": queries.silences(session, service.utc(notifier.clock()), state)}


@router.post("/silences", status_code=201, response_model=schemas.SilenceOut, responses={**ACCESS_ERRORS})
async def create_silence(request: Request, who: StaffWriter, notifier: NotifierDep,
                         body: schemas.SilenceIn) -> dict[str, Any]:
    check_silence(who, [m.model_dump() for m in body.matchers])
    starts = body.starts_at or notifier.clock()
    if body.ends_at <= starts:
        # In FastAPI's own 422 shape (as the OpenAPI declares): starts_at defaults to "now", so
        # this one rule cannot live in the model.
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "ends_at"),
                                       "msg": "ends_at must be after starts_at",
                                       "input": body.ends_at.isoformat()}])
    row = await asyncio.to_thread(
        notifier.create_silence, [domain.Matcher(m.name, m.value, m.op) for m in body.matchers],
        body.starts_at, body.ends_at, who.label, body.comment)
    await access_of(request).audit(request, who, "silence.create", row.id, matchers=row.matchers,
                                   ends_at=queries.iso(row.ends_at), comment=body.comment)
    return queries.silence_json(row, service.utc(notifier.clock()))


@router.delete("/silences/{silence_id}", response_model=schemas.SilenceOut, responses={**ACCESS_ERRORS, **errors(404)})
async def expire_silence(request: Request, who: StaffWriter, rt: RuntimeDep, notifier: NotifierDep,
                         silence_id: str) -> dict[str, Any]:
    await asyncio.to_thread(check_existing_silence, who, rt.db, silence_id)
    row = await asyncio.to_thread(notifier.expire_silence, silence_id)
    if row is None:
        raise HTTPException(404, "no such silence")
    await access_of(request).audit(request, who, "silence.expire", silence_id)
    return queries.silence_json(row, service.utc(notifier.clock()))
