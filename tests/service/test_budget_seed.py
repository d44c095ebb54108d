"""Acceptance on the January 2025 business report (경제실 업무보고): its summary 예산현황 table,
loaded row by row as budget lines and 31 January snapshots, must give back the document's own
division subtotals (소계) and office total (계), within the rounding its reconciliation allows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from contracts import parse_event
from services.budget import service
from services.budget.app import build
from services.ingest.importer.model import BudgetRow, BudgetTable
from services.ingest.importer.tables import parse_tables
from tests import factories as f
from tests.helpers import running

DOCUMENT = "001_74008803e39ce1ad.txt"
# (summary field, table column label as the reconciliation names it)
COLUMNS = (("original", "본예산"), ("current", "예산현액"), ("spent", "지출액"))


def summary_table(seeds: Path) -> BudgetTable:
    lines = (seeds / DOCUMENT).read_text(encoding="utf-8").split("\n")
    tables, _, _ = parse_tables(lines, 2025)
    (table,) = [t for t in tables if t.kind == "summary"]
    return table


def events_for(row: BudgetRow, as_of: date) -> list[dict[str, object]]:
    assert row.division and row.original is not None and row.current is not None and row.spent is not None
    pid = f"{row.division}/{row.name}"  # 기본경비 etc. repeat in every division
    line = f.envelope("budget.line_set", pid, {
        "program_id": pid, "fiscal_year": 2025, "title": row.name, "office": "경제실", "division": row.division,
        "original": row.original, "carried_over": row.current - row.original, "current": row.current})
    # The summary prints no 원인행위액: it is unknown, not 0 and not the 지출액.
    snap = f.envelope("budget.execution_snapshot", pid, {
        "program_id": pid, "fiscal_year": 2025, "as_of": as_of.isoformat(), "committed": None, "spent": row.spent})
    return [line, snap]


async def test_summary_reproduces_the_documents_subtotals_and_total(seeds, make_settings, sqlite_url):
    table = summary_table(seeds)
    assert table.as_of == date(2025, 1, 31) and table.unit == "백만원"
    rows = [r for r in table.rows if r.kind == "row"]
    events = [parse_event(e) for r in rows for e in events_for(r, table.as_of)]
    app = build(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (client,):
        rt = app.state.runtime
        result = service.apply_batch(rt.db, service.Config.from_settings(rt.settings), events)
        assert result.applied == 2 * len(rows) and result.unknown_programs == 0
        r = await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": "2025-01-31"})
        summary = r.json()

    by_division = {d["division"]: d for d in summary["divisions"]}
    tolerance = {(rec.label, rec.column): rec.tolerance for rec in table.reconciliations}
    checked = 0
    for printed in (r for r in table.rows if r.kind == "subtotal"):
        got = by_division[printed.division]
        assert got["programs"] == sum(1 for r in rows if r.division == printed.division)
        for field, column in COLUMNS:
            allowed = tolerance[(f"{printed.division} 소계", column)]
            assert abs(got[field] - getattr(printed, field)) <= allowed, (printed.division, column)
            checked += 1
        if printed.spent_rate is not None:  # the printed 집행률, from rounded 백만원 figures
            assert abs(Decimal(got["rate"]) - printed.spent_rate) <= Decimal("0.1"), printed.division
    assert checked == 3 * 9  # nine divisions

    (total,) = [r for r in table.rows if r.kind == "total"]
    (office,) = summary["offices"]
    assert office["office"] == "경제실" and len(office["divisions"]) == 9
    for field, column in COLUMNS:
        allowed = tolerance[("계", column)]
        assert abs(summary["total"][field] - getattr(total, field)) <= allowed, column
        assert office[field] == summary["total"][field]
    # 집행률 as the document prints it: 49,232 / 682,752 백만원
    assert summary["total"]["rate"] == "7.2"
    # No 원인행위액 was printed: none is made up, and no rate on that basis is given.
    assert (summary["total"]["committed_unknown"], summary["total"]["commit_rate"]) == (len(rows), None)
