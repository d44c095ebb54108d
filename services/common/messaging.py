"""Broker factory, decoding with dead-lettering, and topic creation — shared by all services."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from prometheus_client import CollectorRegistry
from pydantic import GetJsonSchemaHandler, TypeAdapter

from contracts import EVENT_MODELS, AnyEvent, ContractError, parse_event
from contracts.limits import PRODUCER_MAX_REQUEST_BYTES
from contracts.topics import ALL_TOPICS, DEADLETTER, INBOUND, TopicSpec
from services.common.db import DEAD_LETTER_TABLES, Database, is_transient, record_dead_letter
from services.common.logging import broker_logger, get_logger
from services.common.metrics import FASTSTREAM_PREFIX, dead_lettered, progress_counters
from services.common.settings import Settings

log = get_logger(__name__)
H = TypeVar("H", bound=Callable[..., Any])


def make_broker(settings: Settings, service: str, registry: CollectorRegistry) -> KafkaBroker:
    progress_counters(registry)  # before the middleware, which adopts them (see metrics.zero_progress)
    return KafkaBroker(
        settings.kafka_bootstrap_servers or "127.0.0.1:9092",
        client_id=f"execwatch-{service}",
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        # Stated, not defaulted: events are at most contracts.limits.MAX_EVENT_BYTES, well below this.
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=service, metrics_prefix=FASTSTREAM_PREFIX)],
        description=f"execwatch {service} service",
        allow_auto_create_topics=True,
        # FastStream logs every message at this level; our own structlog lines say what matters.
        log_level=logging.DEBUG,
        # Through the root handler as JSON, not FastStream's own coloured stdout handler.
        logger=broker_logger(),
    )


@dataclass(frozen=True)
class EventsOf:
    """Annotation for a batch handler's records: they arrive as bytes (handlers validate them
    against the contracts themselves, so a bad one is dead-lettered, not a failed batch), and are
    documented in `/asyncapi.json` as what each message on the topics is, one of these events.
    FastStream takes a subscriber's payload schema from its handler's first parameter."""

    event_types: tuple[str, ...]

    def __get_pydantic_json_schema__(self, _: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        refs = [handler(TypeAdapter(EVENT_MODELS[t]).core_schema) for t in self.event_types]
        # AsyncAPI's discriminator names the property; each event type has its own `const`.
        return {"oneOf": refs, "discriminator": "event_type",
                "description": "one event envelope per message (" + ", ".join(self.event_types) + ")"}


def documented_as_events(topics: Iterable[str]) -> Callable[[H], H]:
    """For a batch handler whose first parameter is the records (`list[bytes]`): document them in
    `/asyncapi.json` as the events these topics carry. Apply it below the subscriber decorator."""
    annotation = records_of_topics(topics)

    def document(handler: H) -> H:
        records = next(iter(inspect.signature(handler).parameters))
        handler.__annotations__[records] = annotation
        return handler

    return document


def records_of_topics(topics: Iterable[str]) -> Any:
    """`list[bytes]`, documented as the events these topics carry (the inbound topic: any)."""
    specs = [spec for spec in ALL_TOPICS if spec.name in set(topics)]
    carried = {t for spec in specs for t in spec.event_types}
    if INBOUND in specs:  # department systems may publish any event there
        carried = set(EVENT_MODELS)
    if not carried:
        return list[bytes]
    return Annotated[list[bytes], EventsOf(tuple(t for t in EVENT_MODELS if t in carried))]


@dataclass(frozen=True)
class Incoming:
    """One consumed record: the typed event, or why it could not be used."""

    record: ConsumerRecord[Any, Any] | None
    event: AnyEvent | None
    error: str | None
    raw: bytes


def decode(raw: bytes) -> tuple[AnyEvent | None, str | None]:
    try:
        return parse_event(raw), None
    except ContractError as exc:
        return None, json.dumps([e.model_dump(mode="json") for e in exc.errors], ensure_ascii=False)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not a JSON event: {exc}"


def records_of(raw_message: Any) -> Sequence[ConsumerRecord[Any, Any]]:
    return raw_message if isinstance(raw_message, tuple | list) else (raw_message,)


def decode_batch(records: Iterable[ConsumerRecord[Any, Any]]) -> list[Incoming]:
    # One validation per record: reading the batch as one joined JSON array (as ingest reads a
    # request) took as long per event and 12 % more instructions (docs/benchmarks.md).
    out = []
    for rec in records:
        raw = rec.value if isinstance(rec.value, bytes) else bytes(rec.value or b"")
        event, error = decode(raw)
        out.append(Incoming(rec, event, error, raw))
    return out


def header(record: ConsumerRecord[Any, Any] | None, name: str) -> str | None:
    if record is None:
        return None
    for key, value in record.headers or ():
        if key.lower() == name.lower():
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


async def dead_letter(
    broker: KafkaBroker, settings: Settings, service: str, item: Incoming, stage: str = "decode",
    *, db: Database | None = None,
) -> None:
    """Poison messages go aside with the error in headers, so the partition keeps moving; with `db`
    they are also kept in the service's own database (what `execwatch deadletter` reads)."""
    rec = item.record
    error = item.error or "unknown"
    headers = {
        "x-error": error[:4000],
        "x-error-stage": stage,
        "x-error-service": service,
        "x-original-topic": rec.topic if rec else "",
        "x-original-partition": str(rec.partition) if rec else "",
        "x-original-offset": str(rec.offset) if rec else "",
    }
    key = rec.key if rec and isinstance(rec.key, bytes) else None
    table = DEAD_LETTER_TABLES.get(service)
    if db is not None and table is not None:
        ref = (f"{rec.topic}:{rec.partition}:{rec.offset}" if rec
               else "sha256:" + hashlib.sha256(item.raw).hexdigest())
        await asyncio.to_thread(record_dead_letter, db, table, ref=ref, stage=stage, error=error,
                                topic=rec.topic if rec else "", key=key, value=item.raw,
                                partition=rec.partition if rec else None, offset=rec.offset if rec else None)
    topic = settings.topic(DEADLETTER.name)
    try:
        await broker.publish(item.raw, topic, key=key, headers=headers)
    except Exception as exc:
        if is_transient(exc):
            raise  # the batch is redelivered and dead-lettered again (the database keeps one row)
        # The topic refuses the message itself (e.g. larger than the producer allows): say so
        # with the start of it; the database, when there is one, keeps it whole.
        await broker.publish(item.raw[:_DEAD_LETTER_HEAD], topic, key=key,
                             headers={**headers, "x-truncated": f"{len(item.raw)} bytes; {type(exc).__name__}"})
    dead_lettered(service, stage)
    log.warning("dead-lettered", stage=stage, error=item.error, topic=headers["x-original-topic"],
                offset=headers["x-original-offset"])


_DEAD_LETTER_HEAD = 64 * 1024


def ensure_topics(bootstrap: str, prefix: str = "", specs: Iterable[TopicSpec] = ALL_TOPICS,
                  replication: int = 1) -> list[str]:
    """Create missing topics (kafka-python admin client); returns the names created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="execwatch-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(f"{prefix}{s.name}", s.partitions, replication) for s in specs
                  if f"{prefix}{s.name}" not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()
