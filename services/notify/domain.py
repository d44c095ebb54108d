"""Notify rules, pure: who hears about an alert, when a group of alerts is told, and what keeps
quiet (silences, inhibition, quiet hours). Time is always a parameter (`now`), never read here,
so the scheduler and the tests drive the clock.

The model follows Alertmanager: an alert is identified by its fingerprint (rule + labels); each
receiver has one group per 과 (division) that collects its alerts; a group is flushed `group_wait`
after it first has news, then at most every `group_interval`, and reminds of still-firing alerts
every `repeat_interval`. A notification log per (group, alert) says what the receiver was last told,
so the same firing alert is one notification however many events repeat it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import re2  # type: ignore[import-untyped]

SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "critical": 3}
ROLE_CHAIN: tuple[str, ...] = ("담당", "팀장", "과장")

#: Default routing: 담당 hears everything, 팀장 from warning, 과장 for critical.
ROLES_BY_SEVERITY: dict[str, tuple[str, ...]] = {
    "info": ("담당",),
    "warning": ("담당", "팀장"),
    "critical": ("담당", "팀장", "과장"),
}


# --- recipients ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    role: str
    name: str
    address: str


@dataclass(frozen=True)
class KnownAlert:
    status: str
    severity: str


#: Rules whose every new firing says something new: a schedule moved again is another slip,
#: even at the same severity, so staff hear of each move (with its new window).
RESTATED_RULES = frozenset({"schedule_moved"})


def is_restated(rule: str, known_status: str | None, status: str, old_figures: Mapping[str, object] | None,
                new_figures: Mapping[str, object]) -> bool:
    return (rule in RESTATED_RULES and known_status == "firing" and status == "firing"
            and old_figures is not None and dict(old_figures) != dict(new_figures))


def is_news(known: KnownAlert | None, status: str, severity: str, restated: bool = False) -> bool:
    """Whether an alert event changes anything: a new alert, a change of severity while firing,
    a resolve of a firing alert, or a restated one (see RESTATED_RULES). A repeated firing event
    is not news."""
    if known is None:
        return status == "firing"
    if status == "resolved":
        return known.status == "firing"
    return restated or known.status != "firing" or known.severity != severity


def roles_for(severity: str, table: Mapping[str, Sequence[str]] = ROLES_BY_SEVERITY) -> tuple[str, ...]:
    return tuple(table.get(severity, table.get("critical", ROLE_CHAIN)))


def escalated_roles(base: Sequence[str], chain: Sequence[str], level: int) -> tuple[str, ...]:
    """Level 0 is the routed roles; each level adds the next role up the chain above the highest
    routed one (담당 → 팀장 → 과장)."""
    top = max((chain.index(r) for r in base if r in chain), default=-1)
    return tuple(base) + tuple(r for r in chain[top + 1: top + 1 + max(0, level)] if r not in base)


def can_escalate(base: Sequence[str], chain: Sequence[str], level: int) -> bool:
    return len(escalated_roles(base, chain, level + 1)) > len(escalated_roles(base, chain, level))


def escalation_due_at(notified_at: datetime, level: int, after: timedelta) -> datetime:
    """Each level waits `after` more, counted from the first notification of the firing."""
    return notified_at + after * (level + 1)


def address_for(template: str, name: str, phone: str | None, role: str, email: str | None) -> str | None:
    """The contact's email, else one made from the configured template; None when it needs a
    phone number the report did not print."""
    if email:
        return email
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    if "{phone_digits}" in template and not digits:
        return None
    return template.format(name=name, phone_digits=digits, role=role)


Contact = tuple[str, str, str | None, str | None]  # (role, name, phone, email)


def choose_recipients(contacts: Sequence[Contact], roles: Sequence[str], template: str) -> list[Recipient]:
    """One message per address; a person holding two roles is addressed by the higher one."""
    out: dict[str, Recipient] = {}
    rank = {r: i for i, r in enumerate(ROLE_CHAIN)}
    for role, name, phone, email in sorted(contacts, key=lambda c: -rank.get(c[0], -1)):
        if role not in roles:
            continue
        address = address_for(template, name, phone, role, email)
        if address and address not in out:
            out[address] = Recipient(role, name, address)
    return sorted(out.values(), key=lambda r: (rank.get(r.role, 99), r.address))


FallbackLevel = Literal["contacts", "division", "office", "none"]


@dataclass(frozen=True)
class Routed:
    """Who a firing alert goes to, and how they were found: the program's contacts (담당 …), else
    the division's default contact, else the office's; `none` when nobody is known at all."""

    level: FallbackLevel
    recipients: tuple[Recipient, ...]


def route_people(contacts: Sequence[Contact], roles: Sequence[str], template: str, division: str | None,
                 office: str | None, division_defaults: Mapping[str, Recipient],
                 office_defaults: Mapping[str, Recipient]) -> Routed:
    """The program's contacts of the routed roles; when none of them can be addressed, the
    division's default contact (a 서무 or 팀장), then the office's. Never an empty answer while a
    default exists: an alert nobody hears is worse than one a 서무 forwards."""
    people = choose_recipients(contacts, roles, template)
    if people:
        return Routed("contacts", tuple(people))
    if division and division in division_defaults:
        return Routed("division", (division_defaults[division],))
    if office and office in office_defaults:
        return Routed("office", (office_defaults[office],))
    return Routed("none", ())


def apply_overrides(contacts: Sequence[Contact], overrides: Sequence[Contact]) -> list[Contact]:
    """Configured recipients replace the register's contacts of the same role."""
    replaced = {o[0] for o in overrides}
    return [c for c in contacts if c[0] not in replaced] + list(overrides)


