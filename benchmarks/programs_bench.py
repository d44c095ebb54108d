"""Programs: the import of every seed report, a year of daily checks over it, and a large
synthetic replay of the daily checks (`service.replay`, what `python -m services.programs
--as-of … --replay-from …` runs). No broker: the use cases on decoded events, as the consumer
calls them, into a fresh database (SQLite file, or a fresh PostgreSQL schema).

    python benchmarks/programs_bench.py seeds [--db postgresql://127.0.0.1:5432/test]
    python benchmarks/programs_bench.py synthetic --programs 2000 --milestones 5 --days 250 [--db …]
    … [--profile]                       # cProfile of the timed part, top 30 by internal time

seeds: every seed report mapped by the importer (as `execwatch up --demo` does); the program
events (program.registered, milestone.set, target.set) applied in batches of 500 on 2025-02-15,
then the daily checks replayed from 2025-01-01 through 2025-12-31.

synthetic: N programs with M milestones each (windows spread over the year, one in five moved
later by a second report), applied in batches of 500, then the daily checks replayed over D days
from 2025-01-01: N × M × D milestone checks. Prints the times, rates and alert counts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from contracts import AnyEvent, MilestoneSetEvent, ProgramRegisteredEvent, TargetSetEvent, deterministic_id, parse_event
from services.common.db import Database, upgrade
from services.common.settings import Settings
from services.programs import service
from tests import factories as f

PROGRAM_EVENTS = (ProgramRegisteredEvent, MilestoneSetEvent, TargetSetEvent)


@contextmanager
def fresh_db(url: str | None) -> Iterator[Database]:
    schema = None
    if url:
        schema = f"programs_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        db_url = f"{url}?options=-csearch_path%3D{schema}"
    else:
        db_url = f"sqlite:///{tempfile.mkdtemp(prefix='programs-bench-')}/programs.db"
    try:
        upgrade(db_url, "programs")
        db = Database(db_url)
        yield db
        db.dispose()
    finally:
        if url and schema:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def seed_program_events() -> list[AnyEvent]:
    from services.ingest.importer.cli import map_files
    from tests.conftest import SEEDS

    summary = map_files(sorted(SEEDS.glob("*.txt")), progress=False)
    events = [parse_event(e.model_dump(mode="json")) for e in summary.envelopes]
    return [e for e in events if isinstance(e, PROGRAM_EVENTS)]


def synthetic_events(programs: int, milestones: int) -> list[AnyEvent]:
    def stamped(data: dict[str, Any], name: str, day: date) -> AnyEvent:
        data["event_id"] = str(deterministic_id("bench", name))
        data["occurred_at"] = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).isoformat()
        return parse_event(data)

    out: list[AnyEvent] = []
    first = date(2025, 2, 1)
    for p in range(programs):
        pid = f"P{p:05d}"
        out.append(stamped(f.program(pid=pid, title=f"사업 {p}", division=f"과{p % 9}"), f"{pid}", first))
        for m in range(milestones):
            start = date(2025, 1, 15) + timedelta(days=(p * 7 + m * 53) % 300)
            end = start + timedelta(days=20 + (p + m) % 40)
            out.append(stamped(f.milestone(pid=pid, mid=f"M{m}", start=start, end=end), f"{pid}-M{m}", first))
    for p in range(0, programs, 5):  # a later report moves one milestone in five programs
        pid = f"P{p:05d}"
        start = date(2025, 1, 15) + timedelta(days=(p * 7) % 300)
        end = start + timedelta(days=50 + p % 40)
        out.append(stamped(f.milestone(pid=pid, mid="M0", start=start, end=end), f"{pid}-M0-moved",
                           date(2025, 3, 1)))
    return out


def count(db: Database, table: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def timed(profile: cProfile.Profile | None, work: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    if profile:
        profile.enable()
    result = work()
    if profile:
        profile.disable()
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["seeds", "synthetic"])
    ap.add_argument("--db", help="PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--milestones", type=int, default=5)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--profile", choices=["apply", "replay"])
    args = ap.parse_args()

    cfg = service.Config.from_settings(Settings(_env_file=None))
    if args.mode == "seeds":
        events, today = seed_program_events(), date(2025, 2, 15)
        start, end = date(2025, 1, 1), date(2025, 12, 31)
    else:
        events, today = synthetic_events(args.programs, args.milestones), date(2025, 2, 1)
        start = date(2025, 1, 1)
        end = start + timedelta(days=args.days - 1)
    kinds = {t.__name__: sum(isinstance(e, t) for e in events) for t in PROGRAM_EVENTS}
    label = "postgresql" if args.db else "sqlite"
    with fresh_db(args.db) as db:
        batches = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]
        profile = cProfile.Profile() if args.profile == "apply" else None
        elapsed, results = timed(profile, lambda: [service.apply_batch(db, cfg, b, today) for b in batches])
        alerts = sum(r.alerts for r in results)
        print(f"{label} {args.mode} apply: {len(events):,} events {kinds} in batches of {args.batch}: "
              f"{elapsed:.2f}s, {len(events) / elapsed:,.0f} events/s, {alerts} alerts")
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        if args.skip_replay:
            return
        milestones = count(db, "programs_milestone")
        days = (end - start).days + 1
        profile = cProfile.Profile() if args.profile == "replay" else None
        elapsed, result = timed(profile, lambda: service.replay(db, cfg, start, end))
        checks = milestones * days
        print(f"{label} {args.mode} replay {start}..{end}: {milestones:,} milestones × {days} days = {checks:,} "
              f"milestone checks: {elapsed:.2f}s, {checks / elapsed:,.0f} checks/s, "
              f"{elapsed / days * 1000:.0f} ms/day, "
              f"{result.alerts} alert changes, outbox {count(db, 'programs_outbox'):,} rows")
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
