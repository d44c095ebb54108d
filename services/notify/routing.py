"""The routing file: which alerts reach whom, how they are grouped, when they wait.

YAML, validated when the service starts; an error names the file and the key. Settings give the
base timings and quiet hours; the file's `defaults` override them, and the first matching route
overrides those. Labels to match on: 실, 과, program, rule, severity (and any label the alert
carries). A match value is a string, or a list meaning "any of these".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.settings import Settings
from services.notify import domain

DEFAULT_FILE = Path(__file__).parent / "routing.yaml"

Role = Literal["담당", "팀장", "과장"]
Severity = Literal["info", "warning", "critical"]
StaffChannel = Literal["email", "inbox"]


class RoutingError(ValueError):
    """The routing file cannot be used; the message names the file and the key."""


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: Any) -> timedelta:
    """`30s`, `5m`, `24h`, `1d`, `1h30m`, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    m = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 24h)")
    d, h, mi, s = m.groups()
    return timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(mi or 0), seconds=float(s or 0))


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads 21:00 as sexagesimal minutes
        return time(value // 60 % 24, value % 60)
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"not a time of day: {value!r} (use HH:MM)") from exc


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
TimeOfDay = Annotated[time, BeforeValidator(_parse_time)]
MatchValue = str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHoursSpec(_Strict):
    enabled: bool | None = None
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    weekends: bool | None = None
    critical_bypass: bool | None = None
    timezone: str | None = None
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class EscalationSpec(_Strict):
    after: Duration | None = Field(default=None, description="0 disables")
    chain: list[Role] | None = None


class PolicySpec(_Strict):
    roles: dict[Severity, list[Role]] | None = None
    channels: list[StaffChannel] | None = None
    receivers: list[str] | None = Field(default=None, description="names from `receivers`, told as well")
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool | None = None
    quiet_hours: QuietHoursSpec | None = None
    escalation: EscalationSpec | None = None


class RouteSpec(PolicySpec):
    name: str | None = None
    match: dict[str, MatchValue] = Field(default_factory=dict)


class WebhookSpec(_Strict):
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    secret: str | None = None
    secret_env: str | None = Field(default=None, description="environment variable holding the HMAC secret")


class ReceiverSpec(_Strict):
    webhook: WebhookSpec | None = None
    email: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> ReceiverSpec:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("a receiver has exactly one of `webhook` or `email`")
        return self


class RecipientSpec(_Strict):
    """A configured person replacing the register's contact of that role where `match` holds."""

    match: dict[str, MatchValue] = Field(default_factory=dict)
    role: Role
    name: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None


class DefaultContactSpec(_Strict):
    """Who hears what no program contact can be told: a division's (or office's) 서무 or 팀장."""

    name: str = Field(min_length=1, max_length=100)
    role: Literal["서무", "팀장", "과장", "담당"] = "서무"
    email: str = Field(min_length=3, max_length=254)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        if not domain.valid_address(value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value


class FallbackSpec(_Strict):
    divisions: dict[str, DefaultContactSpec] = Field(default_factory=dict, description="per 과")
    offices: dict[str, DefaultContactSpec] = Field(default_factory=dict, description="per 실")


class InhibitSpec(_Strict):
    name: str | None = None
    source: dict[str, MatchValue]
    target: dict[str, MatchValue] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=lambda: ["program"])
    severity: domain.SeverityRelation = "lower"


