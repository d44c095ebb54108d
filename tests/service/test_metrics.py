"""What /metrics tells operators, over TestKafkaBroker and SQLite: the label a failing handler is
counted under (what ExecwatchHandlerErrors filters on), series that exist before the first
message, process collectors, HTTP request metrics by route template, and no label that would
collide with Prometheus' target labels."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from contracts import AnyEvent
from services.common.consumer import consume
from services.common.runtime import Runtime, http_app
from services.programs.app import build
from tests import factories as f
from tests.helpers import running

TARGET_LABELS = {"service", "job", "instance"}
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


async def test_a_failing_handler_is_counted_with_the_label_the_alert_rule_reads(make_settings, sqlite_url,
                                                                                 monkeypatch):
    settings = make_settings(database_url=sqlite_url)
    rt = Runtime.create("budget", settings)

    # What fails a batch (and is counted as an error) is an outage: anything else about one event
    # is dead-lettered and the batch succeeds (tests/integration/test_poison.py).
    def apply(_: list[AnyEvent]) -> None:
        raise OperationalError("INSERT …", None, ConnectionRefusedError("database down"))

    monkeypatch.setattr(rt.db, "ping", lambda: False)
    consume(rt, ["execwatch.budget"], group_id="metrics-test", apply=apply, title="t", description="d")
    app = http_app(rt, "metrics test")
    topic = settings.topic("execwatch.budget")
    async with TestKafkaBroker(rt.broker) as br, running(app) as (client,):
        before = samples((await client.get("/metrics")).text)
        errors = {"app_name": "budget", "broker": "kafka", "handler": topic, "status": "error"}
        # The series exists at 0 from start-up, so rate() sees the very first failure.
        assert value(before, "execwatch_received_processed_messages_total", **errors) == 0.0
        # The test broker hands the handler's exception back; a real one nacks and redelivers.
        with pytest.raises(OperationalError, match="database down"):
            await br.publish(json.dumps(f.snapshot()).encode(), topic, key=b"P-1")
        after = samples((await client.get("/metrics")).text)
    assert value(after, "execwatch_received_processed_messages_total", **errors) == 1.0


async def test_metrics_have_process_http_and_no_target_label(make_settings, sqlite_url):
    app = build(make_settings(database_url=sqlite_url))
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        assert (await client.get("/v1/programs/P-NOT-THERE")).status_code == 404
        assert (await client.get("/v1/programs")).status_code == 200
        text = (await client.get("/metrics")).text
    scraped = samples(text)
    names = {name for name, _ in scraped}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert any(n.startswith("python_gc_") for n in names)
    assert value(scraped, "execwatch_http_requests_total", handler="/v1/programs/{program_id:path}", method="GET",
                 status="404") == 1.0
    assert value(scraped, "execwatch_http_request_duration_seconds_count", handler="/v1/programs",
                 method="GET", status="200") == 1.0
    assert not any(n.startswith("execwatch_http") and ("handler", "/metrics") in labels for n, labels in scraped)
    collisions = {(n, k) for n, labels in scraped for k, _ in labels if k in TARGET_LABELS}
    assert collisions == set()


def exposed_names(text: str) -> set[str]:
    """Every series name a scrape of this text can hold, from the # TYPE lines (families with no
    sample yet included)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "counter":
            names |= {name.removesuffix("_total"), f"{name.removesuffix('_total')}_total"}
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_every_metric_the_rules_and_dashboard_read_is_exposed(make_settings, sqlite_url):
    exposed: set[str] = set()
    for service in ("ingest", "budget", "programs", "notify"):
        app = importlib.import_module(f"services.{service}.app").build(make_settings(database_url=sqlite_url))
        exposed |= exposed_names(app.state.runtime.metrics_text().decode())
    read = (DEPLOY / "prometheus" / "rules.yml").read_text() + (DEPLOY / "grafana" / "dashboards" /
                                                                "execwatch.json").read_text()
    wanted = set(re.findall(r"\b((?:execwatch|process|python)_[a-z_]+)", read)) - {"execwatch_service"}  # a label
    assert "execwatch_received_processed_messages_total" in wanted
    assert wanted - exposed == set()
