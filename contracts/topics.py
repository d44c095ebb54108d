"""Topic names, partitions and keys: the one table every service and the topic tool read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    event_types: tuple[str, ...]
    description: str


INBOUND: Final = TopicSpec(
    "execwatch.inbound",
    6,
    (),
    "department systems publish envelopes here; ingest validates and authenticates them",
)
PROGRAMS: Final = TopicSpec(
    "execwatch.programs",
    6,
    ("program.registered", "milestone.set", "target.set"),
    "canonical program register, milestone and target events",
)
BUDGET: Final = TopicSpec(
    "execwatch.budget",
    6,
    ("budget.line_set", "budget.amended", "budget.execution_snapshot", "budget.plan_set",
     "budget.division_snapshot"),
    "canonical budget lines, amendments, execution snapshots, plans and division snapshots",
)
ALERTS: Final = TopicSpec("execwatch.alerts", 6, ("alert",), "alerts from budget and programs, for notify")
DEADLETTER: Final = TopicSpec(
    "execwatch.deadletter",
    1,
    (),
    "messages no consumer could use; headers x-error, x-error-stage, x-original-topic",
)

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (INBOUND, PROGRAMS, BUDGET, ALERTS, DEADLETTER)


_TOPIC_OF: Final[dict[str, TopicSpec]] = {t: spec for spec in reversed(ALL_TOPICS) for t in spec.event_types}


def topic_for(event_type: str) -> TopicSpec:
    """The topic carrying this event type (the first in `ALL_TOPICS`, were two to carry it)."""
    spec = _TOPIC_OF.get(event_type)
    if spec is None:
        raise KeyError(f"no topic carries event type {event_type!r}")
    return spec


def message_key(program_id: str) -> bytes:
    """Messages are keyed by program so one program's events stay in order on one partition."""
    return program_id.encode("utf-8")

