"""Notify's scheduler: due groups → pending deliveries, and escalation of what nobody
acknowledged. Clock-driven, so with several replicas only the leader ticks (`run_scheduler`);
each tick is one transaction, serialized with intake and operator actions (`Notifier.tick`),
which writes the deliveries together with the notification log they reflect.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from contracts import Alert
from services.common.leader import Leader
from services.common.logging import get_logger
from services.common.settings import Settings
from services.notify import domain
from services.notify.channels import sent_when_written
from services.notify.clock import utc
from services.notify.intake import Intake
from services.notify.render import Item, Message, Renderer, webhook_payload
from services.notify.routing import Routing
from services.notify.store import (
    NotifyAlert,
    NotifyDelivery,
    NotifyGroup,
    NotifyMember,
    NotifyProgram,
    NotifySilence,
    aware,
)

if TYPE_CHECKING:
    from services.notify.dispatcher import Dispatcher
    from services.notify.service import Notifier

log = get_logger(__name__)
NOTIFICATION_NS = uuid.UUID("8f4d2c55-3f1e-4b8e-9a57-6f0c1d2e3a4b")


@dataclass
class TickResult:
    escalated: int = 0
    flushed: int = 0
    deferred: int = 0
    deliveries: int = 0
    inbox: list[tuple[datetime | None, datetime]] = field(default_factory=list)


class Scheduler:
    def __init__(self, settings: Settings, routing: Routing, renderer: Renderer, intake: Intake) -> None:
        self.settings, self.routing, self.renderer, self.intake = settings, routing, renderer, intake

    def tick(self, session: Session, now: datetime) -> TickResult:
        """Escalate what nobody acknowledged in time, then flush every due group."""
        result = TickResult()
        silences = active_silences(session, now)
        self._reroute_unroutable(session, now)
        self._escalate(session, now, silences, result)
        due = session.exec(select(NotifyGroup).where(col(NotifyGroup.next_flush_at) <= now)
                           .order_by(col(NotifyGroup.id))).all()
        for group in due:
            self._flush(session, group, now, silences, result)
        return result

    def _reroute_unroutable(self, session: Session, now: datetime) -> None:
        """Alerts nobody could be told of are tried again each tick (a routing file fixed and the
        service restarted, a default added): they stay visible in the gauge until someone hears."""
        rows = session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing",
                                                      col(NotifyAlert.awaiting_recipients).is_(True))).all()
        for row in rows:
            if self.intake.route(session, row):
                row.awaiting_recipients = False
                session.add(row)
                self.intake.schedule(session, row.program_id, now)

    def _escalate(self, session: Session, now: datetime, silences: list[domain.Silence], result: TickResult) -> None:
        rows = session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing",
                                                      col(NotifyAlert.acked_at).is_(None),
                                                      col(NotifyAlert.notified_at).is_not(None))).all()
        for row in rows:
            policy = self.routing.policy(row.labels)
            notified = aware(row.notified_at)
            if policy.escalation_after <= timedelta(0) or notified is None:
                continue
            base = policy.roles_for(row.severity)
            if (not domain.can_escalate(base, policy.escalation_chain, row.escalation_level)
                    or now < domain.escalation_due_at(notified, row.escalation_level, policy.escalation_after)):
                continue
            if self._muted(session, row, silences, now)[0]:
                continue
            row.escalation_level += 1
            session.add(row)
            self.intake.route(session, row)
            self.intake.schedule(session, row.program_id, now)
            result.escalated += 1
            log.info("alert escalated", fingerprint=row.fingerprint, level=row.escalation_level)

    def _muted(self, session: Session, row: NotifyAlert, silences: list[domain.Silence],
               now: datetime, active: Sequence[domain.AlertView] | None = None) -> tuple[bool, datetime | None]:
        silence = domain.silenced_by(row.labels, silences, now)
        if silence is not None:
            return True, silence.ends_at
        if active is None:
            active = firing_views(session, [row.program_id])
        return domain.inhibited_by(alert_view(row), active, self.routing.inhibit_rules) is not None, None

    def _flush(self, session: Session, group: NotifyGroup, now: datetime, silences: list[domain.Silence],
               result: TickResult) -> None:
        assert group.id is not None
        members = {m.fingerprint: m for m in session.exec(
            select(NotifyMember).where(NotifyMember.group_id == group.id)).all()}
        alerts = {a.fingerprint: a for a in session.exec(
            select(NotifyAlert).where(col(NotifyAlert.fingerprint).in_(list(members)))).all()}
        active = firing_views(session, {a.program_id for a in alerts.values()})
        policy = self.routing.policy_named(group.route)
        views = []
        for fp, m in members.items():
            a = alerts.get(fp)
            if a is None:
                continue
            muted, until = self._muted(session, a, silences, now, active)
            sent_status = m.sent_status
            if a.status == "resolved" and not policy.send_resolved:
                sent_status = "resolved"  # nothing to say: the group forgets it
            views.append(domain.Member(fp, a.status, a.severity, until, muted, a.acked_at is not None,
                                       sent_status, m.sent_severity))
        plan = domain.plan_flush(views, aware(group.last_flush_at), now, policy.timing, policy.quiet)
        if plan.kind is not None:
            self._emit(session, group, plan, alerts, members, now, result)
        if plan.deferred:
            result.deferred += 1
        for fp in plan.drop:
            if fp in members:
                session.delete(members[fp])
        group.next_flush_at = utc(plan.next_flush_at) if plan.next_flush_at else None
        session.add(group)

    def _emit(self, session: Session, group: NotifyGroup, plan: domain.FlushPlan, alerts: dict[str, NotifyAlert],
              members: dict[str, NotifyMember], now: datetime, result: TickResult) -> None:
        assert group.id is not None and plan.kind is not None
        items = [Item(self._payload(session, alerts[fp]), alerts[fp].acked_at is not None) for fp in plan.send]
        escalated = any(members[fp].reason == "escalation" and members[fp].sent_status is None for fp in plan.send)
        recipient = domain.Recipient(group.role, group.name, group.receiver)
        division = None if group.group_key == "-" else group.group_key
        try:
            message = self.renderer.render(items, recipient, kind=plan.kind, division=division,
                                           escalated=escalated)
        except Exception as exc:  # an edited template or odd figures: the person is told all the same
            log.error("message could not be rendered; sent in plain form", group=group.id,
                      error=f"{type(exc).__name__}: {exc}")
            message = plain_message(items)
        group.flushes += 1
        notification_id = str(uuid.uuid5(NOTIFICATION_NS, f"{group.id}|{group.flushes}"))
        received = [aware(alerts[fp].received_at) for fp in plan.send
                    if members[fp].sent_status is None and alerts[fp].received_at]
        alert_at = min((r for r in received if r is not None), default=None)
        firing = [i.alert for i in items if i.alert.status == "firing"]
        severity = max((a.severity for a in firing), key=lambda s: domain.SEVERITY_RANK.get(s, 0), default="info")
        for channel in group.channels:
            d = NotifyDelivery(
                alert_event_id=notification_id, fingerprint=plan.send[0], fingerprints=list(plan.send),
                status="firing" if firing else "resolved", severity=severity, channel=channel, role=group.role,
                name=group.name, address=group.receiver, subject=message.subject, body_text=message.text,
                body_html=message.html, kind=plan.kind, group_id=group.id, alert_at=alert_at,
                next_attempt_at=now, created_at=now,
                retry_until=now + timedelta(seconds=self.settings.notify_retry_for_s))
            if channel == "webhook":
                receiver = self.routing.receivers.get(group.receiver.split(":", 1)[1])
                d.payload = webhook_payload(receiver.format if receiver else "json", message, items,
                                            group.receiver, plan.kind, notification_id)
            if sent_when_written(channel):  # the inbox: delivered by being written
                d.outcome, d.sent_at, d.next_attempt_at = "sent", now, None
                result.inbox.append((alert_at, now))
            session.add(d)
            result.deliveries += 1
        for fp in plan.send:
            m, a = members[fp], alerts[fp]
            m.sent_status, m.sent_severity, m.sent_at = a.status, a.severity, now
            session.add(m)
            if a.status == "firing" and a.notified_at is None:
                a.notified_at = now
                session.add(a)
        group.last_flush_at = now
        result.flushed += 1

    @staticmethod
    def _payload(session: Session, row: NotifyAlert) -> Alert:
        alert = Alert.model_validate(row.payload)
        update: dict[str, Any] = {"severity": row.severity}
        if alert.program_title is None:
            program = session.get(NotifyProgram, alert.program_id)
            if program is not None:
                update["program_title"] = program.title
        return alert.model_copy(update=update)


def plain_message(items: Sequence[Item]) -> Message:
    """The message when the templates fail: every alert's summary, nothing that can fail."""
    lines = [f"- {i.alert.summary} ({i.alert.program_title or i.alert.program_id}, 알림 ID {i.alert.fingerprint})"
             for i in items]
    subject = items[0].alert.summary if len(items) == 1 else f"execwatch 알림 {len(items)}건"
    text = "\n".join(["execwatch 알림", "", *lines, ""])
    return Message(subject, text, "<pre>" + html.escape(text) + "</pre>")


