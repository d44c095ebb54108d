"""Notify's dispatcher: pending deliveries → channels, each outcome recorded on its own.

With several replicas every dispatcher works, on different deliveries: a round first claims due
deliveries in a short transaction (`claimed_by`, `claimed_until`), then sends only what it
claimed. On PostgreSQL the claim selects with `FOR UPDATE SKIP LOCKED`, so replicas claiming at
the same moment take different rows without waiting; the claim itself is a conditional update,
so on SQLite (no SKIP LOCKED; one process per service) the same code is correct as well. A
claim is a lease: a replica that dies mid-round leaves claims that expire after
`notify_claim_lease_s`, and another replica sends those deliveries then. A round stops sending
once half its lease is spent, so a slow round cannot outlive its claims.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import smtplib
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, or_, select

from contracts.topics import DEADLETTER
from services.common.db import Database, utcnow
from services.common.logging import get_logger
from services.common.settings import Settings
from services.common.worker import Worker
from services.notify import domain, metrics
from services.notify.channels import Channel, ChannelError
from services.notify.channels.smtp import SmtpChannel
from services.notify.channels.webhook import WebhookChannel
from services.notify.clock import Clock, utc
from services.notify.routing import Routing
from services.notify.scheduler import NOTIFICATION_NS
from services.notify.store import NotifyAlert, NotifyDelivery, NotifyOutbox, aware

log = get_logger(__name__)

#: Channels the dispatcher sends on (the inbox is delivered by being written).
SENT_CHANNELS = (SmtpChannel.name, WebhookChannel.name)


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


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:80]


class Dispatcher(Worker):
    """Sends pending email and webhook deliveries; records each outcome. A transient failure is
    retried with capped exponential backoff and jitter for as long as the delivery's alerts still
    fire, up to `notify_retry_for_s`; then the delivery is `failed` (metric, dead-letter topic
    through the outbox) until `execwatch notify redrive` sends it again. A permanent failure fails
    that one delivery at once. A channel failing transiently is skipped for the rest of a round, so
    it never holds up the others."""

    def __init__(self, db: Database, settings: Settings, routing: Routing, clock: Clock = utcnow,
                 rand: Callable[[], float] = random.random, transport: httpx.AsyncBaseTransport | None = None,
                 batch: int = 200) -> None:
        super().__init__()
        self.name = "notify dispatcher"
        self.db, self.settings, self.routing, self.clock, self.rand = db, settings, routing, clock, rand
        self.transport, self.batch = transport, batch
        self.replica = replica_name()
        self._lock = asyncio.Lock()

    def channels(self) -> dict[str, Channel]:
        """A round's channels (opened lazily, closed after the round)."""
        return {SmtpChannel.name: SmtpChannel(self.settings),
                WebhookChannel.name: WebhookChannel(self.settings, self.routing, self.transport)}

    def _claim(self, now: datetime, token: str) -> list[NotifyDelivery]:
        """Claim due deliveries for this round; one still waiting to tell of alerts that no longer
        fire is dropped instead (the resolve notice says what there is to say)."""
        lease = timedelta(seconds=self.settings.notify_claim_lease_s)
        with self.db.unit_of_work() as s:
            free = or_(col(NotifyDelivery.claimed_until).is_(None), col(NotifyDelivery.claimed_until) <= now)
            rows = list(s.exec(select(NotifyDelivery).where(
                NotifyDelivery.outcome == "pending", col(NotifyDelivery.channel).in_(SENT_CHANNELS),
                col(NotifyDelivery.next_attempt_at) <= now, free)
                .order_by(col(NotifyDelivery.id)).limit(self.batch)
                .with_for_update(skip_locked=True)).all())  # PostgreSQL; SQLite ignores it
            mine = []
            for d in rows:
                if d.status == "firing" and d.attempts > 0 and not _any_firing(s, d):
                    d.outcome, d.next_attempt_at, d.claimed_by, d.claimed_until = "dropped", None, None, None
                    s.add(d)
                    metrics.observe(d.channel, "dropped", None, now)
                else:
                    mine.append(d.id)
            if mine:
                # Conditional: only rows still free become ours, whatever another process did since.
                s.execute(sa.update(NotifyDelivery)
                          .where(col(NotifyDelivery.id).in_(mine), col(NotifyDelivery.outcome) == "pending", free)
                          .values(claimed_by=token, claimed_until=now + lease))
            s.flush()
            metrics.refresh_undelivered(s, now)
        with self.db.read() as s:
            return list(s.exec(select(NotifyDelivery).where(NotifyDelivery.claimed_by == token)
                               .order_by(col(NotifyDelivery.id))).all())

    def _release(self, token: str) -> None:
        """Claims this round did not use (a line that failed, a round cut short): due again at once."""
        with self.db.unit_of_work() as s:
            s.execute(sa.update(NotifyDelivery).where(col(NotifyDelivery.claimed_by) == token)
                      .values(claimed_by=None, claimed_until=None))

    def _record(self, delivery_id: int, token: str | None, failure: Failure | None, now: datetime) -> str:
        with self.db.unit_of_work() as s:
            d = s.get(NotifyDelivery, delivery_id)
            if d is None or d.outcome != "pending":
                return "gone"
            if token is not None and d.claimed_by != token:
                # Our lease ran out and another replica claimed it: its outcome is the one recorded.
                log.warning("delivery claim lost before its outcome was recorded", delivery=delivery_id)
                return "gone"
            d.attempts += 1
            d.claimed_by, d.claimed_until = None, None
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
            token = f"{self.replica}:{uuid.uuid4().hex[:12]}"
            stop_at = now + timedelta(seconds=self.settings.notify_claim_lease_s / 2)
            channels = self.channels()
            broken: set[str] = set()
            try:
                for d in await asyncio.to_thread(self._claim, now, token):
                    assert d.id is not None
                    if utc(self.clock()) >= stop_at:
                        break  # the rest is released below, for the next round (or another replica)
                    channel = channels[d.channel]
                    line = f"{d.channel}|{channel.line(d)}"
                    if line in broken:
                        continue
                    failure: Failure | None = None
                    try:
                        await channel.send(d, now)
                    except Exception as exc:  # isolated per delivery: see classify()
                        failure = classify(exc)
                        log.warning("delivery failed", delivery=d.id, channel=d.channel, error=failure.reason,
                                    transient=failure.transient)
                        if failure.transient:
                            broken.add(line)
                    outcome = await asyncio.to_thread(self._record, d.id, token, failure, utc(self.clock()))
                    metrics.observe(d.channel, outcome, aware(d.alert_at) or aware(d.created_at), utc(self.clock()))
                    sent += outcome == "sent"
            finally:
                for channel in channels.values():
                    try:
                        await channel.close()
                    except Exception as exc:  # closing a broken connection: nothing left to lose
                        log.debug("channel close failed", channel=channel.name, error=str(exc))
                await asyncio.to_thread(self._release, token)
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
                                            col(NotifyDelivery.channel).in_(SENT_CHANNELS))
        if ids:
            stmt = stmt.where(col(NotifyDelivery.id).in_(list(ids)))
        rows = s.exec(stmt.order_by(col(NotifyDelivery.id))).all()
        for d in rows:
            d.outcome, d.attempts, d.next_attempt_at = "pending", 0, utc(now)
            d.claimed_by, d.claimed_until = None, None
            d.retry_until = utc(now) + timedelta(seconds=settings.notify_retry_for_s)
            s.add(d)
        return [d.id for d in rows if d.id is not None]


def _dead_letter(d: NotifyDelivery, settings: Settings) -> NotifyOutbox:
    # A redriven delivery can fail again: each failure is its own dead letter.
    event_id = uuid.uuid5(NOTIFICATION_NS, f"dead|{d.alert_event_id}|{d.channel}|{d.address}|{d.id}|{d.attempts}")
    value = {"kind": "notify.delivery_failed", "delivery_id": d.id, "notification_id": d.alert_event_id,
             "channel": d.channel, "address": d.address, "subject": d.subject, "fingerprints": d.fingerprints,
             "attempts": d.attempts, "error": d.error}
    return NotifyOutbox(event_id=str(event_id), topic=settings.topic(DEADLETTER.name), key=d.address,
                        value=json.dumps(value, ensure_ascii=False).encode())
