"""The access tables, one Alembic history (`auth`) in the database every service reads
identities from (`EXECWATCH_AUTH_DATABASE_URL`, by default the shared DATABASE_URL).

Only hashes of API keys are kept: sha256 of a 256-bit random key is enough (no password, so no
slow hash is needed). The audit log is append-only; nothing here is ever updated in place except
a key's revocation and its publishing rights (both audited)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select

from services.common import bulk
from services.common.db import Database, upgrade, utcnow

KEY_PREFIX = "ewk_"  # execwatch key: ewk_<id>_<secret>; the id finds the row, the hash checks the secret


def _dt(index: bool = False) -> Any:
    return Field(default=None, index=index, sa_type=sa.DateTime(timezone=True), nullable=True)


class AuthKey(SQLModel, table=True):
    __tablename__ = "auth_key"
    id: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=100, index=True, description="system name (= event source), or a person")
    role: str = Field(max_length=20)
    divisions: list[str] = Field(default_factory=list, sa_type=sa.JSON,
                                 description="system: 과 it may publish for ('*' = all); staff: their 과")
    office: str | None = Field(default=None, max_length=100, description="staff: their 실")
    email: str | None = Field(default=None, max_length=300)
    title: str | None = Field(default=None, max_length=20, description="staff: 담당 / 팀장 / 과장")
    key_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    created_by: str = Field(default="cli", max_length=100)
    revoked_at: datetime | None = _dt()
    expires_at: datetime | None = _dt()
    note: str | None = None


class AuthAudit(SQLModel, table=True):
    """Who did what, when, from where: acks, silences, key and publishing-rights changes."""

    __tablename__ = "auth_audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), index=True)
    actor: str = Field(max_length=300)
    actor_role: str = Field(max_length=20)
    action: str = Field(max_length=40, index=True)
    target: str = Field(max_length=300)
    client: str | None = Field(default=None, max_length=100, description="client address, or 'cli'")
    service: str = Field(max_length=20)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class AuthUsedLink(SQLModel, table=True):
    """Sign-in links already used: a link works once."""

    __tablename__ = "auth_used_link"
    link_id: str = Field(primary_key=True, max_length=64)
    used_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)


class AuthProgramOwner(SQLModel, table=True):
    """Which 과 a program belongs to, as first published: the basis of publishing rights for events
    that name only the program (snapshots, milestones, targets)."""

    __tablename__ = "auth_program_owner"
    program_id: str = Field(primary_key=True, max_length=200)
    division: str = Field(max_length=100)
    office: str | None = Field(default=None, max_length=100)
    source: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, the full key): the key is shown once and only its hash is stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, _ = key.removeprefix(KEY_PREFIX).partition("_")
    return key_id if sep and key_id else None


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    actor_role: str
    action: str
    target: str
    client: str | None
    service: str
    detail: dict[str, Any]


class KeyStore:
    """The access tables behind one database (opened once per service process)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    def migrate(self) -> None:
        upgrade(self.db.url, "auth")

    def dispose(self) -> None:
        self.db.dispose()

    # --- keys ----------------------------------------------------------------------------------

    def create(self, *, name: str, role: str, divisions: Sequence[str] = (), office: str | None = None,
               email: str | None = None, title: str | None = None, created_by: str = "cli",
               note: str | None = None, expires_at: datetime | None = None) -> tuple[AuthKey, str]:
        key_id, key = new_key()
        row = AuthKey(id=key_id, name=name, role=role, divisions=list(divisions), office=office, email=email,
                      title=title, key_hash=hash_key(key), created_by=created_by, note=note, expires_at=expires_at)
        with self.db.unit_of_work() as s:
            s.add(row)
        return row, key

    def lookup(self, key: str, now: datetime) -> AuthKey | None:
        """The live key row for this key, compared in constant time; None when unknown."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        with self.db.read() as s:
            row = s.get(AuthKey, key_id)
        if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
            return None
        if any(t is not None and _aware(t) <= now for t in (row.revoked_at, row.expires_at)):
            return None
        return row

    def keys(self, include_revoked: bool = False) -> list[AuthKey]:
        with self.db.read() as s:
            stmt = select(AuthKey).order_by(col(AuthKey.name), col(AuthKey.created_at))
            if not include_revoked:
                stmt = stmt.where(col(AuthKey.revoked_at).is_(None))
            return list(s.exec(stmt).all())

    def find(self, ref: str) -> list[AuthKey]:
        """Live keys by id or by name."""
        with self.db.read() as s:
            return list(s.exec(select(AuthKey).where(
                sa.or_(col(AuthKey.id) == ref, col(AuthKey.name) == ref), col(AuthKey.revoked_at).is_(None))).all())

    def revoke(self, key_id: str, when: datetime | None = None) -> AuthKey | None:
        with self.db.unit_of_work() as s:
            row = s.get(AuthKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = when or utcnow()
                s.add(row)
            return row

    def set_divisions(self, key_id: str, divisions: Sequence[str]) -> AuthKey | None:
        with self.db.unit_of_work() as s:
            row = s.get(AuthKey, key_id)
            if row is None:
                return None
            row.divisions = list(divisions)
            s.add(row)
            return row

    # --- audit ---------------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        with self.db.unit_of_work() as s:
            s.add(AuthAudit(actor=entry.actor[:300], actor_role=entry.actor_role, action=entry.action,
                            target=entry.target[:300], client=entry.client, service=entry.service,
                            detail=entry.detail))

    def audit_log(self, *, action: str | None = None, actor: str | None = None, since: datetime | None = None,
                  limit: int = 100, offset: int = 0) -> list[AuthAudit]:
        stmt = select(AuthAudit)
        if action:
            stmt = stmt.where(AuthAudit.action == action)
        if actor:
            stmt = stmt.where(AuthAudit.actor == actor)
        if since:
            stmt = stmt.where(col(AuthAudit.at) >= since)
        with self.db.read() as s:
            return list(s.exec(stmt.order_by(col(AuthAudit.id).desc()).offset(offset).limit(limit)).all())

    # --- sign-in links -------------------------------------------------------------------------

    def use_link(self, link_id: str, expires_at: datetime) -> bool:
        """Mark a sign-in link used; False if it already was (a link works once)."""
        try:
            with self.db.unit_of_work() as s:
                s.add(AuthUsedLink(link_id=link_id, expires_at=expires_at))
            return True
        except IntegrityError:
            return False

    # --- program owners ------------------------------------------------------------------------

    def owners(self, program_ids: Sequence[str]) -> dict[str, str]:
        if not program_ids:
            return {}
        # Plain DB-API: ingest asks for every program of a request of hundreds of events.
        with self.db.read() as s:
            sql = "SELECT program_id, division FROM auth_program_owner WHERE program_id IN ({})"
            return {pid: division for pid, division in bulk.select_in(s.connection(), sql, program_ids)}

    def claim(self, claims: dict[str, tuple[str, str | None]], source: str) -> None:
        """Record the 과 of programs seen for the first time (later events cannot move them)."""
        if not claims:
            return
        for attempt in (1, 2):
            try:
                with self.db.unit_of_work() as s:
                    known = set(s.exec(select(AuthProgramOwner.program_id).where(
                        col(AuthProgramOwner.program_id).in_(list(claims)))))
                    s.add_all([AuthProgramOwner(program_id=p, division=d, office=o, source=source)
                               for p, (d, o) in claims.items() if p not in known])
                return
            except IntegrityError:
                if attempt == 2:
                    raise


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
