"""Notify tables: contacts from the program register, alert state, groups with their notification
log, silences, and every delivery.

Datetimes are stored in UTC; SQLite hands them back naive, so readers go through `aware()`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.common.db import InboxBase, OutboxBase, pending_index, utcnow


def aware(value: datetime | None) -> datetime | None:
    """Stored datetimes are UTC; SQLite drops the zone on the way back."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _dt(index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, index=index, sa_type=sa.DateTime(timezone=True), nullable=nullable)


class NotifyContact(SQLModel, table=True):
    __tablename__ = "notify_contact"
    program_id: str = Field(primary_key=True, max_length=200)
    role: str = Field(primary_key=True, max_length=20)
    name: str = Field(primary_key=True, max_length=100)
    phone: str | None = None
    email: str | None = None
    division: str | None = None


class NotifyProgram(SQLModel, table=True):
    __tablename__ = "notify_program"
    program_id: str = Field(primary_key=True, max_length=200)
    title: str
    division: str | None = None
    office: str | None = None


class NotifyAlert(SQLModel, table=True):
    """The latest known state of each alert (by fingerprint)."""

    __tablename__ = "notify_alert"
    fingerprint: str = Field(primary_key=True, max_length=64)
    rule: str = Field(max_length=40)
    status: str = Field(max_length=10)
    severity: str = Field(max_length=10)
    program_id: str = Field(max_length=200, index=True)
    summary: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    last_event_id: str = Field(max_length=36)
    awaiting_recipients: bool = Field(
        default=False, description="firing, but nobody to tell: no contact, no default contact (unroutable)")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    office: str | None = None
    division: str | None = None
    labels: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON, description="notify labels (실, 과, …)")
    received_at: datetime | None = _dt()  # this firing reached notify (latency, escalation)
    notified_at: datetime | None = _dt()  # first message of this firing went out (escalation clock)
    resolved_at: datetime | None = _dt()
    acked_at: datetime | None = _dt()
    acked_by: str | None = Field(default=None, max_length=100)
    ack_comment: str | None = None
    escalation_level: int = 0


class NotifyGroup(SQLModel, table=True):
    """One receiver's alerts of one 과 (division): they are told together, in one digest."""

    __tablename__ = "notify_group"
    __table_args__ = (sa.UniqueConstraint("receiver", "group_key"),)
    id: int | None = Field(default=None, primary_key=True)
    receiver: str = Field(max_length=300, description="email address, or webhook:<name>")
    name: str = Field(max_length=100)
    role: str = Field(max_length=20)
    group_key: str = Field(max_length=200, description="the 과, or '-'")
    route: str = Field(default="default", max_length=100)
    channels: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    next_flush_at: datetime | None = _dt(index=True)
    last_flush_at: datetime | None = _dt()
    flushes: int = 0


class NotifyMember(SQLModel, table=True):
    """An alert in a group, and what the group's receiver was last told about it (the
    notification log): the same firing alert is told once."""

    __tablename__ = "notify_member"
    group_id: int = Field(primary_key=True)
    fingerprint: str = Field(primary_key=True, max_length=64, index=True)
    program_id: str = Field(max_length=200, index=True)
    reason: str = Field(default="route", max_length=20, description="route or escalation")
    added_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    sent_status: str | None = Field(default=None, max_length=10)
    sent_severity: str | None = Field(default=None, max_length=10)
    sent_at: datetime | None = _dt()


class NotifySilence(SQLModel, table=True):
    __tablename__ = "notify_silence"
    id: str = Field(primary_key=True, max_length=36)
    matchers: list[dict[str, str]] = Field(default_factory=list, sa_type=sa.JSON)
    starts_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    ends_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)
    created_by: str = Field(max_length=100)
    comment: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class NotifyDelivery(SQLModel, table=True):
    """One message to one receiver on one channel. Written (pending) in the same transaction as the
    notification log it reflects, before anything is sent; the sender marks the outcome.
    `alert_event_id` is the id of the notification (one flush of one group; the name predates
    digests): with the unique key, the same flush can never produce a second message."""

    __tablename__ = "notify_delivery"
    __table_args__ = (sa.UniqueConstraint("alert_event_id", "address", "channel"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_event_id: str = Field(max_length=36)
    fingerprint: str = Field(max_length=64, index=True)
    status: str = Field(max_length=10)
    severity: str = Field(max_length=10)
    channel: str = Field(default="email", max_length=20)
    role: str = Field(max_length=20)
    name: str = Field(max_length=100)
    address: str = Field(max_length=300, index=True)
    subject: str
    body_text: str
    body_html: str
    outcome: str = Field(default="pending", max_length=10, index=True)
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    group_id: int | None = Field(default=None, index=True)
    kind: str = Field(default="alert", max_length=20, description="alert, reminder")
    fingerprints: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, description="webhook body")
    alert_at: datetime | None = _dt()  # when the oldest alert in it reached notify (latency)
    next_attempt_at: datetime | None = _dt(index=True)
    retry_until: datetime | None = _dt()  # transient failures are retried until then (redrive sets it anew)
    read_at: datetime | None = _dt()  # inbox channel
    # A dispatcher round's claim (replica and round) and its lease: replicas send different
    # deliveries, and the claims of one that died expire.
    claimed_by: str | None = Field(default=None, max_length=120, index=True)
    claimed_until: datetime | None = _dt()


class NotifyOutbox(OutboxBase, table=True):
    """Failed deliveries on their way to the dead-letter topic."""

    __tablename__ = "notify_outbox"
    __table_args__ = (pending_index("notify_outbox"),)


class NotifyInbox(InboxBase, table=True):
    __tablename__ = "notify_inbox"
