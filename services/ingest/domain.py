"""Ingest rules, pure: who may publish, and what a batch of submitted events must satisfy."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import AnyEvent, ContractError, FieldError, parse_event
from contracts.topics import topic_for


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


def authenticate(tokens: Mapping[str, str], token: str | None) -> str | None:
    """The source whose token this is, compared in constant time; None when unknown."""
    if not token:
        return None
    found = None
    for source, expected in tokens.items():
        if hmac.compare_digest(expected.encode(), token.encode()):
            found = source
    return found


def validate_batch(items: list[Any], source: str) -> tuple[list[AnyEvent], list[Rejection]]:
    """Every item must satisfy its contract, be publishable (not an alert) and come from `source`."""
    events: list[AnyEvent] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            event = parse_event(item) if isinstance(item, dict | str | bytes) else _not_an_object()
        except ContractError as exc:
            rejections += [Rejection(index, e.field, e.message) for e in exc.errors]
            continue
        problem = publish_problem(event, source)
        if problem:
            rejections.append(Rejection(index, problem.field, problem.message))
            continue
        events.append(event)
    return events, rejections


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


def _not_an_object() -> AnyEvent:
    raise ContractError([FieldError(field="(event)", message="each event must be a JSON object")])
