"""Operators' view: the rules pass promtool, and a real Prometheus scrapes a running service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.embedded import free_port, wait_for_port
from tests import factories as f

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
needs_prometheus = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's prometheus not installed")


@needs_prometheus
def test_rules_are_valid_and_their_unit_tests_pass():
    check = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "rules.yml")], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", str(DEPLOY / "rules_test.yml")], capture_output=True,
                          text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr


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
def test_prometheus_scrapes_a_running_service(kafka, tmp_path, make_settings):
    settings = make_settings()
    port, prom_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
           "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix, "EXECWATCH_INGEST_PORT": str(port),
           "EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS": "2000", "EXECWATCH_DEMO": "true"}  # it publishes with demo-token
    service = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{DEPLOY / 'rules.yml'}]\n"
        "scrape_configs:\n"
        "  - job_name: execwatch\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {{service: ingest}}}}]\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/events", json=[f.program(), f.budget_line()],
                          headers={"Authorization": f"Bearer {f.TOKEN}"}, timeout=10)
        assert resp.status_code == 202
        wait_for_port("127.0.0.1", prom_port, timeout=30)
        up = _until(lambda: _query(base, 'up{job="execwatch"} == 1'))
        assert up[0]["metric"]["service"] == "ingest"
        accepted = _until(lambda: _query(base, 'execwatch_ingest_accepted_total{path="http"} == 2'))
        assert accepted[0]["value"][1] == "2"
        published = _until(lambda: _query(base, "sum(execwatch_outbox_published_total) >= 2"))
        assert float(published[0]["value"][1]) == 2.0
        rules = httpx.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"execwatch-operations", "execwatch-recording"}
        assert all(r["health"] in ("ok", "unknown") for g in rules for r in g["rules"])
    finally:
        for proc in (prom, service):
            proc.terminate()
            proc.wait(10)