def alert_view(row: NotifyAlert) -> domain.AlertView:
    return domain.AlertView(row.fingerprint, row.status, row.severity, row.labels)


def firing_views(session: Session, program_ids: Iterable[str]) -> list[domain.AlertView]:
    ids = list(program_ids)
    if not ids:
        return []
    rows = session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing",
                                                  col(NotifyAlert.program_id).in_(ids))).all()
    return [alert_view(r) for r in rows]


def silence_of(row: NotifySilence) -> domain.Silence:
    return domain.Silence(row.id, tuple(domain.Matcher(m["name"], m["value"], m.get("op", "=")) for m in row.matchers),  # type: ignore[arg-type]
                          aware(row.starts_at) or row.starts_at, aware(row.ends_at) or row.ends_at)


def active_silences(session: Session, now: datetime) -> list[domain.Silence]:
    """Silences not yet over (pending ones start later; the tick sees them when they do)."""
    rows = session.exec(select(NotifySilence).where(col(NotifySilence.ends_at) > now))
    return [silence_of(r) for r in rows]




async def run_scheduler(notifier: Notifier, dispatcher: Dispatcher, interval: float,
                        leader: Leader | None = None) -> None:
    """The loop that flushes due groups and escalations, on the leading replica only; the
    dispatcher is woken when it made work."""

    async def tick() -> None:
        result = await asyncio.to_thread(notifier.tick)
        if result.deliveries:
            dispatcher.wake()

    await (leader or Leader(notifier.db, "notify:scheduler")).run(interval, tick, "scheduler tick")
