"""Ingest rules, pure: who may publish, and what one submitted event must satisfy to be stored.

The contract (`contracts`) decides what an event is: its size, lengths, amounts, dates, types and
characters. Ingest adds what depends on who sends it: the authenticated system must be the event's
source, department systems do not publish alerts, and contact e-mail addresses are in the city's
domains (`EXECWATCH_MAIL_DOMAINS`), so no publisher can make execwatch mail just anyone. Which 과
a publisher may publish for is access's rule (`services.common.auth.Access.publish_problems`),
applied by `service.accept`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from contracts import (
    AnyEvent,
    ContractError,
    FieldError,
    ProgramRegistered,
    deterministic_id,
    encode_event,
    parse_event,
)
from contracts.envelope import Envelope, canonical_bytes
from contracts.topics import message_key, topic_for

#: Why a submission was set aside: the token (auth), the event itself (contract), what this
#: system may publish (rights: its own source, no alerts, its granted 과), ingest's policy
#: (policy), or its id already names other content from the same system (conflict).
Stage = Literal["auth", "contract", "rights", "policy", "conflict"]


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Problem:
    """One submission that cannot be stored, and why."""

    index: int
    stage: Stage
    errors: tuple[FieldError, ...]

    def rejections(self) -> list[Rejection]:
        return [Rejection(self.index, e.field, e.message) for e in self.errors]


@dataclass(slots=True)
class Checked:
    """One valid submission, ready to store: its event, the bytes to publish and its content hash
    (not frozen: one is made per event, see `service.Submission`)."""

    index: int
    source: str
    event: AnyEvent
    value: bytes
    content_hash: str
    topic: str
    key: str
    source_event_id: str  # the event_id as its source sent it


@dataclass(frozen=True)
class Policy:
    topic_prefix: str = ""
    mail_domains: tuple[str, ...] = ()


def check(index: int, data: Any, source: str | None, policy: Policy) -> Checked | Problem:
    """Whether one submitted event (a JSON object, the raw bytes of a Kafka record, or an event the
    door validated already) from `source` may be stored; the size is checked on the bytes that
    would be published."""
    if source is None:
        return Problem(index, "auth", (FieldError(field="(token)", message="unknown or missing token"),))
    try:
        if isinstance(data, Envelope):  # validated already (the HTTP door's whole-array parse)
            event: AnyEvent = data  # type: ignore[assignment]
        elif isinstance(data, (dict, str, bytes)):  # a tuple: `dict | str | bytes` is built anew each call
            event = parse_event(data)
        else:
            raise ContractError([FieldError(field="(event)", message="each event must be a JSON object")])
        value = encode_event(event)
    except ContractError as exc:
        return Problem(index, "contract", tuple(exc.errors))
    problem = publish_problem(event, source)
    if problem is not None:
        return Problem(index, "rights", (problem,))
    problems = policy_problems(event, policy)
    if problems:
        return Problem(index, "policy", tuple(problems))
    topic = policy.topic_prefix + topic_for(event.event_type).name
    data = orjson.loads(value)
    # The event id as the JSON spells it, `str(event.event_id)`: read with the hash's parse, not
    # formatted again by uuid's Python `__str__` (≈ 3 % of the HTTP door's instructions per event).
    return Checked(index, source, event, value, _hash(data), topic, message_key(event.key).decode(), data["event_id"])


def content_hash_of(value: bytes) -> str:
    """`contracts.content_hash(event)` from the event's JSON as just encoded (`encode_event`): read
    back by orjson instead of dumping the model a second time (a third of the hash's cost). The
    same data either way (pydantic's JSON mode), hence the same hash, with one condition: orjson
    reads an integer beyond 64 bits as a float. No event ingest stores can hold one: every integer
    field is bounded (±10^15), and alerts, whose figures are not, are refused before this
    (`publish_problem`). tests/unit/test_ingest_domain.py checks both, and the hashes are equal."""
    return _hash(orjson.loads(value))


def _hash(data: Any) -> str:
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


def publish_problem(event: AnyEvent, source: str) -> FieldError | None:
    if event.source != source:
        return FieldError(field="source", message=f"authenticated as {source!r}, event says {event.source!r}")
    try:
        topic_for(event.event_type)
    except KeyError:
        return FieldError(field="event_type", message="not accepted from department systems")
    if event.event_type == "alert":
        return FieldError(field="event_type", message="alerts are emitted by execwatch services only")
    return None


def mail_domain_allowed(address: str, domains: Sequence[str]) -> bool:
    """The address's domain is one of `domains` or a subdomain of one."""
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def policy_problems(event: AnyEvent, policy: Policy) -> list[FieldError]:
    """Contacts receive staff mail: only addresses in the configured domains are taken."""
    if not isinstance(event.payload, ProgramRegistered):
        return []
    allowed = ", ".join(policy.mail_domains) or "(none configured)"
    return [
        FieldError(field=f"payload.contacts.{i}.email",
                   message=f"e-mail domain not accepted; allowed: {allowed} (EXECWATCH_MAIL_DOMAINS)",
                   input=contact.email)
        for i, contact in enumerate(event.payload.contacts)
        if contact.email and not mail_domain_allowed(contact.email, policy.mail_domains)
    ]


def scoped_id(source: str, event_id: str) -> str:
    """The id an event is published under when another system already published under its own id:
    derived from (source, id), so a resend gets the same one."""
    return str(deterministic_id("ingest.scoped", source, event_id))


def conflict_message(source: str, event_id: str, stored_hash: str, submitted_hash: str) -> str:
    return (f"event_id {event_id} from {source} was accepted before with other content: "
            f"stored sha256:{stored_hash}, this one sha256:{submitted_hash}; send a new event_id for a new fact")
