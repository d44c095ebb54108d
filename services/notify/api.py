"""Notify read API: deliveries (an inbox per recipient) and the alerts it knows."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from sqlmodel import col, select

from services.common.runtime import Runtime
from services.notify.store import NotifyAlert, NotifyDelivery


def router(rt: Runtime) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["notify"])

    @api.get("/notifications")
    async def notifications(recipient: str | None = None, outcome: str | None = None,
                            limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            stmt = select(NotifyDelivery)
            if recipient:
                stmt = stmt.where(NotifyDelivery.address == recipient)
            if outcome:
                stmt = stmt.where(NotifyDelivery.outcome == outcome)
            with rt.db.read() as s:
                rows = s.exec(stmt.order_by(col(NotifyDelivery.id).desc()).offset(offset).limit(limit)).all()
                return {"items": [r.model_dump(exclude={"body_html"}) for r in rows]}

        return await asyncio.to_thread(q)

    @api.get("/alerts")
    async def alerts(status: str | None = "firing") -> dict[str, Any]:
        def q() -> dict[str, Any]:
            stmt = select(NotifyAlert)
            if status:
                stmt = stmt.where(NotifyAlert.status == status)
            with rt.db.read() as s:
                return {"items": [r.model_dump() for r in s.exec(stmt.order_by(col(NotifyAlert.updated_at))).all()]}

        return await asyncio.to_thread(q)

    return api
