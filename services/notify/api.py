"""Notify HTTP API: deliveries, an inbox per recipient, alerts with their state and
acknowledgement, silences."""

from __future__ import annotations

import asyncio
import hmac
import re
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlmodel import col, select

from services.common.auth import Public, Reader, StaffWriter, access_of
from services.common.runtime import Runtime
from services.notify import domain, service
from services.notify.access import check_alert, check_existing_silence, check_silence, own_address, redact
from services.notify.store import NotifyDelivery, NotifyGroup, NotifyMember, NotifySilence, aware


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, description="label: 실, 과, program, rule, severity, …")
    value: str
    op: domain.MatchOp = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherIn:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}: invalid regular expression: {exc}") from exc
        return self


class SilenceIn(BaseModel):
    matchers: list[MatcherIn] = Field(min_length=1)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    created_by: str | None = Field(default=None, max_length=100, description="ignored: the signed-in caller")
    comment: str = Field(min_length=1)


class AckIn(BaseModel):
    by: str | None = Field(default=None, max_length=100, description="ignored: the signed-in caller is recorded")
    comment: str | None = None


def _iso(value: datetime | None) -> str | None:
    v = aware(value)
    return v.isoformat() if v else None


def _delivery(d: NotifyDelivery) -> dict[str, Any]:
    out = d.model_dump(exclude={"body_html", "payload"})
    out["body_text"] = redact(d.body_text)
    for k in ("created_at", "sent_at", "alert_at", "next_attempt_at", "read_at"):
        out[k] = _iso(getattr(d, k))
    return out


def _silence(s: NotifySilence, now: datetime) -> dict[str, Any]:
    starts, ends = aware(s.starts_at) or s.starts_at, aware(s.ends_at) or s.ends_at
    return {"id": s.id, "matchers": s.matchers, "starts_at": starts.isoformat(), "ends_at": ends.isoformat(),
            "created_by": s.created_by, "comment": s.comment, "created_at": _iso(s.created_at),
            "state": domain.silence_state(starts, ends, now)}


def router(rt: Runtime, notifier: service.Notifier) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["notify"])

    @api.get("/notifications")
    async def notifications(who: Reader, recipient: str | None = None,
                            status: str | None = Query(None, description="pending, sent, failed"),
                            outcome: str | None = None, channel: str | None = None,
                            limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
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
    async def mark_read(who: StaffWriter, recipient: str, delivery_id: int) -> dict[str, Any]:
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

    @api.get("/alerts/{fingerprint}/ack", response_class=HTMLResponse)
    async def ack_link(request: Request, who: Public, fingerprint: str, token: str, by: str = "메일 링크") -> Response:
        """The link in the mail: a signed token instead of a login (the rule is the token)."""
        by = who.label if who else by
        expected = service.ack_token(rt.settings.notify_ack_secret.get_secret_value(), fingerprint)
        if not hmac.compare_digest(expected, token):
            raise HTTPException(403, "invalid acknowledgement link")
        row = await asyncio.to_thread(notifier.ack, fingerprint, by)
        if row is None:
            raise HTTPException(404, "no such alert")
        await access_of(request).audit(request, who, "alert.ack", fingerprint, by=by)
        return HTMLResponse(f"<!doctype html><html lang='ko'><body><p>확인되었습니다: {row.summary}</p>"
                            "<p>상위 보고(에스컬레이션)와 재알림이 중지됩니다.</p></body></html>")

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
            raise HTTPException(422, "ends_at must be after starts_at")
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
