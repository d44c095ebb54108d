"""structlog as JSON, with contextvars (event_id, program_id) bound per message, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, cast

import structlog

_SECRET_WORDS = ("password", "token", "secret", "authorization", "api_key")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def _drop_colour(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("color_message", None)  # uvicorn's copy of the message with terminal colour codes
    return event


class _CurrentStderr:
    """sys.stderr looked up at each write, so a swapped stream (test capture, a daemon's
    redirect) is followed rather than a closed one kept."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: Library loggers that install their own (coloured, plain-text) handlers; ours replace them.
_LIBRARY_LOGGERS = ("faststream", "faststream.access", "faststream.access.kafka", "uvicorn", "uvicorn.error",
                    "uvicorn.access", "aiokafka", "kafka", "alembic")
#: The logger FastStream's broker writes to (subscriber start, handler errors): see `broker_logger`.
BROKER_LOGGER = "execwatch.broker"


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (and replaces when called again)."""


def configure_logging(level: str = "INFO", json: bool = True, service: str | None = None) -> None:
    """structlog for our lines, and the standard library's (FastStream, uvicorn, aiokafka) rendered
    by the same processors, so a service's stderr is one JSON object per line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    handler = _JsonHandler(cast(TextIO, _CurrentStderr()))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        # FastStream passes topic, group_id and message_id as `extra`: keep them as fields.
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(), _drop_colour, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries are kept quiet (warnings and up); FastStream's subscriber start and uvicorn's
    # "running on" lines are worth having.
    root.setLevel(logging.WARNING)
    for name in _LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
        lib.setLevel(logging.NOTSET)
    for name in (BROKER_LOGGER, "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO)


def broker_logger() -> logging.Logger:
    """What a FastStream broker is given instead of its own stdout logger with coloured lines."""
    return logging.getLogger(BROKER_LOGGER)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def event_context(event_id: object, program_id: str | None, event_type: str | None = None) -> Iterator[None]:
    """Bind the event being handled, so every log line about it says which event and program."""
    with structlog.contextvars.bound_contextvars(event_id=str(event_id), program_id=program_id,
                                                 event_type=event_type):
        yield
