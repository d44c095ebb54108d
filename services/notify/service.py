"""Notify use cases, as the service, the API and the tests call them: take alerts and program
contacts in (`intake`); flush due groups and escalations (`scheduler`); send deliveries with
retries (`dispatcher`, over `channels`).

Three steps, each its own transaction, so a restart neither loses nor repeats a message:
1. a consumed batch updates alert state and group membership (the offset is committed after);
2. the scheduler's tick turns due groups into `pending` deliveries and updates the notification
   log in the same transaction;
3. the dispatcher claims pending deliveries, sends them and records each outcome.
Steps 1 and 2 and the operator actions read and then write shared rows (a group gathers the
alerts of many programs, consumed by different replicas): they take turns, in this process under
a lock and across replicas under a PostgreSQL transaction lock (`serialize`).
Time comes from an injected clock: tests drive it instead of sleeping.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from contracts import AnyEvent
from services.common.db import Database, utcnow
from services.common.leader import serialize
from services.common.settings import Settings
from services.notify import domain, metrics
from services.notify.channels import ChannelError, UndeliverableError
from services.notify.channels.smtp import build_email
from services.notify.channels.webhook import signature
from services.notify.clock import Clock, ManualClock, utc
from services.notify.dispatcher import Dispatcher, Failure, classify, redrive
from services.notify.intake import BatchResult, Intake
from services.notify.render import Renderer
from services.notify.routing import Routing
from services.notify.scheduler import (
    NOTIFICATION_NS,
    Scheduler,
    TickResult,
    active_silences,
    alert_view,
    firing_views,
    plain_message,
    run_scheduler,
    silence_of,
)
from services.notify.store import NotifyAlert, NotifyDelivery, NotifySilence, aware

__all__ = ["NOTIFICATION_NS", "AlertState", "BatchResult", "ChannelError", "Clock", "Dispatcher", "Failure",
           "ManualClock", "Notifier", "TickResult", "UndeliverableError", "build_email", "classify",
           "plain_message", "redrive", "run_scheduler", "signature", "utc"]

#: The PostgreSQL lock every writer of notify's alert and group state takes.
STATE_LOCK = "notify:state"


@dataclass(frozen=True)
class AlertState:
    alert: NotifyAlert
    state: str  # active, acknowledged, suppressed, resolved
    silenced_by: str | None = None
    inhibited_by: str | None = None


class Notifier:
    def __init__(self, db: Database, settings: Settings, routing: Routing, renderer: Renderer,
                 clock: Clock = utcnow) -> None:
        self.db, self.settings, self.routing, self.clock = db, settings, routing, clock
        self.intake = Intake(settings, routing, clock)
        self.scheduler = Scheduler(settings, routing, renderer, self.intake)
        self._lock = threading.Lock()

    @property
    def renderer(self) -> Renderer:
        return self.scheduler.renderer

    @renderer.setter
    def renderer(self, renderer: Renderer) -> None:
        self.scheduler.renderer = renderer

    def _writing(self, session: Session) -> None:
        serialize(session, STATE_LOCK)

    # --- consumed events ---------------------------------------------------------------------

    def apply_batch(self, events: list[AnyEvent]) -> BatchResult:
        with self._lock, self.db.unit_of_work() as session:
            self._writing(session)
            result = self.intake.apply(session, events, utc(self.clock()))
            metrics.refresh_active(session)
            return result

    # --- the scheduler -----------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Escalate what nobody acknowledged in time, then flush every due group."""
        with self._lock, self.db.unit_of_work() as session:
            self._writing(session)
            now = utc(self.clock())
            result = self.scheduler.tick(session, now)
            metrics.refresh_active(session)
        for alert_at, sent_at in result.inbox:
            metrics.observe("inbox", "sent", alert_at, sent_at)
        return result

    # --- operator actions --------------------------------------------------------------------

    def alert(self, fingerprint: str) -> NotifyAlert | None:
        with self.db.read() as session:
            return session.get(NotifyAlert, fingerprint)

    def ack(self, fingerprint: str, by: str, comment: str | None = None) -> NotifyAlert | None:
        """Acknowledging stops escalation and reminders until the alert resolves or fires again."""
        with self._lock, self.db.unit_of_work() as session:
            self._writing(session)
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
            self._writing(session)
            row = NotifySilence(id=str(uuid.uuid4()), matchers=[m.__dict__ for m in matchers],
                                starts_at=utc(starts_at or now), ends_at=utc(ends_at), created_by=created_by,
                                comment=comment, created_at=now, updated_at=now)
            session.add(row)
            return row

    def mark_read(self, address: str, delivery_id: int) -> NotifyDelivery | None:
        """Mark one of this address's inbox messages read (the first reading's time stays); None
        when it has no such message."""
        with self.db.unit_of_work() as session:
            d = session.get(NotifyDelivery, delivery_id)
            if d is None or d.address != address or d.channel != "inbox":
                return None
            if d.read_at is None:
                d.read_at = utc(self.clock())
                session.add(d)
            return d

    def expire_silence(self, silence_id: str) -> NotifySilence | None:
        """End a silence now; what it held back is told at the groups' next turn."""
        now = utc(self.clock())
        with self._lock, self.db.unit_of_work() as session:
            self._writing(session)
            row = session.get(NotifySilence, silence_id)
            if row is None:
                return None
            ends = aware(row.ends_at)
            if ends is not None and ends > now:
                row.ends_at = now
                row.starts_at = min(aware(row.starts_at) or now, now)
                row.updated_at = now
                session.add(row)
                silence = silence_of(row)
                hit = {a.program_id for a in session.exec(select(NotifyAlert).where(NotifyAlert.status == "firing"))
                       if domain.all_match(silence.matchers, a.labels)}
                for program_id in hit:
                    self.intake.schedule(session, program_id, now, at_once=True)
            return row

    def alert_states(self, status: str | None) -> list[AlertState]:
        now = utc(self.clock())
        with self.db.read() as session:
            stmt = select(NotifyAlert)
            if status:
                stmt = stmt.where(NotifyAlert.status == status)
            rows = session.exec(stmt.order_by(col(NotifyAlert.updated_at))).all()
            silences = active_silences(session, now)
            active = firing_views(session, {r.program_id for r in rows})
            out = []
            for r in rows:
                if r.status != "firing":
                    out.append(AlertState(r, "resolved"))
                    continue
                silence = domain.silenced_by(r.labels, silences, now)
                source = domain.inhibited_by(alert_view(r), active, self.routing.inhibit_rules)
                state = ("suppressed" if silence or source else "acknowledged" if r.acked_at else "active")
                out.append(AlertState(r, state, silence.id if silence else None,
                                      source.fingerprint if source else None))
            return out


