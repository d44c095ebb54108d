"""Operators' view: the rules, the Prometheus and Alertmanager configs pass their own tools, every
alert has a promtool test and a runbook section, and a real Prometheus scrapes a running service
(wired to a real Alertmanager) and finds what operators need."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.embedded import free_port, wait_for_port
from tests import factories as f

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "prometheus"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
needs_prometheus = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's prometheus not installed")
needs_alertmanager = pytest.mark.skipif(shutil.which("amtool") is None,
                                        reason="Debian's prometheus-alertmanager not installed")


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_prometheus
def test_rules_and_config_are_valid_and_the_rule_unit_tests_pass():
    _run("promtool", "check", "rules", str(DEPLOY / "rules.yml"))
    _run("promtool", "check", "config", str(DEPLOY / "prometheus.yml"))
    _run("promtool", "test", "rules", str(DEPLOY / "rules_test.yml"))


@needs_alertmanager
def test_alertmanager_config_is_valid():
    _run("amtool", "check-config", str(ALERTMANAGER))


def _alerts() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "rules.yml").read_text())["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_is_fired_by_a_promtool_test_and_has_a_runbook():
    tests = yaml.safe_load((DEPLOY / "rules_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert _alerts() - fired == set()
    runbook = (REPO / "docs" / "operations.md").read_text()
    sections = set(re.findall(r"^### (Execwatch\w+)$", runbook, re.M))
    assert _alerts() - sections == set()


def _query(prom: str, expr: str) -> list[dict]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    result: list[dict] = r.json()["data"]["result"]
    return result


def _until(fn, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


@needs_prometheus
@needs_alertmanager
def test_prometheus_scrapes_a_running_service(kafka, tmp_path, make_settings):
    settings = make_settings()
    port, prom_port, am_port = free_port(), free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
           "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix, "EXECWATCH_INGEST_PORT": str(port),
           "EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS": "2000", "EXECWATCH_LOG_JSON": "true",
           "EXECWATCH_LOG_LEVEL": "INFO", "EXECWATCH_DEMO": "true"}  # it publishes with demo-token
    log = tmp_path / "ingest.log"
    with log.open("wb") as stderr:
        service = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env, stdout=stderr,
                                   stderr=stderr)
    alertmanager = subprocess.Popen(["prometheus-alertmanager", f"--config.file={ALERTMANAGER}",
                                     f"--storage.path={tmp_path}/am", f"--web.listen-address=127.0.0.1:{am_port}",
                                     "--cluster.listen-address="],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{DEPLOY / 'rules.yml'}]\n"
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
        "scrape_configs:\n"
        "  - job_name: execwatch\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {{service: ingest}}}}]\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        wait_for_port("127.0.0.1", prom_port, timeout=30)
        up = _until(lambda: _query(base, 'up{job="execwatch"} == 1'))
        assert up[0]["metric"]["service"] == "ingest"
        # Before any message: lag of every assigned inbound partition, and the error series at 0.
        lag = _until(lambda: _query(base, 'execwatch_consumer_lag{execwatch_service="ingest"}'))
        assert {s["metric"]["topic"] for s in lag} == {settings.topic("execwatch.inbound")}
        assert {s["value"][1] for s in lag} == {"0"}
        errors = _query(base, 'execwatch_received_processed_messages_total{app_name="ingest", status="error"}')
        assert [s["value"][1] for s in errors] == ["0"]

        resp = httpx.post(f"http://127.0.0.1:{port}/v1/events", json=[f.program(), f.budget_line()],
                          headers={"Authorization": f"Bearer {f.TOKEN}"}, timeout=10)
        assert resp.status_code == 202
        accepted = _until(lambda: _query(base, 'execwatch_ingest_accepted_total{path="http"} == 2'))
        assert accepted[0]["value"][1] == "2"
        published = _until(lambda: _query(base, "sum(execwatch_outbox_published_total) >= 2"))
        assert float(published[0]["value"][1]) == 2.0
        posted = _until(lambda: _query(
            base, 'execwatch_http_requests_total{handler="/v1/events", method="POST", status="202"}'))
        assert posted[0]["value"][1] == "1"
        assert _query(base, 'execwatch_http_request_duration_seconds_count{handler="/v1/events"}')
        for family in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
            assert _query(base, f'{family}{{job="execwatch", service="ingest"}}'), family
        # Metrics carry no label of their own that Prometheus would rename.
        assert _query(base, '{exported_service=~".+"}') == []
        assert _query(base, '{exported_job=~".+"}') == []

        rules = httpx.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"execwatch-operations", "execwatch-recording"}
        assert all(r["health"] in ("ok", "unknown") for g in rules for r in g["rules"])
        managers = _until(lambda: httpx.get(f"{base}/api/v1/alertmanagers", timeout=5)
                          .json()["data"]["activeAlertmanagers"])
        assert [m["url"] for m in managers] == [f"http://127.0.0.1:{am_port}/api/v2/alerts"]
    finally:
        for proc in (prom, alertmanager, service):
            proc.terminate()
            proc.wait(10)
    # Every line the service wrote (ours, FastStream's, uvicorn's) is one JSON object.
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any(r.get("logger", "").startswith("uvicorn") for r in records)
    assert any(r.get("logger") == "execwatch.broker" for r in records)
    odd = [r for r in records if r.get("service") != "ingest" or "color_message" in r]
    assert not odd, odd[:5]
