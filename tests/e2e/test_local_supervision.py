"""`execwatch up` supervises what it started: a killed service comes back, a killed embedded broker
comes back (empty: the services notice and re-send what was in flight), and SIGTERM stops every
process (the staff web included). Events go in through ingest over HTTP, as a department system
configured with its own key (not the demo: `up` without --demo refuses demo tokens and makes its own
secrets); the budget view must hold each exactly once."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from sqlmodel import func, select

from services.budget.store import BudgetInbox, BudgetProgram, BudgetSnapshot
from services.common.db import Database
from services.common.embedded import free_port
from tests import factories as f

#: a department system's key as an operator would configure it (`up` without --demo refuses demo tokens)
TOKEN = "supervision-" + secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Up:
    proc: subprocess.Popen[str]
    work: Path
    cwd: Path
    ports: dict[str, int]
    log: Path

    def runtime(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.work / "execwatch.json").read_text())
        return data

    def output(self) -> str:
        return self.log.read_text()

    def post(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 500):
            r = httpx.post(f"http://127.0.0.1:{self.ports['ingest']}/v1/events", headers=AUTH,
                           json=events[start:start + 500], timeout=60)
            assert r.status_code == 202, r.text


def _wait(what: str, probe: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # not there yet (file, table, port)
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    ports = {svc: free_port() for svc in ("ingest", "budget", "programs", "notify", "web")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "EXECWATCH_", "DATABASE_URL"))}
    env.update({f"EXECWATCH_{svc.upper()}_PORT": str(p) for svc, p in ports.items()},
               EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS="2000", EXECWATCH_BROKER_WATCH_INTERVAL_S="1",
               EXECWATCH_CONSUMER_BATCH_SIZE="50", XDG_RUNTIME_DIR=str(tmp_path / "run"),
               EXECWATCH_INGEST_SOURCES=json.dumps({f.SOURCE: TOKEN}))
    (tmp_path / "run").mkdir()
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        # workdir "var" relative to cwd: what a newcomer types; other commands find it from there
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], cwd=tmp_path, env={
            **env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}, stdout=out, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
    handle = Up(proc, tmp_path / "var", tmp_path, ports, log)
    def started() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"execwatch up exited:\n{handle.output()}")
        return (handle.work / "execwatch.json").exists()

    try:
        _wait("execwatch up", started)
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _events(programs: range, days: range) -> list[dict[str, Any]]:
    events = [f.budget_line(f"P{p:03d}", original=1_000_000_000) for p in programs]
    for d in days:
        events += [f.snapshot(f"P{p:03d}", date(2025, 2, 1) + timedelta(days=d), spent=(d + 1) * 1000 + p,
                              committed=(d + 1) * 2000) for p in programs]
    return events


def _assert_view(db: Database, programs: range, days: int, total: int) -> None:
    def applied() -> bool:
        with db.read() as s:
            return int(s.exec(select(func.count()).select_from(BudgetInbox)).one()) >= total
    _wait(f"{total} events applied", applied, timeout=240)
    time.sleep(2.0)  # anything applied twice would show now
    with db.read() as s:
        assert int(s.exec(select(func.count()).select_from(BudgetInbox)).one()) == total
        rows = {r.program_id: r for r in s.exec(select(BudgetProgram)).all()}
        last = date(2025, 2, 1) + timedelta(days=days - 1)
        assert {pid: (r.as_of, r.spent, r.committed) for pid, r in rows.items()} == {
            f"P{p:03d}": (last, days * 1000 + p, days * 2000) for p in programs}
        per_program = dict(s.exec(select(BudgetSnapshot.program_id, func.count())
                                  .group_by(BudgetSnapshot.program_id)).all())
        assert per_program == {f"P{p:03d}": days for p in programs}  # 0 lost, 0 counted twice


def _no_processes_left(up: Up) -> None:
    leftover = subprocess.run(["pgrep", "-s", str(up.proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes left running: {leftover}"
    for port in up.ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still bound"


def test_killed_service_is_restarted_and_sigterm_stops_everything(up: Up) -> None:
    programs, days = range(30), 12
    db = Database(up.runtime()["env"]["DATABASE_URL"])
    events = _events(programs, range(days))
    half = len(events) // 2
    up.post(events[:half])
    budget_pid = up.runtime()["pids"]["budget"]
    os.kill(budget_pid, signal.SIGKILL)
    up.post(events[half:])
    _wait("budget restarted", lambda: up.runtime()["pids"].get("budget") not in (None, budget_pid))
    assert "budget exited with code -9; restarting" in up.output()
    _assert_view(db, programs, days, len(events))

    # The staff web is a supervised child like the services.
    web_pid = up.runtime()["pids"]["web"]
    os.kill(web_pid, signal.SIGKILL)
    _wait("web restarted", lambda: up.runtime()["pids"].get("web") not in (None, web_pid))
    _wait("web answering", lambda: httpx.get(f"http://127.0.0.1:{up.ports['web']}/healthz", timeout=5)
          .status_code == 200, timeout=60)
    assert "web exited with code -9; restarting" in up.output()

    # Beside the running system, with no environment: what budget set aside is listed.
    producer = KafkaProducer(bootstrap_servers=up.runtime()["bootstrap"], acks="all")
    producer.send("execwatch.budget", b'{"not": "an event"}', key=b"P000").get(30)
    producer.close()
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "EXECWATCH_", "DATABASE_URL"))}
    bare["XDG_RUNTIME_DIR"] = str(up.cwd / "run")

    def listed() -> str | None:
        out = subprocess.run([sys.executable, "-m", "services.cli", "deadletter", "list"], cwd=up.cwd, env=bare,
                             capture_output=True, text=True, timeout=60)
        return out.stdout if "1 dead letter(s)" in out.stdout else None
    out = _wait("the dead letter listed", listed, timeout=60)
    assert "budget:1" in out and "stage=contract key=P000" in out
    db.dispose()

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(60) == 0, up.output()
    _no_processes_left(up)
    assert not (up.work / "execwatch.json").exists()


def test_killed_broker_is_restarted_and_nothing_in_flight_is_lost(up: Up) -> None:
    programs, days = range(40), 10
    db = Database(up.runtime()["env"]["DATABASE_URL"])
    events = _events(programs, range(days))
    first = len(programs) * 6
    up.post(events[:first])
    kafka_pid = up.runtime()["pids"]["kafka"]
    os.kill(kafka_pid, signal.SIGKILL)  # whatever budget had not consumed yet is gone with it
    up.post(events[first:])  # accepted into ingest's outbox while the broker is down
    _wait("the broker restarted", lambda: up.runtime()["pids"].get("kafka") not in (None, kafka_pid))
    assert "the embedded broker exited" in up.output()
    _assert_view(db, programs, days, len(events))
    db.dispose()

    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(60) == 0, up.output()
    _no_processes_left(up)
