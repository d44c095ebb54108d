"""Notify HTTP API: deliveries, an inbox per recipient, alerts with their state and
acknowledgement, silences."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlmodel import col, select

from services.common.auth import Public, Reader, StaffWriter, access_of
from services.common.params import NO_NUL, Offset, RowId
from services.common.runtime import Runtime
from services.notify import domain, links, service
from services.notify.access import check_alert, check_existing_silence, check_silence, own_address, redact
from services.notify.render import Renderer
from services.notify.store import NotifyAlert, NotifyDelivery, NotifyGroup, NotifyMember, NotifySilence, aware


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL,
                      description="label: 실, 과, program, rule, severity, …")
    value: str = Field(max_length=domain.MAX_REGEX_LENGTH, pattern=NO_NUL,
                       description="for =~ and !~ an RE2 regular expression (no backreferences), matched whole")
    op: domain.MatchOp = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherIn:
        if self.op in ("=~", "!~"):
            try:
                domain.user_regex(self.value)
            except domain.RegexError as exc:
                raise ValueError(f"matcher {self.name}: {exc}") from exc
        return self


class SilenceIn(BaseModel):
    matchers: list[MatcherIn] = Field(min_length=1)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    created_by: str | None = Field(default=None, max_length=100, pattern=NO_NUL,
                                   description="ignored: the signed-in caller")
    comment: str = Field(min_length=1, pattern=NO_NUL)


class AckIn(BaseModel):
    by: str | None = Field(default=None, max_length=100, pattern=NO_NUL,
                           description="ignored: the signed-in caller is recorded")
    comment: str | None = Field(default=None, pattern=NO_NUL)


def _iso(value: datetime | None) -> str | None:
    v = aware(value)
    return v.isoformat() if v else None


def _delivery(d: NotifyDelivery) -> dict[str, Any]:
    out = d.model_dump(exclude={"body_html", "payload"})
    out["body_text"] = redact(d.body_text)
    for k in ("created_at", "sent_at", "alert_at", "next_attempt_at", "read_at"):
        out[k] = _iso(getattr(d, k))
    return out


def _alert_page(a: NotifyAlert | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"summary": a.summary, "status": a.status, "program_id": a.program_id,
            "program_title": a.payload.get("program_title"), "division": a.division,
            "acked_at": _iso(a.acked_at), "acked_by": a.acked_by}


def _silence(s: NotifySilence, now: datetime) -> dict[str, Any]:
    starts, ends = aware(s.starts_at) or s.starts_at, aware(s.ends_at) or s.ends_at
    return {"id": s.id, "matchers": s.matchers, "starts_at": starts.isoformat(), "ends_at": ends.isoformat(),
            "created_by": s.created_by, "comment": s.comment, "created_at": _iso(s.created_at),
            "state": domain.silence_state(starts, ends, now)}


#: Link pages carry a token in their URL: keep them out of caches, referrers and search indexes.
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
_LINK_STATUS = {"invalid": 403, "expired": 410, "missing": 404}
MAX_COMMENT = 2000


def router(rt: Runtime, notifier: service.Notifier, renderer: Renderer | None = None) -> APIRouter:
    pages = renderer or Renderer()
    secret = rt.settings.notify_ack_secret.get_secret_value()
    api = APIRouter(prefix="/v1", tags=["notify"])

    @api.get("/notifications")
    async def notifications(who: Reader, recipient: str | None = None,
                            status: str | None = Query(None, description="pending, sent, failed"),
                            outcome: str | None = None, channel: str | None = None,
                            limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
        recipient = own_address(who, recipient)

        def q() -> dict[str, Any]:
            stmt = select(NotifyDelivery)
            if recipient:
                stmt = stmt.where(NotifyDelivery.address == recipient)
            if status or outcome:
                stmt = stmt.where(NotifyDelivery.outcome == (status or outcome))
            if channel:
                stmt = stmt.where(NotifyDelivery.channel == channel)
            with rt.db.read() as s:
                rows = s.exec(stmt.order_by(col(NotifyDelivery.id).desc()).offset(offset).limit(limit)).all()
                return {"items": [_delivery(r) for r in rows]}

        return await asyncio.to_thread(q)

    @api.get("/inbox/{recipient}")
    async def inbox(who: Reader, recipient: str, unread: bool = False,
                    limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        """What one person was told, newest first (the inbox channel)."""
        own_address(who, recipient)

        def q() -> dict[str, Any]:
            stmt = select(NotifyDelivery).where(NotifyDelivery.address == recipient, NotifyDelivery.channel == "inbox")
            if unread:
                stmt = stmt.where(col(NotifyDelivery.read_at).is_(None))
            with rt.db.read() as s:
                rows = s.exec(stmt.order_by(col(NotifyDelivery.id).desc()).limit(limit)).all()
                return {"recipient": recipient, "unread": sum(1 for r in rows if r.read_at is None),
                        "items": [{**_delivery(r), "body_html": redact(r.body_html)} for r in rows]}

        return await asyncio.to_thread(q)

    @api.post("/inbox/{recipient}/{delivery_id}/read")
    async def mark_read(who: StaffWriter, recipient: str, delivery_id: RowId) -> dict[str, Any]:
        own_address(who, recipient)

        def w() -> dict[str, Any] | None:
            with rt.db.unit_of_work() as s:
                d = s.get(NotifyDelivery, delivery_id)
                if d is None or d.address != recipient or d.channel != "inbox":
                    return None
                if d.read_at is None:
                    d.read_at = service.utc(notifier.clock())
                    s.add(d)
                return _delivery(d)

        out = await asyncio.to_thread(w)
        if out is None:
            raise HTTPException(404, "no such inbox message")
        return out

    @api.get("/alerts")
    async def alerts(who: Reader, status: str | None = Query("firing", description="firing, resolved, or empty for all")
                     ) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            states = notifier.alert_states(status or None)
            with rt.db.read() as s:
                fps = [st.alert.fingerprint for st in states]
                told: dict[str, list[dict[str, Any]]] = {}
                for m, g in s.exec(select(NotifyMember, NotifyGroup)
                                   .where(NotifyMember.group_id == NotifyGroup.id,
                                          col(NotifyMember.fingerprint).in_(fps))).all():
                    told.setdefault(m.fingerprint, []).append(
                        {"receiver": g.receiver, "name": g.name, "role": g.role, "reason": m.reason,
                         "told": m.sent_status, "told_at": _iso(m.sent_at)})
            items = []
            for st in states:
                a = st.alert
                items.append({
                    "fingerprint": a.fingerprint, "rule": a.rule, "status": a.status, "severity": a.severity,
                    "state": st.state, "silenced_by": st.silenced_by, "inhibited_by": st.inhibited_by,
                    "program_id": a.program_id, "summary": a.summary, "labels": a.labels,
                    "received_at": _iso(a.received_at), "notified_at": _iso(a.notified_at),
                    "resolved_at": _iso(a.resolved_at), "acked_at": _iso(a.acked_at), "acked_by": a.acked_by,
                    "escalation_level": a.escalation_level, "awaiting_recipients": a.awaiting_recipients,
                    "unroutable": a.awaiting_recipients and a.status == "firing",
                    "recipients": told.get(a.fingerprint, []), "figures": a.payload.get("figures", {}),
                })
            return {"items": items}

        return await asyncio.to_thread(q)

    @api.post("/alerts/{fingerprint}/ack")
    async def ack(request: Request, who: StaffWriter, fingerprint: str, body: AckIn) -> dict[str, Any]:
        await asyncio.to_thread(check_alert, who, rt.db, fingerprint)
        row = await asyncio.to_thread(notifier.ack, fingerprint, who.label, body.comment)
        if row is None:
            raise HTTPException(404, "no such alert")
        await access_of(request).audit(request, who, "alert.ack", fingerprint, comment=body.comment)
        return {"fingerprint": fingerprint, "status": row.status, "acked_at": _iso(row.acked_at),
                "acked_by": row.acked_by}

    def _page(state: str, *, alert: NotifyAlert | None = None, claims: links.Claims | None = None,
              action: str = "", message: str | None = None) -> HTMLResponse:
        html = pages.page("ack.html.j2", state=state, alert=_alert_page(alert), claims=claims, action=action,
                          message=message)
        return HTMLResponse(html, status_code=_LINK_STATUS.get(state, 200), headers=_PAGE_HEADERS)

    def _claims(token: str) -> links.Claims | HTMLResponse:
        try:
            return links.verify(secret, token, "ack", service.utc(notifier.clock()))
        except links.LinkError as exc:
            return _page(exc.reason)

    @api.get("/ack", response_class=HTMLResponse)
    async def ack_page(who: Public, token: Annotated[str, Query(max_length=4000)]) -> Response:
        """The link in the mail opens a confirmation page; it acknowledges nothing (mail scanners
        and previews open links too). Its form POSTs to the same URL."""
        claims = _claims(token)
        if isinstance(claims, HTMLResponse):
            return claims
        row = await asyncio.to_thread(notifier.alert, claims.fingerprint)
        if row is None:
            return _page("missing")
        return _page("confirm", alert=row, claims=claims, action=f"ack?token={token}")

    @api.post("/ack", response_class=HTMLResponse)
    async def ack_confirm(request: Request, who: Public, token: Annotated[str, Query(max_length=4000)]) -> Response:
        """The confirmation page's form: acknowledges as the signed-in person, else as the recipient the
        link was sent to (the signed link is the credential: the rule is the token)."""
        claims = _claims(token)
        if isinstance(claims, HTMLResponse):
            return claims
        body = await request.body()
        form = parse_qs(body[:16_384].decode("utf-8", "replace"))
        comment = " ".join((form.get("comment") or [""])[0].split())[:MAX_COMMENT] or None
        recipient = f"{domain.header_text(claims.name, 40)} <{claims.address}>" if claims.name else claims.address
        by = who.label if who else recipient
        row = await asyncio.to_thread(notifier.ack, claims.fingerprint, by, comment)
        if row is None:
            return _page("missing")
        await access_of(request).audit(request, who, "alert.ack", claims.fingerprint, by=by, via="mail link")
        return _page("done", alert=row, claims=claims, message=row.ack_comment)

    @api.get("/silences")
    async def silences(who: Reader, state: Literal["active", "pending", "expired"] | None = None) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            now = service.utc(notifier.clock())
            with rt.db.read() as s:
                rows = s.exec(select(NotifySilence).order_by(col(NotifySilence.created_at).desc())).all()
                items = [_silence(r, now) for r in rows]
            return {"items": [i for i in items if state is None or i["state"] == state]}

        return await asyncio.to_thread(q)

    @api.post("/silences", status_code=201)
    async def create_silence(request: Request, who: StaffWriter, body: SilenceIn) -> dict[str, Any]:
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
                                       ends_at=_iso(row.ends_at), comment=body.comment)
        return _silence(row, service.utc(notifier.clock()))

    @api.delete("/silences/{silence_id}")
    async def expire_silence(request: Request, who: StaffWriter, silence_id: str) -> dict[str, Any]:
        await asyncio.to_thread(check_existing_silence, who, rt.db, silence_id)
        row = await asyncio.to_thread(notifier.expire_silence, silence_id)
        if row is None:
            raise HTTPException(404, "no such silence")
        await access_of(request).audit(request, who, "silence.expire", silence_id)
        return _silence(row, service.utc(notifier.clock()))

    return api
