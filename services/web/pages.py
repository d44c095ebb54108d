"""The staff pages: 오늘, 과/실 현황, 사업, 알림, 운영 (signing in: `signin`).

Each page gathers what it shows from the APIs (in parallel) as the signed-in person, shapes it
with the pure rules of `domain` and renders a Jinja2 template. Forms post here and are passed on
to notify (acknowledge, silence) with the person's credential, so notify decides whether they
may and records them as the author; then they redirect back (post/redirect/get), so everything
works without JavaScript.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.common.auth import Role
from services.web import domain, export
from services.web.clients import BudgetProgram, Clients
from services.web.session import CurrentIdentity, Identity, check_csrf, csrf_token, person_clients, require

router = APIRouter()

ClientsDep = Annotated[Clients, Depends(person_clients)]
Operator = Annotated[Identity, require(Role.operator)]


def today(request: Request) -> date:
    """The pages' today: the configured clock (demos, replays) or the date in Seoul."""
    clock: date | None = request.app.state.clock
    return clock or datetime.now(UTC).astimezone(request.app.state.tz).date()


def render(request: Request, template: str, identity: Identity | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, {
        "identity": identity, "csrf": csrf_token(request) if identity else "", "today": today(request),
        "path": request.url.path, "query": request.url.query, **context,
    }, status_code=status_code)


