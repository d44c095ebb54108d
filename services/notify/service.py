"""Notify use cases: take alerts and program contacts in; plan deliveries; send them.

Planning and sending are separate on purpose: a batch commits its deliveries as `pending`
together with its inbox ids (then the offset is committed), and the sender works through
pending rows. A restart re-sends only rows that were never marked sent.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from sqlmodel import Session, col, delete, select

from contracts import Alert, AlertEvent, AnyEvent, ProgramRegisteredEvent
from services.common.db import Database, seen_event_ids, utcnow
from services.common.logging import get_logger
from services.common.settings import Settings
from services.notify import domain
from services.notify.metrics import observe_delivery
from services.notify.render import Renderer
from services.notify.store import NotifyAlert, NotifyContact, NotifyDelivery, NotifyInbox, NotifyProgram

log = get_logger(__name__)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    planned: int = 0
    suppressed: int = 0
    no_recipient: int = 0


def apply_batch(db: Database, settings: Settings, renderer: Renderer, events: list[AnyEvent]) -> BatchResult:
    with db.unit_of_work() as session:
        return _apply(session, settings, renderer, events)


def _apply(session: Session, settings: Settings, renderer: Renderer, events: list[AnyEvent]) -> BatchResult:
    result = BatchResult()
    seen = seen_event_ids(session, NotifyInbox, [str(e.event_id) for e in events])
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event_id)
        if isinstance(event, ProgramRegisteredEvent):
            _contacts(session, settings, renderer, event, result)
        elif isinstance(event, AlertEvent):
            _plan(session, settings, renderer, event, result)
        session.add(NotifyInbox(event_id=event_id))
        session.flush()
        result.applied += 1
    return result


def _contacts(session: Session, settings: Settings, renderer: Renderer, event: ProgramRegisteredEvent,
              result: BatchResult) -> None:
    p = event.payload
    session.exec(delete(NotifyContact).where(col(NotifyContact.program_id) == p.program_id))  # type: ignore[call-overload]
    for c in {(c.role, c.name): c for c in p.contacts}.values():
        session.add(NotifyContact(program_id=p.program_id, role=c.role, name=c.name, phone=c.phone,
                                  email=c.email, division=c.division or p.division))
    program = session.get(NotifyProgram, p.program_id) or NotifyProgram(program_id=p.program_id, title=p.title)
    program.title, program.division, program.office = p.title, p.division, p.office
    session.add(program)
    session.flush()
    # Alerts can overtake the program register (different topics): deliver them now.
    waiting = session.exec(select(NotifyAlert).where(NotifyAlert.program_id == p.program_id,
                                                     col(NotifyAlert.awaiting_recipients))).all()
    for row in waiting:
        row.awaiting_recipients = False
        session.add(row)
        if row.status != "firing":
            continue
        alert = Alert.model_validate(row.payload)
        _deliver(session, settings, renderer, alert, row.last_event_id, alert.severity, result)


def _plan(session: Session, settings: Settings, renderer: Renderer, event: AlertEvent,
          result: BatchResult) -> None:
    a = event.payload
    row = session.get(NotifyAlert, a.fingerprint)
    known = domain.KnownAlert(row.status, row.severity) if row else None
    # A resolve of an alert nobody could be told about is not news either.
    news = domain.is_news(known, a.status, a.severity) and not (row and row.awaiting_recipients
                                                                and a.status == "resolved")
    # A resolve goes to those who heard of the firing: route it at the severity it had.
    route_severity = row.severity if (a.status == "resolved" and row) else a.severity
    if row is None:
        row = NotifyAlert(fingerprint=a.fingerprint, rule=a.rule, status=a.status, severity=a.severity,
                          program_id=a.program_id, summary=a.summary, last_event_id=str(event.event_id))
    row.status, row.summary, row.last_event_id = a.status, a.summary, str(event.event_id)
    row.severity = a.severity if a.status == "firing" else row.severity
    row.payload = a.model_dump(mode="json")
    row.updated_at = utcnow()
    session.add(row)
    if not news:
        row.awaiting_recipients = row.awaiting_recipients and a.status == "firing"
        result.suppressed += 1
        return
    row.awaiting_recipients = not _deliver(session, settings, renderer, a, str(event.event_id), route_severity,
                                           result)


def _deliver(session: Session, settings: Settings, renderer: Renderer, a: Alert, alert_event_id: str,
             route_severity: str, result: BatchResult) -> bool:
    """Plan one delivery per recipient; False when the program has no usable contact yet."""
    contacts = session.exec(select(NotifyContact).where(NotifyContact.program_id == a.program_id)).all()
    recipients = domain.choose_recipients([(c.role, c.name, c.phone, c.email) for c in contacts],
                                          route_severity, settings.recipient_address_template)
    if not recipients:
        result.no_recipient += 1
        log.warning("alert has no recipient yet; kept until contacts arrive", fingerprint=a.fingerprint,
                    program_id=a.program_id)
        return False
    if a.program_title is None:
        program = session.get(NotifyProgram, a.program_id)
        if program is not None:
            a = a.model_copy(update={"program_title": program.title})
    for r in recipients:
        message = renderer.render(a, r)
        session.add(NotifyDelivery(
            alert_event_id=alert_event_id, fingerprint=a.fingerprint,
            status=a.status, severity=a.severity, role=r.role, name=r.name, address=r.address,
            subject=message.subject, body_text=message.text, body_html=message.html))
        result.planned += 1
    return True


class EmailSender:
    """Sends pending email deliveries over SMTP and records each outcome."""

    def __init__(self, db: Database, settings: Settings, max_attempts: int = 5) -> None:
        self.db, self.settings, self.max_attempts = db, settings, max_attempts
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def _pending(self) -> list[NotifyDelivery]:
        with self.db.read() as s:
            return list(s.exec(select(NotifyDelivery).where(NotifyDelivery.outcome == "pending",
                                                            NotifyDelivery.channel == "email")
                               .order_by(col(NotifyDelivery.id)).limit(100)).all())

    def _send(self, d: NotifyDelivery) -> None:
        msg = EmailMessage()
        msg["Subject"] = d.subject
        msg["From"] = self.settings.mail_from
        msg["To"] = f"{d.name} <{d.address}>"
        # Deterministic id: a mail system that sees the same delivery twice can drop it.
        msg["Message-ID"] = make_msgid(idstring=f"execwatch-{d.alert_event_id[:8]}-{d.id}", domain="execwatch")
        msg["X-Execwatch-Fingerprint"] = d.fingerprint
        msg.set_content(d.body_text)
        msg.add_alternative(d.body_html, subtype="html")
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)

    def _record(self, delivery_id: int, error: str | None) -> None:
        with self.db.unit_of_work() as s:
            d = s.get(NotifyDelivery, delivery_id)
            if d is None:
                return
            d.attempts += 1
            if error is None:
                d.outcome, d.sent_at, d.error = "sent", utcnow(), None
            else:
                d.error = error[:1000]
                d.outcome = "failed" if d.attempts >= self.max_attempts else "pending"
            s.add(d)

    async def flush(self) -> int:
        sent = 0
        async with self._lock:
            for d in await asyncio.to_thread(self._pending):
                assert d.id is not None
                try:
                    await asyncio.to_thread(self._send, d)
                    error = None
                except (OSError, smtplib.SMTPException) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("email failed", delivery=d.id, error=error)
                await asyncio.to_thread(self._record, d.id, error)
                observe_delivery(d, error)
                if error is not None:
                    break  # the server is likely down: back off instead of failing every row
                sent += 1
        return sent

    def wake(self) -> None:
        self._wake.set()

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sender failed; will retry", error=str(exc))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
