"""Budget read queries: rollups (실/과/전체, by account, as of any date), the program list, one
program with its parts, history, amendments, plan and alerts, and the lines held out of totals.

Totals count programs of record only (scope "record"): a part is shown on its parent's page and
an unlinked line is listed for review, neither is ever added to a total. The 세출 total leaves
out 기금 lines; `by account` shows every account, 기금 included, beside it.

A 과's own execution of record (a report's 과별 집행 현황, `budget.division_snapshot`) is shown
in the division view as `reported`, beside the sum of its programs with the `difference`; never
added to a total, and shown even for a division none of whose programs is in the view.

Without `as_of` each program shows its latest known line (whatever its effective date), every
recorded amendment and its latest snapshot. With `as_of=D`: the line in effect on D (latest
effective date on or before D; an undated line counts from the start; a program whose every
line takes effect after D is not in the view yet), the amendments effective by D and the latest
snapshot on or before D. The classification (scope, account, parent) is the latest known: it is
knowledge about the line, not a fact that changes over the year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services.budget import domain
from services.budget.service import Config
from services.budget.store import (
    BudgetAlert,
    BudgetAmendment,
    BudgetDivisionSnapshot,
    BudgetPlan,
    BudgetProgram,
    amendments_of_year,
    division_snapshots_as_of,
    execution_as_of,
    line_versions_of,
    line_versions_of_year,
    load_milestones,
    load_plans,
    plan_of,
    series,
    version_of,
)

Status = Literal["ok", "warning", "critical", "slipped", "over_execution", "year_end_risk", "alerting",
                 "unbudgeted"]
Sort = Literal["program_id", "gap", "rate", "current", "spent", "title"]
Scope = Literal["record", "part", "unlinked"]


def budgeted_programs(session: Session, fiscal_year: int) -> list[BudgetProgram]:
    return list(session.exec(select(BudgetProgram).where(
        BudgetProgram.fiscal_year == fiscal_year, col(BudgetProgram.original).is_not(None)
    ).order_by(col(BudgetProgram.program_id))).all())


def latest_fiscal_year(session: Session) -> int | None:
    year: int | None = session.exec(select(sa.func.max(BudgetProgram.fiscal_year))).one()
    return year


def funding_starts(session: Session, cfg: Config, program_ids: list[str], fiscal_year: int) -> dict[str, date]:
    """Each program's first funding milestone of the year, where it has one."""
    out: dict[str, date] = {}
    for pid, points in load_milestones(session, program_ids).items():
        start = domain.funding_start(points.values(), fiscal_year, cfg.plan)
        if start is not None:
            out[pid] = start
    return out


@dataclass(frozen=True)
class Figures:
    """One program's figures on a date (or its latest)."""

    original: int
    carried_over: int
    supplementary: int
    committed: int | None
    spent: int
    as_of: date | None
    effective_date: date | None  # of the line in effect

    @property
    def current(self) -> int:
        return self.original + self.carried_over + self.supplementary


class AsOf:
    """The figures of a fiscal year's programs on one date, read in a few bulk queries."""

    def __init__(self, session: Session, fiscal_year: int, on: date) -> None:
        self.on = on
        self.versions = line_versions_of_year(session, fiscal_year)
        self.amendments = amendments_of_year(session, fiscal_year)
        self.executed = execution_as_of(session, fiscal_year, on)

    def figures(self, row: BudgetProgram) -> Figures | None:
        """None when no line of the program is in effect on the date."""
        versions = self.versions.get(row.program_id)
        if versions:
            budget = domain.budget_on(versions, self.amendments.get(row.program_id, []), self.on)
            if budget is None:
                return None
            line = domain.version_on(versions, self.on)
            effective = line.effective_date if line else None
        elif row.original is not None:  # a line recorded before lines had versions
            budget, effective = (row.original, row.carried_over, row.supplementary), row.effective_date
        else:
            return None
        # No snapshot by then: nothing reported spent yet.
        snap_as_of, committed, spent = self.executed.get(row.program_id, (None, 0, 0))
        return Figures(*budget, committed, spent, snap_as_of, effective)


def latest_figures(row: BudgetProgram) -> Figures:
    return Figures(row.original or 0, row.carried_over, row.supplementary, row.committed, row.spent, row.as_of,
                   row.effective_date)


