"""Ingest throughput: how fast department systems can hand events to ingest, and how fast the
outbox relay gets them onto Kafka. Real parts: the ingest service as its own process
(`python -m services.ingest`), the embedded tansu broker, SQLite or PostgreSQL.

    python benchmarks/ingest_throughput.py --events 20000 --batch 500 [--db postgresql://127.0.0.1/test]
                                           [--clients 4] [--relay inline|process|after] [--pin] [--profile FILE]

Prints accepted events/s (HTTP 202 = committed to the outbox), published events/s (outbox → Kafka,
measured until the last one is on the topic), and the service's peak RSS. --clients sends the
requests over that many connections at once. --relay process runs ingest with
EXECWATCH_INGEST_RELAY_INLINE=false and the relay as its own process (`python -m
services.ingest.relay`); the accepting process's CPU is then printed on its own, and the relay's
beside it. --relay after starts that relay process only once every request was accepted: the
accepting process measured with nothing else of ingest running, then the relay draining the
backlog (timed from its start).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used: on a shared machine, the service's own cost."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    ap.add_argument("--clients", type=int, default=1, help="concurrent HTTP connections")
    ap.add_argument("--relay", choices=["inline", "process", "after"], default="inline",
                    help="the outbox relay inside the ingest process, as its own process, or as its own "
                         "process started once every request was accepted (accepting measured alone)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy profile of the ingest process (raw collapsed stacks)")
    ap.add_argument("--pin", action="store_true",
                    help="the ingest process alone on the last CPU, this script and the relay on the others "
                         "(the per-process rate on a core of its own; the database server and the broker "
                         "are not pinned)")
    args = ap.parse_args()

    broker = EmbeddedBroker.start()
    work = tempfile.mkdtemp(prefix="execwatch-bench-")
    port, prefix = free_port(), f"bench{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "EXECWATCH_TOPIC_PREFIX": prefix,
           "DATABASE_URL": args.db or f"sqlite:///{work}/ingest.db", "EXECWATCH_INGEST_PORT": str(port),
           "EXECWATCH_LOG_LEVEL": "WARNING", "EXECWATCH_DEMO": "true"}  # publishes with demo-token
    relay: subprocess.Popen[bytes] | None = None
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) < 2:
        sys.exit("--pin needs two CPUs")

    def start_relay() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "services.ingest.relay"], env=env)
        if args.pin:
            os.sched_setaffinity(process.pid, set(cpus[:-1]))
        return process

    if args.relay != "inline":
        env |= {"EXECWATCH_INGEST_RELAY_INLINE": "false", "EXECWATCH_INGEST_RELAY_PORT": str(free_port())}
    if args.relay == "process":
        relay = start_relay()
    service = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env)
    if args.pin:
        os.sched_setaffinity(service.pid, {cpus[-1]})
        os.sched_setaffinity(os.getpid(), set(cpus[:-1]))
    try:
        if relay is not None:
            wait_for_port("127.0.0.1", int(env["EXECWATCH_INGEST_RELAY_PORT"]), 60)
        wait_for_port("127.0.0.1", port, 60)
        py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")  # the venv's
        spy = subprocess.Popen([py_spy, "record", "--gil", "--pid", str(service.pid), "-r", "200", "-f", "raw", "-o",
                                args.profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) \
            if args.profile else None
        events = [snapshot(i) for i in range(args.events)]
        bodies = [json.dumps(events[i:i + args.batch]).encode() for i in range(0, len(events), args.batch)]
        headers = {"Authorization": "Bearer demo-token", "Content-Type": "application/json"}
        def send(share: list[bytes]) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                for body in share:
                    r = client.post("/v1/events", content=body, headers=headers)
                    r.raise_for_status()

        shares = [bodies[i::args.clients] for i in range(args.clients)]
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            start, cpu = time.monotonic(), cpu_s(service.pid)
            relay_cpu = cpu_s(relay.pid) if relay is not None else 0.0
            for done in [pool.submit(send, share) for share in shares]:
                done.result()
            accepted_s, accepted_cpu = time.monotonic() - start, cpu_s(service.pid) - cpu
            relay_cpu = cpu_s(relay.pid) - relay_cpu if relay is not None else 0.0
        if args.relay == "after":
            start = time.monotonic()  # the relay's drain is timed from its start (start-up included)
            relay = start_relay()
        seen, done = count_topic(broker.bootstrap, f"{prefix}execwatch.budget", args.events, timeout=600)
        published_s = done - start
        print(f"events={args.events} batch={args.batch} db={'postgres' if args.db else 'sqlite'} "
              f"clients={args.clients} relay={args.relay} pinned={args.pin} load={os.getloadavg()[0]:.2f}")
        what = {"inline": "relay included", "after": "no relay running"}.get(
            args.relay, f"relay process: {relay_cpu:.2f} s more")
        print(f"accepted: {args.events / accepted_s:,.0f} events/s ({accepted_s:.2f} s); ingest CPU "
              f"{accepted_cpu:.2f} s meanwhile ({what}), "
              f"{args.events / accepted_cpu:,.0f} events per CPU second")
        since = "from the relay process's start, its start-up included" if args.relay == "after" else "end to end"
        print(f"published: {seen:,} on the topic, {seen / published_s:,.0f} events/s {since} ({published_s:.2f} s)")
        print(f"ingest peak RSS: {rss_mb(service.pid):.0f} MB"
              + (f", relay process {rss_mb(relay.pid):.0f} MB" if relay is not None else ""))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        return 0 if seen == args.events else 1
    finally:
        for process in (service, relay):
            if process is not None:
                process.terminate()
                process.wait(10)
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
