"""Budget read API: summary rollups (실/과/전체, any as-of date), the program list (filter,
sort by gap, paged), one program with its time series, amendments, plan and alerts, and the
programs that report execution without a budget line. JSON by default; CSV with `?format=csv`
or `Accept: text/csv`. Amounts are integer 원; `?unit=천원|백만원|억원` adds rendered figures."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlmodel import Session, col, select

from contracts.money import UNIT_FACTORS
from services.budget import domain, service
from services.budget.store import BudgetAlert, BudgetAmendment, BudgetPlan, BudgetProgram, plan_of, series
from services.common.auth import Reader, office_scope
from services.common.runtime import Runtime

AMOUNT_FIELDS = ("original", "carried_over", "supplementary", "current_budget", "current", "committed", "spent",
                 "balance", "planned_amount", "before", "change", "after")
Status = Literal["ok", "warning", "critical", "slipped", "over_execution", "year_end_risk", "alerting",
                 "unbudgeted"]
Sort = Literal["program_id", "gap", "rate", "current", "spent", "title"]


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


def exact(value: Any) -> Any:
    """Rates as strings ("10.3"), as the contracts do: JSON floats would blur 0.1 steps."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


def check_unit(unit: str | None) -> str | None:
    if unit is not None and unit not in UNIT_FACTORS:
        raise HTTPException(422, f"unknown unit {unit!r}; use one of {', '.join(UNIT_FACTORS)}")
    return unit


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise HTTPException(422, "format must be json or csv")
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def csv_response(rows: Sequence[dict[str, Any]], columns: Sequence[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    # BOM: spreadsheet programs then read the Korean headers and names correctly.
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def figures(r: domain.Rollup) -> dict[str, Any]:
    return {
        "programs": r.programs, "original": r.original, "carried_over": r.carried_over,
        "supplementary": r.supplementary, "current": r.current, "committed": r.committed, "spent": r.spent,
        "balance": r.balance, "rate": r.rate, "commit_rate": r.commit_rate, "plan_rate": r.plan, "gap": r.gap,
    }


def program_json(r: BudgetProgram) -> dict[str, Any]:
    b = r.to_domain()
    return {
        "program_id": r.program_id, "fiscal_year": r.fiscal_year, "title": r.title, "office": r.office,
        "division": r.division, "category": r.category, "original": r.original, "carried_over": r.carried_over,
        "supplementary": r.supplementary, "current_budget": b.current_budget, "committed": r.committed,
        "spent": r.spent, "balance": b.balance, "rate": b.rate, "commit_rate": b.commit_rate,
        "plan_rate": r.plan_rate, "gap": r.gap, "projected_rate": r.projected_rate,
        "as_of": r.as_of, "revision": r.revision, "snapshots": r.snapshots,
        "level": r.level, "over_level": r.over_level, "year_end_level": r.year_end_level,
        "budget_known": r.original is not None,
    }


PROGRAM_COLUMNS = ("program_id", "fiscal_year", "office", "division", "title", "original", "carried_over",
                   "supplementary", "current_budget", "committed", "spent", "balance", "rate", "commit_rate",
                   "plan_rate", "gap", "projected_rate", "as_of", "level", "over_level", "year_end_level")


# ---------------------------------------------------------------- queries


def _summary(s: Session, cfg: service.Config, fiscal_year: int, as_of: date | None) -> dict[str, Any]:
    divisions, offices, total = domain.rollup(service.rollup_lines(s, cfg, fiscal_year, as_of))
    unbudgeted = s.exec(select(sa.func.count()).select_from(BudgetProgram).where(
        BudgetProgram.fiscal_year == fiscal_year, col(BudgetProgram.original).is_(None))).one()
    office_items = []
    for office in sorted(offices, key=lambda o: o or ""):
        office_items.append({
            "office": office, **figures(offices[office]),
            "divisions": [{"division": d, **figures(r)} for (o, d), r in sorted(
                divisions.items(), key=lambda kv: (kv[0][1] or "")) if o == office],
        })
    return {
        "fiscal_year": fiscal_year, "as_of": as_of, "unit": "원",
        "offices": office_items,
        "divisions": [{"office": o, "division": d, **figures(r)}
                      for (o, d), r in sorted(divisions.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or ""))],
        "total": figures(total),
        "unbudgeted_programs": unbudgeted,
        "note": "합계는 예산 라인이 있는 세부사업만 포함합니다 (집행 보고만 있는 사업은 unbudgeted_programs)",
    }


def _programs_stmt(fiscal_year: int | None, office: str | None, division: str | None,
                   status: Status | None) -> Any:
    stmt = select(BudgetProgram)
    if fiscal_year is not None:
        stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
    if office:
        stmt = stmt.where(BudgetProgram.office == office)
    if division:
        stmt = stmt.where(BudgetProgram.division == division)
    if status in ("ok", "warning", "critical"):
        stmt = stmt.where(BudgetProgram.level == status, col(BudgetProgram.original).is_not(None))
    elif status == "slipped":
        stmt = stmt.where(col(BudgetProgram.level).in_(("warning", "critical")))
    elif status == "over_execution":
        stmt = stmt.where(BudgetProgram.over_level != "ok")
    elif status == "year_end_risk":
        stmt = stmt.where(BudgetProgram.year_end_level != "ok")
    elif status == "alerting":
        stmt = stmt.where(sa.or_(col(BudgetProgram.level) != "ok", col(BudgetProgram.over_level) != "ok",
                                 col(BudgetProgram.year_end_level) != "ok"))
    elif status == "unbudgeted":
        stmt = stmt.where(col(BudgetProgram.original).is_(None))
    return stmt


def _order(sort: Sort) -> list[Any]:
    pid = col(BudgetProgram.program_id)
    current = col(BudgetProgram.original) + col(BudgetProgram.carried_over) + col(BudgetProgram.supplementary)
    if sort == "gap":  # most behind plan first; programs without a plan last
        return [col(BudgetProgram.gap).is_(None), col(BudgetProgram.gap).desc(), pid]
    if sort == "rate":
        spent_share = sa.cast(col(BudgetProgram.spent), sa.Float) / sa.func.nullif(current, 0)
        return [spent_share.is_(None), spent_share, pid]
    if sort == "current":
        return [current.is_(None), current.desc(), pid]
    if sort == "spent":
        return [col(BudgetProgram.spent).desc(), pid]
    if sort == "title":
        return [col(BudgetProgram.title), pid]
    return [pid, col(BudgetProgram.fiscal_year)]


def _plan_json(s: Session, cfg: service.Config, row: BudgetProgram) -> dict[str, Any]:
    if cfg.plan.excludes(row.category, row.title):
        return {"source": "excluded", "points": []}
    plan_row = s.get(BudgetPlan, (row.program_id, row.fiscal_year))
    monthly = plan_of(plan_row) if plan_row else None
    current = row.to_domain().current_budget
    points = []
    for month, rate in domain.monthly_plan(row.fiscal_year, cfg.plan, monthly):
        amount = int((rate * current / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if current else None
        points.append({"month": month, "cumulative_rate": rate, "planned_amount": amount})
    return {"source": "monthly" if monthly else "default", "points": points,
            "published": [{"month": m, "cumulative_rate": r} for m, r in monthly] if monthly else None}


def _program(s: Session, cfg: service.Config, program_id: str, fiscal_year: int | None) -> dict[str, Any] | None:
    stmt = select(BudgetProgram).where(BudgetProgram.program_id == program_id)
    if fiscal_year is not None:
        stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
    row = s.exec(stmt.order_by(col(BudgetProgram.fiscal_year).desc())).first()
    if row is None:
        return None
    current = row.to_domain().current_budget
    plan_row = s.get(BudgetPlan, (row.program_id, row.fiscal_year))
    monthly = plan_of(plan_row) if plan_row else None
    excluded = cfg.plan.excludes(row.category, row.title)
    history = []
    for h in series(s, program_id, row.fiscal_year):
        plan = None if excluded else domain.plan_rate(h.as_of, row.fiscal_year, cfg.plan, monthly)
        rate = domain.execution_rate(h.spent, current)
        history.append({"as_of": h.as_of, "revision": h.revision, "committed": h.committed, "spent": h.spent,
                        "rate": rate, "commit_rate": domain.execution_rate(h.committed, current),
                        "plan_rate": plan, "gap": (plan - rate) if plan is not None and rate is not None else None})
    amendments = s.exec(select(BudgetAmendment).where(
        BudgetAmendment.program_id == program_id, BudgetAmendment.fiscal_year == row.fiscal_year
    ).order_by(col(BudgetAmendment.effective_date), col(BudgetAmendment.id))).all()
    alerts = s.exec(select(BudgetAlert).where(
        BudgetAlert.program_id == program_id, BudgetAlert.fiscal_year == row.fiscal_year
    ).order_by(col(BudgetAlert.as_of), col(BudgetAlert.created_at), col(BudgetAlert.seq))).all()
    return {
        **program_json(row),
        "history": history,
        "amendments": [{"amendment_id": a.amendment_id, "before": a.before, "change": a.change, "after": a.after,
                        "reason": a.reason, "effective_date": a.effective_date, "recorded_at": a.recorded_at}
                       for a in amendments],
        "plan": _plan_json(s, cfg, row),
        "alerts": [{"event_id": a.event_id, "rule": a.rule, "status": a.status, "severity": a.severity,
                    "as_of": a.as_of, "summary": a.summary, "figures": a.figures} for a in alerts],
    }


# ---------------------------------------------------------------- routes


def router(rt: Runtime, cfg: service.Config | None = None) -> APIRouter:
    api = APIRouter(prefix="/v1/budget", tags=["budget"])
    config = cfg or service.Config.from_settings(rt.settings)

    @api.get("/summary", response_model=None)
    async def summary(who: Reader, request: Request, fiscal_year: int = Query(ge=2000, le=2100),
                      as_of: date | None = None, unit: str | None = None,
                      format: str | None = None) -> dict[str, Any] | Response:
        check_unit(unit)

        def q() -> dict[str, Any]:
            with rt.db.read() as s:
                return _summary(s, config, fiscal_year, as_of)

        data = await asyncio.to_thread(q)
        if wants_csv(request, format):
            rows = []
            for office in data["offices"]:
                rows += [{"level": "과", "office": office["office"], **d} for d in office["divisions"]]
                rows.append({"level": "실", **{k: v for k, v in office.items() if k != "divisions"}})
            rows.append({"level": "계", **data["total"]})
            cols = ("level", "office", "division", "programs", "original", "carried_over", "supplementary", "current",
                    "committed", "spent", "balance", "rate", "commit_rate", "plan_rate", "gap")
            return csv_response(rows, cols, f"budget-summary-{fiscal_year}.csv")
        for item in [*data["offices"], *data["divisions"], data["total"]]:
            with_display(item, unit)
            for d in item.get("divisions", []):
                with_display(d, unit)
        return exact(data)  # type: ignore[no-any-return]

    @api.get("/programs", response_model=None)
    async def programs(who: Reader, request: Request, fiscal_year: int | None = None, office: str | None = None,
                       division: str | None = None, status: Status | None = None,
                       level: Literal["ok", "warning", "critical"] | None = None, sort: Sort = "program_id",
                       limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                       unit: str | None = None, format: str | None = None) -> dict[str, Any] | Response:
        check_unit(unit)
        office = office_scope(who, office)
        stmt = _programs_stmt(fiscal_year, office, division, status or level)

        def q() -> dict[str, Any]:
            with rt.db.read() as s:
                total = s.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
                rows = s.exec(stmt.order_by(*_order(sort)).offset(offset).limit(limit)).all()
                return {"items": [with_display(program_json(r), unit) for r in rows], "total": total,
                        "offset": offset, "limit": limit, "sort": sort}

        data = await asyncio.to_thread(q)
        if wants_csv(request, format):
            return csv_response(data["items"], PROGRAM_COLUMNS, "budget-programs.csv")
        return exact(data)  # type: ignore[no-any-return]

    @api.get("/programs/{program_id}", response_model=None)
    async def program(who: Reader, request: Request, program_id: str, fiscal_year: int | None = None,
                      unit: str | None = None, format: str | None = None) -> dict[str, Any] | Response:
        check_unit(unit)

        def q() -> dict[str, Any] | None:
            with rt.db.read() as s:
                return _program(s, config, program_id, fiscal_year)

        found = await asyncio.to_thread(q)
        if found is None:
            raise HTTPException(404, "no such program")
        if wants_csv(request, format):
            cols = ("as_of", "revision", "committed", "spent", "rate", "commit_rate", "plan_rate", "gap")
            return csv_response(found["history"], cols, f"budget-{program_id}-{found['fiscal_year']}.csv")
        with_display(found, unit)
        for item in found["history"] + found["amendments"]:
            with_display(item, unit)
        return exact(found)  # type: ignore[no-any-return]

    @api.get("/unknown-programs")
    async def unknown_programs(who: Reader, fiscal_year: int | None = None, limit: int = Query(100, ge=1, le=1000),
                               offset: int = Query(0, ge=0)) -> dict[str, Any]:
        """Programs that report execution but have no budget line: kept, not dropped; their
        numbers join the rollups when the line arrives."""
        stmt = _programs_stmt(fiscal_year, None, None, "unbudgeted")

        def q() -> dict[str, Any]:
            with rt.db.read() as s:
                total = s.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
                rows = s.exec(stmt.order_by(col(BudgetProgram.program_id)).offset(offset).limit(limit)).all()
                return {"items": [{"program_id": r.program_id, "fiscal_year": r.fiscal_year, "as_of": r.as_of,
                                   "committed": r.committed, "spent": r.spent, "snapshots": r.snapshots,
                                   "updated_at": r.updated_at} for r in rows],
                        "total": total, "offset": offset, "limit": limit}

        return await asyncio.to_thread(q)

    return api
