"""Who is looking at the page: the one seam between the staff pages and sign-in.

Today a demo sign-in page sets a signed cookie naming the person, their role and their 과.
When the Access service lands, only this module changes: `current_identity` reads the
short-lived session it issues instead, and `require` checks its roles; pages depend on
`Identity` alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

from services.common.settings import Settings

COOKIE = "execwatch_session"
Role = Literal["담당", "팀장", "과장", "operator", "auditor"]
ROLES: tuple[Role, ...] = ("담당", "팀장", "과장", "operator", "auditor")
ROLE_LABELS: dict[str, str] = {"담당": "담당", "팀장": "팀장", "과장": "과장", "operator": "운영자",
                               "auditor": "감사"}


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    division: str | None = None
    office: str | None = None

    @property
    def sees_everything(self) -> bool:
        """Operators and auditors read every 과; staff read their own."""
        return self.role in ("operator", "auditor")

    @property
    def can_act(self) -> bool:
        """Auditors read; everyone else may acknowledge and silence what they see."""
        return self.role != "auditor"

    @property
    def label(self) -> str:
        where = f"{self.division} " if self.division else ""
        return f"{where}{ROLE_LABELS[self.role]} {self.name}"


class SessionCodec:
    """A cookie value `payload.signature`: base64url JSON and its HMAC-SHA256; expiry inside."""

    def __init__(self, secret: str, max_age_s: float) -> None:
        self._key = secret.encode()
        self.max_age_s = max_age_s

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def encode(self, identity: Identity, now: float | None = None) -> str:
        body = {**asdict(identity), "exp": int((now or time.time()) + self.max_age_s)}
        data = base64.urlsafe_b64encode(json.dumps(body, ensure_ascii=False).encode()).rstrip(b"=")
        return f"{data.decode()}.{self._sign(data)}"

    def decode(self, value: str, now: float | None = None) -> Identity | None:
        data, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(data.encode()), signature):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            if body["exp"] < (now or time.time()) or body["role"] not in ROLES:
                return None
            return Identity(name=body["name"], role=body["role"], division=body.get("division"),
                            office=body.get("office"))
        except (ValueError, KeyError, TypeError):
            return None

    def csrf(self, cookie_value: str) -> str:
        """Form token bound to the session: a page from another site cannot post as the person."""
        return self._sign(b"csrf:" + cookie_value.encode())[:32]


def codec_from_settings(settings: Settings) -> SessionCodec:
    return SessionCodec(settings.web_session_secret.get_secret_value(), settings.web_session_hours * 3600)


class SignInRequired(Exception):
    """Raised by the dependency; the app answers with a redirect to the sign-in page."""


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def optional_identity(request: Request) -> Identity | None:
    value = request.cookies.get(COOKIE)
    return _codec(request).decode(value) if value else None


def current_identity(request: Request) -> Identity:
    identity = optional_identity(request)
    if identity is None:
        raise SignInRequired
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require(*roles: Role) -> object:
    """A route dependency admitting only these roles (the Access model's `require(role)`)."""

    def check(identity: CurrentIdentity) -> Identity:
        if identity.role not in roles:
            raise HTTPException(403, "이 화면을 볼 권한이 없습니다")
        return identity

    return Depends(check)


def csrf_token(request: Request) -> str:
    return _codec(request).csrf(request.cookies.get(COOKIE, ""))


def check_csrf(request: Request, token: str) -> None:
    if not hmac.compare_digest(csrf_token(request), token):
        raise HTTPException(403, "요청을 확인할 수 없습니다. 화면을 새로 고친 뒤 다시 시도하세요")
