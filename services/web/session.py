"""Who is looking at the page: the one seam between the staff pages and Access.

People sign in through Access (services.common.auth, served by notify; docs/security.md): staff
by a one-time link mailed to the address the reports list for them — the link opens the web's
/auth/callback, whose button exchanges the token at notify for an access session — operators and
auditors (and staff who have one) with an API key, and in the demo only, one of the demo's own
keys. The web keeps that credential in a signed, HttpOnly cookie and sends it as
`Authorization: Bearer …` on every call it makes for the person: the APIs decide what they may
read and do, and record who did it. Roles here only hide what a role cannot use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from services.common.auth import ALL_DIVISIONS, Role
from services.common.settings import DEMO_WEB_SECRET, Settings
from services.web.clients import Clients, Upstream, UpstreamError

#: Not access's `execwatch_session`: browsers send a host's cookies to all its ports, and notify
#: would take this one for a bearer token of its own.
COOKIE = "execwatch_web"
#: Binds the sign-in forms to the browser that opened them (no signing people in from elsewhere).
PRE_COOKIE = "execwatch_web_signin"
ROLE_LABELS: dict[str, str] = {"staff": "직원", "operator": "운영자", "auditor": "감사", "system": "시스템"}
#: Who may use the pages: systems publish, they do not read (the read APIs refuse them too).
PAGE_ROLES = frozenset({Role.staff, Role.operator, Role.auditor})


@dataclass(frozen=True)
class Identity:
    """The signed-in person as Access describes them (`GET /v1/auth/me`)."""

    name: str
    role: Role
    divisions: tuple[str, ...] = ()
    office: str | None = None
    email: str | None = None
    title: str | None = None  # staff: 담당 / 팀장 / 과장

    @classmethod
    def from_access(cls, data: Mapping[str, Any]) -> Identity:
        divisions = data.get("divisions") or ()
        return cls(name=str(data["name"]), role=Role(data["role"]),
                   divisions=tuple(sorted(str(d) for d in divisions if d != ALL_DIVISIONS)),
                   office=data.get("office"), email=data.get("email"), title=data.get("title"))

    @property
    def division(self) -> str | None:
        """The 과 a staff member answers for (the first, when the reports list them in several)."""
        return self.divisions[0] if self.role == Role.staff and self.divisions else None

    @property
    def sees_everything(self) -> bool:
        """Operators and auditors read every 과; staff read their own."""
        return self.role in (Role.operator, Role.auditor)

    @property
    def can_act(self) -> bool:
        """Auditors read; staff and operators acknowledge and silence (notify checks the 과)."""
        return self.role in (Role.staff, Role.operator)

    @property
    def answers_for_division(self) -> bool:
        """팀장 and 과장 answer for the whole 과's alerts; a 담당 for what was sent to them."""
        return self.role == Role.staff and self.title in ("팀장", "과장")

    @property
    def label(self) -> str:
        where = f"{self.division} " if self.division else ""
        return f"{where}{self.title or ROLE_LABELS[self.role]} {self.name}"


@dataclass(frozen=True)
class Session:
    identity: Identity
    credential: str  # the access session token or API key: sent as the bearer token
    expires_at: float  # epoch seconds


