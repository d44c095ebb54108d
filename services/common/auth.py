"""Access: who is calling, and what their role lets them do (docs/security.md).

Every route declares one rule, as a dependency: `Annotated[Identity, Depends(require(Role...))]`
(or one of the aliases below), or `public` for what stays open (health, metrics, the signed
links). `unruled_routes(app)` lists routes without one; a service refuses to start with any,
and a test walks every app.

Credentials, all sent as `Authorization: Bearer <token>`:
- API keys `ewk_<id>_<secret>` (systems, operators, auditors, staff), stored as sha256 hashes in
  the `auth` tables (services/auth/store.py), managed with `execwatch keys`;
- staff sessions `ews_…`, signed (HMAC-SHA256, EXECWATCH_AUTH_SECRET) and short-lived, given in
  exchange for a one-time sign-in link mailed to the address the reports list for them;
- the publisher tokens of EXECWATCH_INGEST_SOURCES (configured systems, every division).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, routing
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from contracts import AnyEvent
from services.auth.store import KEY_PREFIX, AuditEntry, AuthKey, KeyStore
from services.common.logging import get_logger
from services.common.settings import DEMO_ACK_SECRET, DEMO_AUTH_SECRET, DEMO_TOKENS, Settings

log = get_logger(__name__)

SESSION_PREFIX = "ews_"
LINK_PREFIX = "ewl_"
SESSION_COOKIE = "execwatch_session"
ALL_DIVISIONS = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RULE_ATTR = "__execwatch_rule__"

# Documents the scheme in /openapi.json ("Authorize" in /docs); checking is done by `require`.
_bearer_scheme = HTTPBearer(auto_error=False, description="API key, staff session or publisher token")


class Role(StrEnum):
    system = "system"      # a department system: publishes for its granted 과
    staff = "staff"        # 담당 / 팀장 / 과장 of a 과
    operator = "operator"  # runs execwatch: everything
    auditor = "auditor"    # reads everything, changes nothing


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    divisions: frozenset[str] = frozenset()
    office: str | None = None
    email: str | None = None
    title: str | None = None  # staff: 담당 / 팀장 / 과장
    key_id: str | None = None
    via: str = "key"  # key, session, config

    @property
    def label(self) -> str:
        """How acknowledgements and the audit log name this caller."""
        who = f"{self.title} {self.name}" if self.title else self.name
        return f"{who} <{self.email}>" if self.email else who

    def may_publish(self, division: str | None) -> bool:
        if self.role == Role.operator or ALL_DIVISIONS in self.divisions:
            return True
        return division is not None and division in self.divisions

    def owns(self, division: str | None) -> bool:
        """May act on this 과's alerts: operators anywhere, staff in their own 과."""
        if self.role == Role.operator:
            return True
        return self.role == Role.staff and division is not None and division in self.divisions

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["divisions"] = sorted(self.divisions)
        return out


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    public: bool = False

    def allows(self, role: Role | None) -> bool:
        return self.public or (role is not None and role in self.roles)


# --- limits ----------------------------------------------------------------------------------------


class RateLimiter:
    """At most `limit` hits per key in a sliding `window` seconds; in memory, per process."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            self._hits.pop(key, None)
            hits = self._hits.setdefault(key, deque())
        return hits

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait when the key is over its limit, else None (does not count a hit)."""
        hits = self._recent(key)
        if len(hits) < self.limit:
            return None
        return max(1, math.ceil(hits[0] + self.window - self.clock()))

    def hit(self, key: str) -> int | None:
        """Count a hit; seconds to wait if this one is over the limit."""
        wait = self.retry_after(key)
        if wait is None:
            self._recent(key).append(self.clock())
        return wait


def too_many(retry_after: int) -> HTTPException:
    return HTTPException(429, "too many requests; retry later", headers={"Retry-After": str(retry_after)})


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="execwatch"'})


# --- signed tokens (sessions, sign-in links) --------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, prefix: str, claims: dict[str, Any]) -> str:
    body = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    mac = hmac.new(secret.encode(), f"{prefix}{body}".encode(), hashlib.sha256).digest()
    return f"{prefix}{body}.{_b64(mac)}"


