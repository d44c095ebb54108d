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
