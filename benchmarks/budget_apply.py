"""The budget apply step alone: `service.apply_batch` on pre-decoded events, no broker, so a
change to the batch path can be measured (and profiled) without the consumer around it.

    python benchmarks/budget_apply.py [--db postgresql://127.0.0.1:5432/test] [--programs 2000]
                                      [--days 20] [--batch 500] [--profile]

2,000 budget lines, then daily cumulative snapshots of every program (as budget_throughput.py
publishes them), applied in batches into a fresh database (SQLite file, or a fresh PostgreSQL
schema). Prints events/s; with --profile, the top of a cProfile by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import tempfile
import time
import uuid

import psycopg

from benchmarks.budget_throughput import lines, snapshots
from contracts import parse_event
from services.budget import service
from services.common.db import Database, upgrade
from services.common.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--profile", nargs="?", const="cumulative", choices=("cumulative", "self"),
                    help="print a cProfile, by cumulative (default) or own time")
    args = ap.parse_args()

    schema = None
    if args.db:
        schema = f"apply_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{args.db}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='budget-apply-')}/budget.db"
    try:
        upgrade(url, "budget")
        db = Database(url)
        cfg = service.Config.from_settings(Settings(_env_file=None))
        events = [parse_event(v) for _, v in lines(args.programs) + snapshots(args.programs, args.days)]
        batches = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]
        # The service decodes one batch at a time; here every event is decoded up front, and
        # hundreds of thousands of live objects would make each full garbage collection during
        # the apply scan them (8 % of the apply in a profile): they are set aside from the GC.
        gc.collect()
        gc.freeze()
        profile = cProfile.Profile() if args.profile else None
        start, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        for batch in batches:
            service.apply_batch(db, cfg, batch)
        if profile:
            profile.disable()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        # This process's CPU time beside the wall time: on a shared machine the wall time
        # swings with the load, the CPU time much less (PostgreSQL's own work is not in it).
        print(f"{'postgresql' if args.db else 'sqlite'}: {len(events):,} events in batches of {args.batch}: "
              f"{elapsed:.2f}s, {len(events) / elapsed:,.0f} events/s; this process's CPU {cpu:.2f}s, "
              f"{len(events) / cpu:,.0f} events per CPU-second; load {os.getloadavg()[0]:.2f}")
        if profile:
            pstats.Stats(profile).sort_stats("tottime" if args.profile == "self" else "cumulative").print_stats(40)
        db.dispose()
    finally:
        if args.db and schema:
            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
