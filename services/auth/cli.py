"""`execwatch keys`: create, list, revoke, rotate API keys and grant publishing rights.

A key is printed once, when it is made; only its sha256 is stored. Every change is written to
the audit log with the operating-system user who made it."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import timedelta

from services.auth.store import AuditEntry, AuthKey, KeyStore
from services.common.db import utcnow
from services.common.settings import get_settings

ROLES = ("system", "staff", "operator", "auditor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("create", help="make a key (printed once)")
    p.add_argument("name", help="system name (= the `source` of its events) or the person")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--division", action="append", default=[],
                   help="system: a 과 it may publish for ('*' = every 과); staff: their 과 (repeatable)")
    p.add_argument("--office", help="staff: their 실")
    p.add_argument("--email", help="staff: their address")
    p.add_argument("--title", choices=["담당", "팀장", "과장"], help="staff: their position")
    p.add_argument("--expires-days", type=int, default=None, help="the key stops working after this many days")
    p.add_argument("--note", default=None)
    p = sub.add_parser("list", help="the keys (never the keys themselves)")
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("revoke", help="stop a key at once")
    p.add_argument("key", help="key id, or a name (every live key of that name)")
    p = sub.add_parser("rotate", help="a new key with the same rights; the old one stops (after --grace-hours)")
    p.add_argument("key", help="key id")
    p.add_argument("--grace-hours", type=float, default=0.0, help="keep the old key working this long")
    p = sub.add_parser("grant", help="set the 과 a system may publish for (replaces the list)")
    p.add_argument("key", help="key id")
    p.add_argument("--division", action="append", default=[], required=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _audit(store: KeyStore, action: str, target: str, **detail: object) -> None:
    store.audit(AuditEntry(actor=_actor(), actor_role="operator", action=action, target=target, client="cli",
                           service="cli", detail={k: v for k, v in detail.items() if v is not None}))


def _describe(row: AuthKey) -> str:
    rights = ",".join(row.divisions or []) or "-"
    expiry = f"expires {row.expires_at.isoformat()[:16]}" if row.expires_at else "live"
    state = f"revoked {row.revoked_at.isoformat()[:16]}" if row.revoked_at else expiry
    extra = " ".join(x for x in (row.title, row.office, row.email) if x)
    return f"{row.id}  {row.role:8} {row.name:24} 과={rights}  {extra}  {state}".rstrip()


def _one(store: KeyStore, ref: str) -> AuthKey | None:
    rows = store.find(ref)
    if len(rows) != 1:
        print(f"{ref}: {'no live key' if not rows else 'several keys; give the key id'}", file=sys.stderr)
        return None
    return rows[0]


def run(args: argparse.Namespace, store: KeyStore | None = None) -> int:
    store = store or KeyStore(get_settings().auth_db_url)
    store.migrate()
    if args.action == "create":
        if args.role == "system" and not args.division:
            print("a system needs --division (or --division '*' for every 과)", file=sys.stderr)
            return 2
        if args.role == "staff" and not (args.division and args.email):
            print("staff need --division and --email", file=sys.stderr)
            return 2
        expires = utcnow() + timedelta(days=args.expires_days) if args.expires_days else None
        row, key = store.create(name=args.name, role=args.role, divisions=args.division, office=args.office,
                                email=args.email, title=args.title, created_by=_actor(), note=args.note,
                                expires_at=expires)
        _audit(store, "key.create", row.id, name=row.name, role=row.role, divisions=row.divisions)
        print(_describe(row))
        print(f"key (shown once; keep it secret): {key}")
        return 0
    if args.action == "list":
        rows = store.keys(include_revoked=args.all)
        if args.json:
            print(json.dumps([r.model_dump(mode="json", exclude={"key_hash"}) for r in rows], ensure_ascii=False))
        else:
            for r in rows:
                print(_describe(r))
        return 0
    if args.action == "revoke":
        rows = store.find(args.key)
        if not rows:
            print(f"{args.key}: no live key", file=sys.stderr)
            return 1
        for r in rows:
            store.revoke(r.id)
            _audit(store, "key.revoke", r.id, name=r.name, role=r.role)
            print(f"revoked {r.id} ({r.name})")
        return 0
    old = _one(store, args.key)
    if old is None:
        return 1
    if args.action == "grant":
        store.set_divisions(old.id, args.division)
        _audit(store, "rights.change", old.id, name=old.name, before=old.divisions, after=args.division)
        print(f"{old.id} ({old.name}) may now publish for: {', '.join(args.division)}")
        return 0
    # rotate
    row, key = store.create(name=old.name, role=old.role, divisions=old.divisions, office=old.office,
                            email=old.email, title=old.title, created_by=_actor(), note=old.note,
                            expires_at=old.expires_at)
    store.revoke(old.id, utcnow() + timedelta(hours=args.grace_hours))
    _audit(store, "key.rotate", old.id, new_key=row.id, name=old.name, grace_hours=args.grace_hours)
    print(_describe(row))
    print(f"key (shown once; keep it secret): {key}")
    print(f"old key {old.id} stops " + (f"in {args.grace_hours:g} h" if args.grace_hours else "now"))
    return 0
