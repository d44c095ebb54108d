"""Notify use cases: take alerts and program contacts in; group them per receiver; flush due
groups and escalations (the scheduler); send deliveries with retries.

Three steps, each its own transaction, so a restart neither loses nor repeats a message:
1. a consumed batch updates alert state and group membership (the offset is committed after);
2. the scheduler's tick turns due groups into `pending` deliveries and updates the notification
   log in the same transaction;
3. the dispatcher sends pending deliveries and records each outcome.
All writes go through `Notifier` under one lock, so the tick never races a batch over a group.
Time comes from an injected clock: tests drive it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import hmac
import html
import json
import random
import smtplib
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import httpx
from sqlmodel import Session, col, delete, select

from contracts import Alert, AlertEvent, AnyEvent, ProgramRegisteredEvent
from contracts.topics import DEADLETTER
from services.common.db import Database, seen_event_ids, utcnow
from services.common.logging import get_logger
from services.common.settings import Settings
from services.common.worker import Worker, every
from services.notify import domain, metrics
from services.notify.render import Item, Message, Renderer, webhook_payload
from services.notify.routing import Policy, Routing
from services.notify.store import (
    NotifyAlert,
    NotifyContact,
    NotifyDelivery,
    NotifyGroup,
    NotifyInbox,
    NotifyMember,
    NotifyOutbox,
    NotifyProgram,
    NotifySilence,
    aware,
)

log = get_logger(__name__)
Clock = Callable[[], datetime]
NOTIFICATION_NS = uuid.UUID("8f4d2c55-3f1e-4b8e-9a57-6f0c1d2e3a4b")


def utc(value: datetime) -> datetime:
    """Always store UTC: SQLite keeps the wall time and drops the zone."""
    return value.astimezone(UTC)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    planned: int = 0
    suppressed: int = 0
    no_recipient: int = 0


@dataclass
class TickResult:
    escalated: int = 0
    flushed: int = 0
    deferred: int = 0
    deliveries: int = 0
    inbox: list[tuple[datetime | None, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class AlertState:
    alert: NotifyAlert
    state: str  # active, acknowledged, suppressed, resolved
    silenced_by: str | None = None
    inhibited_by: str | None = None


class Notifier:
    def __init__(self, db: Database, settings: Settings, routing: Routing, renderer: Renderer,
                 clock: Clock = utcnow) -> None:
        self.db, self.settings, self.routing, self.renderer, self.clock = db, settings, routing, renderer, clock
        self._lock = threading.Lock()

    # --- consumed events ---------------------------------------------------------------------

    def apply_batch(self, events: list[AnyEvent]) -> BatchResult:
        with self._lock, self.db.unit_of_work() as session:
            result = self._apply(session, events, utc(self.clock()))
            metrics.refresh_active(session)
            return result

    def _apply(self, session: Session, events: list[AnyEvent], now: datetime) -> BatchResult:
        result = BatchResult()
        seen = seen_event_ids(session, NotifyInbox, [str(e.event_id) for e in events])
        for event in events:
            event_id = str(event.event_id)
            if event_id in seen:
                result.duplicates += 1
                continue
            seen.add(event_id)
            if isinstance(event, ProgramRegisteredEvent):
                self._contacts(session, event, now, result)
            elif isinstance(event, AlertEvent):
                self._alert(session, event, now, result)
            session.add(NotifyInbox(event_id=event_id))
            session.flush()
            result.applied += 1
        return result

    def _contacts(self, session: Session, event: ProgramRegisteredEvent, now: datetime, result: BatchResult) -> None:
        p = event.payload
        session.exec(delete(NotifyContact).where(col(NotifyContact.program_id) == p.program_id))
        for c in {(c.role, c.name): c for c in p.contacts}.values():
            session.add(NotifyContact(program_id=p.program_id, role=c.role, name=c.name, phone=c.phone,
                                      email=c.email, division=c.division or p.division))
        program = session.get(NotifyProgram, p.program_id) or NotifyProgram(program_id=p.program_id, title=p.title)
        program.title, program.division, program.office = p.title, p.division, p.office
        session.add(program)
        session.flush()
        # Alerts can overtake the program register (different topics), and staff change: every
        # firing alert of the program reaches whoever is now responsible (once per person).
        firing = session.exec(select(NotifyAlert).where(NotifyAlert.program_id == p.program_id,
                                                        NotifyAlert.status == "firing")).all()
        for row in firing:
            if self._route(session, row):
                row.awaiting_recipients = False
                session.add(row)
        if firing:
            self._schedule(session, p.program_id, now)
            result.planned += 1

    def _alert(self, session: Session, event: AlertEvent, now: datetime, result: BatchResult) -> None:
        a = event.payload
        row = session.get(NotifyAlert, a.fingerprint)
        known = domain.KnownAlert(row.status, row.severity) if row else None
        figures = a.model_dump(mode="json")["figures"]
        restated = domain.is_restated(a.rule, row.status if row else None, a.status,
                                      row.payload.get("figures") if row else None, figures)
        news = domain.is_news(known, a.status, a.severity, restated)
        if restated:
            # Everyone already told must be told again: forget what they were sent.
            for member in session.exec(select(NotifyMember).where(NotifyMember.fingerprint == a.fingerprint)):
                member.sent_status, member.sent_severity = None, None
                session.add(member)
        if row is None:
            row = NotifyAlert(fingerprint=a.fingerprint, rule=a.rule, status=a.status, severity=a.severity,
                              program_id=a.program_id, summary=a.summary, last_event_id=str(event.event_id))
        if a.status == "firing" and (known is None or known.status != "firing"):
            # A new firing (or a re-fire): its own acknowledgement, escalation and latency clock.
            row.received_at, row.notified_at, row.resolved_at = now, None, None
            row.acked_at, row.acked_by, row.ack_comment, row.escalation_level = None, None, None, 0
        if a.status == "resolved" and known is not None and known.status == "firing":
            row.resolved_at = now
        row.status, row.summary, row.last_event_id = a.status, a.summary, str(event.event_id)
        # A resolve keeps the severity it fired with: it goes to those who heard of the firing.
        row.severity = a.severity if a.status == "firing" else row.severity
        row.office, row.division = a.office, a.division
        row.labels = domain.notify_labels(a.rule, row.severity, a.program_id, a.office, a.division, a.labels)
        row.payload = a.model_dump(mode="json")
        row.updated_at = now
        session.add(row)
        session.flush()
        if not news:
            result.suppressed += 1
            return
        if a.status == "firing":
            row.awaiting_recipients = not self._route(session, row)
            if row.awaiting_recipients:
                result.no_recipient += 1
                metrics.UNROUTABLE.inc()
                log.error("alert has nobody to tell: no contact, no division or office default",
                          fingerprint=a.fingerprint, program_id=a.program_id, division=a.division, office=a.office)
        else:
            row.awaiting_recipients = False
        session.add(row)
        self._schedule(session, a.program_id, now)
        result.planned += 1

    # --- routing and grouping ----------------------------------------------------------------

    def _route(self, session: Session, row: NotifyAlert) -> bool:
        """Put a firing alert in the group of each of its receivers: the program's contacts of the
        routed roles, else the division's or office's default contact (routing.yaml `fallback`),
        plus configured receivers. False when nobody at all can be told."""
        policy = self.routing.policy(row.labels)
        base = policy.roles_for(row.severity)
        roles = domain.escalated_roles(base, policy.escalation_chain, row.escalation_level)
        contacts = session.exec(select(NotifyContact).where(NotifyContact.program_id == row.program_id)).all()
        people = domain.apply_overrides([(c.role, c.name, c.phone, c.email) for c in contacts],
                                        self.routing.overrides(row.labels))
        division, office = row.division, row.office
        if division is None or office is None:
            program = session.get(NotifyProgram, row.program_id)
            if program is not None:
                division, office = division or program.division, office or program.office
        routed = domain.route_people(people, roles, self.settings.recipient_address_template, division, office,
                                     self.routing.division_defaults, self.routing.office_defaults)
        targets: list[tuple[domain.Recipient, tuple[str, ...], str]] = [
            (r, policy.channels,
             "fallback" if routed.level != "contacts" else "route" if r.role in base else "escalation")
            for r in routed.recipients]
        for name in policy.receivers:
            rc = self.routing.receivers[name]
            targets.append((domain.Recipient("수신처", rc.name, rc.key), (rc.channel,), "route"))
        if routed.level == "contacts":
            # The register caught up with an alert that overtook it: a default contact not yet
            # told need not hear it (one already told keeps it, to hear of the resolve).
            for m in session.exec(select(NotifyMember).where(NotifyMember.fingerprint == row.fingerprint,
                                                             NotifyMember.reason == "fallback",
                                                             col(NotifyMember.sent_status).is_(None))).all():
                session.delete(m)
        session.flush()
        for recipient, channels, reason in targets:
            group = self._group(session, recipient, row.division, policy, channels)
            assert group.id is not None
            if session.get(NotifyMember, (group.id, row.fingerprint)) is None:
                session.add(NotifyMember(group_id=group.id, fingerprint=row.fingerprint, program_id=row.program_id,
                                         reason=reason, added_at=utc(self.clock())))
        session.flush()
        if routed.level in ("division", "office"):
            log.info("alert routed to the default contact", fingerprint=row.fingerprint, level=routed.level,
                     program_id=row.program_id)
        return bool(targets)

    def _group(self, session: Session, r: domain.Recipient, division: str | None, policy: Policy,
               channels: Sequence[str]) -> NotifyGroup:
        key = division or "-"
        group = session.exec(select(NotifyGroup).where(NotifyGroup.receiver == r.address,
                                                       NotifyGroup.group_key == key)).first()
        if group is None:
            group = NotifyGroup(receiver=r.address, name=r.name, role=r.role, group_key=key, route=policy.route,
                                channels=list(channels))
        else:
            group.name, group.role, group.route = r.name, r.role, policy.route
            group.channels = list(dict.fromkeys([*group.channels, *channels]))
        session.add(group)
        session.flush()
        return group

    def _schedule(self, session: Session, program_id: str, now: datetime, at_once: bool = False) -> None:
        """Groups holding news about the program are due group_wait (or group_interval) from now,
        or `at_once` (the news already waited, e.g. behind a silence). The whole program, because
        a change of one alert can lift the inhibition of another."""
        members = session.exec(select(NotifyMember).where(NotifyMember.program_id == program_id)).all()
        alerts = {a.fingerprint: a for a in session.exec(
            select(NotifyAlert).where(col(NotifyAlert.fingerprint).in_({m.fingerprint for m in members}))).all()}
        for m in members:
            a = alerts.get(m.fingerprint)
            if a is None or not domain.member_news(domain.Member(m.fingerprint, a.status, a.severity,
                                                                 sent_status=m.sent_status,
                                                                 sent_severity=m.sent_severity)):
                continue
            group = session.get(NotifyGroup, m.group_id)
            if group is None:
                continue
            timing = self.routing.policy_named(group.route).timing
            due = now if at_once else domain.next_flush_on_news(aware(group.next_flush_at),
                                                                aware(group.last_flush_at), now, timing)
            group.next_flush_at = utc(due)
            session.add(group)

    # --- the scheduler -----------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Escalate what nobody acknowledged in time, then flush every due group."""
        with self._lock, self.db.unit_of_work() as session:
            now = utc(self.clock())
            result = TickResult()
            silences = _silences(session, now)
            self._reroute_unroutable(session, now)
            self._escalate(session, now, silences, result)
            due = session.exec(select(NotifyGroup).where(col(NotifyGroup.next_flush_at) <= now)
                               .order_by(col(NotifyGroup.id))).all()
            for group in due:
                self._flush(session, group, now, silences, result)
            metrics.refresh_active(session)
        for alert_at, sent_at in result.inbox:
            metrics.observe("inbox", "sent", alert_at, sent_at)
        return result

    def _reroute_unroutable(self, session: Session, now: datetime) -> None:
        """Alerts nobody could be told of are tried again each tick (a routing file fixed and the
        service restarted, a default added): they stay visible in the gauge until someone hears."""
        rows = session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing",
                                                      col(NotifyAlert.awaiting_recipients).is_(True))).all()
        for row in rows:
            if self._route(session, row):
                row.awaiting_recipients = False
                session.add(row)
                self._schedule(session, row.program_id, now)

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
            self._route(session, row)
            self._schedule(session, row.program_id, now)
            result.escalated += 1
            log.info("alert escalated", fingerprint=row.fingerprint, level=row.escalation_level)

    def _muted(self, session: Session, row: NotifyAlert, silences: list[domain.Silence],
               now: datetime, active: Sequence[domain.AlertView] | None = None) -> tuple[bool, datetime | None]:
        silence = domain.silenced_by(row.labels, silences, now)
        if silence is not None:
            return True, silence.ends_at
        if active is None:
            active = _firing_views(session, [row.program_id])
        return domain.inhibited_by(_view(row), active, self.routing.inhibit_rules) is not None, None

    def _flush(self, session: Session, group: NotifyGroup, now: datetime, silences: list[domain.Silence],
               result: TickResult) -> None:
        assert group.id is not None
        members = {m.fingerprint: m for m in session.exec(
            select(NotifyMember).where(NotifyMember.group_id == group.id)).all()}
        alerts = {a.fingerprint: a for a in session.exec(
            select(NotifyAlert).where(col(NotifyAlert.fingerprint).in_(list(members)))).all()}
        active = _firing_views(session, {a.program_id for a in alerts.values()})
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
            if channel == "inbox":  # delivered by being written
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

    # --- operator actions --------------------------------------------------------------------

    def alert(self, fingerprint: str) -> NotifyAlert | None:
        with self.db.read() as session:
            return session.get(NotifyAlert, fingerprint)

    def ack(self, fingerprint: str, by: str, comment: str | None = None) -> NotifyAlert | None:
        """Acknowledging stops escalation and reminders until the alert resolves or fires again."""
        with self._lock, self.db.unit_of_work() as session:
            row = session.get(NotifyAlert, fingerprint)
            if row is None:
                return None
            if row.acked_at is None and row.status == "firing":
                row.acked_at, row.acked_by, row.ack_comment = utc(self.clock()), by[:100], comment
                session.add(row)
            return row

    def create_silence(self, matchers: Sequence[domain.Matcher], starts_at: datetime | None, ends_at: datetime,
                       created_by: str, comment: str) -> NotifySilence:
        now = utc(self.clock())
        with self._lock, self.db.unit_of_work() as session:
            row = NotifySilence(id=str(uuid.uuid4()), matchers=[m.__dict__ for m in matchers],
                                starts_at=utc(starts_at or now), ends_at=utc(ends_at), created_by=created_by,
                                comment=comment, created_at=now, updated_at=now)
            session.add(row)
            return row

    def expire_silence(self, silence_id: str) -> NotifySilence | None:
        """End a silence now; what it held back is told at the groups' next turn."""
        now = utc(self.clock())
        with self._lock, self.db.unit_of_work() as session:
            row = session.get(NotifySilence, silence_id)
            if row is None:
                return None
            ends = aware(row.ends_at)
            if ends is not None and ends > now:
                row.ends_at = now
                row.starts_at = min(aware(row.starts_at) or now, now)
                row.updated_at = now
                session.add(row)
                silence = _silence(row)
                hit = {a.program_id for a in session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing"))
                       if domain.all_match(silence.matchers, a.labels)}
                for program_id in hit:
                    self._schedule(session, program_id, now, at_once=True)
            return row

    def alert_states(self, status: str | None) -> list[AlertState]:
        now = utc(self.clock())
        with self.db.read() as session:
            stmt = select(NotifyAlert)
            if status:
                stmt = stmt.where(NotifyAlert.status == status)
            rows = session.exec(stmt.order_by(col(NotifyAlert.updated_at))).all()
            silences = _silences(session, now)
            active = _firing_views(session, {r.program_id for r in rows})
            out = []
            for r in rows:
                if r.status != "firing":
                    out.append(AlertState(r, "resolved"))
                    continue
                silence = domain.silenced_by(r.labels, silences, now)
                source = domain.inhibited_by(_view(r), active, self.routing.inhibit_rules)
                state = ("suppressed" if silence or source else "acknowledged" if r.acked_at else "active")
                out.append(AlertState(r, state, silence.id if silence else None,
                                      source.fingerprint if source else None))
            return out


