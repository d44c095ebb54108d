"""Replay: the budget service rebuilt from offset 0 into an empty database, against the view
the same events give when they arrive live, with the service's memory along the way.

    python benchmarks/budget_replay.py --programs 10000 --days 250      # 2,510,000 events
    python benchmarks/budget_replay.py --programs 2000 --days 250 --live-batch 100
    python benchmarks/budget_replay.py ... --db postgresql://127.0.0.1:5432/test

The stream: one budget line per program, then one cumulative execution snapshot per program per
working day (Mon–Fri) from 2 January, day by day for every program (how a nightly e-호조 load
looks); the days must end within the fiscal year (250 working days of 2025 end on 17 December,
so the year-end rule's look-back history, from 1 September, is exercised). Event ids are
deterministic and the events are generated as a stream (never held as a list), so the same
stream can be published and applied live without keeping millions of events in memory.

Real parts: the embedded tansu broker (memory storage: its RSS after the publish is printed),
the budget service as its own process (`python -m services.budget`, batches of 500, SQLite or a
fresh PostgreSQL schema). Its resident memory is sampled when 10 %, 50 % and 100 % of the events
are committed (current and peak RSS).

"Live" is the same stream applied in this process by `service.apply_batch` into a second empty
database, in stream order and in batches of `--live-batch` (the service instead commits batches
of up to 500 per partition, in partition order: different batch boundaries and interleaving).
`--live-every K` applies live only every K-th program's events (programs are independent in the
budget service: a program's view row and alerts depend only on its own events, and this stream
has no 과-level facts), and compares those programs: a deterministic reduction that keeps the
comparison affordable at millions of events. Compared: every column of the view but
`updated_at`, and the alert ids (which derive from the causing event ids). At 10/50/100 % of the
live apply the state cache of the live database is measured (programs held, snapshot points held,
deep size), which is what the service's cache holds at the same point of the replay.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlmodel import col, func, select

from benchmarks.budget_throughput import budget_process, drop_pg, fresh_pg, inbox_count, peak_rss_mb, rss_mb
from contracts import dump_event, parse_event
from services.budget import service
from services.budget.store import BudgetAlert, BudgetProgram
from services.common.db import Database, upgrade
from services.common.embedded import EmbeddedBroker
from services.common.messaging import ensure_topics
from services.common.settings import Settings

Event = tuple[bytes, bytes]  # (key, value)

_SNAPSHOT = (b'{"event_id":"%s","event_type":"budget.execution_snapshot","schema_version":1,'
             b'"occurred_at":"%sT20:00:00Z","source":"bench","correlation_id":null,"key":"%s",'
             b'"payload":{"program_id":"%s","fiscal_year":2025,"as_of":"%s","committed":%d,"spent":%d,'
             b'"revision":0,"current_budget":null,"source_ref":null}}')


def _event_id(kind: int, day: int, program: int) -> bytes:
    return str(uuid.UUID(int=(kind << 96) | (day << 32) | program)).encode()


def working_days(days: int, start: date = date(2025, 1, 2)) -> list[date]:
    out: list[date] = []
    d = start
    while len(out) < days:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    if out and out[-1].year != start.year:
        raise SystemExit(f"{days} working days from {start} end on {out[-1]}, past the fiscal year")
    return out


def program_lines(programs: int, every: int = 1) -> list[Event]:
    out = []
    for i in range(0, programs, every):
        pid = f"P{i:05d}"
        out.append((pid.encode(), dump_event(parse_event({
            "event_id": _event_id(1, 0, i).decode(), "event_type": "budget.line_set", "schema_version": 1,
            "occurred_at": "2025-01-01T09:00:00Z", "source": "bench", "key": pid,
            "payload": {"program_id": pid, "fiscal_year": 2025, "title": f"사업 {i}", "office": f"{i % 5}실",
                        "division": f"{i % 40}과", "original": 1_000_000_000 + i}}))))
    return out


def stream(programs: int, days: int, every: int = 1) -> Iterator[Event]:
    """The lines, then the snapshots day by day for every program (every `every`-th program).
    Bytes as `dump_event` writes them (checked on the first snapshot)."""
    yield from program_lines(programs, every)
    for d, as_of in enumerate(working_days(days)):
        day = as_of.isoformat().encode()
        for i in range(0, programs, every):
            pid = b"P%05d" % i
            spent = (d + 1) * (1_000_000 + (i % 7) * 500_000)
            yield pid, _SNAPSHOT % (_event_id(2, d, i), day, pid, pid, day, spent, spent)


def chunks(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    chunk: list[Event] = []
    for e in events:
        chunk.append(e)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def publish(bootstrap: str, topic: str, events: Iterable[Event]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    n = 0
    try:
        for chunk in chunks(events, 20_000):  # futures awaited per chunk: memory stays flat
            await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in chunk])
            n += len(chunk)
        await producer.flush()
    finally:
        await producer.stop()
    return n


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of `obj` and everything it references that was not counted before (dataclasses,
    containers, ints, dates; shared objects counted once)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    return size


def cache_report(db: Database) -> str:
    held = service.cache_of(db).held
    points = sum(len(h.history or ()) for h in held.values())
    seen: set[int] = set()
    total = deep_size(held, seen)
    history = deep_size([h.history for h in held.values() if h.history], set())  # shared dates once
    return (f"cache: {len(held):,} programs, {points:,} snapshot points ({points / max(1, len(held)):.0f} per "
            f"program), {total / 2**20:.1f} MB deep ({history / 2**20:.1f} MB of it history)")


def live(url: str, settings: Settings, events: Iterable[Event], total: int, batch: int, trace: bool) -> float:
    """Apply the stream in this process; with `trace`, what was allocated and is still held at
    50 % and 100 % against 10 % (tracemalloc, by line): growth with the events applied."""
    upgrade(url, "budget")
    db = Database(url)
    cfg = service.Config.from_settings(settings)
    marks = {int(total * p): f"{p:.0%}" for p in (0.1, 0.5, 1.0)}
    start, done, base = time.monotonic(), 0, None
    if trace:
        tracemalloc.start()
    for chunk in chunks(events, batch):
        service.apply_batch(db, cfg, [parse_event(v) for _, v in chunk])
        done += len(chunk)
        for mark in [m for m in marks if done >= m]:
            print(f"  live {marks.pop(mark):>4}: {done:>9,} applied at {time.monotonic() - start:6.1f}s, "
                  f"RSS {rss_mb(os.getpid()):.0f} MB, {cache_report(db)}", flush=True)
            if trace:
                gc.collect()
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                if base is None:
                    base = snap
                    continue
                stats = snap.compare_to(base, "lineno")
                print(f"    traced {sum(s.size for s in snap.statistics('filename')) / 2**20:.1f} MB, "
                      f"growth since 10 %: {sum(s.size_diff for s in stats) / 2**20:+.2f} MB; largest:")
                for stat in stats[:6]:
                    print(f"      {stat.size_diff / 2**10:+9.0f} KiB {stat.count_diff:+8,} blocks  {stat.traceback}")
    elapsed = time.monotonic() - start
    db.dispose()
    return elapsed


def committed(db: Database) -> int:
    """Events committed so far, cheaply: one line per program plus its applied snapshots (exact for
    this stream, where no event is stale or a duplicate; a count of the inbox would scan millions
    of rows every poll)."""
    with db.read() as s:
        n, snaps = s.exec(select(func.count(), func.coalesce(func.sum(col(BudgetProgram.snapshots)), 0))).one()
    return int(n) + int(snaps)


def view_of(db: Database, every: int) -> tuple[list[dict[str, Any]], list[str]]:
    keep = {f"P{i:05d}" for i in range(0, 100_000, every)}
    with db.read() as s:
        rows = [{k: v for k, v in r.model_dump().items() if k != "updated_at"}
                for r in s.exec(select(BudgetProgram).order_by(BudgetProgram.program_id)).all() if r.program_id in keep]
        alerts = sorted(a.event_id for a in s.exec(select(BudgetAlert)).all() if a.program_id in keep)
    return rows, alerts


def rss_split(pid: int) -> str:
    """Anonymous (heap) and file-backed resident memory: a growing file part is the database's
    pages mapped by SQLite, not the service's own objects."""
    with open(f"/proc/{pid}/status") as f:
        kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("RssAnon", "RssFile")}
    return f"anon {kb.get('RssAnon', 0) / 1024:.0f} MB, file {kb.get('RssFile', 0) / 1024:.0f} MB"


