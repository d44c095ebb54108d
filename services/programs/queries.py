"""Programs read queries: the register (paged, with counts), overdue and upcoming occurrences,
what waits for review, and one program's timeline with history, targets with progress, open
alerts and parts. Plain dicts in the API's shapes (`schemas`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from services.programs import domain
from services.programs.service import open_alerts
from services.programs.store import (
    Milestone,
    MilestoneWindow,
    Occurrence,
    Program,
    ProgramsAlert,
    Target,
    TargetProgress,
)

LIST_FIELDS = ("program_id", "fiscal_year", "title", "office", "division", "team", "status", "registered", "kind",
               "parent_program_id")
PART_FIELDS = ("program_id", "title", "kind", "division", "status", "source_ref")


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


def register(s: Session, *, division: str | None, office: str | None, status: str | None,
             fiscal_year: int | None, kind: str | None, parent: str | None, limit: int,
             offset: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of the register with each program's milestone, overdue, review and alert counts."""
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
    items = [{**{k: v for k, v in program_json(r).items() if k in LIST_FIELDS}, **counts[r.program_id]}
             for r in rows]
    return total, items


def occurrences(s: Session, today: date, division: str | None, *, overdue: bool,
                days: int = 0) -> list[dict[str, Any]]:
    """Open occurrences past their window (`overdue`), or ending within `days`."""
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


def review(s: Session, division: str | None) -> list[dict[str, Any]]:
    """Milestones whose schedule text could not be judged; then, without `division`, programs
    registered without a 과 (to be assigned)."""
    stmt = (select(Milestone, Program).join(Program, col(Program.program_id) == col(Milestone.program_id))
            .where(col(Milestone.needs_review)))
    if division:
        stmt = stmt.where(Program.division == division)
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
    return items


def program_detail(s: Session, program_id: str, today: date,
                   schedule: domain.ScheduleConfig) -> dict[str, Any] | None:
    """One program's timeline: milestones with occurrences and window history, targets judged on
    `today` with their progress, open alerts, parts."""
    row = s.get(Program, program_id)
    if row is None:
        return None
    milestones = s.exec(select(Milestone).where(Milestone.program_id == program_id)).all()
    windows = s.exec(select(MilestoneWindow).where(MilestoneWindow.program_id == program_id)
                     .order_by(col(MilestoneWindow.occurred_at), col(MilestoneWindow.id))).all()
    active = s.exec(select(Occurrence).where(Occurrence.program_id == program_id, col(Occurrence.active))
                    .order_by(col(Occurrence.window_start), col(Occurrence.key))).all()
    targets = s.exec(select(Target).where(Target.program_id == program_id).order_by(col(Target.target_id))).all()
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
    for o in active:
        occ.setdefault(o.milestone_id, []).append(
            {"key": o.key or None, "window_start": o.window_start, "window_end": o.window_end,
             "done": o.done, "overdue_level": o.overdue_level})
    prog: dict[str, list[dict[str, Any]]] = {}
    for pr in progress:
        prog.setdefault(pr.target_id, []).append({"value": pr.value, "as_of": pr.as_of, "source_ref": pr.source_ref})
    fallback = (row.period_start or date(row.fiscal_year, 1, 1), row.period_end or date(row.fiscal_year, 12, 31))

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
        "parts": [{k: v for k, v in program_json(p).items() if k in PART_FIELDS} for p in parts],
    }
