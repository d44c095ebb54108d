"""Notify tables: contacts from the program register, alert state, and every delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.common.db import InboxBase, utcnow


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
    awaiting_recipients: bool = Field(default=False, description="news, but the program's contacts are unknown yet")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class NotifyDelivery(SQLModel, table=True):
    """One message to one person on one channel. Written before anything is sent; the unique key
    means a redelivered alert can never produce a second message."""

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


class NotifyInbox(InboxBase, table=True):
    __tablename__ = "notify_inbox"