def load1() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--days", type=int, default=250, help="working days of snapshots from 2 January")
    ap.add_argument("--live-batch", type=int, default=100)
    ap.add_argument("--live-every", type=int, default=1, help="live: every K-th program only (and compared)")
    ap.add_argument("--live-only", action="store_true", help="only the live apply and its cache figures")
    ap.add_argument("--tracemalloc", action="store_true", help="live: memory still held at 50/100 %% vs 10 %%")
    ap.add_argument("--db", help="PostgreSQL URL (fresh schemas for replay and live); default SQLite")
    args = ap.parse_args()

    total = args.programs * (1 + args.days)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load {load1()}, {total:,} events "
          f"({args.programs:,} programs × (1 line + {args.days} working days "
          f"{working_days(args.days)[0]}…{working_days(args.days)[-1]}))", flush=True)
    broker = EmbeddedBroker.start()
    tmp = tempfile.mkdtemp(prefix="budget-replay-")
    schemas: list[str] = []
    try:
        if args.db:
            (replay_url, s1), (live_url, s2) = fresh_pg(args.db), fresh_pg(args.db)
            schemas += [s1, s2]
        else:
            replay_url, live_url = f"sqlite:///{tmp}/replay.db", f"sqlite:///{tmp}/live.db"
        prefix = f"replay{uuid.uuid4().hex[:6]}."
        settings = Settings(_env_file=None, kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix,
                            log_json=False, log_level="WARNING", consumer_batch_size=500,
                            consumer_batch_timeout_ms=50, consumer_session_timeout_ms=6000,
                            database_url=replay_url, budget_consumer_group=f"replay-{uuid.uuid4().hex[:6]}")
        ensure_topics(broker.bootstrap, prefix)
        first = next(e for i, e in enumerate(stream(1, 1)) if i == 1)[1]
        assert dump_event(parse_event(first)) == first, "the snapshot template drifted from the contract"

        if not args.live_only:
            t0 = time.monotonic()
            n = await publish(broker.bootstrap, settings.topic("execwatch.budget"), stream(args.programs, args.days))
            assert n == total
            pub_s = time.monotonic() - t0
            print(f"published {n:,} events in {pub_s:.1f}s ({n / pub_s:,.0f}/s); tansu RSS "
                  f"{rss_mb(broker.process.pid):,.0f} MB, this process {rss_mb(os.getpid()):,.0f} MB; "
                  f"load {load1()}", flush=True)

        live_total = len(range(0, args.programs, args.live_every)) * (1 + args.days)
        live_s = await asyncio.to_thread(live, live_url, settings, stream(args.programs, args.days, args.live_every),
                                         live_total, args.live_batch, args.tracemalloc)
        print(f"live: {live_total:,} events (every {args.live_every}. program) in batches of {args.live_batch} in "
              f"{live_s:.1f}s ({live_total / live_s:,.0f} events/s, apply only, no broker); load {load1()}", flush=True)
        gc.collect()
        if args.live_only:
            return

        db = Database(replay_url)
        upgrade(replay_url, "budget")
        marks = {int(total * p): f"{p:.0%}" for p in (0.1, 0.5, 1.0)}
        async with budget_process(settings) as proc:
            print(f"replay   0%: service up, RSS {rss_mb(proc.pid):.0f} MB, load {load1()}", flush=True)
            start, pending = time.monotonic(), sorted(marks)
            while pending:
                n = await asyncio.to_thread(committed, db)
                while pending and n >= pending[0]:
                    mark = pending.pop(0)
                    print(f"replay {marks[mark]:>4}: {n:>9,} committed at {time.monotonic() - start:6.1f}s, "
                          f"RSS {rss_mb(proc.pid):.0f} MB ({rss_split(proc.pid)}), peak RSS "
                          f"{peak_rss_mb(proc.pid):.0f} MB, load {load1()}", flush=True)
                await asyncio.sleep(0.5)
            replay_s = time.monotonic() - start
        print(f"replay: {total:,} events from offset 0 in {replay_s:.1f}s ({total / replay_s:,.0f} "
              f"events/s, including the service's start and group join); tansu RSS "
              f"{rss_mb(broker.process.pid):,.0f} MB", flush=True)
        inbox = inbox_count(db)
        replayed, live_view = view_of(db, args.live_every), view_of(Database(live_url), args.live_every)
        same = replayed == live_view
        print(f"inbox {inbox:,} events; same view as live: {same} ({len(replayed[0]):,} programs compared, "
              f"{len(replayed[1]):,} alerts)")
        if not same:
            diff = [(a, b) for a, b in zip(replayed[0], live_view[0], strict=False) if a != b][:3]
            print("first differences:", diff, len(replayed[1]), len(live_view[1]))
        db.dispose()
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        for schema in schemas:
            drop_pg(args.db or "", schema)


if __name__ == "__main__":
    asyncio.run(main())
