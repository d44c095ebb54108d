"""Budget read API (JSON): summary rollups, program list, one program with its history."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import col, select

from services.budget.domain import execution_rate
from services.budget.store import BudgetAmendment, BudgetProgram, BudgetSnapshot, rollup
from services.common.runtime import Runtime


def program_json(r: BudgetProgram) -> dict[str, Any]:
    b = r.to_domain()
    return {
        "program_id": r.program_id, "fiscal_year": r.fiscal_year, "title": r.title, "office": r.office,
        "division": r.division, "original": r.original, "carried_over": r.carried_over,
        "supplementary": r.supplementary, "current_budget": b.current_budget, "committed": r.committed,
        "spent": r.spent, "balance": (b.current_budget - r.spent) if b.current_budget is not None else None,
        "rate": b.rate, "commit_rate": b.commit_rate, "plan_rate": r.plan_rate,
        "gap": (r.plan_rate - b.rate) if (r.plan_rate is not None and b.rate is not None) else None,
        "as_of": r.as_of, "revision": r.revision, "level": r.level,
        "budget_known": r.original is not None,
    }


def router(rt: Runtime) -> APIRouter:
    api = APIRouter(prefix="/v1/budget", tags=["budget"])

    @api.get("/summary")
    async def summary(fiscal_year: int = Query(ge=2000, le=2100)) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            with rt.db.read() as s:
                divisions = rollup(s, fiscal_year, "division")
                offices = rollup(s, fiscal_year, "office")
            for row in divisions + offices:
                row["rate"] = execution_rate(row["spent"], row["current"])
            total = {k: sum(r[k] for r in offices) for k in
                     ("programs", "original", "carried_over", "supplementary", "current", "committed", "spent")}
            total["rate"] = execution_rate(total["spent"], total["current"])
            return {"fiscal_year": fiscal_year, "unit": "원", "offices": offices, "divisions": divisions,
                    "total": total}

        return await asyncio.to_thread(q)

    @api.get("/programs")
    async def programs(fiscal_year: int | None = None, division: str | None = None,
                       level: str | None = None, limit: int = Query(100, ge=1, le=1000),
                       offset: int = Query(0, ge=0)) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            stmt = select(BudgetProgram)
            if fiscal_year is not None:
                stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
            if division:
                stmt = stmt.where(BudgetProgram.division == division)
            if level:
                stmt = stmt.where(BudgetProgram.level == level)
            stmt = stmt.order_by(col(BudgetProgram.program_id)).offset(offset).limit(limit)
            with rt.db.read() as s:
                return {"items": [program_json(r) for r in s.exec(stmt).all()], "offset": offset, "limit": limit}

        return await asyncio.to_thread(q)

    @api.get("/programs/{program_id}")
    async def program(program_id: str, fiscal_year: int | None = None) -> dict[str, Any]:
        def q() -> dict[str, Any] | None:
            with rt.db.read() as s:
                stmt = select(BudgetProgram).where(BudgetProgram.program_id == program_id)
                if fiscal_year is not None:
                    stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
                row = s.exec(stmt.order_by(col(BudgetProgram.fiscal_year).desc())).first()
                if row is None:
                    return None
                history = s.exec(select(BudgetSnapshot).where(
                    BudgetSnapshot.program_id == program_id, BudgetSnapshot.fiscal_year == row.fiscal_year
                ).order_by(col(BudgetSnapshot.as_of), col(BudgetSnapshot.revision))).all()
                amendments = s.exec(select(BudgetAmendment).where(
                    BudgetAmendment.program_id == program_id, BudgetAmendment.fiscal_year == row.fiscal_year
                )).all()
                return {
                    **program_json(row),
                    "history": [{"as_of": h.as_of, "revision": h.revision, "committed": h.committed,
                                 "spent": h.spent} for h in history],
                    "amendments": [a.model_dump(exclude={"id"}) for a in amendments],
                }

        found = await asyncio.to_thread(q)
        if found is None:
            raise HTTPException(404, "no such program")
        return found

    return api
