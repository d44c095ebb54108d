"""One JSON object per line: the standard library's loggers (FastStream, uvicorn, aiokafka) go
through the same structlog processors as ours, not through their own coloured handlers."""

import json
import logging

import structlog

from services.common.logging import BROKER_LOGGER, broker_logger, configure_logging, get_logger


def test_library_and_broker_lines_are_json_with_the_service(capsys):
    configure_logging("INFO", json=True, service="budget")
    configure_logging("INFO", json=True, service="budget")  # twice: still one handler, one line each
    try:
        get_logger("t").info("ours", program_id="P-1")
        logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:8702")
        logging.getLogger("faststream").warning("from faststream's own logger")
        broker_logger().info("subscriber started", extra={"topic": "execwatch.budget", "group_id": "g"})
        logging.getLogger("aiokafka").info("chatty")  # libraries below WARNING stay quiet
        lines = capsys.readouterr().err.strip().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["event"] for r in records] == [
            "ours", "Uvicorn running on http://127.0.0.1:8702", "from faststream's own logger", "subscriber started"]
        assert {r["service"] for r in records} == {"budget"}
        assert records[1]["logger"] == "uvicorn.error" and records[1]["level"] == "info"
        assert records[3]["logger"] == BROKER_LOGGER and records[3]["topic"] == "execwatch.budget"
        assert all("color_message" not in r for r in records)
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()

