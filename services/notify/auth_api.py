"""Staff sign-in without a password, and the audit log.

Notify knows where each staff member is told about alerts (the reports' contacts); that address
is their identity. `POST /v1/auth/login-link {email}` mails a one-time link there; the link opens
a confirmation page (mail scanners that fetch links use nothing up); its button POSTs the token
back and gets a short-lived session (cookie and bearer token). The answer to a login-link request
is the same whether or not the address is known."""

from __future__ import annotations

import asyncio
import html
import json
import smtplib
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlmodel import col, select

from services.common.api_types import ACCESS_ERRORS, errors
from services.common.auth import (
    LINK_PREFIX,
    SESSION_COOKIE,
    Anyone,
    Identity,
    Overseer,
    Public,
    Role,
    access_of,
    client_of,
    expires,
    identity_from_claims,
    login_link_token,
    session_token,
    too_many,
    verify,
)
from services.common.deps import RuntimeDep
from services.common.params import Offset
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.notify import domain
from services.notify.schemas import TOKEN_BODY, AuditOut, IdentityOut, LinkSent, LoginLinkIn, SessionOut
from services.notify.store import NotifyContact, NotifyProgram

RANK = {"과장": 3, "팀장": 2, "담당": 1}


def staff_by_address(rt: Runtime, email: str) -> Identity | None:
    """The person the reports list with this address: their name, highest title and 과."""
    template = rt.settings.recipient_address_template
    wanted = email.strip().lower()
    with rt.db.read() as s:
        rows = s.exec(select(NotifyContact, NotifyProgram).join(
            NotifyProgram, col(NotifyProgram.program_id) == col(NotifyContact.program_id), isouter=True)).all()
    found: list[tuple[NotifyContact, NotifyProgram | None]] = []
    for contact, program in rows:
        address = domain.address_for(template, contact.name, contact.phone, contact.role, contact.email)
        if address and address.lower() == wanted:
            found.append((contact, program))
    if not found:
        return None
    divisions = frozenset(d for c, p in found if (d := c.division or (p.division if p else None)))
    if not divisions:
        return None  # without a 과 there is nothing they could act on
    offices = sorted({p.office for _, p in found if p and p.office})
    best = max(found, key=lambda cp: RANK.get(cp[0].role, 0))[0]
    return Identity(name=best.name, role=Role.staff, divisions=divisions, office=offices[0] if offices else None,
                    email=wanted, title=best.role, via="session")


def send_link(rt: Runtime, to: Identity, link: str, minutes: int) -> None:
    s = rt.settings
    msg = EmailMessage()
    msg["Subject"] = "[execwatch] 로그인 링크"
    msg["From"] = s.mail_from
    msg["To"] = f"{to.name} <{to.email}>"
    msg.set_content(f"{to.name}님, 아래 링크로 execwatch에 로그인하세요 "
                    f"({minutes}분 동안 한 번 사용할 수 있습니다).\n\n{link}\n\n"
                    "요청하지 않으셨다면 이 메일을 무시하세요.\n")
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_user and s.smtp_password:
            smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
        smtp.send_message(msg)


async def token_of(request: Request) -> str:
    body = await request.body()
    if len(body) > 8000:
        raise HTTPException(413, "too large")
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            data = json.loads(body)
            token = data.get("token") if isinstance(data, dict) else None
        else:
            tokens = parse_qs(body.decode()).get("token")
            token = tokens[0] if tokens else None
    except (ValueError, UnicodeDecodeError):
        token = None
    if not isinstance(token, str) or not token:
        raise HTTPException(422, "send the sign-in token as form field or JSON `token`")
    return token


router = APIRouter(prefix="/v1", tags=["access"])


def _urls(settings: Settings) -> tuple[str | None, str | None]:
    """Notify's public address, and the staff web's confirmation page (which exchanges the
    token here server-side) when there is one: the sign-in link points there, else here."""
    base = settings.notify_public_url.rstrip("/") if settings.notify_public_url else None
    login_page = settings.auth_login_url.rstrip("/") if settings.auth_login_url else None
    return base, login_page