def plain_message(items: Sequence[Item]) -> Message:
    """The message when the templates fail: every alert's summary, nothing that can fail."""
    lines = [f"- {i.alert.summary} ({i.alert.program_title or i.alert.program_id}, 알림 ID {i.alert.fingerprint})"
             for i in items]
    subject = items[0].alert.summary if len(items) == 1 else f"execwatch 알림 {len(items)}건"
    text = "\n".join(["execwatch 알림", "", *lines, ""])
    return Message(subject, text, "<pre>" + html.escape(text) + "</pre>")


def _view(row: NotifyAlert) -> domain.AlertView:
    return domain.AlertView(row.fingerprint, row.status, row.severity, row.labels)


def _firing_views(session: Session, program_ids: Iterable[str]) -> list[domain.AlertView]:
    ids = list(program_ids)
    if not ids:
        return []
    rows = session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing",
                                                  col(NotifyAlert.program_id).in_(ids))).all()
    return [_view(r) for r in rows]


def _silence(row: NotifySilence) -> domain.Silence:
    return domain.Silence(row.id, tuple(domain.Matcher(m["name"], m["value"], m.get("op", "=")) for m in row.matchers),  # type: ignore[arg-type]
                          aware(row.starts_at) or row.starts_at, aware(row.ends_at) or row.ends_at)