class RoutingSpec(_Strict):
    version: Literal[1] = 1
    defaults: PolicySpec = Field(default_factory=PolicySpec)
    routes: list[RouteSpec] = Field(default_factory=list)
    receivers: dict[str, ReceiverSpec] = Field(default_factory=dict)
    recipients: list[RecipientSpec] = Field(default_factory=list)
    fallback: FallbackSpec = Field(default_factory=FallbackSpec)
    inhibit: list[InhibitSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _receivers_known(self) -> RoutingSpec:
        for where, policy in [("defaults", self.defaults), *((f"routes.{i}", r) for i, r in enumerate(self.routes))]:
            for name in policy.receivers or []:
                if name not in self.receivers:
                    raise ValueError(f"{where}.receivers: no receiver named {name!r} in `receivers`")
        return self


# --- resolved form -------------------------------------------------------------------------------


def matchers(spec: Mapping[str, MatchValue]) -> tuple[domain.Matcher, ...]:
    out = []
    for name, value in spec.items():
        if isinstance(value, list):
            out.append(domain.Matcher(name, "|".join(re.escape(v) for v in value), "=~"))
        else:
            out.append(domain.Matcher(name, value))
    return tuple(out)


@dataclass(frozen=True)
class Receiver:
    name: str
    channel: Literal["webhook", "email"]
    address: str  # the URL of a webhook, the address of an email receiver
    format: str = "json"
    secret: str | None = None

    @property
    def key(self) -> str:
        """How the receiver is addressed in groups and deliveries."""
        return f"{self.channel}:{self.name}" if self.channel == "webhook" else self.address


@dataclass(frozen=True)
class Policy:
    """Everything decided for one alert's labels."""

    route: str
    roles: Mapping[str, tuple[str, ...]]
    channels: tuple[str, ...]
    receivers: tuple[str, ...]
    timing: domain.Timing
    send_resolved: bool
    quiet: domain.QuietHours
    escalation_after: timedelta
    escalation_chain: tuple[str, ...]

    def roles_for(self, severity: str) -> tuple[str, ...]:
        return domain.roles_for(severity, self.roles)


class Routing:
    def __init__(self, spec: RoutingSpec, settings: Settings, source: str = "<built-in>") -> None:
        self.spec, self.source = spec, source
        base = domain.QuietHours(
            enabled=settings.notify_quiet_hours, start=_parse_time(settings.notify_quiet_start),
            end=_parse_time(settings.notify_quiet_end), weekends=settings.notify_quiet_weekends,
            critical_bypass=settings.notify_quiet_critical_bypass, timezone=settings.notify_timezone)
        self.default = self._merge("default", Policy(
            route="default", roles=dict(domain.ROLES_BY_SEVERITY), channels=("email", "inbox"), receivers=(),
            timing=domain.Timing(timedelta(seconds=settings.notify_group_wait_s),
                                 timedelta(seconds=settings.notify_group_interval_s),
                                 timedelta(seconds=settings.notify_repeat_interval_s)),
            send_resolved=True, quiet=base, escalation_after=timedelta(seconds=settings.notify_escalation_after_s),
            escalation_chain=domain.ROLE_CHAIN), spec.defaults)
        self.routes: list[tuple[tuple[domain.Matcher, ...], Policy]] = [
            (matchers(r.match), self._merge(r.name or f"route-{i}", self.default, r))
            for i, r in enumerate(spec.routes)]
        self.by_name = {p.route: p for _, p in self.routes} | {"default": self.default}
        self.receivers = {name: self._receiver(name, r) for name, r in spec.receivers.items()}
        self.inhibit_rules = tuple(
            domain.InhibitRule(matchers(i.source), matchers(i.target), tuple(i.equal), i.severity, i.name or "")
            for i in spec.inhibit)
        self.recipients = [(matchers(r.match), (r.role, r.name, r.phone, r.email)) for r in spec.recipients]
        fallback = spec.fallback
        self.division_defaults = {k: domain.Recipient(c.role, c.name, c.email) for k, c in fallback.divisions.items()}
        self.office_defaults = {k: domain.Recipient(c.role, c.name, c.email) for k, c in fallback.offices.items()}

    @staticmethod
    def _merge(name: str, base: Policy, spec: PolicySpec) -> Policy:
        q, e = spec.quiet_hours, spec.escalation
        quiet = base.quiet
        if q is not None:
            quiet = domain.QuietHours(
                enabled=base.quiet.enabled if q.enabled is None else q.enabled,
                start=q.start or base.quiet.start, end=q.end or base.quiet.end,
                weekends=base.quiet.weekends if q.weekends is None else q.weekends,
                critical_bypass=base.quiet.critical_bypass if q.critical_bypass is None else q.critical_bypass,
                timezone=q.timezone or base.quiet.timezone,
                holidays=base.quiet.holidays | frozenset(q.holidays))
        t = base.timing
        return Policy(
            route=name,
            roles={**base.roles, **{k: tuple(v) for k, v in (spec.roles or {}).items()}},
            channels=tuple(spec.channels) if spec.channels is not None else base.channels,
            receivers=tuple(spec.receivers) if spec.receivers is not None else base.receivers,
            timing=domain.Timing(spec.group_wait if spec.group_wait is not None else t.group_wait,
                                 spec.group_interval if spec.group_interval is not None else t.group_interval,
                                 spec.repeat_interval if spec.repeat_interval is not None else t.repeat_interval),
            send_resolved=base.send_resolved if spec.send_resolved is None else spec.send_resolved,
            quiet=quiet,
            escalation_after=e.after if e is not None and e.after is not None else base.escalation_after,
            escalation_chain=tuple(e.chain) if e is not None and e.chain else base.escalation_chain,
        )

    @staticmethod
    def _receiver(name: str, r: ReceiverSpec) -> Receiver:
        if r.webhook is not None:
            secret = r.webhook.secret or (os.environ.get(r.webhook.secret_env) if r.webhook.secret_env else None)
            return Receiver(name, "webhook", r.webhook.url, r.webhook.format, secret)
        assert r.email is not None
        return Receiver(r.name or name, "email", r.email)

    def policy(self, labels: Mapping[str, str]) -> Policy:
        """The first route whose matchers all hold, else the defaults."""
        for ms, policy in self.routes:
            if domain.all_match(ms, labels):
                return policy
        return self.default

    def policy_named(self, name: str) -> Policy:
        return self.by_name.get(name, self.default)

    def overrides(self, labels: Mapping[str, str]) -> list[domain.Contact]:
        return [c for ms, c in self.recipients if domain.all_match(ms, labels)]


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"routing file {source}: {exc.error_count()} error(s)"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def parse(text: str, settings: Settings, source: str) -> Routing:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RoutingError(f"routing file {source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RoutingError(f"routing file {source}: the top level must be a mapping")
    try:
        spec = RoutingSpec.model_validate(data)
    except ValidationError as exc:
        raise RoutingError(_format_errors(source, exc)) from exc
    return Routing(spec, settings, source)


def load(settings: Settings) -> Routing:
    path = Path(settings.notify_routing_file) if settings.notify_routing_file else DEFAULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"routing file {path}: cannot be read: {exc}") from exc
    return parse(text, settings, str(path))
