"""Programs read API: the register (paged, by division, status, kind and parent), one program's
timeline with history, targets with progress, open alerts and its parts; overdue, upcoming and
to-review lists. Action items (audit findings, kind `action_item`) are listed with
`?kind=action_item`; their follow-ups are milestones, overdue like any other.
Program ids may contain "/" (the importer's `과/사업명`): the program route accepts them."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any, Literal, get_args

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import Session, col, func, select

from contracts.programs import ProgramKind
from services.common.auth import Reader, office_scope
from services.common.params import FiscalYear, Offset
from services.common.runtime import Runtime
from services.programs import domain
from services.programs.service import Clock, Config, open_alerts
from services.programs.store import (
    Milestone,
    MilestoneWindow,
    Occurrence,
    Program,
    ProgramsAlert,
    Target,
    TargetProgress,
)

Status = Literal["late", "at_risk", "on_track", "done", "no_schedule"]
STATUSES: tuple[str, ...] = get_args(Status)


def program_json(p: Program) -> dict[str, Any]:
    return {
        "program_id": p.program_id, "fiscal_year": p.fiscal_year, "title": p.title, "office": p.office,
        "division": p.division, "team": p.team, "status": p.status, "registered": p.registered,
        "contacts": p.contacts, "purpose": p.purpose, "method": p.method, "agency": p.agency,
        "period_text": p.period_text, "period_start": p.period_start, "period_end": p.period_end,
        "budget_program_ids": p.budget_program_ids, "source_ref": p.source_ref,
        "kind": p.kind, "parent_program_id": p.parent_program_id,
    }


def alert_json(a: ProgramsAlert) -> dict[str, Any]:
    return {"fingerprint": a.fingerprint, "rule": a.rule, "severity": a.severity, "status": a.status,
            "milestone_id": a.milestone_id, "occurrence": a.occurrence, "target_id": a.target_id,
            "summary": a.summary, "figures": a.figures, "starts_at": a.starts_at, "updated_at": a.updated_at}


def _occurrence_rows(s: Session, today: date, division: str | None, *, overdue: bool,
                     days: int = 0) -> list[dict[str, Any]]:
    stmt = (select(Occurrence, Milestone, Program)
            .join(Milestone, (col(Milestone.program_id) == col(Occurrence.program_id))
                  & (col(Milestone.milestone_id) == col(Occurrence.milestone_id)))
            .join(Program, col(Program.program_id) == col(Occurrence.program_id))
            .where(col(Occurrence.active), col(Occurrence.done).is_(False)))
    if overdue:
        stmt = stmt.where(Occurrence.overdue_level != "ok")
    else:
        stmt = stmt.where(col(Occurrence.window_end) >= today,
                          col(Occurrence.window_end) <= today + timedelta(days=days))
    if division:
        stmt = stmt.where(Program.division == division)
    out = []
    for o, m, p in s.exec(stmt.order_by(col(Occurrence.window_end), col(Occurrence.program_id))).all():
        assert o.window_end is not None
        out.append({
            "program_id": p.program_id, "program_title": p.title, "division": p.division, "office": p.office,
            "milestone_id": m.milestone_id, "title": m.title, "occurrence": o.key or None,
            "window_start": o.window_start, "window_end": o.window_end, "window_text": m.window_text,
            "status": m.status, "overdue_level": o.overdue_level,
            **({"days_late": (today - o.window_end).days} if overdue else
               {"days_left": (o.window_end - today).days}),
            "source_ref": m.source_ref,
        })
    return out


def router(rt: Runtime, clock: Clock, cfg: Config | None = None) -> APIRouter:
    api = APIRouter(prefix="/v1/programs", tags=["programs"])

    @api.get("")
    async def programs(who: Reader, division: str | None = None, office: str | None = None,
                       status: Status | None = None,
                       fiscal_year: FiscalYear = None,
                       kind: ProgramKind | None = Query(None, description="program | part | action_item"),
                       parent: str | None = Query(None, description="the parts of this program"),
                       limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict[str, Any]:
        office = office_scope(who, office)

        def q() -> dict[str, Any]:
            stmt = select(Program)
            if division:
                stmt = stmt.where(Program.division == division)
            if office:
                stmt = stmt.where(Program.office == office)
            if status:
                stmt = stmt.where(Program.status == status)
            if fiscal_year:
                stmt = stmt.where(Program.fiscal_year == fiscal_year)
            if kind:
                stmt = stmt.where(Program.kind == kind)
            if parent:
                stmt = stmt.where(Program.parent_program_id == parent)
            with rt.db.read() as s:
                total = s.exec(select(func.count()).select_from(stmt.subquery())).one()
                rows = s.exec(stmt.order_by(col(Program.program_id)).offset(offset).limit(limit)).all()
                ids = [r.program_id for r in rows]
                counts: dict[str, dict[str, int]] = {i: {"milestones": 0, "overdue": 0, "needs_review": 0,
                                                         "open_alerts": 0} for i in ids}
                for m in s.exec(select(Milestone).where(col(Milestone.program_id).in_(ids))).all():
                    c = counts[m.program_id]
                    c["milestones"] += 1
                    c["overdue"] += m.overdue_level != "ok"
                    c["needs_review"] += m.needs_review
                for a in open_alerts(s, ids):
                    counts[a.program_id]["open_alerts"] += 1
                items = [{**{k: v for k, v in program_json(r).items() if k in (
                    "program_id", "fiscal_year", "title", "office", "division", "team", "status", "registered",
                    "kind", "parent_program_id")},
                    **counts[r.program_id]} for r in rows]
                return {"as_of": clock(), "total": total, "offset": offset, "limit": limit, "items": items}

        return await asyncio.to_thread(q)

    @api.get("/overdue")
    async def overdue(who: Reader, division: str | None = None) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            today = clock()
            with rt.db.read() as s:
                return {"as_of": today, "items": _occurrence_rows(s, today, division, overdue=True)}

        return await asyncio.to_thread(q)

    @api.get("/upcoming")
    async def upcoming(who: Reader, days: int = Query(14, ge=0, le=366), division: str | None = None) -> dict[str, Any]:
        def q() -> dict[str, Any]:
            today = clock()
            with rt.db.read() as s:
                return {"as_of": today, "days": days,
                        "items": _occurrence_rows(s, today, division, overdue=False, days=days)}

        return await asyncio.to_thread(q)

    @api.get("/review")
    async def review(who: Reader, division: str | None = None) -> dict[str, Any]:
        """Milestones whose schedule text could not be judged, kept verbatim for staff; then programs
        registered without a division (unassigned), to be assigned to a 과."""
        def q() -> dict[str, Any]:
            stmt = (select(Milestone, Program).join(Program, col(Program.program_id) == col(Milestone.program_id))
                    .where(col(Milestone.needs_review)))
            if division:
                stmt = stmt.where(Program.division == division)
            with rt.db.read() as s:
                rows = s.exec(stmt.order_by(col(Milestone.program_id), col(Milestone.milestone_id))).all()
                items = [{"program_id": p.program_id, "program_title": p.title, "division": p.division,
                          "milestone_id": m.milestone_id, "title": m.title, "window_text": m.window_text,
                          "reason": m.review_reason, "source_ref": m.source_ref} for m, p in rows]
                if not division:  # a program no document assigned to a 과 waits here to be assigned
                    unassigned = s.exec(select(Program).where(col(Program.registered), col(Program.division).is_(None))
                                        .order_by(col(Program.program_id))).all()
                    items += [{"program_id": p.program_id, "program_title": p.title, "division": None,
                               "milestone_id": None, "title": p.title, "window_text": None,
                               "reason": "담당 부서(과)가 지정되지 않았습니다", "source_ref": None} for p in unassigned]
                return {"items": items}

        return await asyncio.to_thread(q)

    # Ids contain "/" (`경제정책과/서울기업지원센터운영`): `:path` takes the rest of the path, encoded
    # or not. Declared last, so /overdue, /upcoming and /review keep their own routes.
    @api.get("/{program_id:path}")
    async def program(who: Reader, program_id: str) -> dict[str, Any]:
        def q() -> dict[str, Any] | None:
            today = clock()
            with rt.db.read() as s:
                row = s.get(Program, program_id)
                if row is None:
                    return None
                milestones = s.exec(select(Milestone).where(Milestone.program_id == program_id)).all()
                windows = s.exec(select(MilestoneWindow).where(MilestoneWindow.program_id == program_id)
                                 .order_by(col(MilestoneWindow.occurred_at), col(MilestoneWindow.id))).all()
                occurrences = s.exec(select(Occurrence).where(Occurrence.program_id == program_id,
                                                              col(Occurrence.active))
                                     .order_by(col(Occurrence.window_start), col(Occurrence.key))).all()
                targets = s.exec(select(Target).where(Target.program_id == program_id)
                                 .order_by(col(Target.target_id))).all()
                progress = s.exec(select(TargetProgress).where(TargetProgress.program_id == program_id)
                                  .order_by(col(TargetProgress.as_of), col(TargetProgress.id))).all()
                alerts = open_alerts(s, [program_id])
                parts = s.exec(select(Program).where(Program.parent_program_id == program_id)
                               .order_by(col(Program.program_id))).all()
            history: dict[str, list[dict[str, Any]]] = {}
            for w in windows:
                history.setdefault(w.milestone_id, []).append(
                    {"window_start": w.window_start, "window_end": w.window_end, "window_text": w.window_text,
                     "change": w.change, "applied": w.applied, "occurred_at": w.occurred_at,
                     "source_ref": w.source_ref, "event_id": w.event_id})
            occ: dict[str, list[dict[str, Any]]] = {}
            for o in occurrences:
                occ.setdefault(o.milestone_id, []).append(
                    {"key": o.key or None, "window_start": o.window_start, "window_end": o.window_end,
                     "done": o.done, "overdue_level": o.overdue_level})
            prog: dict[str, list[dict[str, Any]]] = {}
            for pr in progress:
                prog.setdefault(pr.target_id, []).append(
                    {"value": pr.value, "as_of": pr.as_of, "source_ref": pr.source_ref})
            fallback = (row.period_start or date(row.fiscal_year, 1, 1),
                        row.period_end or date(row.fiscal_year, 12, 31))
            schedule = cfg.schedule if cfg else domain.ScheduleConfig()

            def target_json(t: Target) -> dict[str, Any]:
                e = domain.evaluate_target(t.state(fallback), today, schedule)
                return {**t.model_dump(exclude={"as_of"}), "achieved": e.achieved, "expected": e.expected,
                        "gap": e.gap, "progress": prog.get(t.target_id, [])}

            ordered = sorted(milestones, key=lambda m: (m.window_start or m.window_end or date.max, m.milestone_id))
            return {
                "as_of": today,
                "program": program_json(row),
                "milestones": [{**m.model_dump(exclude={"review_flagged", "anchor_year", "as_of"}),
                                "occurrences": occ.get(m.milestone_id, []),
                                "history": history.get(m.milestone_id, [])} for m in ordered],
                "targets": [target_json(t) for t in targets],
                "alerts": [alert_json(a) for a in alerts],
                # What is below the program (a 공사비, an event, a 내역사업): shown here, its own page too.
                "parts": [{k: v for k, v in program_json(p).items() if k in (
                    "program_id", "title", "kind", "division", "status", "source_ref")} for p in parts],
            }

        found = await asyncio.to_thread(q)
        if found is None:
            raise HTTPException(404, "no such program")
        return found

    return api