# --- labels and matchers -------------------------------------------------------------------------

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    op: MatchOp = "="

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        try:
            hit = user_regex(self.value).fullmatch(actual) is not None
        except RegexError:
            return False  # a stored expression RE2 refuses (older silences) holds for nothing
        return hit if self.op == "=~" else not hit


#: Regular expressions come from users (silences) and the routing file: bounded in length and run
#: with RE2 semantics (linear time, no backreferences), so `(.+)+X` cannot freeze the service.
MAX_REGEX_LENGTH = 512
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20


class RegexError(ValueError):
    pass


@lru_cache(maxsize=1024)
def user_regex(pattern: str) -> Any:
    """A compiled RE2 pattern; RegexError when it is too long or not valid RE2."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise RegexError(f"regular expression longer than {MAX_REGEX_LENGTH} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(f"invalid regular expression: {detail}") from exc


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def notify_labels(rule: str, severity: str, program_id: str, office: str | None, division: str | None,
                  extra: Mapping[str, str]) -> dict[str, str]:
    """The labels routes, silences and inhibit rules match on: 실, 과, program, rule, severity,
    plus whatever labels the source service attached."""
    labels = dict(extra)
    labels.update({"rule": rule, "severity": severity, "program": program_id})
    if office:
        labels["실"] = office
    if division:
        labels["과"] = division
    return labels


# --- silences ------------------------------------------------------------------------------------

SilenceState = Literal["pending", "active", "expired"]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime


def silence_state(starts_at: datetime, ends_at: datetime, now: datetime) -> SilenceState:
    if now >= ends_at:
        return "expired"
    return "active" if now >= starts_at else "pending"


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> Silence | None:
    for s in silences:
        if silence_state(s.starts_at, s.ends_at, now) == "active" and all_match(s.matchers, labels):
            return s
    return None


# --- inhibition ----------------------------------------------------------------------------------

SeverityRelation = Literal["lower", "not_higher", "any"]


@dataclass(frozen=True)
class InhibitRule:
    """While a source alert fires, target alerts that share the `equal` labels stay quiet."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ("program",)
    severity: SeverityRelation = "lower"
    name: str = ""


@dataclass(frozen=True)
class AlertView:
    fingerprint: str
    status: str
    severity: str
    labels: Mapping[str, str] = field(default_factory=dict)


def _severity_ok(relation: SeverityRelation, source: str, target: str) -> bool:
    s, t = SEVERITY_RANK.get(source, 0), SEVERITY_RANK.get(target, 0)
    return relation == "any" or (t < s if relation == "lower" else t <= s)


def inhibited_by(target: AlertView, active: Iterable[AlertView], rules: Sequence[InhibitRule]) -> AlertView | None:
    """The firing alert that inhibits `target`, if any. An alert never inhibits itself."""
    if not rules:
        return None
    candidates = [a for a in active if a.status == "firing" and a.fingerprint != target.fingerprint]
    for rule in rules:
        if not all_match(rule.target, target.labels):
            continue
        for source in candidates:
            if (all_match(rule.source, source.labels)
                    and all(source.labels.get(k) == target.labels.get(k) for k in rule.equal)
                    and _severity_ok(rule.severity, source.severity, target.severity)):
                return source
    return None


# --- quiet hours ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    enabled: bool = True
    start: time = time(21, 0)
    end: time = time(8, 0)
    weekends: bool = True
    critical_bypass: bool = False
    timezone: str = "Asia/Seoul"
    holidays: frozenset[date] = frozenset()

    def working_day(self, day: date) -> bool:
        return not (self.weekends and day.weekday() >= 5) and day not in self.holidays

    def in_night(self, t: time) -> bool:
        if self.start == self.end:
            return False
        if self.start > self.end:  # crosses midnight, e.g. 21:00–08:00
            return t >= self.start or t < self.end
        return self.start <= t < self.end


def quiet_until(at: datetime, q: QuietHours) -> datetime | None:
    """None when `at` is working time; else the next working morning (quiet end on a working day)."""
    if not q.enabled:
        return None
    tz = ZoneInfo(q.timezone)
    local = at.astimezone(tz)
    if q.working_day(local.date()) and not q.in_night(local.time()):
        return None
    day = local.date()
    for _ in range(400):
        morning = datetime.combine(day, q.end, tzinfo=tz)
        if q.working_day(day) and morning > local:
            return morning
        day += timedelta(days=1)
    return None  # a calendar without working days: do not hold messages forever


# --- grouping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=24)


