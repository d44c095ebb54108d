"""Budget read API: summary rollups (실/과/전체 and by account, any as-of date), the program list
(filter, sort by gap, paged), one program with its parts, time series, amendments, plan and
alerts, the lines held out of totals, and the programs that report execution without a budget
line. JSON by default; CSV with `?format=csv` or `Accept: text/csv`. Amounts are integer 원;
`?unit=천원|백만원|억원` adds rendered figures.

Program ids contain "/" (`경제정책과/서울기업지원센터운영`): the program route takes the rest of
the path, encoded (%2F) or not."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response

from contracts.budget import Account
from contracts.money import UNIT_FACTORS, Unit
from services.budget import queries, schemas
from services.budget.deps import ConfigDep, ReadSession
from services.budget.queries import PROGRAM_COLUMNS, Scope, Sort, Status
from services.common.api_types import ACCESS_ERRORS, CSV_ALTERNATIVE, errors
from services.common.auth import Reader, office_scope
from services.common.params import FiscalYear, Offset

AMOUNT_FIELDS = ("original", "carried_over", "supplementary", "current_budget", "current", "committed", "spent",
                 "balance", "planned_amount", "before", "change", "after")
AccountFilter = Literal[Account, "미지정"]
UNIT = Query(None, description="also render amounts in 천원, 백만원 or 억원 (`display`)")
FORMAT = Query(None, description="json (default) or csv; or send Accept: text/csv")


# ---------------------------------------------------------------- rendering helpers


def render_amount(won: int, unit: str) -> str:
    """원 in a report unit, rounded half-up to a whole number as the tables print it."""
    value = (Decimal(won) / UNIT_FACTORS[unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{value:,}"


def with_display(item: dict[str, Any], unit: str | None) -> dict[str, Any]:
    if unit is None or unit == "원":
        return item
    item["display"] = {"unit": unit, **{k: render_amount(v, unit) for k, v in item.items()
                                        if k in AMOUNT_FIELDS and isinstance(v, int)}}
    return item


#: The unit and format are typed (`Unit`, `Format`): FastAPI refuses others with its usual 422, as the
#: OpenAPI says, instead of a 422 of another shape.
Format = Literal["json", "csv"]


def wants_csv(request: Request, fmt: Format | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


#: The figures of record beside the sums in the summary's CSV (empty where the report states none).
REPORTED_COLUMNS = ("reported_as_of", "reported_original", "reported_current", "reported_committed", "reported_spent",
                    "reported_rate")


def with_reported(item: dict[str, Any]) -> dict[str, Any]:
    reported = item.get("reported") or {}
    return {**item, **{f"reported_{k}": reported.get(k) for k in
                       ("as_of", "original", "current", "committed", "spent", "rate")}}


def csv_response(rows: Sequence[dict[str, Any]], columns: Sequence[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    # BOM: spreadsheet programs then read the Korean headers and names correctly.
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": content_disposition(filename)})


def content_disposition(filename: str) -> str:
    """An attachment header for any name: program ids carry Korean and "/", which an HTTP header
    cannot hold as they are (RFC 6266: an ASCII fallback and the UTF-8 name)."""
    name = filename.replace("/", "_")
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


# ---------------------------------------------------------------- routes

router = APIRouter(prefix="/v1/budget", tags=["budget"], responses=ACCESS_ERRORS)


@router.get("/summary", response_model=schemas.Summary, responses=CSV_ALTERNATIVE)
def summary(who: Reader, request: Request, session: ReadSession, config: ConfigDep,
            fiscal_year: int = Query(ge=2000, le=2100), as_of: date | None = None,
            account: AccountFilter | None = Query(
                None, description="one account only; default: the 세출 (everything but 기금)"),
            unit: Unit | None = UNIT, format: Format | None = FORMAT) -> dict[str, Any] | Response:
    """Rollups by 실, 과 and in total (and by account), with the figures the reports print for a
    whole 과 or 실 beside them."""
    data = queries.summary(session, config, fiscal_year, as_of, account)
    if wants_csv(request, format):
        rows = []
        for office in data["offices"]:
            rows += [{"level": "과", "office": office["office"], **with_reported(d)} for d in office["divisions"]]
            rows.append({"level": "실", **with_reported({k: v for k, v in office.items() if k != "divisions"})})
        rows.append({"level": "계", **with_reported(data["total"])})
        cols = ("level", "office", "division", "programs", "original", "carried_over", "supplementary", "current",
                "committed", "committed_unknown", "spent", "balance", "rate", "commit_rate", "plan_rate", "gap",
                *REPORTED_COLUMNS)
        return csv_response(rows, cols, f"budget-summary-{fiscal_year}.csv")
    for item in [*data["offices"], *data["divisions"], data["total"], *data["accounts"].values()]:
        with_display(item, unit)
        for d in item.get("divisions", []):
            with_display(d, unit)
    return data


@router.get("/programs", response_model=schemas.ProgramPage, responses=CSV_ALTERNATIVE)
def programs(who: Reader, request: Request, session: ReadSession, fiscal_year: FiscalYear = None,
             office: str | None = None, division: str | None = None, status: Status | None = None,
             level: Literal["ok", "warning", "critical"] | None = None, scope: Scope | None = None,
             account: AccountFilter | None = None, sort: Sort = "program_id",
             limit: int = Query(100, ge=1, le=1000), offset: Offset = 0,
             unit: Unit | None = UNIT, format: Format | None = FORMAT) -> dict[str, Any] | Response:
    """The program list: filtered, sorted (`gap`: most behind plan first), paged. Staff see their 실."""
    office = office_scope(who, office)
    stmt = queries.programs_stmt(fiscal_year, office, division, status or level, scope, account)
    total, items = queries.list_programs(session, stmt, sort, limit, offset)
    if wants_csv(request, format):
        return csv_response(items, PROGRAM_COLUMNS, "budget-programs.csv")
    return {"items": [with_display(i, unit) for i in items], "total": total, "offset": offset, "limit": limit,
            "sort": sort}


# `:path` so ids with "/" reach the handler; it is the last route under /programs.
@router.get("/programs/{program_id:path}", response_model=schemas.ProgramDetail,
            responses={**CSV_ALTERNATIVE, **errors(404)})
def program(who: Reader, request: Request, session: ReadSession, config: ConfigDep, program_id: str,
            fiscal_year: FiscalYear = None,
            as_of: date | None = Query(None, description="the program as it stood on this date"),
            unit: Unit | None = UNIT, format: Format | None = FORMAT) -> dict[str, Any] | Response:
    """One program with its parts, budget lines, history, amendments, plan and alerts (CSV: its history)."""
    found = queries.program_detail(session, config, program_id, fiscal_year, as_of)
    if found is None:
        raise HTTPException(404, "no such program")
    if wants_csv(request, format):
        cols = ("as_of", "revision", "committed", "spent", "current_budget", "rate", "commit_rate", "plan_rate",
                "gap")
        return csv_response(found["history"], cols, f"budget-{program_id}-{found['fiscal_year']}.csv")
    with_display(found, unit)
    for item in found["history"] + found["amendments"] + found["parts"] + found["lines"]:
        with_display(item, unit)
    return found


@router.get("/unlinked", response_model=schemas.HeldOutPage)
def unlinked(who: Reader, session: ReadSession, fiscal_year: FiscalYear = None,
             limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
    """Report sections that could not be linked to a 세부사업 of record: listed for review,
    held out of every total until an alias links them."""
    return queries.held_out_lines(session, fiscal_year, "unlinked", limit, offset)


@router.get("/unknown-programs", response_model=schemas.UnknownProgramPage)
def unknown_programs(who: Reader, session: ReadSession, fiscal_year: FiscalYear = None,
                     limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
    """Programs that report execution but have no budget line: kept, not dropped; their
    numbers join the rollups when the line arrives."""
    return queries.unknown_programs(session, fiscal_year, limit, offset)