def _silences(session: Session, now: datetime) -> list[domain.Silence]:
    """Silences not yet over (pending ones start later; the tick sees them when they do)."""
    rows = session.exec(select(NotifySilence).where(col(NotifySilence.ends_at) > now))
    return [_silence(r) for r in rows]


# --- sending ---------------------------------------------------------------------------------------


class ChannelError(Exception):
    """A receiver answered, and said no. `transient` when asking again later may work."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class UndeliverableError(ValueError):
    """This message cannot be sent as it is (e.g. an address with header syntax in it)."""


@dataclass(frozen=True)
class Failure:
    transient: bool
    reason: str


def classify(exc: BaseException) -> Failure:
    """Transient: the server or network is down or busy (connection errors, timeouts, SMTP 4xx,
    HTTP 429/5xx); everything else is permanent for this message and fails it alone, whatever the
    exception type, so no message can stall the others."""
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return Failure(bool(codes) and all(400 <= c < 500 for c in codes), reason)
    if isinstance(exc, smtplib.SMTPResponseException):
        return Failure(400 <= exc.smtp_code < 500 or isinstance(exc, smtplib.SMTPConnectError), reason)
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError | httpx.TransportError):
        return Failure(True, reason)
    if isinstance(exc, ChannelError):
        return Failure(exc.transient, reason)
    return Failure(False, reason)


class Dispatcher(Worker):
    """Sends pending email and webhook deliveries; records each outcome. A transient failure is
    retried with capped exponential backoff and jitter for as long as the delivery's alerts still
    fire, up to `notify_retry_for_s`; then the delivery is `failed` (metric, dead-letter topic
    through the outbox) until `execwatch notify redrive` sends it again. A permanent failure fails
    that one delivery at once. A channel failing transiently is skipped for the rest of a round, so
    it never holds up the others."""

    def __init__(self, db: Database, settings: Settings, routing: Routing, clock: Clock = utcnow,
                 rand: Callable[[], float] = random.random, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__()
        self.name = "notify dispatcher"
        self.db, self.settings, self.routing, self.clock, self.rand = db, settings, routing, clock, rand
        self.transport = transport
        self._lock = asyncio.Lock()

    def _due(self, now: datetime) -> list[NotifyDelivery]:
        """Due deliveries; one still waiting to tell of alerts that no longer fire is dropped (the
        resolve notice says what there is to say)."""
        with self.db.unit_of_work() as s:
            rows = list(s.exec(select(NotifyDelivery).where(
                NotifyDelivery.outcome == "pending", col(NotifyDelivery.channel).in_(["email", "webhook"]),
                col(NotifyDelivery.next_attempt_at) <= now).order_by(col(NotifyDelivery.id)).limit(200)).all())
            due = []
            for d in rows:
                if d.status == "firing" and d.attempts > 0 and not _any_firing(s, d):
                    d.outcome, d.next_attempt_at = "dropped", None
                    s.add(d)
                    metrics.observe(d.channel, "dropped", None, now)
                else:
                    due.append(d)
            s.flush()
            metrics.refresh_undelivered(s, now)
            return due

    def _send_email(self, d: NotifyDelivery, now: datetime) -> None:
        msg = build_email(d, self.settings, now)  # before connecting: a bad message fails alone
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)

    async def _send_webhook(self, d: NotifyDelivery, now: datetime) -> None:
        name = d.address.split(":", 1)[1]
        receiver = self.routing.receivers.get(name)
        if receiver is None:
            raise ChannelError(f"no webhook receiver named {name!r} in the routing file", transient=False)
        body = json.dumps(d.payload, ensure_ascii=False, separators=(",", ":")).encode()
        ts = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json", "X-Execwatch-Delivery": d.alert_event_id,
                   "X-Execwatch-Timestamp": ts}
        if receiver.secret:
            headers["X-Execwatch-Signature"] = "sha256=" + signature(receiver.secret, ts, body)
        async with httpx.AsyncClient(transport=self.transport, timeout=self.settings.notify_webhook_timeout_s) as c:
            resp = await c.post(receiver.address, content=body, headers=headers)
        if resp.status_code >= 300:
            transient = resp.status_code >= 500 or resp.status_code in (408, 425, 429)
            raise ChannelError(f"HTTP {resp.status_code}: {resp.text[:200]}", transient=transient)

    def _record(self, delivery_id: int, failure: Failure | None, now: datetime) -> str:
        with self.db.unit_of_work() as s:
            d = s.get(NotifyDelivery, delivery_id)
            if d is None or d.outcome != "pending":
                return "gone"
            d.attempts += 1
            if failure is None:
                d.outcome, d.sent_at, d.error, d.next_attempt_at = "sent", now, None, None
                s.add(d)
                return "sent"
            d.error = failure.reason[:1000]
            retry_for = timedelta(seconds=self.settings.notify_retry_for_s)
            until = aware(d.retry_until) or (aware(d.created_at) or now) + retry_for
            outcome = domain.after_failure(transient=failure.transient, attempts=d.attempts, now=now,
                                           retry_until=until, max_attempts=self.settings.notify_max_attempts,
                                           still_news=d.status != "firing" or _any_firing(s, d))
            if outcome == "retry":
                wait = domain.backoff(d.attempts, self.settings.notify_retry_base_s,
                                      self.settings.notify_retry_max_s, self.rand())
                d.next_attempt_at = min(now + wait, until)  # the last try falls on the deadline
            else:
                d.outcome, d.next_attempt_at = outcome, None
                if outcome == "failed":
                    s.add(_dead_letter(d, self.settings))
                    log.error("delivery failed for good", delivery=d.id, channel=d.channel, error=d.error,
                              attempts=d.attempts)
            s.add(d)
            return outcome

    async def flush(self) -> int:
        sent = 0
        async with self._lock:
            now = utc(self.clock())
            broken: set[str] = set()
            for d in await asyncio.to_thread(self._due, now):
                assert d.id is not None
                line = d.channel if d.channel == "email" else d.address  # one SMTP server; each webhook its own
                if line in broken:
                    continue
                failure: Failure | None = None
                try:
                    if d.channel == "email":
                        await asyncio.to_thread(self._send_email, d, now)
                    else:
                        await self._send_webhook(d, now)
                except Exception as exc:  # isolated per delivery: see classify()
                    failure = classify(exc)
                    log.warning("delivery failed", delivery=d.id, channel=d.channel, error=failure.reason,
                                transient=failure.transient)
                    if failure.transient:
                        broken.add(line)
                outcome = await asyncio.to_thread(self._record, d.id, failure, utc(self.clock()))
                metrics.observe(d.channel, outcome, aware(d.alert_at) or aware(d.created_at), utc(self.clock()))
                sent += outcome == "sent"
        return sent


def _any_firing(session: Session, d: NotifyDelivery) -> bool:
    fps = d.fingerprints or [d.fingerprint]
    return session.exec(select(NotifyAlert.fingerprint).where(col(NotifyAlert.fingerprint).in_(fps),
                                                              NotifyAlert.status == "firing")).first() is not None


def redrive(db: Database, settings: Settings, now: datetime, ids: Sequence[int] = ()) -> list[int]:
    """Failed email and webhook deliveries (or those named) back to `pending`, due now, with a new
    retry window: the running dispatcher sends them at its next round."""
    with db.unit_of_work() as s:
        stmt = select(NotifyDelivery).where(NotifyDelivery.outcome == "failed",
                                            col(NotifyDelivery.channel).in_(["email", "webhook"]))
        if ids:
            stmt = stmt.where(col(NotifyDelivery.id).in_(list(ids)))
        rows = s.exec(stmt.order_by(col(NotifyDelivery.id))).all()
        for d in rows:
            d.outcome, d.attempts, d.next_attempt_at = "pending", 0, utc(now)
            d.retry_until = utc(now) + timedelta(seconds=settings.notify_retry_for_s)
            s.add(d)
        return [d.id for d in rows if d.id is not None]


#: Headers are not folded: Python's folder puts the space between two encoded words outside them,
#: where RFC 2047 says to ignore it, so a long Korean subject lost a space ("%p)외 2건").
_MAIL_POLICY = email.policy.default.clone(max_line_length=998)


def build_email(d: NotifyDelivery, settings: Settings, now: datetime) -> EmailMessage:
    """Headers from structured values: names are cleaned of line breaks (a register may hold
    anything), addresses must be plain, so no field can end a header or add one."""
    if not domain.valid_address(d.address):
        raise UndeliverableError(f"not a deliverable address: {d.address!r}")
    sender_name, sender = parseaddr(settings.mail_from)
    if not domain.valid_address(sender):
        raise UndeliverableError(f"EXECWATCH_MAIL_FROM is not an address: {settings.mail_from!r}")
    msg = EmailMessage(policy=_MAIL_POLICY)
    msg["Subject"] = domain.header_text(d.subject, 900)
    msg["From"] = Address(display_name=domain.header_text(settings.mail_from_name or sender_name), addr_spec=sender)
    msg["To"] = Address(display_name=domain.header_text(d.name), addr_spec=d.address)
    msg["Date"] = format_datetime(now)
    # Deterministic id: a mail system that sees the same delivery twice can drop it.
    msg["Message-ID"] = f"<{d.alert_event_id}.{d.id}@execwatch>"
    msg["X-Execwatch-Fingerprints"] = ",".join(d.fingerprints or [d.fingerprint])
    msg.set_content(d.body_text)
    msg.add_alternative(d.body_html, subtype="html")
    return msg


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`; receivers recompute it to trust the payload."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _dead_letter(d: NotifyDelivery, settings: Settings) -> NotifyOutbox:
    # A redriven delivery can fail again: each failure is its own dead letter.
    event_id = uuid.uuid5(NOTIFICATION_NS, f"dead|{d.alert_event_id}|{d.channel}|{d.address}|{d.id}|{d.attempts}")
    value = {"kind": "notify.delivery_failed", "delivery_id": d.id, "notification_id": d.alert_event_id,
             "channel": d.channel, "address": d.address, "subject": d.subject, "fingerprints": d.fingerprints,
             "attempts": d.attempts, "error": d.error}
    return NotifyOutbox(event_id=str(event_id), topic=settings.topic(DEADLETTER.name), key=d.address,
                        value=json.dumps(value, ensure_ascii=False).encode())


async def run_scheduler(notifier: Notifier, dispatcher: Dispatcher, interval: float) -> None:
    """The loop that flushes due groups and escalations; the dispatcher is woken when it made work."""

    async def tick() -> None:
        result = await asyncio.to_thread(notifier.tick)
        if result.deliveries:
            dispatcher.wake()

    await every(interval, tick, "scheduler tick")


class ManualClock:
    """A clock that moves only when told: tests and replays drive the scheduler with it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return self.now