def next_flush_on_news(next_flush_at: datetime | None, last_flush_at: datetime | None, now: datetime,
                       timing: Timing) -> datetime:
    """A group with news is flushed group_wait after its first news, then no sooner than
    group_interval after its last message."""
    due = now + timing.group_wait if last_flush_at is None else max(now, last_flush_at + timing.group_interval)
    return min(next_flush_at, due) if next_flush_at is not None else due


@dataclass(frozen=True)
class Member:
    """One alert in one receiver's group, with what the receiver was last told about it."""

    fingerprint: str
    status: str
    severity: str
    muted_until: datetime | None = None  # silenced (until the silence ends) or inhibited (open-ended)
    muted: bool = False
    acked: bool = False
    sent_status: str | None = None
    sent_severity: str | None = None


def member_news(m: Member) -> bool:
    if m.status == "resolved":
        return m.sent_status == "firing"
    return not m.muted and (m.sent_status != "firing" or m.sent_severity != m.severity)


FlushKind = Literal["alert", "reminder"]


@dataclass(frozen=True)
class FlushPlan:
    kind: FlushKind | None
    send: tuple[str, ...]  # fingerprints in the message, in order
    drop: tuple[str, ...]  # members the group can forget (resolved, nothing more to say)
    next_flush_at: datetime | None
    deferred: bool = False  # news held back by quiet hours


def plan_flush(members: Sequence[Member], last_flush_at: datetime | None, now: datetime, timing: Timing,
               quiet: QuietHours) -> FlushPlan:
    """What a due group sends now. News (new, changed or resolved alerts) sends the whole digest:
    every visible firing alert plus the newly resolved ones; without news, still-firing alerts
    nobody acknowledged are repeated after repeat_interval."""
    visible = [m for m in members if m.status == "firing" and not m.muted]
    news = [m for m in members if member_news(m)]
    resolved_news = [m for m in news if m.status == "resolved"]
    never_told = tuple(m.fingerprint for m in members if m.status == "resolved" and m.sent_status != "firing")
    unacked = [m for m in visible if not m.acked]
    reminder_at = last_flush_at + timing.repeat_interval if last_flush_at and unacked else None
    mute_ends = [m.muted_until for m in members if m.status == "firing" and m.muted and m.muted_until]
    wake = min([t for t in [reminder_at, *mute_ends] if t is not None], default=None)

    kind: FlushKind | None = None
    send: list[Member] = []
    if news:
        kind, send = "alert", _ordered(visible) + resolved_news
    elif reminder_at is not None and now >= reminder_at:
        kind, send = "reminder", _ordered(unacked)
    if kind is None:
        return FlushPlan(None, (), never_told, wake)

    held = quiet_until(now, quiet)
    bypass = quiet.critical_bypass and any(m.severity == "critical" and m.status == "firing" for m in news)
    if held is not None and not bypass:
        return FlushPlan(None, (), never_told, held, deferred=True)

    after = now + timing.repeat_interval if unacked else None
    nxt = min([t for t in [after, *mute_ends] if t is not None], default=None)
    return FlushPlan(kind, tuple(m.fingerprint for m in send),
                     never_told + tuple(m.fingerprint for m in resolved_news), nxt)


def _ordered(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: -SEVERITY_RANK.get(m.severity, 0))


# --- mail headers --------------------------------------------------------------------------------


def header_text(value: str, limit: int = 200) -> str:
    """A display name fit for a header: line breaks and other control characters (a register can
    hold anything) become spaces, so a name can never end a header or start another."""
    out: list[str] = []
    for ch in value:
        if unicodedata.category(ch).startswith("C") or ch in "\u2028\u2029":
            if out and out[-1] != " ":
                out.append(" ")  # a run of control characters becomes one space
        else:
            out.append(ch)
    return "".join(out).strip()[:limit]


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDR = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")


def valid_address(address: str) -> bool:
    """A plain addr-spec: no spaces, control characters or header syntax; an ASCII domain."""
    return len(address) <= 254 and address.isprintable() and _ADDR.match(address) is not None


# --- retries -------------------------------------------------------------------------------------


RetryOutcome = Literal["retry", "failed", "dropped"]


def after_failure(*, transient: bool, attempts: int, now: datetime, retry_until: datetime | None,
                  max_attempts: int | None, still_news: bool) -> RetryOutcome:
    """What a failed try leads to. A permanent failure (the message or address is wrong, the
    server refuses it for good) fails at once; a transient one (server down, 4xx, timeout) is
    retried while the window lasts; a message about alerts that no longer fire is dropped rather
    than retried (the resolve notice says it)."""
    if not transient:
        return "failed"
    if not still_news:
        return "dropped"
    if (retry_until is not None and now >= retry_until) or (max_attempts is not None and attempts >= max_attempts):
        return "failed"
    return "retry"


def backoff(attempt: int, base: float, cap: float, rand: float) -> timedelta:
    """Exponential backoff with jitter: the nth failure waits base·2^(n−1) capped, scaled into
    [½, 1] by `rand` ∈ [0, 1) so a burst of failures does not retry in lockstep."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=delay * (0.5 + rand / 2))