def rollup_lines(session: Session, cfg: Config, fiscal_year: int, as_of: date | None) -> list[domain.Line]:
    """Each budgeted program of record as a rollup line: its latest view, or with `as_of` its
    figures on that date against the plan of that date."""
    programs = [p for p in budgeted_programs(session, fiscal_year) if p.scope == "record"]
    if as_of is None:
        return [domain.Line(p.office, p.division, p.original or 0, p.carried_over, p.supplementary, p.committed,
                            p.spent, p.plan_rate, p.account) for p in programs]
    at = AsOf(session, fiscal_year, as_of)
    ids = [p.program_id for p in programs]
    plans = load_plans(session, [(pid, fiscal_year) for pid in ids])
    starts = funding_starts(session, cfg, ids, fiscal_year)
    lines = []
    for p in programs:
        f = at.figures(p)
        if f is None:
            continue
        monthly = plans.get((p.program_id, fiscal_year))
        plan = None if cfg.plan.excludes(p.category, p.title) else domain.plan_rate(
            as_of, fiscal_year, cfg.plan, monthly, None if monthly else starts.get(p.program_id))
        lines.append(domain.Line(p.office, p.division, f.original, f.carried_over, f.supplementary, f.committed,
                                 f.spent, plan, p.account))
    return lines


def figures_json(r: domain.Rollup) -> dict[str, Any]:
    return {
        "programs": r.programs, "original": r.original, "carried_over": r.carried_over,
        "supplementary": r.supplementary, "current": r.current, "committed": r.committed,
        "committed_unknown": r.committed_unknown, "spent": r.spent, "balance": r.balance, "rate": r.rate,
        "commit_rate": r.commit_rate, "plan_rate": r.plan, "gap": r.gap,
    }


def _held_out(session: Session, fiscal_year: int, as_of: date | None) -> dict[str, dict[str, int]]:
    """Parts and unlinked lines: counted and summed here so a reader sees what the totals leave out."""
    rows = session.exec(select(BudgetProgram).where(
        BudgetProgram.fiscal_year == fiscal_year, col(BudgetProgram.original).is_not(None),
        col(BudgetProgram.scope).in_(("part", "unlinked")))).all()
    at = AsOf(session, fiscal_year, as_of) if as_of is not None and rows else None
    out = {scope: {"programs": 0, "current": 0, "spent": 0} for scope in ("part", "unlinked")}
    for r in rows:
        f = at.figures(r) if at is not None else latest_figures(r)
        if f is None:
            continue
        item = out[r.scope]
        item["programs"] += 1
        item["current"] += f.current
        item["spent"] += f.spent
    return out


def reported_of(snap: BudgetDivisionSnapshot | None) -> domain.Reported | None:
    if snap is None:
        return None
    return domain.Reported(snap.as_of, snap.current, snap.committed, snap.spent, snap.original)


def reported_json(reported: domain.Reported | None, programs: domain.Rollup,
                  snap: BudgetDivisionSnapshot | None = None) -> dict[str, Any]:
    """A 과's or 실's figures of record (a 과별 집행 현황 row, a 예산현황's 소계 or 계) beside the
    sum of its programs. `snap` (absent for the 계 of several 실) adds where they were printed."""
    if reported is None:
        return {"reported": None, "difference": None}
    return {
        "reported": {"as_of": reported.as_of, "original": reported.original, "current": reported.current,
                     "committed": reported.committed, "spent": reported.spent,
                     "rate": None if reported.spent is None or reported.current is None
                     else domain.execution_rate(reported.spent, reported.current),
                     "unit": snap.unit if snap else None, "revision": snap.revision if snap else None,
                     "source_ref": snap.source_ref if snap else None},
        "difference": domain.reconcile_division(reported, programs),
    }


