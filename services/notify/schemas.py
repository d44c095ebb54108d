"""The notify API's bodies, requests and answers, as `/openapi.json` documents them.

Times are ISO 8601 strings with their offset ("2025-02-15T09:00:00+00:00"), as this API has
always written them. Field order is the JSON's key order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from services.common.api_types import IsoDateTime
from services.common.auth import Role
from services.common.params import NO_NUL
from services.notify import domain

# ------------------------------------------------------------------ requests


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL,
                      description="label: 실, 과, program, rule, severity, …")
    value: str = Field(max_length=domain.MAX_REGEX_LENGTH, pattern=NO_NUL,
                       description="for =~ and !~ an RE2 regular expression (no backreferences), matched whole")
    op: domain.MatchOp = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherIn:
        if self.op in ("=~", "!~"):
            try:
                domain.user_regex(self.value)
            except domain.RegexError as exc:
                raise ValueError(f"matcher {self.name}: {exc}") from exc
        return self


class SilenceIn(BaseModel):
    matchers: list[MatcherIn] = Field(min_length=1)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    created_by: str | None = Field(default=None, max_length=100, pattern=NO_NUL,
                                   description="ignored: the signed-in caller")
    comment: str = Field(min_length=1, pattern=NO_NUL)


class AckIn(BaseModel):
    by: str | None = Field(default=None, max_length=100, pattern=NO_NUL,
                           description="ignored: the signed-in caller is recorded")
    comment: str | None = Field(default=None, pattern=NO_NUL)


#: The acknowledge page's form (`POST /v1/ack?token=…`), read by the route itself.
ACK_FORM = {"requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "properties": {"comment": {"type": "string", "maxLength": 2000,
                                                 "description": "kept with the acknowledgement"}}}}}}}

# ------------------------------------------------------------------ answers


class Delivery(BaseModel):
    """One message to one receiver on one channel; link tokens in its body are redacted."""

    id: int
    alert_event_id: str = Field(description="the notification (one flush of one group)")
    fingerprint: str
    status: str
    severity: str
    channel: str
    role: str
    name: str
    address: str
    subject: str
    body_text: str
    outcome: str = Field(description="pending, sent, failed")
    attempts: int
    error: str | None
    created_at: IsoDateTime | None
    sent_at: IsoDateTime | None
    group_id: int | None
    kind: str = Field(description="alert, reminder")
    fingerprints: list[str]
    alert_at: IsoDateTime | None
    next_attempt_at: IsoDateTime | None
    retry_until: datetime | None
    read_at: IsoDateTime | None
    claimed_by: str | None
    claimed_until: datetime | None


class Deliveries(BaseModel):
    items: list[Delivery]


class InboxMessage(Delivery):
    body_html: str


class Inbox(BaseModel):
    recipient: str
    unread: int
    items: list[InboxMessage]


class Told(BaseModel):
    receiver: str = Field(description="email address, or webhook:<name>")
    name: str
    role: str
    reason: str = Field(description="route or escalation")
    told: str | None = Field(description="the status last sent to this receiver")
    told_at: IsoDateTime | None


class AlertOut(BaseModel):
    fingerprint: str
    rule: str
    status: str
    severity: str
    state: str = Field(description="active, acknowledged, suppressed, resolved")
    silenced_by: str | None
    inhibited_by: str | None
    program_id: str
    summary: str
    labels: dict[str, str]
    received_at: IsoDateTime | None
    notified_at: IsoDateTime | None
    resolved_at: IsoDateTime | None
    acked_at: IsoDateTime | None
    acked_by: str | None
    escalation_level: int
    awaiting_recipients: bool
    unroutable: bool = Field(description="firing with nobody to tell")
    recipients: list[Told]
    figures: dict[str, Any]


class Alerts(BaseModel):
    items: list[AlertOut]


class Acked(BaseModel):
    fingerprint: str
    status: str
    acked_at: IsoDateTime | None
    acked_by: str | None


class SilenceOut(BaseModel):
    id: str
    matchers: list[dict[str, str]]
    starts_at: IsoDateTime
    ends_at: IsoDateTime
    created_by: str
    comment: str
    created_at: IsoDateTime | None
    state: domain.SilenceState


class Silences(BaseModel):
    items: list[SilenceOut]


# ------------------------------------------------------------------ access (sign-in, audit)


class LoginLinkIn(BaseModel):
    email: str = Field(min_length=3, max_length=300)


class LinkSent(BaseModel):
    status: str = Field(description="the same whether or not the address is known")


class IdentityOut(BaseModel):
    name: str
    role: Role
    divisions: list[str]
    office: str | None
    email: str | None
    title: str | None = Field(description="staff: 담당, 팀장 or 과장")
    key_id: str | None
    via: str = Field(description="key, session or config")


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    identity: IdentityOut


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    target: str
    client: str | None
    service: str
    detail: dict[str, Any]

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SQLite hands back the stored UTC instant without its zone: say it is UTC, as PostgreSQL does.
        return value if value.tzinfo else value.replace(tzinfo=UTC)


#: The sign-in token, as the link's page posts it (a form) or a client sends it (JSON).
TOKEN_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "object", "required": ["token"], "properties": {
        "token": {"type": "string", "maxLength": 8000, "description": "the sign-in link's token"}}}}
    for media in ("application/x-www-form-urlencoded", "application/json")}}}
