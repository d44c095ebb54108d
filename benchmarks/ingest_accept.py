"""The ingest accept use case alone: `service.accept` on parsed request bodies, no HTTP and no
relay, so a change to the accept path can be measured (and profiled) without the server around it.

    python benchmarks/ingest_accept.py [--db postgresql://127.0.0.1:5432/test] [--events 20000]
                                       [--batch 500] [--resend] [--profile]

The same snapshots as ingest_throughput.py (one source, 2,000 programs), parsed per request as
the HTTP door does (`api.parse_items`), accepted all or nothing into a fresh database (SQLite file, or a
fresh PostgreSQL schema) with access's real rights check against the same database. --resend
accepts every batch a second time (all duplicates). Prints events/s; with --profile, the top of a
cProfile by internal time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
import uuid

import psycopg

from benchmarks.ingest_throughput import snapshot
from services.common.auth import Access, Identity, Role
from services.common.db import Database, upgrade
from services.common.runtime import tune_gc
from services.common.settings import Settings
from services.ingest import service
from services.ingest.api import parse_items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--resend", action="store_true", help="then accept every batch again (duplicates)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    schema = None
    if args.db:
        schema = f"accept_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{args.db}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='ingest-accept-')}/ingest.db"
    try:
        upgrade(url, "ingest")
        settings = Settings(_env_file=None, database_url=url)
        access = Access.create(settings, "ingest")
        access.start()
        db = Database(url)
        policy = service.policy_from(settings)
        who = Identity(name="demo-system", role=Role.system, divisions=frozenset({"*"}))
        events = [snapshot(i) for i in range(args.events)]
        bodies = [json.dumps(events[i:i + args.batch]).encode() for i in range(0, len(events), args.batch)]
        del events  # the service holds only the requests in flight: no 20,000 dicts for the GC to walk
        tune_gc()  # as the service process does after starting
        rounds = [("accept", bodies)] + ([("resend", bodies)] if args.resend else [])
        profile = cProfile.Profile() if args.profile else None
        for name, batch_bodies in rounds:
            start, cpu = time.perf_counter(), time.process_time()
            if profile:
                profile.enable()
            for body in batch_bodies:
                items = parse_items(body)  # as the HTTP door parses a body
                outcome = service.accept(db, [service.Submission(item, who) for item in items], policy, access,
                                         all_or_nothing=True)
                assert not (outcome.rejected or outcome.forbidden or outcome.conflicts), outcome
            if profile:
                profile.disable()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            # CPU time too: on a shared machine the wall clock includes other processes' turns.
            print(f"{'postgresql' if args.db else 'sqlite'} {name}: {args.events:,} events in batches of "
                  f"{args.batch}: {elapsed:.2f}s, {args.events / elapsed:,.0f} events/s; CPU {cpu:.2f}s, "
                  f"{args.events / cpu:,.0f} events per CPU second; load {os.getloadavg()[0]:.2f}")
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        db.dispose()
    finally:
        if args.db and schema:
            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
