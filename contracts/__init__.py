"""execwatch contracts: the only vocabulary the services share.

`parse_event` turns JSON (bytes, str or dict) into the typed envelope for its event_type, or
raises `ContractError` listing every problem with its field path.
"""

from __future__ import annotations

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
from contracts.envelope import Envelope, deterministic_id, utcnow
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
        errors.append(FieldError(field=field, message=e["msg"], input=_short(shown)))
    return ContractError(errors)


def _short(value: Any) -> Any:
    """The offending input, JSON-safe and short: it goes into HTTP answers and Kafka headers."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def parse_event(data: bytes | str | dict[str, Any]) -> AnyEvent:
    try:
        if isinstance(data, bytes | str):
            return _ADAPTER.validate_json(data)
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise contract_error(exc) from exc


def dump_event(event: Envelope[Any]) -> bytes:
    return event.model_dump_json().encode("utf-8")


__all__ = [
    "EVENT_MODELS",
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
    "deterministic_id",
    "dump_event",
    "parse_event",
    "utcnow",
]
