"""`execwatch up --demo` as a newcomer runs it: everything starts, the seed reports flow through,
alert mail arrives, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.common.embedded import free_port


def test_up_demo_delivers_mail_and_stops_cleanly(tmp_path: Path, seeds: Path) -> None:
    ports = {f"EXECWATCH_{svc.upper()}_PORT": str(free_port()) for svc in ("ingest", "budget", "programs", "notify")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "EXECWATCH_", "DATABASE_URL"))}
    env.update(ports, EXECWATCH_SEEDS=str(seeds), EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS="2000")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--demo", "--workdir", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        mail = tmp_path / "mail"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (mail.is_dir() and any(mail.glob("*.eml"))):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(1)
        assert any(mail.glob("*.eml")), "no alert mail within 3 minutes"
        url = f"http://127.0.0.1:{ports['EXECWATCH_BUDGET_PORT']}/v1/budget/summary"
        assert httpx.get(url, params={"fiscal_year": 2025}, timeout=10).status_code == 401  # reads need a key
        keys = json.loads((tmp_path / "demo-keys.json").read_text("utf-8"))
        budget = httpx.get(url, params={"fiscal_year": 2025}, timeout=10,
                           headers={"Authorization": f"Bearer {keys['operator']['key']}"}).json()
        assert budget["total"]["programs"] > 50  # the January report's programs are in the view
        first = sorted(mail.glob("*.eml"))[0].read_bytes()
        assert b"Subject:" in first
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "execwatch is up" in out and "demo: imported" in out and "demo identities" in out
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes left running: {leftover}"