@router.post("/auth/login-link", status_code=202, response_model=LinkSent, responses=errors(429))
async def login_link(request: Request, who: Public, rt: RuntimeDep, body: LoginLinkIn) -> LinkSent:
    settings = rt.settings
    base, login_page = _urls(settings)
    access = access_of(request)
    for key in (f"addr:{client_of(request)}", f"email:{body.email.lower()}"):
        wait = access.links.hit(key)
        if wait:
            raise too_many(wait)
    person = await asyncio.to_thread(staff_by_address, rt, body.email)
    if person is not None:
        token = login_link_token(access.secret, person, settings.auth_login_ttl_s, access.clock())
        page = login_page or f"{base or str(request.base_url).rstrip('/')}/v1/auth/callback"
        link = f"{page}?token={token}"
        await asyncio.to_thread(send_link, rt, person, link, settings.auth_login_ttl_s // 60)
        await access.audit(request, person, "auth.login_link", person.email or "")
    return LinkSent(status="등록된 주소라면 로그인 링크를 보냈습니다 (if the address is known, a link was sent)")


@router.get("/auth/callback", response_class=HTMLResponse)
async def callback_page(who: Public, token: str = Query(max_length=4000)) -> HTMLResponse:
    """The link's page: nothing happens until the person presses the button (POST)."""
    return HTMLResponse(
        "<!doctype html><html lang='ko'><body><form method='post' action='/v1/auth/callback'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        "<p>execwatch에 로그인하시겠습니까?</p><button type='submit'>로그인</button></form></body></html>")


@router.post("/auth/callback", response_model=SessionOut, openapi_extra=TOKEN_BODY,
             responses=errors(401, 413, 422, 429))
async def callback(request: Request, who: Public, rt: RuntimeDep) -> JSONResponse:
    """Exchange a sign-in link's token (form field or JSON `token`) for a session (also set as a cookie)."""
    access = access_of(request)
    token = await token_of(request)
    now = access.clock()
    claims = verify(access.secret, LINK_PREFIX, token, now)
    if claims is None or not await asyncio.to_thread(
            access.store.use_link, str(claims.get("jti")), datetime.fromtimestamp(claims["exp"], now.tzinfo)):
        wait = access.failures.hit(f"addr:{client_of(request)}")
        if wait:
            raise too_many(wait)
        raise HTTPException(401, "this sign-in link is invalid, expired or already used; ask for a new one",
                            headers={"WWW-Authenticate": "Bearer"})
    person = identity_from_claims(claims)
    ttl = rt.settings.auth_session_ttl_s
    session = session_token(access.secret, person, ttl, now)
    await access.audit(request, person, "auth.sign_in", person.email or "")
    out = SessionOut(token=session, expires_at=expires(ttl, now), identity=IdentityOut(**person.as_json()))
    response = JSONResponse(out.model_dump(mode="json"))
    response.set_cookie(SESSION_COOKIE, session, max_age=ttl, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/auth/me", response_model=IdentityOut, responses=ACCESS_ERRORS)
async def me(who: Anyone) -> dict[str, Any]:
    """Who the credential sent is."""
    return who.as_json()


@router.get("/audit", response_model=list[AuditOut], responses=ACCESS_ERRORS)
async def audit(request: Request, who: Overseer, action: str | None = None, actor: str | None = None,
                since: datetime | None = None, limit: int = Query(100, ge=1, le=1000),
                offset: Offset = 0) -> list[AuditOut]:
    """Acknowledgements, silences, sign-ins, key and publishing-rights changes, newest first."""
    rows = await asyncio.to_thread(access_of(request).store.audit_log, action=action, actor=actor,
                                   since=since, limit=limit, offset=offset)
    return [AuditOut.model_validate(r, from_attributes=True) for r in rows]
