"""Email over SMTP: one connection per dispatcher round, opened at the first mail and reused.

A message is built before anything is sent, so a bad one fails alone. After an answer that
leaves the session usable (a refused mailbox, sender or message: smtplib resets the
transaction) the connection is kept; after anything else it is dropped and the next mail of the
round connects afresh."""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import ClassVar

from services.common.settings import Settings
from services.notify import domain
from services.notify.channels import Channel, UndeliverableError
from services.notify.store import NotifyDelivery

#: Answers after which smtplib has reset the mail transaction: the session can carry the next mail.
_SESSION_STILL_USABLE = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


class SmtpChannel(Channel):
    name: ClassVar[str] = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self.connections = 0  # opened this round

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15)
        try:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        self.connections += 1
        return smtp

    def _send(self, d: NotifyDelivery, now: datetime) -> None:
        msg = build_email(d, self.settings, now)  # before connecting: a bad message fails alone
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.send_message(msg)
        except _SESSION_STILL_USABLE:
            raise
        except BaseException:
            self._drop()
            raise

    async def send(self, d: NotifyDelivery, now: datetime) -> None:
        await asyncio.to_thread(self._send, d, now)

    def _drop(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._drop)


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

