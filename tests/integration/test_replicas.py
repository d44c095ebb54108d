"""Two replicas of each consuming service (budget, programs, notify), each its own process with its
own port, sharing one PostgreSQL database and one consumer group per service, on the real broker.
In the middle one replica of each is SIGKILLed (budget in the middle of its stream) and later
restarted, so the groups rebalance twice and every leadership (relays, the programs checks, the
notify scheduler) may move. The result is what one replica makes: the same budget view, the same
alert decisions (same ids), each alert once on the topic, every mail exactly once.

Programs, their alerts and their mails come in three waves: before the kill, while one replica
of each service is down, after the restart. Programs and notify are killed between waves (nothing
of theirs in flight), so an exact count is a fair demand of at-least-once machinery: a replica
killed while sending a mail may send it again, by design; one killed at rest must not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlmodel import SQLModel, col, func, select

from contracts import parse_event
from contracts.topics import ALERTS, BUDGET, PROGRAMS
from services.budget import service as budget
from services.budget.store import BudgetInbox, BudgetOutbox, BudgetProgram
from services.common.db import Database, upgrade
from services.common.embedded import MailSink, free_port
from services.common.messaging import ensure_topics
from services.common.settings import Settings
from services.notify.store import NotifyAlert, NotifyDelivery, NotifyInbox, NotifyProgram
from services.programs import service as programs
from services.programs.store import ProgramsInbox, ProgramsOutbox
from tests import factories as f
from tests.conftest import _fresh_pg_schema
from tests.helpers import read_to_end

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2025, 3, 31)  # programs judge schedules as of this day: the milestones below are late
WAVES = (range(0, 8), range(8, 16), range(16, 24))
DAYS = 60  # execution snapshots per program


def program(i: int) -> dict[str, Any]:
    """A program with contacts of its own, so each alert is one mail per person, whatever the
    grouping timing."""
    event = f.program(f"P-{i:02d}", f"사업 {i:02d}", division=f"과{i % 3}")
    for k, c in enumerate(event["payload"]["contacts"]):
        c["phone"] = f"02-3{i:03d}-52{k:02d}"
    return event


def addresses(event: dict[str, Any]) -> dict[str, str]:
    return {c["role"]: c["phone"].replace("-", "") + "@staff.test" for c in event["payload"]["contacts"]}


def budget_events(i: int) -> list[dict[str, Any]]:
    pid = f"P-{i:02d}"
    out = [f.budget_line(pid, original=2_000_000_000 + i, title=f"사업 {i:02d}", division=f"과{i % 3}")]
    # January to March: before the default plan curve is judged (04-01), so budget raises no alert
    # and each person's mail is about the program's one schedule alert
    out += [f.snapshot(pid, date(2025, 1, 10) + timedelta(days=d), spent=(d + 1) * 1_000_000 + i,
                       committed=(d + 1) * 3_000_000) for d in range(DAYS)]
    return out


class Replica:
    def __init__(self, service: str, env: dict[str, str], logs: Path, name: str) -> None:
        self.service, self.env, self.logs, self.name = service, env, logs, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Replica:
        self.port = free_port()
        env = {**self.env, f"EXECWATCH_{self.service.upper()}_PORT": str(self.port)}
        with (self.logs / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.service}"], env=env, cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = probe()
        except Exception as exc:  # tables not migrated yet
            last = exc
        if last is True or (last and not isinstance(last, Exception)):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def wait_count(probe: Callable[[], int], target: int, what: str) -> None:
    last: list[int] = []

    def done() -> bool:
        last[:] = [probe()]
        return last[0] == target

    try:
        wait_for(done, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last} of {target}") from None


def count(db: Database, table: type[SQLModel], *where: Any) -> int:
    with db.read() as s:
        return int(s.exec(select(func.count()).select_from(table).where(*where)).one())


def view(db: Database) -> dict[str, tuple[Any, ...]]:
    """The budget view, without when it was written."""
    columns = [c.name for c in BudgetProgram.__table__.columns if c.name != "updated_at"]  # type: ignore[attr-defined]
    with db.read() as s:
        return {r.program_id: tuple(getattr(r, c) for c in columns) for r in s.exec(select(BudgetProgram)).all()}


def one_replica(url: str, settings: Settings, stream: list[tuple[str, dict[str, Any]]]) -> tuple[Database, set[str]]:
    """What a single replica of budget and programs makes of the same stream (in-process)."""
    for svc in ("budget", "programs"):
        upgrade(url, svc)
    db = Database(url)
    bcfg, pcfg = budget.Config.from_settings(settings), programs.Config.from_settings(settings)
    for topic, event in stream:
        parsed = parse_event(event)
        budget.apply_batch(db, bcfg, [parsed])  # budget reads both topics (milestones start its plan curve)
        if topic == PROGRAMS.name:
            programs.apply_batch(db, pcfg, [parsed], TODAY)
    programs.check_all(db, pcfg, TODAY)
    with db.read() as s:
        ids = set(s.exec(select(ProgramsOutbox.event_id)).all())
    return db, ids


def test_two_replicas_of_each_service_make_what_one_makes(kafka, pg_database, make_settings, tmp_path):
    settings = make_settings()
    url = _fresh_pg_schema(pg_database)
    prefix = settings.topic_prefix
    ensure_topics(kafka.bootstrap, prefix)
    sink = MailSink().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECWATCH_")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": url, "EXECWATCH_TOPIC_PREFIX": prefix,
        "PYTHONPATH": str(ROOT), "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_ENSURE_TOPICS": "false",
        "EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS": "2000", "EXECWATCH_CONSUMER_BATCH_SIZE": "20",
        "EXECWATCH_CONSUMER_BATCH_TIMEOUT_MS": "50", "EXECWATCH_RELAY_INTERVAL_S": "0.2",
        "EXECWATCH_BUDGET_CONSUMER_GROUP": f"{prefix}budget", "EXECWATCH_PROGRAMS_GROUP_ID": f"{prefix}programs",
        "EXECWATCH_NOTIFY_CONSUMER_GROUP": f"{prefix}notify",
        "EXECWATCH_CLOCK": TODAY.isoformat(), "EXECWATCH_CHECK_INTERVAL_S": "1",
        "EXECWATCH_SMTP_PORT": str(sink.port), "EXECWATCH_RECIPIENT_ADDRESS_TEMPLATE": "{phone_digits}@staff.test",
        "EXECWATCH_NOTIFY_ACK_SECRET": "test-ack-secret-not-the-demo-one", "EXECWATCH_NOTIFY_QUIET_HOURS": "false",
        "EXECWATCH_NOTIFY_GROUP_WAIT_S": "0.5", "EXECWATCH_NOTIFY_GROUP_INTERVAL_S": "1",
        "EXECWATCH_NOTIFY_TICK_S": "0.3", "EXECWATCH_NOTIFY_ESCALATION_AFTER_S": "0",
        "EXECWATCH_NOTIFY_CLAIM_LEASE_S": "30",
        # Not the demo: real secrets and no demo publishers, or the services refuse to start.
        "EXECWATCH_AUTH_SECRET": "test-auth-secret-0123456789", "EXECWATCH_INGEST_SOURCES": "{}",
    })
    replicas = {svc: [Replica(svc, env, tmp_path, f"{svc}-{n}") for n in "ab"]
                for svc in ("budget", "programs", "notify")}
    everyone = [r for pair in replicas.values() for r in pair]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    stream: list[tuple[str, dict[str, Any]]] = []
    db = Database(url)

    def publish(topic: str, events: list[dict[str, Any]]) -> None:
        for e in events:
            producer.send(prefix + topic, json.dumps(e).encode(), key=e["key"].encode())
            stream.append((topic, e))
        producer.flush()

    def wave(numbers: range) -> None:
        """Register first and let notify know the contacts, then the late milestones: an alert
        that overtook its register would go to the 과's default contact first."""
        publish(PROGRAMS.name, [program(i) for i in numbers])
        wait_for(lambda: count(db, NotifyProgram) >= numbers.stop, f"notify to know programs up to {numbers.stop}")
        publish(PROGRAMS.name, [f.milestone(f"P-{i:02d}", "M1", date(2025, 3, 1), date(2025, 3, 20))
                                for i in numbers])

    def mails_at_rest(n: int) -> None:
        wait_for(lambda: len(sink.messages) >= n and count(db, NotifyDelivery, col(NotifyDelivery.outcome)
                                                           == "pending") == 0, f"{n} mails sent")

    try:
        for r in everyone:
            r.start()
        wait_for(lambda: all(r.healthy() for r in everyone), "six healthy replicas", timeout=120)

        wave(WAVES[0])
        mails_at_rest(2 * len(WAVES[0]))

        budget_stream = [e for i in range(24) for e in budget_events(i)]
        publish(BUDGET.name, budget_stream)
        started = count(db, BudgetInbox)
        end = time.monotonic() + 60
        while count(db, BudgetInbox) < started + 100 and time.monotonic() < end:
            time.sleep(0.02)
        for pair in replicas.values():
            pair[0].kill()
        killed_at = count(db, BudgetInbox)
        assert started + 100 <= killed_at < started + len(budget_stream), "the kill must land mid-stream"

        wave(WAVES[1])  # one replica of each service
        for pair in replicas.values():
            pair[0].start()
        mails_at_rest(2 * (len(WAVES[0]) + len(WAVES[1])))
        wait_for(lambda: all(r.healthy() for r in everyone), "the restarted replicas healthy", timeout=120)

        wave(WAVES[2])
        total = sum(len(w) for w in WAVES)
        mails_at_rest(2 * total)
        programs_events = sum(1 for t, _ in stream if t == PROGRAMS.name)
        # budget reads the milestones too (they start its plan curve); other program events it ignores
        milestones = sum(1 for _, e in stream if e["event_type"] == "milestone.set")
        wait_count(lambda: count(db, BudgetInbox), len(budget_stream) + milestones, "the budget stream applied")
        wait_count(lambda: count(db, ProgramsInbox), programs_events, "the programs stream applied")
        wait_count(lambda: count(db, ProgramsOutbox, col(ProgramsOutbox.published_at).is_(None)), 0,
                   "every alert published")
        assert count(db, BudgetOutbox) == 0
        alerts_made = count(db, ProgramsOutbox)
        wait_count(lambda: count(db, NotifyInbox), programs_events + alerts_made, "notify applied every alert")
        time.sleep(2.0)  # a repeat (a second mail, a second publish) would show up now
    finally:
        for r in everyone:
            r.stop()
        producer.close()
        sink.stop()

    try:
        # the same views as one replica
        baseline, baseline_ids = one_replica(f"sqlite:///{tmp_path}/one.db", settings, stream)
        assert view(db) == view(baseline)
        assert len(view(db)) == 24
        # the same alert decisions (deterministic ids), each made once and published once
        with db.read() as s:
            outbox = list(s.exec(select(ProgramsOutbox.event_id)).all())
            alerts = list(s.exec(select(NotifyAlert)).all())
            mail = list(s.exec(select(NotifyDelivery).where(NotifyDelivery.channel == "email")).all())
        assert len(outbox) == total and set(outbox) == baseline_ids
        on_topic = [json.loads(r.value)["event_id"] for r in read_to_end(kafka.bootstrap, prefix + ALERTS.name)]
        assert sorted(on_topic) == sorted(outbox)
        assert len(alerts) == total and all(a.status == "firing" and a.notified_at for a in alerts)
        # every mail exactly once: one per person per program, each alert told once to each
        expected: Counter[tuple[str, str]] = Counter()
        fingerprints = {a.program_id: a.fingerprint for a in alerts}
        for i in range(total):
            people = addresses(program(i))
            for role in ("담당", "팀장"):
                expected[(people[role], fingerprints[f"P-{i:02d}"])] += 1
        got = Counter((m["To"].addresses[0].addr_spec, m["X-Execwatch-Fingerprints"]) for m in sink.messages)
        assert got == expected
        assert len({m["Message-ID"] for m in sink.messages}) == len(sink.messages) == 2 * total
        assert sorted((d.outcome, d.attempts) for d in mail) == [("sent", 1)] * (2 * total)
        baseline.dispose()
    finally:
        db.dispose()