def summary(s: Session, cfg: Config, fiscal_year: int, as_of: date | None, account: str | None) -> dict[str, Any]:
    lines = rollup_lines(s, cfg, fiscal_year, as_of)
    divisions, offices, total = domain.rollup(domain.of_account(lines, account))
    # Figures of record of a 과 or a 실 (the 세출 view only: they cover the whole 과 or 실, not
    # one account). A division or office they name is shown even when none of its programs is in
    # the view.
    facts = division_snapshots_as_of(s, fiscal_year, as_of) if account is None else {}
    for office, division in facts:
        if division is not None:
            divisions.setdefault((office, division), domain.Rollup())
        offices.setdefault(office, domain.Rollup())
    office_facts = {office: facts.get((office, None)) for office in offices}
    # The 계: the 실's own when the view is one 실; several 실 add up only when each states its own.
    whole = [reported_of(snap) for snap in office_facts.values()]
    total_reported = domain.combine_reported([r for r in whole if r is not None]) if all(whole) else None
    total_snap = next(iter(office_facts.values())) if len(office_facts) == 1 else None

    def division_item(o: str | None, d: str | None, r: domain.Rollup) -> dict[str, Any]:
        snap = facts.get((o, d))
        return {"division": d, **figures_json(r), **reported_json(reported_of(snap), r, snap)}

    unbudgeted = s.exec(select(sa.func.count()).select_from(BudgetProgram).where(
        BudgetProgram.fiscal_year == fiscal_year, col(BudgetProgram.original).is_(None))).one()
    office_items = []
    for office in sorted(offices, key=lambda o: o or ""):
        snap = office_facts[office]
        office_items.append({
            "office": office, **figures_json(offices[office]),
            **reported_json(reported_of(snap), offices[office], snap),
            "divisions": [division_item(o, d, r)
                          for (o, d), r in sorted(divisions.items(), key=lambda kv: (kv[0][1] or "")) if o == office],
        })
    return {
        "fiscal_year": fiscal_year, "as_of": as_of, "unit": "원", "account": account,
        "offices": office_items,
        "divisions": [{"office": o, **division_item(o, d, r)}
                      for (o, d), r in sorted(divisions.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or ""))],
        "total": {**figures_json(total), **reported_json(total_reported, total, total_snap)},
        "accounts": {name: figures_json(r) for name, r in sorted(domain.by_account(lines).items())},
        "held_out": _held_out(s, fiscal_year, as_of),
        "unbudgeted_programs": unbudgeted,
        "note": NOTE,
    }


NOTE = ("합계는 예산 라인이 있는 세부사업만 포함합니다. 기금은 세출 합계에서 제외하고 accounts에 따로 보입니다"
        " (account=기금으로 조회). 하위 항목(part)과 미연결 항목(unlinked)은 held_out에만 보이며, 집행 보고만 있는"
        " 사업은 unbudgeted_programs입니다. committed는 원인행위액이 알려진 사업의 합이며 committed_unknown개"
        " 사업은 지출액만 보고되어 원인행위 기준 집행률은 비워 둡니다. 과·실·계의 reported는 보고서에 인쇄된"
        " 수치(과별 집행 현황, 예산현황의 소계·계; 기준일 as_of, as_of 조회 시 그날 이전의 최신)이며 합계에"
        " 더하지 않고, difference는 reported − 소속 사업 합입니다 (세출 조회에서만 표시). 보고서 수치는 표의"
        " 단위(unit)로 반올림되어 있어 사업 합과 반올림만큼 다를 수 있습니다.")


def program_json(r: BudgetProgram) -> dict[str, Any]:
    b = r.to_domain()
    return {
        "program_id": r.program_id, "fiscal_year": r.fiscal_year, "title": r.title, "office": r.office,
        "division": r.division, "category": r.category, "account": r.account, "scope": r.scope,
        "parent_program_id": r.parent_program_id, "effective_date": r.effective_date,
        "original": r.original, "carried_over": r.carried_over,
        "supplementary": r.supplementary, "current_budget": b.current_budget, "committed": r.committed,
        "spent": r.spent, "balance": b.balance, "rate": b.rate, "commit_rate": b.commit_rate,
        "plan_rate": r.plan_rate, "gap": r.gap, "projected_rate": r.projected_rate,
        "as_of": r.as_of, "revision": r.revision, "snapshots": r.snapshots,
        "level": r.level, "over_level": r.over_level, "year_end_level": r.year_end_level,
        "budget_known": r.original is not None,
    }