class SessionCodec:
    """Cookie values `payload.signature`: the session as base64url JSON and its HMAC-SHA256 with a key
    derived from EXECWATCH_WEB_SESSION_SECRET; expiry inside. Signed, not encrypted: the cookie is
    HttpOnly and carries only the person's own credential (no new dependency for encryption)."""

    def __init__(self, secret: str, max_age_s: float) -> None:
        self._key = hashlib.sha256(b"execwatch-web-session\0" + secret.encode()).digest()
        self._forms = hashlib.sha256(b"execwatch-web-forms\0" + secret.encode()).digest()
        self.max_age_s = max_age_s

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def session(self, identity: Identity, credential: str, expires_at: float | None = None,
                now: float | None = None) -> Session:
        """A web session lasts its configured hours, and never longer than the credential."""
        limit = (now or time.time()) + self.max_age_s
        return Session(identity, credential, min(limit, expires_at) if expires_at else limit)

    def encode(self, session: Session) -> str:
        body = {"who": asdict(session.identity), "cred": session.credential, "exp": session.expires_at}
        data = base64.urlsafe_b64encode(json.dumps(body, ensure_ascii=False).encode()).rstrip(b"=")
        return f"{data.decode()}.{self._sign(data)}"

    def decode(self, value: str, now: float | None = None) -> Session | None:
        data, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(data.encode()), signature):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            if float(body["exp"]) < (now or time.time()):
                return None
            return Session(Identity.from_access(body["who"]), str(body["cred"]), float(body["exp"]))
        except (ValueError, KeyError, TypeError):
            return None

    def csrf(self, cookie_value: str) -> str:
        """Form token bound to the cookie: a page from another site cannot post as the person."""
        return hmac.new(self._forms, b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()[:32]


def codec_from_settings(settings: Settings) -> SessionCodec:
    return SessionCodec(settings.web_session_secret.get_secret_value(), settings.web_session_hours * 3600)


def startup_problems(settings: Settings) -> list[str]:
    """Why the web must not serve with this configuration (empty when it may)."""
    if settings.demo:
        return []
    secret = settings.web_session_secret.get_secret_value()
    if secret == DEMO_WEB_SECRET or len(secret) < 16:
        return ["EXECWATCH_WEB_SESSION_SECRET is the demo secret or shorter than 16 characters"]
    return []


# ---------------------------------------------------------------- the request's person


class SignInRequired(Exception):
    """Raised by the dependency; the app answers with a redirect to the sign-in page."""


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def optional_session(request: Request) -> Session | None:
    value = request.cookies.get(COOKIE)
    return _codec(request).decode(value) if value else None


def current_session(request: Request) -> Session:
    session = optional_session(request)
    if session is None:
        raise SignInRequired
    return session


CurrentSession = Annotated[Session, Depends(current_session)]


def optional_identity(request: Request) -> Identity | None:
    session = optional_session(request)
    return session.identity if session else None


def current_identity(session: CurrentSession) -> Identity:
    return session.identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require(*roles: Role) -> Any:
    """A page dependency admitting only these roles: hides pages a role cannot use (the APIs
    behind them refuse them anyway)."""

    def check(identity: CurrentIdentity) -> Identity:
        if identity.role not in roles:
            raise HTTPException(403, "이 화면을 볼 권한이 없습니다")
        return identity

    return Depends(check)


def person_clients(request: Request, session: CurrentSession) -> Clients:
    """The read APIs, called as the signed-in person."""
    upstream: Upstream = request.app.state.upstream
    return upstream.as_person(session.credential)


def csrf_token(request: Request) -> str:
    return _codec(request).csrf(request.cookies.get(COOKIE, ""))


def check_csrf(request: Request, token: str) -> None:
    if not hmac.compare_digest(csrf_token(request), token):
        raise HTTPException(403, "요청을 확인할 수 없습니다. 화면을 새로 고친 뒤 다시 시도하세요")


# ---------------------------------------------------------------- signing in and out


class SignInFailed(Exception):
    """Why a sign-in did not work, in words for the page."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def signin_nonce(request: Request) -> str:
    """The sign-in forms' browser nonce: the one in the cookie, or a new one to set."""
    return request.cookies.get(PRE_COOKIE) or secrets.token_hex(16)


def signin_form_token(request: Request, nonce: str) -> str:
    return _codec(request).csrf("signin:" + nonce)


def keep_signin_nonce(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(PRE_COOKIE, nonce, max_age=3600, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def check_signin_form(request: Request, token: str) -> None:
    nonce = request.cookies.get(PRE_COOKIE)
    if not nonce or not hmac.compare_digest(signin_form_token(request, nonce), token):
        raise SignInFailed("로그인 화면이 오래되었습니다. 화면을 새로 고친 뒤 다시 시도하세요", 403)


def _anonymous(request: Request) -> Clients:
    upstream: Upstream = request.app.state.upstream
    return upstream.as_person(None)


async def request_link(request: Request, email: str) -> None:
    """Ask notify to mail a one-time link; it answers the same whether it knows the address or not."""
    try:
        await _anonymous(request).notify.login_link(email.strip())
    except UpstreamError as exc:
        if exc.status == 429:
            raise SignInFailed("요청이 너무 많습니다. 잠시 뒤 다시 시도하세요", 429) from exc
        if exc.status == 422:
            raise SignInFailed("메일 주소를 확인하세요", 422) from exc
        raise


async def with_link(request: Request, token: str) -> Session:
    """Exchange a mailed link's token at notify for an access session."""
    try:
        out = await _anonymous(request).notify.exchange(token)
    except UpstreamError as exc:
        if exc.status == 429:
            raise SignInFailed("시도가 너무 많습니다. 잠시 뒤 다시 시도하세요", 429) from exc
        if exc.status in (401, 422):
            raise SignInFailed("이 로그인 링크는 맞지 않거나, 만료되었거나, 이미 사용되었습니다. "
                               "새 링크를 받으세요") from exc
        raise
    identity = Identity.from_access(out.identity)
    return _codec(request).session(identity, out.token, out.expires_at.timestamp())


async def with_key(request: Request, key: str) -> Session:
    """Check an API key with notify (`GET /v1/auth/me`) and keep it for the person."""
    key = key.strip()
    if not key:
        raise SignInFailed("API 키를 입력하세요", 422)
    upstream: Upstream = request.app.state.upstream
    try:
        me = await upstream.as_person(key).notify.me()
    except UpstreamError as exc:
        if exc.status == 429:
            raise SignInFailed("시도가 너무 많습니다. 잠시 뒤 다시 시도하세요", 429) from exc
        if exc.status == 401:
            raise SignInFailed("API 키가 맞지 않거나 폐기되었습니다") from exc
        raise
    identity = Identity.from_access(me)
    if identity.role not in PAGE_ROLES:
        raise SignInFailed("이 키는 시스템이 보고를 보낼 때 쓰는 키입니다. 화면은 직원·운영자·감사의 키로 봅니다",
                           403)
    return _codec(request).session(identity, key)


def demo_keys(settings: Settings) -> dict[str, str]:
    """The demo's people (label → API key), only when running as the demo."""
    if not settings.demo:
        return {}
    return {label: key.get_secret_value() for label, key in settings.web_demo_keys.items()}


async def with_demo(request: Request, label: str) -> Session:
    keys = demo_keys(request.app.state.settings)
    if label not in keys:
        raise SignInFailed("시연용 로그인이 없습니다", 404)
    return await with_key(request, keys[label])


async def demo_people(request: Request) -> list[tuple[str, Identity | None]]:
    """The demo sign-in's choices, each with who Access says it is (None when it cannot tell)."""
    upstream: Upstream = request.app.state.upstream
    out: list[tuple[str, Identity | None]] = []
    for label, key in demo_keys(request.app.state.settings).items():
        try:
            out.append((label, Identity.from_access(await upstream.as_person(key).notify.me())))
        except (UpstreamError, KeyError, ValueError):
            out.append((label, None))
    return out


def start(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(COOKIE, _codec(request).encode(session), max_age=max(1, int(session.expires_at - time.time())),
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.delete_cookie(PRE_COOKIE)


def end(response: Response) -> None:
    response.delete_cookie(COOKIE)

