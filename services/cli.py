"""`execwatch`: run, operate and feed the execwatch services.

    execwatch up [--demo]            the whole system on this machine (embedded broker, SQLite)
    execwatch serve SERVICE          one service (what a container runs); ingest-relay: ingest's relay alone
    execwatch import FILE...         publish what business reports say, through ingest
    execwatch topics ensure|list     create / show the Kafka topics
    execwatch contracts write|check  regenerate / verify the committed JSON Schemas
    execwatch db upgrade|revision    Alembic migrations per service
    execwatch deadletter list        what was set aside, by which service, and why
    execwatch deadletter redrive     publish set-aside messages again (after a fix)
    execwatch notify redrive         send failed alert mails (and webhooks) again
    execwatch keys create|list|revoke|rotate|grant   API keys and publishing rights
    execwatch smtp-sink              a local mail server that prints what it receives
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from services.common.settings import SERVICES, ServiceName, get_settings


def _serve(args: argparse.Namespace) -> int:
    import importlib

    if args.service == "ingest-relay":  # ingest's outbox relay as its own process
        importlib.import_module("services.ingest.relay").main()
        return 0
    service: ServiceName = args.service
    module = importlib.import_module(f"services.{service}.app")
    module.main()
    return 0


def _up(args: argparse.Namespace) -> int:
    from services.local import run_local

    return run_local(demo=args.demo, workdir=args.workdir, clock=args.clock)


def _topics(args: argparse.Namespace) -> int:
    from contracts.topics import ALL_TOPICS
    from services.common.messaging import ensure_topics

    settings = get_settings()
    if args.action == "list":
        for spec in ALL_TOPICS:
            kinds = ", ".join(spec.event_types) or "-"
            print(f"{settings.topic(spec.name):32} {spec.partitions:>2} partitions  {kinds}\n    {spec.description}")
        return 0
    if not settings.kafka_bootstrap_servers:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    created = ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix,
                            replication=args.replication)
    print(f"created: {', '.join(created) or 'none (all exist)'}")
    return 0


def _contracts(args: argparse.Namespace) -> int:
    from contracts.schema_tool import (
        SCHEMA_DIR,
        check_against_committed,
        tightened_against_committed,
        write_schemas,
    )

    if args.action == "write":
        for path in write_schemas():
            print(path.relative_to(SCHEMA_DIR.parent.parent))
        return 0
    for notice in tightened_against_committed():
        print(f"notice (producers): tightened limit: {notice}")
    problems = check_against_committed()
    for problem in problems:
        print(problem, file=sys.stderr)
    print("contracts: compatible with the committed schemas" if not problems else
          f"contracts: {len(problems)} breaking change(s)")
    return 1 if problems else 0


def _db(args: argparse.Namespace) -> int:
    from alembic import command

    from services.common.db import alembic_config, redacted, upgrade

    settings = get_settings()
    services: Sequence[ServiceName] = [args.service] if args.service else SERVICES
    if args.action == "upgrade":
        for service in services:
            url = settings.database_url_for(service)
            upgrade(url, service)
            print(f"{service}: upgraded {redacted(url)}")
        if not args.service:  # the access tables every service reads
            upgrade(settings.auth_db_url, "auth")
            print(f"auth: upgraded {redacted(settings.auth_db_url)}")
        return 0
    if not args.service or not args.message:
        print("db revision needs SERVICE and -m MESSAGE", file=sys.stderr)
        return 2
    url = settings.database_url_for(args.service)
    upgrade(url, args.service)
    command.revision(alembic_config(url, args.service), message=args.message, autogenerate=True,
                     rev_id=args.rev_id)
    return 0


def _deadletter(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "list" and args.topic:
        return _deadletter_topic(args)
    if args.action == "redrive":
        return _redrive(args)
    from services.common.deadletters import stored_dead_letters

    services: Sequence[ServiceName] = [args.service] if args.service else SERVICES
    letters = stored_dead_letters(settings, services, args.limit, pending_only=args.pending)
    for d in letters:
        where = f"{d.topic}@{d.partition}:{d.offset}" if d.partition is not None else d.topic
        state = f"redriven {d.redriven_at:%Y-%m-%d %H:%M:%S}" if d.redriven_at else "pending"
        key = d.key.decode("utf-8", "replace") if d.key is not None else None
        print(f"{d.ref:14} {d.created_at:%Y-%m-%d %H:%M:%S} stage={d.stage} key={key} from {where} "
              f"{len(d.value)} bytes, {state}")
        print(f"    error: {d.error[:500]}")
        if args.show_value:
            print(f"    value: {d.value[:2000].decode('utf-8', 'replace')}")
    print(f"{len(letters)} dead letter(s)")
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from services.common.deadletters import redrive

    settings = get_settings()
    if not args.ids and not args.all:
        print("deadletter redrive needs SERVICE:ID... or --all", file=sys.stderr)
        return 2
    if not settings.kafka_bootstrap_servers:
        print("KAFKA_BOOTSTRAP_SERVERS is not set (and no running `execwatch up` was found)", file=sys.stderr)
        return 2
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")

    def publish(topic: str, key: bytes | None, value: bytes) -> None:
        producer.send(topic, value, key=key).get(timeout=30)  # confirmed before it is marked redriven

    try:
        done = redrive(settings, publish, args.ids, everything=args.all)
    except (ValueError, LookupError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        producer.close()
    for d in done:
        print(f"{d.ref:14} → {d.topic}")
    print(f"{len(done)} dead letter(s) redriven")
    return 0


def _deadletter_topic(args: argparse.Namespace) -> int:
    from services.common.deadletters import read_dead_letters

    settings = get_settings()
    if not settings.kafka_bootstrap_servers:
        print("KAFKA_BOOTSTRAP_SERVERS is not set (and no running `execwatch up` was found)", file=sys.stderr)
        return 2
    n = 0
    for d in read_dead_letters(settings.kafka_bootstrap_servers, settings.topic_prefix, args.limit):
        n += 1
        h = d.headers
        print(f"#{d.partition}:{d.offset} key={d.key} from {h.get('x-original-topic', '?')}"
              f"@{h.get('x-original-partition', '?')}:{h.get('x-original-offset', '?')} "
              f"service={h.get('x-error-service', '?')} stage={h.get('x-error-stage', '?')}")
        print(f"    error: {d.error[:500]}")
        if args.show_value:
            print(f"    value: {d.value[:2000].decode('utf-8', 'replace')}")
    print(f"{n} dead letter(s)")
    return 0


def _notify(args: argparse.Namespace) -> int:
    from services.common.db import Database, redacted, utcnow
    from services.notify.service import redrive

    settings = get_settings()
    url = settings.database_url_for("notify")
    db = Database(url)
    try:
        ids = redrive(db, settings, utcnow(), args.id or ())
    finally:
        db.dispose()
    print(f"notify: {len(ids)} failed deliver{'y' if len(ids) == 1 else 'ies'} queued again in {redacted(url)}"
          + (f" ({', '.join(map(str, ids))})" if ids else ""))
    print("the running notify service sends them within seconds; `GET /v1/notifications?status=failed` shows "
          "what is still failing")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from services.auth.cli import run

    return run(args)


def _smtp_sink(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from services.common.embedded import MailSink

    sink = MailSink(port=args.port, maildir=Path(args.maildir) if args.maildir else None, echo=True).start()
    print(f"SMTP sink on 127.0.0.1:{sink.port}" + (f", saving to {args.maildir}" if args.maildir else ""))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()
    return 0


def _import(args: argparse.Namespace) -> int:
    if getattr(args, "import_error", None):
        print(f"execwatch import is unavailable: {args.import_error}", file=sys.stderr)
        return 2
    from services.ingest.importer.cli import run

    return run(args)


def version() -> str:
    """The installed distribution's version (pyproject.toml), or "unknown" when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("execwatch")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="execwatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configuration comes from EXECWATCH_* environment variables (and .env); "
               "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are honoured too. See README.md.")
    parser.add_argument("--version", action="version", version=f"execwatch {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="run the whole system locally",
                       description="Start the embedded Kafka-protocol broker (unless KAFKA_BOOTSTRAP_SERVERS is "
                                   "set), an SMTP sink, and the four services; Ctrl-C stops everything.")
    p.add_argument("--demo", action="store_true", help="publish sample data from the seed reports once up")
    p.add_argument("--workdir", default="var", help="where SQLite files, logs and mails go (default: var)")
    p.add_argument("--clock", default=None, help="freeze the programs clock at this ISO date (demo replays)")
    p.set_defaults(func=_up)

    p = sub.add_parser("serve", help="run one service (HTTP API + Kafka consumers)",
                       description="Run one service in this process (what a container runs). ingest-relay: "
                                   "ingest's outbox relay on its own, for ingest processes started with "
                                   "EXECWATCH_INGEST_RELAY_INLINE=false (docs/operations.md).")
    p.add_argument("service", choices=[*SERVICES, "ingest-relay"])
    p.set_defaults(func=_serve)

    p = sub.add_parser("topics", help="create or list the Kafka topics")
    p.add_argument("action", choices=["ensure", "list"])
    p.add_argument("--replication", type=int, default=1, help="replication factor for new topics (default 1)")
    p.set_defaults(func=_topics)

    p = sub.add_parser("contracts", help="JSON Schemas of the event contracts")
    p.add_argument("action", choices=["write", "check"],
                   help="write: regenerate contracts/schemas; check: fail on breaking changes")
    p.set_defaults(func=_contracts)

    p = sub.add_parser("db", help="database migrations (Alembic, one history per service)")
    p.add_argument("action", choices=["upgrade", "revision"])
    p.add_argument("service", nargs="?", choices=SERVICES)
    p.add_argument("-m", "--message", help="revision message")
    p.add_argument("--rev-id", help="revision id, e.g. budget_0002")
    p.set_defaults(func=_db)

    p = sub.add_parser("deadletter", help="list or redrive what was dead-lettered, by whom and why",
                       description="Each service keeps what it set aside in its own database: messages it could "
                                   "not use (stage contract, auth, apply) and outbox rows the broker refused "
                                   "(stage relay). `redrive` publishes them again to the topic they came from; "
                                   "event ids make that safe.")
    p.add_argument("action", choices=["list", "redrive"])
    p.add_argument("ids", nargs="*", metavar="SERVICE:ID", help="redrive these (as listed, e.g. budget:17)")
    p.add_argument("--all", action="store_true", help="redrive every dead letter not redriven yet")
    p.add_argument("--service", choices=SERVICES, help="list only this service's")
    p.add_argument("--pending", action="store_true", help="list only those not redriven yet")
    p.add_argument("--limit", type=int, default=50, help="newest N per service (default 50)")
    p.add_argument("--show-value", action="store_true", help="also print the message (first 2,000 bytes)")
    p.add_argument("--topic", action="store_true",
                   help="list the execwatch.deadletter topic instead (headers as published; no group joined)")
    p.set_defaults(func=_deadletter)

    p = sub.add_parser("notify", help="operate the notify service's deliveries",
                       description="redrive: put failed deliveries (all, or --id) back in the queue with a new "
                                   "retry window, e.g. once the SMTP server is back.")
    p.add_argument("action", choices=["redrive"])
    p.add_argument("--id", type=int, action="append", help="only this delivery id (repeatable)")
    p.set_defaults(func=_notify)
    p = sub.add_parser("keys", help="API keys: create, list, revoke, rotate; grant publishing rights",
                       description="Keys are printed once and stored hashed; every change is audited. "
                                   "See docs/security.md.")
    from services.auth.cli import add_arguments as add_key_arguments

    add_key_arguments(p)
    p.set_defaults(func=_keys)

    p = sub.add_parser("smtp-sink", help="a local SMTP server that prints and keeps what it receives")
    p.add_argument("--port", type=int, default=1025)
    p.add_argument("--maildir", default=None, help="also save each message as an .eml file here")
    p.set_defaults(func=_smtp_sink)

    p = sub.add_parser("import", help="import business reports (업무보고, 추경, 보도자료) as events",
                       description="Parse reports in the plain-text form of shared/seeds and publish what they "
                                   "say through ingest, like any department system.")
    try:
        from services.ingest.importer.cli import add_arguments

        add_arguments(p)
    except ImportError as exc:  # keep every other command usable if the importer cannot load
        p.set_defaults(import_error=str(exc))
    p.set_defaults(func=_import)
    return parser


#: commands that start what they need themselves; every other one talks to what is running
_STARTING = {"up", "serve", "smtp-sink"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _STARTING.intersection(argv[:1]):
        from services.local import apply_discovery

        # Beside a running `execwatch up`: its broker, databases and ports, unless the environment says otherwise.
        if apply_discovery(os.environ) is not None:
            get_settings.cache_clear()
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
