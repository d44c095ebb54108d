"""Notify's intake: consumed alerts and program contacts → alert state, routed to receivers,
grouped per receiver and 과, each group's next flush scheduled.

Runs inside the caller's transaction (`Notifier.apply_batch`, one per consumed batch); the
scheduler reuses `route` and `schedule` when it escalates or re-routes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, col, delete, select

from contracts import AlertEvent, AnyEvent, ProgramRegisteredEvent
from services.common.db import seen_event_ids
from services.common.logging import get_logger
from services.common.settings import Settings
from services.notify import domain, metrics
from services.notify.clock import Clock, utc
from services.notify.routing import Policy, Routing
from services.notify.store import (
    NotifyAlert,
    NotifyContact,
    NotifyGroup,
    NotifyInbox,
    NotifyMember,
    NotifyProgram,
    aware,
)

log = get_logger(__name__)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    planned: int = 0
    suppressed: int = 0
    no_recipient: int = 0


Handler = Callable[[Session, Any, datetime, BatchResult], None]


class Intake:
    def __init__(self, settings: Settings, routing: Routing, clock: Clock) -> None:
        self.settings, self.routing, self.clock = settings, routing, clock
        # One handler per event type; other events on the consumed topics (milestones, targets)
        # are only recorded as seen.
        self.handlers: dict[type, Handler] = {ProgramRegisteredEvent: self._contacts, AlertEvent: self._alert}

    def apply(self, session: Session, events: list[AnyEvent], now: datetime) -> BatchResult:
        result = BatchResult()
        # Every row this batch loads or writes is held until the batch ends. The session's
        # identity map holds its objects weakly, so a group or alert read by one event was gone
        # by the next, and each `session.get` of it went back to the database (9 of the ~25
        # statements per alert, measured); held, they are found in the session.
        held: list[object] = []

        def hold(_: Session, obj: object) -> None:
            held.append(obj)

        event.listen(session, "loaded_as_persistent", hold)
        event.listen(session, "pending_to_persistent", hold)
        try:
            seen = seen_event_ids(session, NotifyInbox, [str(e.event_id) for e in events])
            for item in events:
                event_id = str(item.event_id)
                if event_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(event_id)
                handler = self.handlers.get(type(item))
                if handler is not None:
                    handler(session, item, now, result)
                session.add(NotifyInbox(event_id=event_id))
                session.flush()
                result.applied += 1
        finally:
            event.remove(session, "loaded_as_persistent", hold)
            event.remove(session, "pending_to_persistent", hold)
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
            if self.route(session, row):
                row.awaiting_recipients = False
                session.add(row)
        if firing:
            self.schedule(session, p.program_id, now)
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
            row.awaiting_recipients = not self.route(session, row)
            if row.awaiting_recipients:
                result.no_recipient += 1
                metrics.UNROUTABLE.inc()
                log.error("alert has nobody to tell: no contact, no division or office default",
                          fingerprint=a.fingerprint, program_id=a.program_id, division=a.division, office=a.office)
        else:
            row.awaiting_recipients = False
        session.add(row)
        self.schedule(session, a.program_id, now)
        result.planned += 1

    # --- routing and grouping ----------------------------------------------------------------

    def route(self, session: Session, row: NotifyAlert) -> bool:
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

    def schedule(self, session: Session, program_id: str, now: datetime, at_once: bool = False) -> None:
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

