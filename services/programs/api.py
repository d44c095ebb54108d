"""Programs read API: the register (paged, by division, status, kind and parent), one program's
timeline with history, targets with progress, open alerts and its parts; overdue, upcoming and
to-review lists. Action items (audit findings, kind `action_item`) are listed with
`?kind=action_item`; their follow-ups are milestones, overdue like any other.
Program ids may contain "/" (the importer's `과/사업명`): the program route accepts them.
The queries are in `queries`, the bodies in `schemas`."""

from __future__ import annotations

from typing import Any, Literal, get_args

from fastapi import APIRouter, HTTPException, Query

from contracts.programs import ProgramKind
from services.common.api_types import ACCESS_ERRORS, errors
from services.common.auth import Reader, office_scope
from services.common.params import FiscalYear, Offset
from services.programs import queries, schemas
from services.programs.deps import ClockDep, ConfigDep, ReadSession

Status = Literal["late", "at_risk", "on_track", "done", "no_schedule"]
STATUSES: tuple[str, ...] = get_args(Status)

router = APIRouter(prefix="/v1/programs", tags=["programs"], responses=ACCESS_ERRORS)


@router.get("", response_model=schemas.ProgramList)
def programs(who: Reader, session: ReadSession, clock: ClockDep, division: str | None = None,
             office: str | None = None, status: Status | None = None, fiscal_year: FiscalYear = None,
             kind: ProgramKind | None = Query(None, description="program | part | action_item"),
             parent: str | None = Query(None, description="the parts of this program"),
             limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
    """The register, with each program's milestone, overdue, review and open-alert counts. Staff see their 실."""
    office = office_scope(who, office)
    total, items = queries.register(session, division=division, office=office, status=status,
                                    fiscal_year=fiscal_year, kind=kind, parent=parent, limit=limit, offset=offset)
    return {"as_of": clock(), "total": total, "offset": offset, "limit": limit, "items": items}


@router.get("/overdue", response_model=schemas.Overdue)
def overdue(who: Reader, session: ReadSession, clock: ClockDep, division: str | None = None) -> dict[str, Any]:
    """Open occurrences past their window, oldest first."""
    today = clock()
    return {"as_of": today, "items": queries.occurrences(session, today, division, overdue=True)}


@router.get("/upcoming", response_model=schemas.Upcoming)
def upcoming(who: Reader, session: ReadSession, clock: ClockDep, days: int = Query(14, ge=0, le=366),
             division: str | None = None) -> dict[str, Any]:
    """Open occurrences whose window ends within `days`."""
    today = clock()
    return {"as_of": today, "days": days,
            "items": queries.occurrences(session, today, division, overdue=False, days=days)}


@router.get("/review", response_model=schemas.Review)
def review(who: Reader, session: ReadSession, division: str | None = None) -> dict[str, Any]:
    """Milestones whose schedule text could not be judged, kept verbatim for staff; then programs
    registered without a division (unassigned), to be assigned to a 과."""
    return {"items": queries.review(session, division)}


# Ids contain "/" (`경제정책과/서울기업지원센터운영`): `:path` takes the rest of the path, encoded
# or not. Declared last, so /overdue, /upcoming and /review keep their own routes.
@router.get("/{program_id:path}", response_model=schemas.ProgramDetail, responses=errors(404))
def program(who: Reader, session: ReadSession, clock: ClockDep, config: ConfigDep,
            program_id: str) -> dict[str, Any]:
    """One program's timeline: milestones with their window history, targets with progress, open alerts, parts."""
    found = queries.program_detail(session, program_id, clock(), config.schedule)
    if found is None:
        raise HTTPException(404, "no such program")
    return found
