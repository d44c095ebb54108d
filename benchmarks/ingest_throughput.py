"""Ingest throughput: how fast department systems can hand events to ingest, and how fast the
outbox relay gets them onto Kafka. Real parts: the ingest service as its own process
(`python -m services.ingest`), the embedded tansu broker, SQLite or PostgreSQL.

    python benchmarks/ingest_throughput.py --events 20000 --batch 500 [--db postgresql://127.0.0.1/test]

Prints accepted events/s (HTTP 202 = committed to the outbox), published events/s (outbox → Kafka,
measured until the last one is on the topic), and the service's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import httpx
from kafka import KafkaConsumer

from services.common.embedded import EmbeddedBroker, free_port, wait_for_port


def snapshot(i: int) -> dict[str, object]:
    pid = f"P{i % 2000:05d}"
    return {
        "event_id": str(uuid.uuid4()), "event_type": "budget.execution_snapshot", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "source": "demo-system", "key": pid,
        "payload": {"program_id": pid, "fiscal_year": 2025, "as_of": "2025-03-31", "committed": i * 10,
                    "spent": i * 5, "revision": 0},
    }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def count_topic(bootstrap: str, topic: str, expect: int, timeout: float) -> tuple[int, float]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=2000, max_poll_records=5000)
    seen, end = 0, time.monotonic() + timeout
    while seen < expect and time.monotonic() < end:
        for _ in consumer:
            seen += 1
            if seen >= expect:
                break
    done = time.monotonic()
    consumer.close()
    return seen, done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy profile of the ingest process (raw collapsed stacks)")
    args = ap.parse_args()

    broker = EmbeddedBroker.start()
    work = tempfile.mkdtemp(prefix="execwatch-bench-")
    port, prefix = free_port(), f"bench{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
           "DATABASE_URL": args.db or f"sqlite:///{work}/ingest.db", "EXECWATCH_INGEST_PORT": str(port),
           "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_DEMO": "true"}  # publishes with demo-token
    service = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env)
    try:
        wait_for_port("127.0.0.1", port, 60)
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(service.pid), "-r", "200", "-f", "raw", "-o",
                                args.profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) \
            if args.profile else None
        events = [snapshot(i) for i in range(args.events)]
        bodies = [json.dumps(events[i:i + args.batch]).encode() for i in range(0, len(events), args.batch)]
        headers = {"Authorization": "Bearer demo-token", "Content-Type": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            start = time.monotonic()
            for body in bodies:
                r = client.post("/v1/events", content=body, headers=headers)
                r.raise_for_status()
            accepted_s = time.monotonic() - start
        seen, done = count_topic(broker.bootstrap, f"{prefix}execwatch.budget", args.events, timeout=600)
        published_s = done - start
        print(f"events={args.events} batch={args.batch} db={'postgres' if args.db else 'sqlite'}")
        print(f"accepted: {args.events / accepted_s:,.0f} events/s ({accepted_s:.2f} s)")
        print(f"published: {seen:,} on the topic, {seen / published_s:,.0f} events/s end to end ({published_s:.2f} s)")
        print(f"ingest peak RSS: {rss_mb(service.pid):.0f} MB")
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        return 0 if seen == args.events else 1
    finally:
        service.terminate()
        service.wait(10)
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
