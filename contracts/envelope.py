"""The envelope every event travels in, and deterministic ids for re-published facts."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from contracts.limits import ContractDateTime, Id, SourceName

P = TypeVar("P", bound=BaseModel)

#: Namespace for uuid5 ids: the same fact published twice gets the same event_id, so every
#: consumer's duplicate check catches a re-import or a re-emitted alert.
EXECWATCH_NS = uuid.UUID("6f1c2a52-8f0e-4d4e-9a59-3d7c0b7f4a11")


def deterministic_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(EXECWATCH_NS, "\x1f".join(str(p) for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base for payloads: unknown fields are errors, so a typo is never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _event_type_required(schema: dict[str, Any], _: type[BaseModel]) -> None:
    """In the JSON Schema an envelope's `event_type` is required, as it is at the door: events
    are parsed as a union discriminated by it (`parse_event`), so one without it is refused, and
    every event written carries it. The models keep it as a default (each event type has one
    value) so producers in Python need not repeat it."""
    properties = schema.get("properties", {})
    if "event_type" not in properties:
        return
    properties["event_type"].pop("default", None)
    required = {*schema.get("required", ()), "event_type"}
    schema["required"] = [name for name in properties if name in required]


class Envelope(BaseModel, Generic[P]):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_event_type_required)

    event_id: uuid.UUID = Field(description="unique id; the same id twice is the same event")
    event_type: str
    schema_version: Annotated[int, Strict()] = Field(default=1, ge=1, le=1000)
    occurred_at: ContractDateTime = Field(description="when the fact happened at the source (tz-aware)")
    source: SourceName = Field(description="publishing department system")
    correlation_id: uuid.UUID | None = Field(default=None, description="ties events of one request")
    key: Id = Field(description="program id; the Kafka message key")
    payload: P

    @model_validator(mode="after")
    def _key_is_the_program(self) -> Envelope[P]:
        program_id = getattr(self.payload, "program_id", None)
        if program_id is not None and program_id != self.key:
            raise ValueError(f"key {self.key!r} must equal payload.program_id {program_id!r}")
        return self


def canonical_json(event: BaseModel) -> bytes:
    """The event as JSON with sorted keys and no spaces: equal content, equal bytes, whatever
    order or whitespace the sender used (and whether it spelled out defaults)."""
    return canonical_bytes(event.model_dump(mode="json"))


def canonical_bytes(data: Any) -> bytes:
    """`json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` in UTF-8, the
    form every stored content hash was made of, built by orjson (the stdlib encoder was a quarter
    of ingest's accept time). orjson writes the same bytes for the values events hold: strings
    (UTF-8 as is, the same escapes: a test compares every code point), integers, booleans, null,
    keys sorted by code point. Integers over 64 bits, which orjson refuses, take the stdlib.

    Floats it writes differently (`1e16`, the stdlib `1e+16`): no event holds one (amounts are
    integer 원; rates, quantities and figures are Decimal, dumped as strings), and a test fails
    if a contract field ever serializes as a JSON number that is not an integer."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _CANONICAL.encode(data).encode("utf-8")


#: What `json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` builds on every
#: call, built once: the fallback of `canonical_bytes`.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(event: BaseModel) -> str:
    """sha256 of the canonical JSON: tells a resend of the same event from another event under the same id."""
    return hashlib.sha256(canonical_json(event)).hexdigest()