def figures_on(item: dict[str, Any], f: Figures) -> dict[str, Any]:
    """A program's JSON with its figures replaced by those on a date."""
    current = f.current
    rate = domain.execution_rate(f.spent, current)
    return {**item, "original": f.original, "carried_over": f.carried_over, "supplementary": f.supplementary,
            "current_budget": current, "committed": f.committed, "spent": f.spent, "balance": current - f.spent,
            "rate": rate, "commit_rate": None if f.committed is None else domain.execution_rate(f.committed, current),
            "as_of": f.as_of, "effective_date": f.effective_date}


PROGRAM_COLUMNS = ("program_id", "fiscal_year", "office", "division", "title", "account", "scope",
                   "parent_program_id", "original", "carried_over", "supplementary", "current_budget", "committed",
                   "spent", "balance", "rate", "commit_rate", "plan_rate", "gap", "projected_rate", "as_of", "level",
                   "over_level", "year_end_level")


def programs_stmt(fiscal_year: int | None, office: str | None, division: str | None, status: Status | None,
                  scope: Scope | None = None, account: str | None = None) -> Any:
    stmt = select(BudgetProgram)
    if fiscal_year is not None:
        stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
    if office:
        stmt = stmt.where(BudgetProgram.office == office)
    if division:
        stmt = stmt.where(BudgetProgram.division == division)
    if scope:
        stmt = stmt.where(BudgetProgram.scope == scope)
    if account == domain.NO_ACCOUNT:
        stmt = stmt.where(col(BudgetProgram.account).is_(None))
    elif account:
        stmt = stmt.where(BudgetProgram.account == account)
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


def order(sort: Sort) -> list[Any]:
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


