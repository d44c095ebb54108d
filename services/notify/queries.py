"""Notify read queries: deliveries, one person's inbox, alerts with who was told, silences.
Plain dicts in the API's shapes (`schemas`); message bodies are redacted (no link tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from services.notify import domain
from services.notify.access import redact
from services.notify.service import AlertState
from services.notify.store import NotifyDelivery, NotifyGroup, NotifyMember, NotifySilence, aware


def iso(value: datetime | None) -> str | None:
    v = aware(value)
    return v.isoformat() if v else None


def delivery_json(d: NotifyDelivery) -> dict[str, Any]:
    out = d.model_dump(exclude={"body_html", "payload"})
    out["body_text"] = redact(d.body_text)
    for k in ("created_at", "sent_at", "alert_at", "next_attempt_at", "read_at"):
        out[k] = iso(getattr(d, k))
    return out


def silence_json(s: NotifySilence, now: datetime) -> dict[str, Any]:
    starts, ends = aware(s.starts_at) or s.starts_at, aware(s.ends_at) or s.ends_at
    return {"id": s.id, "matchers": s.matchers, "starts_at": starts.isoformat(), "ends_at": ends.isoformat(),
            "created_by": s.created_by, "comment": s.comment, "created_at": iso(s.created_at),
            "state": domain.silence_state(starts, ends, now)}


def deliveries(s: Session, *, recipient: str | None, outcome: str | None, channel: str | None, limit: int,
               offset: int) -> list[dict[str, Any]]:
    stmt = select(NotifyDelivery)
    if recipient:
        stmt = stmt.where(NotifyDelivery.address == recipient)
    if outcome:
        stmt = stmt.where(NotifyDelivery.outcome == outcome)
    if channel:
        stmt = stmt.where(NotifyDelivery.channel == channel)
    rows = s.exec(stmt.order_by(col(NotifyDelivery.id).desc()).offset(offset).limit(limit)).all()
    return [delivery_json(r) for r in rows]


def inbox(s: Session, recipient: str, *, unread: bool, limit: int) -> dict[str, Any]:
    """What one person was told on the inbox channel, newest first."""
    stmt = select(NotifyDelivery).where(NotifyDelivery.address == recipient, NotifyDelivery.channel == "inbox")
    if unread:
        stmt = stmt.where(col(NotifyDelivery.read_at).is_(None))
    rows = s.exec(stmt.order_by(col(NotifyDelivery.id).desc()).limit(limit)).all()
    return {"recipient": recipient, "unread": sum(1 for r in rows if r.read_at is None),
            "items": [{**delivery_json(r), "body_html": redact(r.body_html)} for r in rows]}


def alerts(s: Session, states: list[AlertState]) -> list[dict[str, Any]]:
    """The alerts in their states, each with the receivers it was told to (and how)."""
    fps = [st.alert.fingerprint for st in states]
    told: dict[str, list[dict[str, Any]]] = {}
    for m, g in s.exec(select(NotifyMember, NotifyGroup)
                       .where(NotifyMember.group_id == NotifyGroup.id, col(NotifyMember.fingerprint).in_(fps))).all():
        told.setdefault(m.fingerprint, []).append(
            {"receiver": g.receiver, "name": g.name, "role": g.role, "reason": m.reason,
             "told": m.sent_status, "told_at": iso(m.sent_at)})
    items = []
    for st in states:
        a = st.alert
        items.append({
            "fingerprint": a.fingerprint, "rule": a.rule, "status": a.status, "severity": a.severity,
            "state": st.state, "silenced_by": st.silenced_by, "inhibited_by": st.inhibited_by,
            "program_id": a.program_id, "summary": a.summary, "labels": a.labels,
            "received_at": iso(a.received_at), "notified_at": iso(a.notified_at),
            "resolved_at": iso(a.resolved_at), "acked_at": iso(a.acked_at), "acked_by": a.acked_by,
            "escalation_level": a.escalation_level, "awaiting_recipients": a.awaiting_recipients,
            "unroutable": a.awaiting_recipients and a.status == "firing",
            "recipients": told.get(a.fingerprint, []), "figures": a.payload.get("figures", {}),
        })
    return items


def silences(s: Session, now: datetime, state: str | None) -> list[dict[str, Any]]:
    rows = s.exec(select(NotifySilence).order_by(col(NotifySilence.created_at).desc())).all()
    items = [silence_json(r, now) for r in rows]
    return [i for i in items if state is None or i["state"] == state]