def safe_next(value: str | None, default: str = "/today") -> str:
    """Only local paths: a sign-in or form must not redirect to another site."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    return value


def program_url(program_id: str) -> str:
    return "/program/" + quote(program_id, safe="")


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/today", status_code=303)


# ---------------------------------------------------------------- 오늘


@router.get("/today", response_class=HTMLResponse)
async def today_page(request: Request, identity: CurrentIdentity, clients: ClientsDep) -> HTMLResponse:
    day = today(request)
    division = None if identity.sees_everything else identity.division
    alerts, deadlines, programs = await asyncio.gather(
        clients.notify.alerts("firing"), clients.programs.upcoming(14, division),
        clients.budget.programs(day.year, division))
    mine = domain.by_urgency(a for a in alerts if domain.mine(identity, a) and domain.needs_action(a))
    handled = [a for a in alerts if domain.mine(identity, a) and not domain.needs_action(a)]
    behind = sorted((p for p in programs if p.scope == "record" and p.original is not None),
                    key=lambda p: (p.gap is None, -(p.gap or 0), p.title or ""))
    return render(request, "today.html.j2", identity, alerts=mine, handled=handled, deadlines=deadlines,
                  programs=behind[:20], programs_total=len(behind), periods=list(domain.SILENCE_PERIODS))


@router.post("/alerts/{fingerprint}/ack")
async def acknowledge(request: Request, fingerprint: str, identity: CurrentIdentity, clients: ClientsDep,
                      csrf: Annotated[str, Form()], comment: Annotated[str, Form(max_length=500)] = "",
                      next: Annotated[str, Form()] = "/today") -> RedirectResponse:
    """Notify decides (staff: their own 과's alerts) and records the person whose credential this is."""
    check_csrf(request, csrf)
    await clients.notify.ack(fingerprint, comment.strip() or None)
    return RedirectResponse(safe_next(next) + "#done", status_code=303)


@router.post("/alerts/{fingerprint}/silence")
async def silence(request: Request, fingerprint: str, identity: CurrentIdentity, clients: ClientsDep,
                  csrf: Annotated[str, Form()], period: Annotated[str, Form()],
                  reason: Annotated[str, Form(min_length=1, max_length=500)],
                  next: Annotated[str, Form()] = "/today") -> RedirectResponse:
    check_csrf(request, csrf)
    if period not in domain.SILENCE_PERIODS:
        raise HTTPException(422, "기간을 고르세요")
    found = [a for a in await clients.notify.alerts(None) if a.fingerprint == fingerprint]
    if not found:
        raise HTTPException(404, "알림이 없습니다")
    ends = datetime.now(UTC) + domain.SILENCE_PERIODS[period]
    await clients.notify.silence(domain.silence_matchers(found[0]), ends, reason.strip())
    return RedirectResponse(safe_next(next) + "#done", status_code=303)


# ---------------------------------------------------------------- 과/실 현황


@router.get("/division", response_model=None)
async def division_page(request: Request, identity: CurrentIdentity, clients: ClientsDep,
                        as_of: date | None = None, unit: str = domain.DEFAULT_UNIT,
                        sort: domain.SortKey = "report", dir: Literal["asc", "desc"] = "desc",
                        division: str | None = None,
                        format: Literal["html", "csv", "xlsx"] = "html") -> HTMLResponse | Response:
    if unit not in domain.UNITS:
        raise HTTPException(422, f"단위는 {', '.join(domain.UNITS)} 중 하나입니다")
    year = (as_of or today(request)).year
    summary, programs = await asyncio.gather(clients.budget.summary(year, as_of),
                                             clients.budget.programs(year, division, as_of))
    table = domain.report_table(summary, programs, sort, dir == "desc", division or None)
    name = f"budget-{year}-{as_of.isoformat() if as_of else 'latest'}"
    if format == "csv":
        return Response(export.to_csv(table, unit), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "xlsx":
        return Response(export.to_xlsx(table, unit),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    later = [r for b in table.blocks for r in b.rows if as_of and r.as_of and r.as_of > as_of]
    return render(request, "division.html.j2", identity, table=table, unit=unit, units=domain.UNITS,
                  sort=sort, dir=dir, as_of=as_of, division=division or "",
                  divisions=[d.division for d in summary.divisions if d.division],
                  title=export.title(table, unit), later_rows=len(later), of_record=domain.of_record_text(table))


# ---------------------------------------------------------------- 사업


@router.get("/program/{program_id:path}", response_class=HTMLResponse)
async def program_page(request: Request, program_id: str, identity: CurrentIdentity,
                       clients: ClientsDep) -> HTMLResponse:
    budget, timeline, alerts = await asyncio.gather(
        clients.budget.program(program_id), clients.programs.program(program_id), clients.notify.alerts(None))
    if budget is None and timeline is None:
        raise HTTPException(404, "사업이 없습니다")
    year = (budget.fiscal_year if budget else None) or (timeline.program.fiscal_year if timeline else None) \
        or today(request).year
    parts: list[BudgetProgram] = []
    if budget is not None:
        siblings = await clients.budget.programs(year, budget.division)
        parts = [p for p in siblings if p.parent == program_id]
    chart = domain.spending_chart(budget, year, today(request)) if budget else None
    milestones = timeline.milestones if timeline else []
    title = (timeline.program.title if timeline else None) or (budget.title if budget else None) or program_id
    return render(request, "program.html.j2", identity, program_id=program_id, budget=budget, title_text=title,
                  timeline=timeline, info=timeline.program if timeline else None, chart=chart, parts=parts,
                  milestones=milestones, moves={m.milestone_id: domain.moves(m) for m in milestones},
                  alerts=domain.by_urgency(a for a in alerts if a.program_id == program_id),
                  periods=list(domain.SILENCE_PERIODS))


# ---------------------------------------------------------------- 알림


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, identity: CurrentIdentity, clients: ClientsDep,
                      status: Literal["", "firing", "resolved"] = "",
                      severity: Literal["", "critical", "warning", "info"] = "",
                      division: str = "", acked: Literal["", "yes", "no"] = "",
                      q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
    alerts = await clients.notify.alerts(None)
    visible = [a for a in alerts if domain.may_see(identity, a)]
    flt = domain.AlertFilter(status or None, severity or None, division or None, acked or None,
                             q.strip() or None)
    shown = sorted((a for a in visible if flt.admits(a)),
                   key=lambda a: -(a.received_at.timestamp() if a.received_at else 0))
    return render(request, "alerts.html.j2", identity, alerts=shown, total=len(visible), flt=flt,
                  divisions=sorted({a.division for a in visible if a.division}), periods=list(domain.SILENCE_PERIODS))


# ---------------------------------------------------------------- 운영


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request, identity: Operator, clients: ClientsDep) -> HTMLResponse:
    year = today(request).year
    review, unknown, register, programs, silences, failed = await asyncio.gather(
        clients.programs.review(), clients.budget.unknown_programs(), clients.programs.register(),
        clients.budget.programs(year), clients.notify.silences(), clients.notify.failed_deliveries())
    unassigned = [p for p in register if not p.division or p.division in ("소속미상", "소속 미상")]
    unlinked = [p for p in programs if p.scope == "unlinked"]
    return render(request, "ops.html.j2", identity, review=review, unknown=unknown, unassigned=unassigned,
                  unlinked=unlinked, silences=silences, failed=failed)


@router.post("/ops/silences/{silence_id}/expire")
async def expire(request: Request, silence_id: str, identity: Operator, clients: ClientsDep,
                 csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    await clients.notify.expire_silence(silence_id)
    return RedirectResponse("/ops#silences", status_code=303)
