"""Notify: alerts to digests, and alert publish → mail latency.

    python benchmarks/notify_bench.py digest [--alerts 10000] [--programs 2000] [--db postgresql://…]
    python benchmarks/notify_bench.py latency [--rate 20] [--seconds 60]

digest (in this process, grouping on, as configured by default: group_wait 30 s): the program
register of N programs in 9 과 (20 people per role in each 과, so each person gets a digest
of many programs), then the alerts (one budget alert and milestone alerts per program, warning: 담당 and
팀장 hear them) applied in batches of 500 (intake), the clock moved past group_wait, one scheduler
tick (due groups → deliveries), and the dispatcher sending every delivery to a local SMTP sink.
Prints each stage's time and the mail count.

latency (every part real: tansu broker, `python -m services.notify` as its own process, SMTP sink
in this process): grouping off (group_wait 0, group_interval 0, no quiet hours), alerts published
to the alerts topic at a steady rate, each for its own program with its own contacts (info: only
담당 hears it, one mail each); an alert's latency is the sink's receipt of its mail minus its send time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from aiokafka import AIOKafkaProducer

from contracts import AlertEvent, dump_event, parse_event
from contracts.alerts import Alert, fingerprint
from services.common.db import Database, upgrade
from services.common.embedded import EmbeddedBroker, MailSink, free_port, wait_for_port
from services.common.messaging import ensure_topics
from services.common.settings import Settings
from services.notify import routing
from services.notify.render import Renderer
from services.notify.service import Dispatcher, ManualClock, Notifier
from tests import factories as f

DIVISIONS = ["경제정책과", "일자리정책과", "창업정책과", "대학협력과", "금융투자과", "창조산업과", "뷰티패션산업과",
             "첨단산업과", "산업입지과"]


def program_event(p: int, own_contacts: bool = False) -> Any:
    """Program p of 과 p mod 9; its contacts are one of 20 people per role in that 과, or with
    `own_contacts` people of its own (each mail then speaks of one program)."""
    pid = f"P{p:05d}"
    data = f.program(pid=pid, title=f"사업 {p}", division=DIVISIONS[p % len(DIVISIONS)])
    person = p if own_contacts else (p // len(DIVISIONS)) % 20
    data["payload"]["contacts"] = [
        {"role": role, "name": f"{role}{person}", "phone": f"02-{digit}{person // 10_000:03d}-{person % 10_000:04d}"}
        for role, digit in (("과장", 1), ("팀장", 2), ("담당", 3))
    ]
    return parse_event(data)


def alert_event(p: int, k: int, severity: str = "warning") -> AlertEvent:
    pid, title, division = f"P{p:05d}", f"사업 {p}", DIVISIONS[p % len(DIVISIONS)]
    if k == 0:
        rule, labels = "execution_slipped", {"fiscal_year": "2025", "program_id": pid, "rule": "execution_slipped"}
        summary, figures = f"{title} 집행률이 계획보다 10.3%p 낮습니다", {
            "rate": Decimal("0.0"), "plan": Decimal("10.3"), "gap": Decimal("10.3"), "current_budget": 1_000_000_000,
            "spent": 0, "committed": 0, "as_of": "2025-01-31"}
        generator = "budget"
    else:
        rule, labels = "milestone_overdue", {"program_id": pid, "milestone_id": f"M{k}", "rule": "milestone_overdue"}
        summary = f"{title}: 단계 {k} 일정이 지났습니다"
        figures = {"milestone": f"단계 {k}", "window_end": "2025-01-31"}
        generator = "programs"
    alert = Alert(fingerprint=fingerprint(rule, labels), rule=rule, status="firing", severity=severity,
                  program_id=pid, program_title=title, fiscal_year=2025, office="경제실", division=division,
                  labels={**labels, "division": division}, summary=summary, figures=figures,
                  starts_at=datetime(2025, 2, 1, tzinfo=UTC), generator=generator)
    return AlertEvent(event_id=uuid.uuid4(), occurred_at=datetime(2025, 2, 1, tzinfo=UTC),
                      source=f"execwatch-{generator}", key=pid, payload=alert)


def fresh_url(url: str | None) -> tuple[str, str | None]:
    if not url:
        return f"sqlite:///{tempfile.mkdtemp(prefix='notify-bench-')}/notify.db", None
    schema = f"notify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{url}?options=-csearch_path%3D{schema}", schema


async def digest(args: argparse.Namespace) -> None:
    url, schema = fresh_url(args.db)
    sink = MailSink().start()
    try:
        upgrade(url, "notify")
        db = Database(url)
        settings = Settings(_env_file=None, database_url=url, smtp_port=sink.port, log_json=False,  # type: ignore[call-arg]
                            log_level="WARNING", recipient_address_template="{phone_digits}@staff.test",
                            notify_escalation_after_s=0)
        rules = routing.load(settings)
        clock = ManualClock(datetime(2025, 2, 3, 10, 0, tzinfo=ZoneInfo("Asia/Seoul")).astimezone(UTC))
        notifier = Notifier(db, settings, rules, Renderer(), clock)
        dispatcher = Dispatcher(db, settings, rules, clock, rand=lambda: 0.0)
        per_program = max(1, args.alerts // args.programs)
        programs = [program_event(p) for p in range(args.programs)]
        alerts = [alert_event(p, k) for p in range(args.programs) for k in range(per_program)][:args.alerts]
        for i in range(0, len(programs), 500):
            notifier.apply_batch(programs[i:i + 500])
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        for i in range(0, len(alerts), 500):
            notifier.apply_batch(alerts[i:i + 500])
        t1 = time.perf_counter()
        clock.advance(timedelta(seconds=31))
        tick = notifier.tick()
        t2 = time.perf_counter()
        sent = 0
        while True:
            n = await dispatcher.flush()
            if not n:
                break
            sent += n
        t3 = time.perf_counter()
        mails = len(sink.messages)
        print(f"{'postgresql' if args.db else 'sqlite'} digest, load {load:.2f}: {len(alerts):,} alerts of "
              f"{args.programs:,} programs")
        print(f"  intake (batches of 500): {t1 - t0:.2f}s, {len(alerts) / (t1 - t0):,.0f} alerts/s")
        print(f"  scheduler tick: {t2 - t1:.2f}s, {tick.deliveries} deliveries")
        print(f"  dispatcher to SMTP: {t3 - t2:.2f}s, {sent} sent, {mails} mails in the sink")
        print(f"  total {t3 - t0:.2f}s; {len(alerts) / max(mails, 1):.0f} alerts per mail on average")
        db.dispose()
    finally:
        sink.stop()
        if schema and args.db:
            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class TimedSink(MailSink):
    """The sink, noting when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[float, EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.received.append((time.time(), self.messages[-1]))
        return answer


async def latency(args: argparse.Namespace) -> None:
    broker = EmbeddedBroker.start()
    sink = TimedSink().start()
    tmp = tempfile.mkdtemp(prefix="mail-latency-")
    prefix = f"mail{uuid.uuid4().hex[:6]}."
    url = f"sqlite:///{tmp}/notify.db"
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
           "DATABASE_URL": url, "EXECWATCH_NOTIFY_PORT": str(port), "EXECWATCH_LOG_LEVEL": "WARNING",
           "EXECWATCH_DEMO": "true", "EXECWATCH_SMTP_PORT": str(sink.port),
           "EXECWATCH_NOTIFY_GROUP_WAIT_S": "0", "EXECWATCH_NOTIFY_GROUP_INTERVAL_S": "0",
           "EXECWATCH_NOTIFY_QUIET_HOURS": "false", "EXECWATCH_NOTIFY_ESCALATION_AFTER_S": "0",
           "EXECWATCH_RECIPIENT_ADDRESS_TEMPLATE": "{phone_digits}@staff.test",
           "EXECWATCH_CONSUMER_BATCH_TIMEOUT_MS": str(args.batch_timeout_ms)}
    ensure_topics(broker.bootstrap, prefix)
    service = subprocess.Popen([sys.executable, "-m", "services.notify"], env=env)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60)
        await producer.start()
        programs_topic, alerts_topic = f"{prefix}execwatch.programs", f"{prefix}execwatch.alerts"
        count = int(args.rate * args.seconds)
        for p in range(count):  # the register first, so each alert has its 담당
            await producer.send(programs_topic, dump_event(program_event(p, own_contacts=True)),
                                key=f"P{p:05d}".encode())
        await producer.flush()
        await asyncio.sleep(8)  # the group joins and the register is applied
        load = os.getloadavg()[0]
        sent: dict[str, float] = {}
        start = time.time()
        for p in range(count):
            await asyncio.sleep(max(0.0, start + p / args.rate - time.time()))
            event = alert_event(p, 0, severity="info")
            sent[f"사업 {p}"] = time.time()
            await producer.send(alerts_topic, dump_event(event), key=event.key.encode())
        deadline = time.time() + 120
        while len(sink.received) < count and time.time() < deadline:
            await asyncio.sleep(0.5)
        got: dict[str, float] = {}
        for at, msg in sink.received:
            subject = str(msg["Subject"])
            title = subject.split("] ", 1)[-1].split(" — ")[0]  # "[집행 부진] 사업 12 — 집행률 …"
            if title in sent and title not in got:
                got[title] = at
        lat = sorted(got[t] - sent[t] for t in got)
        pick = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]) if lat else (lambda q: float("nan"))
        print(f"grouping off, load {load:.2f}: {count:,} alerts at {args.rate}/s; {len(sink.received):,} mails, "
              f"{len(got):,} matched")
        if lat:
            print(f"publish (Kafka) → mail: p50 {statistics.median(lat) * 1000:.0f} ms, p95 {pick(0.95) * 1000:.0f} ms,"
                  f" p99 {pick(0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        else:
            print("no mail matched; subjects seen:", [str(m["Subject"]) for _, m in sink.received[:5]])
    finally:
        await producer.stop()
        service.terminate()
        service.wait(15)
        sink.stop()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["digest", "latency"])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--db", help="digest: PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--batch-timeout-ms", type=int, default=50)
    args = ap.parse_args()
    asyncio.run(digest(args) if args.mode == "digest" else latency(args))


if __name__ == "__main__":
    main()