def list_programs(s: Session, stmt: Any, sort: Sort, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    total: int = s.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
    rows = s.exec(stmt.order_by(*order(sort)).offset(offset).limit(limit)).all()
    return total, [program_json(r) for r in rows]


def _plan_json(cfg: Config, row: BudgetProgram, monthly: list[tuple[int, Decimal]] | None,
               funding_start: date | None, current: int | None) -> dict[str, Any]:
    if cfg.plan.excludes(row.category, row.title) or row.scope != "record":
        return {"source": "excluded", "basis_text": None, "points": []}
    basis = domain.plan_basis(monthly)
    start = None if monthly else funding_start
    points = []
    for month, rate in domain.monthly_plan(row.fiscal_year, cfg.plan, monthly, start):
        amount = int((rate * current / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if current else None
        points.append({"month": month, "cumulative_rate": rate, "planned_amount": amount})
    return {"source": "monthly" if monthly else "default", "basis": basis,
            "basis_text": domain.basis_label(basis, cfg.plan, start), "funding_start": start, "points": points,
            "published": [{"month": m, "cumulative_rate": r} for m, r in monthly] if monthly else None}


def program_detail(s: Session, cfg: Config, program_id: str, fiscal_year: int | None,
                   as_of: date | None = None) -> dict[str, Any] | None:
    stmt = select(BudgetProgram).where(BudgetProgram.program_id == program_id)
    if fiscal_year is not None:
        stmt = stmt.where(BudgetProgram.fiscal_year == fiscal_year)
    row = s.exec(stmt.order_by(col(BudgetProgram.fiscal_year).desc())).first()
    if row is None:
        return None
    year = row.fiscal_year
    plan_row = s.get(BudgetPlan, (row.program_id, year))
    monthly = plan_of(plan_row) if plan_row else None
    start = funding_starts(s, cfg, [program_id], year).get(program_id)
    excluded = cfg.plan.excludes(row.category, row.title) or row.scope != "record"
    versions = line_versions_of(s, program_id, year)
    lines = [version_of(v.model_dump()) for v in versions]
    amendment_rows = s.exec(select(BudgetAmendment).where(
        BudgetAmendment.program_id == program_id, BudgetAmendment.fiscal_year == year
    ).order_by(col(BudgetAmendment.effective_date), col(BudgetAmendment.id))).all()
    points = [a.point() for a in amendment_rows]

    def current_on(day: date) -> int | None:
        if not lines:
            return row.to_domain().current_budget
        budget = domain.budget_on(lines, points, day)
        return None if budget is None else sum(budget)

    history = []
    for h in series(s, program_id, year):
        if as_of is not None and h.as_of > as_of:
            continue
        current = current_on(h.as_of)  # the budget in effect on the snapshot's date: its figures of record
        plan = None if excluded else domain.plan_rate(h.as_of, year, cfg.plan, monthly, None if monthly else start)
        rate = domain.execution_rate(h.spent, current)
        history.append({"as_of": h.as_of, "revision": h.revision, "committed": h.committed, "spent": h.spent,
                        "current_budget": current, "rate": rate,
                        "commit_rate": None if h.committed is None else domain.execution_rate(h.committed, current),
                        "plan_rate": plan, "gap": (plan - rate) if plan is not None and rate is not None else None})
    alerts = s.exec(select(BudgetAlert).where(
        BudgetAlert.program_id == program_id, BudgetAlert.fiscal_year == year
    ).order_by(col(BudgetAlert.as_of), col(BudgetAlert.created_at), col(BudgetAlert.seq))).all()
    parts = s.exec(select(BudgetProgram).where(
        BudgetProgram.parent_program_id == program_id, BudgetProgram.fiscal_year == year
    ).order_by(col(BudgetProgram.program_id))).all()

    item = program_json(row)
    part_items = [program_json(p) for p in parts]
    current = row.to_domain().current_budget
    if as_of is not None:
        at = AsOf(s, year, as_of)
        f = at.figures(row)
        if f is None:
            item = {**item, **{k: None for k in ("original", "carried_over", "supplementary", "current_budget",
                                                 "committed", "spent", "balance", "rate", "commit_rate")}}
            current = None
        else:
            item, current = figures_on(item, f), f.current
        item.update(plan_rate=None if excluded or current is None else domain.plan_rate(
            as_of, year, cfg.plan, monthly, None if monthly else start), gap=None)
        if item["plan_rate"] is not None and item["rate"] is not None:
            item["gap"] = item["plan_rate"] - item["rate"]
        part_items = [figures_on(p_item, pf) for p, p_item in zip(parts, part_items, strict=True)
                      if (pf := at.figures(p)) is not None]
    # The report line the figures came from: that of the line shown (in effect on `as_of`).
    shown = [v for v in versions if as_of is None or v.since <= as_of]
    return {
        **item,
        "source_ref": shown[-1].source_ref if shown else None,
        "view_as_of": as_of,
        "parts": part_items,
        "lines": [{"effective_date": v.effective_date, "original": v.original, "carried_over": v.carried_over,
                   "supplementary": v.supplementary, "account": v.account, "scope": v.scope,
                   "parent_program_id": v.parent_program_id, "recorded_at": v.recorded_at,
                   "source_ref": v.source_ref} for v in versions],
        "history": history,
        "amendments": [{"amendment_id": a.amendment_id, "before": a.before, "change": a.change, "after": a.after,
                        "reason": a.reason, "effective_date": a.effective_date, "effective_from": a.effective,
                        "in_effect": as_of is None or a.effective <= as_of, "recorded_at": a.recorded_at}
                       for a in amendment_rows],
        "plan": _plan_json(cfg, row, monthly, start, current),
        "alerts": [{"event_id": a.event_id, "rule": a.rule, "status": a.status, "severity": a.severity,
                    "as_of": a.as_of, "summary": a.summary, "figures": a.figures} for a in alerts
                   if as_of is None or (a.as_of is not None and a.as_of <= as_of)],
    }


def held_out_lines(s: Session, fiscal_year: int | None, scope: Scope, limit: int, offset: int) -> dict[str, Any]:
    stmt = programs_stmt(fiscal_year, None, None, None, scope)
    total, items = list_programs(s, stmt, "program_id", limit, offset)
    return {"items": items, "total": total, "offset": offset, "limit": limit}


def unknown_programs(s: Session, fiscal_year: int | None, limit: int, offset: int) -> dict[str, Any]:
    """Programs that report execution but have no budget line (kept, listed for review)."""
    stmt = programs_stmt(fiscal_year, None, None, "unbudgeted")
    total = s.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
    rows = s.exec(stmt.order_by(col(BudgetProgram.program_id)).offset(offset).limit(limit)).all()
    return {"items": [{"program_id": r.program_id, "fiscal_year": r.fiscal_year, "as_of": r.as_of,
                       "committed": r.committed, "spent": r.spent, "snapshots": r.snapshots,
                       "updated_at": r.updated_at} for r in rows],
            "total": total, "offset": offset, "limit": limit}
