"""The budget view, fed what the importer publishes for 001 and 000, says what 001 says as of its
기준일: the importer's end-to-end reconciliation run against the real budget read API (SQLite,
no broker)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from contracts import parse_event
from services.budget import service
from services.budget.app import build
from services.ingest.importer.cli import map_files
from services.ingest.importer.verify import render_verification, verify_documents
from tests.helpers import running
from tests.report_001 import SUBTOTALS, TOTAL

M = 1_000_000


def _seed(seeds: Path, prefix: str) -> Path:
    found = sorted(seeds.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.skip(f"seed {prefix} absent")
    return found[0]


async def test_budget_view_as_of_the_report_date_is_the_report(make_settings, sqlite_url, seeds):
    summary = map_files([_seed(seeds, "001"), _seed(seeds, "000")], progress=False)
    app = build(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (client,):
        rt = app.state.runtime
        events = [parse_event(e.model_dump(mode="json")) for e in summary.envelopes
                  if e.event_type.startswith("budget.")]
        service.apply_batch(rt.db, service.Config.from_settings(rt.settings), events)
        resp = await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": "2025-01-31"})
        assert resp.status_code == 200, resp.text
        data = resp.json()
    results = verify_documents(summary.documents, "http://budget", timeout=0, fetch=lambda _: data,
                               stream=io.StringIO())
    assert len(results) == 1 and results[0].checked == 20
    assert results[0].ok, "\n".join(render_verification(results))
    # the 계 as printed in 001 (백만원): 682,752 / 49,232
    office = next(o for o in data["offices"] if o["office"] == "경제실")
    assert abs(office["current"] - 682_752 * M) <= 61 * M
    assert abs(office["spent"] - 49_232 * M) <= 61 * M




def _figures(item: dict) -> tuple[int, int, int]:
    return item["original"], item["current"], item["spent"]


async def test_the_reports_subtotals_and_total_are_the_view_s_reported_figures(make_settings, sqlite_url, seeds):
    """Every 소계 and the 계 of 001 are in the view as printed (`reported`), on and after the
    기준일 only, with the difference from the sum of the programs (rounding: some programs carry
    exact 천원 figures of their detail tables, the report prints every row rounded)."""
    summary = map_files([_seed(seeds, "001"), _seed(seeds, "000")], progress=False)
    app = build(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (client,):
        rt = app.state.runtime
        events = [parse_event(e.model_dump(mode="json")) for e in summary.envelopes
                  if e.event_type.startswith("budget.")]
        service.apply_batch(rt.db, service.Config.from_settings(rt.settings), events)
        views = {}
        for as_of in ("2025-01-30", "2025-01-31"):
            resp = await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": as_of})
            assert resp.status_code == 200, resp.text
            views[as_of] = resp.json()
        csv = (await client.get("/v1/budget/summary", params={"fiscal_year": 2025, "as_of": "2025-01-31",
                                                              "format": "csv"})).text
    data = views["2025-01-31"]
    by_division = {d["division"]: d for d in data["divisions"]}
    assert set(by_division) == set(SUBTOTALS)
    for name, printed in SUBTOTALS.items():
        d = by_division[name]
        reported = d["reported"]
        assert _figures(reported) == tuple(v * M for v in printed), name
        assert (reported["as_of"], reported["unit"], reported["committed"]) == ("2025-01-31", "백만원", None)
        assert reported["source_ref"]["section"] == "예산현황"
        # the difference is the report's figure less the sum of the programs, within the rounding
        for column in ("original", "current", "spent"):
            assert d["difference"][column] == reported[column] - d[column]
            assert abs(d["difference"][column]) <= (d["programs"] + 1) * M // 2, (name, column)
    # 경제정책과: the programs add up to 120,664.973 백만원 of 본예산; the report prints 120,664.
    econ = by_division["경제정책과"]
    assert econ["original"] != econ["reported"]["original"]
    assert round(econ["original"] / M) == 120_665
    # The 계: the 실's own figures, and the whole view's (one 실 here)
    office = next(o for o in data["offices"] if o["office"] == "경제실")
    assert len(data["offices"]) == 1
    for item in (office, data["total"]):
        assert _figures(item["reported"]) == tuple(v * M for v in TOTAL[:3])
        assert item["reported"]["rate"] == TOTAL[3]
        assert item["difference"]["original"] == item["reported"]["original"] - item["original"]
    assert data["total"]["reported"]["source_ref"]["line"] == office["reported"]["source_ref"]["line"]
    # the CSV carries both: the sums and, beside them, the report's figures
    total_row = next(line for line in csv.splitlines() if line.startswith("계,"))
    assert total_row.startswith(f"계,,,{data['total']['programs']},{data['total']['original']},")
    assert total_row.endswith(",2025-01-31,668901000000,682752000000,,49232000000,7.2")

    # The day before the 기준일 the report's figures are not yet facts
    early = views["2025-01-30"]
    assert early["total"]["reported"] is None
    assert all(o["reported"] is None for o in early["offices"])
    assert all(d["reported"] is None for d in early["divisions"])
