"""execwatch contracts: the only vocabulary the services share.

`parse_event` turns JSON (bytes, str or dict) into the typed envelope for its event_type, or
raises `ContractError` listing every problem with its field path. Limits (size, lengths, money,
dates, strict types) are in `contracts.limits`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from contracts.alerts import Alert, AlertEvent
from contracts.budget import (
    BudgetAmended,
    BudgetAmendedEvent,
    BudgetLineSet,
    BudgetLineSetEvent,
    DivisionSnapshot,
    DivisionSnapshotEvent,
    ExecutionPlanSet,
    ExecutionPlanSetEvent,
    ExecutionSnapshot,
    ExecutionSnapshotEvent,
)
from contracts.envelope import Envelope, canonical_json, content_hash, deterministic_id, utcnow
from contracts.limits import MAX_EVENT_BYTES, PATTERN_MESSAGES
from contracts.programs import (
    MilestoneSet,
    MilestoneSetEvent,
    ProgramRegistered,
    ProgramRegisteredEvent,
    TargetSet,
    TargetSetEvent,
)

AnyEvent = (
    ProgramRegisteredEvent
    | MilestoneSetEvent
    | TargetSetEvent
    | BudgetLineSetEvent
    | BudgetAmendedEvent
    | ExecutionSnapshotEvent
    | ExecutionPlanSetEvent
    | DivisionSnapshotEvent
    | AlertEvent
)

EVENT_MODELS: dict[str, type[Envelope[Any]]] = {
    "program.registered": ProgramRegisteredEvent,
    "milestone.set": MilestoneSetEvent,
    "target.set": TargetSetEvent,
    "budget.line_set": BudgetLineSetEvent,
    "budget.amended": BudgetAmendedEvent,
    "budget.execution_snapshot": ExecutionSnapshotEvent,
    "budget.plan_set": ExecutionPlanSetEvent,
    "budget.division_snapshot": DivisionSnapshotEvent,
    "alert": AlertEvent,
}

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Annotated[AnyEvent, Field(discriminator="event_type")])
_ARRAY_ADAPTER: TypeAdapter[list[AnyEvent]] = TypeAdapter(list[Annotated[AnyEvent, Field(discriminator="event_type")]])
# The adapters' core validators, called directly: TypeAdapter.validate_python's own Python layer
# cost about a quarter of validating a small event (≈ 1.8 of 7.5 µs, benchmarks/ingest_accept.py).
_VALIDATE_PYTHON = _ADAPTER.validator.validate_python
_VALIDATE_JSON = _ADAPTER.validator.validate_json
_ARRAY_START = re.compile(rb"[ \t\r\n]*\[")  # JSON's whitespace, then an array


class FieldError(BaseModel):
    field: str
    message: str
    input: Any = None


class ContractError(ValueError):
    """Input that does not satisfy a contract; `errors` says which field and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def _loc(loc: tuple[int | str, ...]) -> str:
    # The discriminated union puts the event type in the path; drop it so the path names fields.
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in EVENT_MODELS)]
    return ".".join(parts) or "(event)"


def contract_error(exc: ValidationError) -> ContractError:
    errors = []
    for e in exc.errors(include_url=False):
        tag_error = e["type"] in ("union_tag_invalid", "union_tag_not_found")
        field = "event_type" if tag_error else _loc(tuple(e["loc"]))
        raw = e.get("input")
        shown = raw.get("event_type") if tag_error and isinstance(raw, dict) else raw
        message = e["msg"]
        if e["type"] == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get(str((e.get("ctx") or {}).get("pattern")), message)
        errors.append(FieldError(field=field, message=message, input=_short(shown)))
    return ContractError(errors)


def _too_large(size: int) -> ContractError:
    return ContractError([FieldError(
        field="(event)", message=f"event is {size:,} bytes; at most {MAX_EVENT_BYTES:,} bytes are accepted")])


def _short(value: Any) -> Any:
    """The offending input, JSON-safe and short: it goes into HTTP answers and Kafka headers."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def parse_event(data: bytes | str | dict[str, Any]) -> AnyEvent:
    """Raw JSON larger than `MAX_EVENT_BYTES` is refused before it is parsed."""
    if isinstance(data, str) and len(data) > MAX_EVENT_BYTES // 4:  # 1–4 UTF-8 bytes a character
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_EVENT_BYTES:
            raise _too_large(size)
    if isinstance(data, bytes) and len(data) > MAX_EVENT_BYTES:
        raise _too_large(len(data))
    try:
        event: AnyEvent = _VALIDATE_JSON(data) if isinstance(data, bytes | str) else _VALIDATE_PYTHON(data)
    except ValidationError as exc:
        raise contract_error(exc) from exc
    return event


def parse_event_array(data: bytes) -> list[AnyEvent] | None:
    """A JSON array of events validated in one pass (pydantic reads the JSON itself: no Python
    dicts in between, under half the cost of `json.loads` and `parse_event` per item), or None if
    it is not an array of valid events. None says nothing about which event is wrong, or why:
    callers then parse item by item with `parse_event`, whose errors name the field. Sizes are not
    checked here: a caller checks each event's encoded size (`encode_event`)."""
    if _ARRAY_START.match(data) is None:
        return None
    try:
        return _ARRAY_ADAPTER.validate_json(data)
    except ValidationError:
        return None


def dump_event(event: Envelope[Any]) -> bytes:
    """`event.model_dump_json().encode("utf-8")`, the same bytes, from the model's serializer: its
    UTF-8 JSON as it writes it, without `model_dump_json`'s Python layer and its decode to a str
    to encode again (a quarter of dumping an event)."""
    data: bytes = event.__pydantic_serializer__.to_json(event)
    return data


def encode_event(event: Envelope[Any]) -> bytes:
    """`dump_event`, refusing an event whose JSON would exceed `MAX_EVENT_BYTES` (what a front door
    stores must be publishable)."""
    data = dump_event(event)
    if len(data) > MAX_EVENT_BYTES:
        raise _too_large(len(data))
    return data


__all__ = [
    "EVENT_MODELS",
    "MAX_EVENT_BYTES",
    "Alert",
    "AlertEvent",
    "AnyEvent",
    "BudgetAmended",
    "BudgetAmendedEvent",
    "BudgetLineSet",
    "BudgetLineSetEvent",
    "ContractError",
    "DivisionSnapshot",
    "DivisionSnapshotEvent",
    "Envelope",
    "ExecutionPlanSet",
    "ExecutionPlanSetEvent",
    "ExecutionSnapshot",
    "ExecutionSnapshotEvent",
    "FieldError",
    "MilestoneSet",
    "MilestoneSetEvent",
    "ProgramRegistered",
    "ProgramRegisteredEvent",
    "TargetSet",
    "TargetSetEvent",
    "canonical_json",
    "content_hash",
    "deterministic_id",
    "dump_event",
    "encode_event",
    "parse_event",
    "parse_event_array",
    "utcnow",
]