def verify(secret: str, prefix: str, token: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a token this secret signed for this purpose and not expired; else None."""
    if not token.startswith(prefix) or token.count(".") != 1:
        return None
    body, mac = token.removeprefix(prefix).split(".")
    expected = hmac.new(secret.encode(), f"{prefix}{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= now.timestamp():
        return None
    return claims


def staff_claims(identity: Identity, ttl_s: int, now: datetime) -> dict[str, Any]:
    return {"sub": identity.name, "email": identity.email, "div": sorted(identity.divisions),
            "office": identity.office, "title": identity.title, "exp": int(now.timestamp()) + ttl_s}


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    return Identity(name=str(claims["sub"]), role=Role.staff, divisions=frozenset(claims.get("div") or ()),
                    office=claims.get("office"), email=claims.get("email"), title=claims.get("title"),
                    via="session")


def login_link_token(secret: str, identity: Identity, ttl_s: int, now: datetime) -> str:
    return sign(secret, LINK_PREFIX, {**staff_claims(identity, ttl_s, now), "jti": secrets.token_hex(16)})


def session_token(secret: str, identity: Identity, ttl_s: int, now: datetime) -> str:
    return sign(secret, SESSION_PREFIX, staff_claims(identity, ttl_s, now))


# --- start checks ----------------------------------------------------------------------------------


def startup_problems(settings: Settings) -> list[str]:
    """Why this configuration must not serve outside the demo (empty when it may)."""
    if settings.demo:
        return []
    problems = []
    demo_sources = sorted(s for s, t in settings.ingest_sources.items() if t.get_secret_value() in DEMO_TOKENS)
    if demo_sources:
        problems.append(f"EXECWATCH_INGEST_SOURCES has demo tokens for {', '.join(demo_sources)}")
    if settings.auth_secret.get_secret_value() == DEMO_AUTH_SECRET or len(settings.auth_secret) < 16:
        problems.append("EXECWATCH_AUTH_SECRET is the demo secret or shorter than 16 characters")
    if settings.notify_ack_secret.get_secret_value() == DEMO_ACK_SECRET or len(settings.notify_ack_secret) < 16:
        problems.append("EXECWATCH_NOTIFY_ACK_SECRET is the demo secret or shorter than 16 characters")
    return problems


@dataclass(frozen=True)
class RouteInfo:
    """An API route as the app serves it (prefixes of included routers applied)."""

    path: str
    methods: frozenset[str]
    rule: Rule | None


def _rule_in(dependant: Any, extra: Iterable[Any] = ()) -> Rule | None:
    """The first dependency (at any depth) made by `require`/`public`."""
    stack = [dependant, *(getattr(d, "dependency", None) for d in extra)]
    while stack:
        dep = stack.pop()
        if dep is None:
            continue
        rule = getattr(getattr(dep, "call", dep), RULE_ATTR, None)
        if isinstance(rule, Rule):
            return rule
        stack.extend(getattr(dep, "dependencies", None) or [])
    return None


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route of the app, included routers flattened (FastAPI keeps them nested)."""
    contexts: Iterable[Any] = routing.iter_route_contexts(app.routes) if hasattr(routing, "iter_route_contexts") \
        else app.routes
    out = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        if not isinstance(original, APIRoute):
            continue
        dependant = getattr(ctx, "dependant", None) or original.dependant
        rule = _rule_in(dependant, getattr(ctx, "dependencies", None) or ()) or _rule_in(original.dependant)
        out.append(RouteInfo(str(ctx.path), frozenset(ctx.methods or ()), rule))
    return out


def unruled_routes(app: FastAPI) -> list[str]:
    return [f"{sorted(r.methods)} {r.path}" for r in api_routes(app) if r.rule is None]


# --- the per-process access object ------------------------------------------------------------------


@dataclass
class Access:
    settings: Settings
    service: str
    store: KeyStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    failures: RateLimiter = field(init=False)
    writes: RateLimiter = field(init=False)
    links: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.failures = RateLimiter(self.settings.auth_failures_per_min)
        self.writes = RateLimiter(self.settings.auth_writes_per_min)
        self.links = RateLimiter(self.settings.auth_failures_per_min)  # sign-in mails per address
        self._config = {s: t.get_secret_value() for s, t in self.settings.ingest_sources.items()}

    @classmethod
    def create(cls, settings: Settings, service: str) -> Access:
        return cls(settings, service, KeyStore(settings.auth_db_url))

    def start(self) -> None:
        """Bring the access tables to head; when several services start at once on one database,
        one of them wins the race and the others find the tables there."""
        for attempt in range(3):
            try:
                self.store.migrate()
                return
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(1.0 + attempt)

    @property
    def secret(self) -> str:
        return self.settings.auth_secret.get_secret_value()

    # --- resolving credentials -------------------------------------------------------------------

    def resolve(self, token: str) -> Identity | None:
        """The identity behind a bearer token, or None (unknown, revoked, expired, forged)."""
        now = self.clock()
        if token.startswith(KEY_PREFIX):
            row = self.store.lookup(token, now)
            return identity_of_key(row) if row else None
        if token.startswith(SESSION_PREFIX):
            claims = verify(self.secret, SESSION_PREFIX, token, now)
            return identity_from_claims(claims) if claims else None
        found = None
        for source, expected in self._config.items():  # constant time over every configured token
            if hmac.compare_digest(expected.encode(), token.encode()):
                found = source
        if found is None:
            return None
        return Identity(name=found, role=Role.system, divisions=frozenset({ALL_DIVISIONS}), via="config")

    async def identify(self, request: Request) -> Identity | None:
        """The caller of this request, None when anonymous; 401 for a bad credential and 429 when
        this address or this credential failed too often."""
        header = request.headers.get("authorization")
        token: str | None
        if header is not None:
            scheme, _, rest = header.partition(" ")
            token = rest.strip() if scheme.lower() == "bearer" else None
            if not token:
                await self._failed(request, header, "send Authorization: Bearer <token>")
        else:
            token = request.cookies.get(SESSION_COOKIE)
            if not token:
                return None
        assert token is not None
        wait = self.failures.retry_after(f"addr:{client_of(request)}") or self.failures.retry_after(
            f"cred:{_fingerprint(token)}")
        if wait:
            raise too_many(wait)
        who = await asyncio.to_thread(self.resolve, token)
        if who is None:
            await self._failed(request, token, "unknown, revoked or expired credential")
        assert who is not None
        return who

    async def _failed(self, request: Request, credential: str, detail: str) -> None:
        a = self.failures.hit(f"addr:{client_of(request)}")
        b = self.failures.hit(f"cred:{_fingerprint(credential)}")
        log.info("authentication failed", client=client_of(request), path=request.url.path)
        if a or b:
            raise too_many(max(a or 0, b or 0))
        raise unauthorized(detail)

    def limit_write(self, request: Request, who: Identity) -> None:
        wait = self.writes.hit(f"who:{who.role}:{who.key_id or who.label}") or self.writes.hit(
            f"addr:{client_of(request)}")
        if wait:
            raise too_many(wait)

    # --- audit -----------------------------------------------------------------------------------

    async def audit(self, request: Request | None, who: Identity | None, action: str, target: str,
                    **detail: Any) -> None:
        """Record an action; `who` None is an anonymous holder of a signed link (named by `by`)."""
        actor = who.label if who else f"link: {detail.get('by') or 'anonymous'}"
        entry = AuditEntry(actor=actor, actor_role=str(who.role) if who else "link", action=action, target=target,
                           client=client_of(request) if request else "cli", service=self.service,
                           detail={k: v for k, v in detail.items() if v is not None})
        await asyncio.to_thread(self.store.audit, entry)
        log.info("audit", action=action, actor=actor, target=target, client=entry.client)

    # --- publishing rights -----------------------------------------------------------------------

    def publish_problems(self, who: Identity, events: Sequence[AnyEvent]) -> list[tuple[int, str]]:
        """(index, why) for each event this publisher may not publish: a program of a 과 it is not
        granted, by what the event says and by whom the program was first published for."""
        if who.may_publish(None):  # every 과 granted (an operator, a system by its configured token):
            return []              # `_refusal` refuses it nothing, so no owner need be looked up
        said = [division_of(e) for e in events]
        stated = {e.key for e, d in zip(events, said, strict=True) if d}
        owners = self.store.owners(sorted({e.key for e in events}))
        # A batch holds many events per program (a day's snapshots, a year's): judged once per
        # (program, 과 the event states), not once per event.
        verdicts: dict[tuple[str, str | None], str | None] = {}
        problems = []
        for index, event in enumerate(events):
            case = (event.key, said[index])
            if case not in verdicts:
                verdicts[case] = self._refusal(who, case[0], owners.get(case[0]), case[1], case[0] in stated)
            why = verdicts[case]
            if why is not None:
                problems.append((index, why))
        return problems

    @staticmethod
    def _refusal(who: Identity, pid: str, owner: str | None, said: str | None, stated: bool) -> str | None:
        """Why `who` may not publish this event of program `pid` (None: it may): the 과 the program
        was first published for (`owner`), the one the event states (`said`), or, for a program
        nobody stated a 과 for yet (in the store or the batch), the right to publish unknown ones."""
        for division in dict.fromkeys((owner, said)):  # in this order, once each
            if division is not None and not who.may_publish(division):
                return f"{pid}: {division} is not among the 과 granted to {who.name}"
        if owner is None and not stated and not who.may_publish(None):
            return f"{pid}: unknown program; publish it with its 과 first (program.registered or budget.line_set)"
        return None

    def claim(self, who: Identity, events: Sequence[AnyEvent]) -> None:
        claims = {e.key: (d, getattr(e.payload, "office", None)) for e in events if (d := division_of(e))}
        self.store.claim(claims, who.name)


def office_scope(who: Identity, office: str | None) -> str | None:
    """Staff read their own 실: a list they ask for is narrowed to it (another 실 is refused)."""
    if who.role != Role.staff or not who.office:
        return office
    if office is not None and office != who.office:
        raise HTTPException(403, f"staff read their own 실 ({who.office})")
    return who.office


def division_of(event: AnyEvent) -> str | None:
    # The payload's fields are in its __dict__; getattr on a payload without the field would go
    # through pydantic's __getattr__ and an AttributeError (ingest asks for every event).
    division = event.payload.__dict__.get("division")
    return division if isinstance(division, str) and division else None


def identity_of_key(row: AuthKey) -> Identity:
    return Identity(name=row.name, role=Role(row.role), divisions=frozenset(row.divisions or ()),
                    office=row.office, email=row.email, title=row.title, key_id=row.id, via="key")


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


def access_of(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


# --- rules -----------------------------------------------------------------------------------------


def require(*roles: Role) -> Callable[..., Awaitable[Identity]]:
    """The dependency of a route open to these roles: 401 without a valid credential, 403 for
    another role; write methods count against the caller's and the address's write limit."""
    rule = Rule(frozenset(roles))

    async def dependency(request: Request, _: Annotated[Any, Depends(_bearer_scheme)]) -> Identity:
        access = access_of(request)
        who = await access.identify(request)
        if who is None:
            raise unauthorized("authentication required: send Authorization: Bearer <token>")
        if who.role not in rule.roles:
            raise HTTPException(403, f"role {who.role} may not do this")
        if request.method not in SAFE_METHODS:
            access.limit_write(request, who)
        request.state.identity = who
        return who

    setattr(dependency, RULE_ATTR, rule)
    return dependency


async def public(request: Request) -> Identity | None:
    """Open to anyone (health, metrics, signed links, sign-in); the caller's identity when it
    sends a valid one, so what it does can still be attributed."""
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE not in request.cookies:
        return None
    try:
        return await access_of(request).identify(request)
    except HTTPException as exc:
        if exc.status_code == 429:
            raise
        return None


setattr(public, RULE_ATTR, Rule(frozenset(), public=True))

PUBLIC = Depends(public)
READERS = (Role.staff, Role.operator, Role.auditor)
PUBLISHERS = (Role.system, Role.operator)  # may publish events, at either door of ingest

# The rules routes use (one per route):
Public = Annotated[Identity | None, Depends(public)]
Reader = Annotated[Identity, Depends(require(*READERS))]                   # staff, operators, auditors
Publisher = Annotated[Identity, Depends(require(*PUBLISHERS))]
PublisherReader = Annotated[Identity, Depends(require(*PUBLISHERS, Role.auditor))]
StaffWriter = Annotated[Identity, Depends(require(Role.staff, Role.operator))]  # checked per 과 in the route
Overseer = Annotated[Identity, Depends(require(Role.operator, Role.auditor))]
Anyone = Annotated[Identity, Depends(require(*Role))]


def install(app: FastAPI, settings: Settings, service: str) -> Access:
    """Give an app its access object; the access tables are migrated when its lifespan starts."""
    access = Access.create(settings, service)
    app.state.access = access
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(access.start)
        try:
            async with inner(a):
                yield
        finally:
            access.store.dispose()

    app.router.lifespan_context = lifespan
    return app.state.access  # type: ignore[no-any-return]


def expires(seconds: int, now: datetime) -> datetime:
    return now + timedelta(seconds=seconds)
