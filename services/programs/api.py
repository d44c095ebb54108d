"""Programs read API: the register, one program's timeline, overdue and upcoming milestones."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import col, select

from services.common.runtime import Runtime
from services.programs.service import Clock
from services.programs.store import Milestone, MilestoneWindow, Program, Target


def router(rt: Runtime, clock: Clock) -> APIRouter:
    api = APIRouter(prefix="/v1/programs", tags=["programs"])

    @api.get("")
    async def programs(division: str | None = None, fiscal_year: int | None = None,
                       limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            stmt = select(Program)
            if division:
                stmt = stmt.where(Program.division == division)
            if fiscal_year:
                stmt = stmt.where(Program.fiscal_year == fiscal_year)
            with rt.db.read() as s:
                rows = s.exec(stmt.order_by(col(Program.program_id)).offset(offset).limit(limit)).all()
                return {"items": [r.model_dump() for r in rows], "offset": offset, "limit": limit}

        return await asyncio.to_thread(q)

    @api.get("/overdue")
    async def overdue() -> dict[str, Any]:
        def q() -> dict[str, Any]:
            with rt.db.read() as s:
                rows = s.exec(select(Milestone).where(Milestone.overdue_level != "ok")
                              .order_by(col(Milestone.window_end))).all()
                return {"as_of": clock(), "items": [r.model_dump() for r in rows]}

        return await asyncio.to_thread(q)

    @api.get("/upcoming")
    async def upcoming(days: int = Query(14, ge=1, le=366)) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            today = clock()
            with rt.db.read() as s:
                rows = s.exec(select(Milestone).where(
                    col(Milestone.window_end) >= today, col(Milestone.window_end) <= today + timedelta(days=days),
                    col(Milestone.status).not_in(["done", "cancelled"]),
                ).order_by(col(Milestone.window_end))).all()
                return {"as_of": today, "days": days, "items": [r.model_dump() for r in rows]}

        return await asyncio.to_thread(q)

    @api.get("/{program_id}")
    async def program(program_id: str) -> dict[str, Any]:
        def q() -> dict[str, Any] | None:
            with rt.db.read() as s:
                row = s.get(Program, program_id)
                milestones = s.exec(select(Milestone).where(Milestone.program_id == program_id)
                                    .order_by(col(Milestone.window_end))).all()
                if row is None and not milestones:
                    return None
                windows = s.exec(select(MilestoneWindow).where(MilestoneWindow.program_id == program_id)
                                 .order_by(col(MilestoneWindow.id))).all()
                targets = s.exec(select(Target).where(Target.program_id == program_id)).all()
                history: dict[str, list[dict[str, Any]]] = {}
                for w in windows:
                    history.setdefault(w.milestone_id, []).append(
                        {"window_start": w.window_start, "window_end": w.window_end, "window_text": w.window_text,
                         "recorded_at": w.recorded_at})
                return {
                    "program": row.model_dump() if row else {"program_id": program_id, "registered": False},
                    "milestones": [{**m.model_dump(), "history": history.get(m.milestone_id, [])}
                                   for m in milestones],
                    "targets": [t.model_dump() for t in targets],
                }

        found = await asyncio.to_thread(q)
        if found is None:
            raise HTTPException(404, "no such program")
        return found

    return api
