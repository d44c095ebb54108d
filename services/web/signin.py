"""The sign-in pages: a link by mail (staff), an API key (operators, auditors), and in the demo
one of the demo's people. Every way ends in an access credential kept by `session`; these routes
only show the forms and pass what people type to it.

Forms carry a token bound to a nonce cookie set with the page, so a page from another site cannot
sign someone in (as the attacker) or send mails in their name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web import session
from services.web.pages import render, safe_next
from services.web.session import SignInFailed

router = APIRouter()


async def _signin_page(request: Request, next: str | None, *, chosen: str = "", sent: str = "",
                       error: SignInFailed | None = None) -> HTMLResponse:
    nonce = session.signin_nonce(request)
    people = await session.demo_people(request)
    response = render(request, "signin.html.j2", session.optional_identity(request),
                      status_code=error.status if error else 200, csrf=session.signin_form_token(request, nonce),
                      next=safe_next(next), people=people, chosen=chosen or (people[0][0] if people else ""),
                      sent=sent, error=error.message if error else "")
    session.keep_signin_nonce(request, response, nonce)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, next: str | None = None,
                      as_: Annotated[str, Query(alias="as", max_length=50)] = "") -> HTMLResponse:
    """`execwatch up --demo` prints `/signin?as=staff`: the demo sign-in with its 팀장 chosen."""
    return await _signin_page(request, next, chosen=as_)


def _signed_in(request: Request, made: session.Session, next: str | None) -> RedirectResponse:
    response = RedirectResponse(safe_next(next), status_code=303)
    session.start(request, response, made)
    return response


@router.post("/signin/link", response_class=HTMLResponse)
async def ask_for_link(request: Request, email: Annotated[str, Form(min_length=3, max_length=300)],
                       csrf: Annotated[str, Form()], next: Annotated[str, Form()] = "/today") -> HTMLResponse:
    try:
        session.check_signin_form(request, csrf)
        await session.request_link(request, email)
    except SignInFailed as exc:
        return await _signin_page(request, next, error=exc)
    return await _signin_page(request, next, sent=email.strip())


@router.post("/signin/key", response_model=None)
async def sign_in_with_key(request: Request, key: Annotated[str, Form(max_length=500)],
                           csrf: Annotated[str, Form()],
                           next: Annotated[str, Form()] = "/today") -> RedirectResponse | HTMLResponse:
    try:
        session.check_signin_form(request, csrf)
        made = await session.with_key(request, key)
    except SignInFailed as exc:
        return await _signin_page(request, next, error=exc)
    return _signed_in(request, made, next)


@router.post("/signin/demo", response_model=None)
async def sign_in_demo(request: Request, person: Annotated[str, Form(max_length=50)], csrf: Annotated[str, Form()],
                       next: Annotated[str, Form()] = "/today") -> RedirectResponse | HTMLResponse:
    try:
        session.check_signin_form(request, csrf)
        made = await session.with_demo(request, person)
    except SignInFailed as exc:
        return await _signin_page(request, next, error=exc)
    return _signed_in(request, made, next)


def _link_page(request: Request, token: str, error: SignInFailed | None = None) -> HTMLResponse:
    nonce = session.signin_nonce(request)
    response = render(request, "signin_link.html.j2", None, status_code=error.status if error else 200,
                      csrf=session.signin_form_token(request, nonce), token=token,
                      error=error.message if error else "")
    session.keep_signin_nonce(request, response, nonce)
    return response


@router.get("/auth/callback", response_class=HTMLResponse)
async def link_page(request: Request, token: Annotated[str, Query(max_length=4000)]) -> HTMLResponse:
    """The mailed link opens this page; nothing happens until the button is pressed (mail scanners
    and previews open links too, and the link works once)."""
    return _link_page(request, token)


@router.post("/auth/callback", response_model=None)
async def link_confirmed(request: Request, token: Annotated[str, Form(max_length=4000)],
                         csrf: Annotated[str, Form()]) -> Response:
    try:
        session.check_signin_form(request, csrf)
    except SignInFailed as exc:  # an old page: the same link, with a fresh form
        return _link_page(request, token, exc)
    try:
        made = await session.with_link(request, token)
    except SignInFailed as exc:  # a used or expired link: ask for a new one
        return _link_page(request, "", exc)
    return _signed_in(request, made, "/today")


@router.post("/signout")
async def signout() -> RedirectResponse:
    response = RedirectResponse("/signin", status_code=303)
    session.end(response)
    return response
