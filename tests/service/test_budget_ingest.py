"""Invalid budget amounts are refused at the door (ingest), with an error that names the field,
and nothing of the request is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest.app import build as build_ingest
from services.ingest.domain import Checked, Policy, check
from tests import factories as f
from tests.helpers import running

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


def line_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"program_id": "P-RND", "fiscal_year": 2025, "original": 1_000_000,
                               "carried_over": 200_000}
    payload.update(changes)
    return payload


@pytest.mark.parametrize(("event_type", "payload", "field", "message"), [
    ("budget.line_set", line_payload(original=-1), "payload.original", "greater than or equal to 0"),
    ("budget.line_set", line_payload(current=1_300_000), "payload", "예산현액 1,300,000원 ≠ 본예산"),
    ("budget.line_set", line_payload(original="1,000천원"), "payload.original", "valid integer"),
    ("budget.line_set", line_payload(unit="만원"), "payload.unit", "Extra inputs"),
    ("budget.line_set", line_payload(original=1000.5), "payload.original", "valid integer"),
    ("budget.line_set", line_payload(original=True), "payload.original", "valid integer"),
    ("budget.execution_snapshot", {"program_id": "P-RND", "fiscal_year": 2025, "as_of": "2025-01-31",
                                   "committed": 10, "spent": -5}, "payload.spent", "greater than or equal to 0"),
    ("budget.amended", {"program_id": "P-RND", "fiscal_year": 2025, "amendment_id": "1차", "before": 100,
                        "change": 50, "after": 160}, "payload", "추경예산 160원 ≠ 기정예산 100 + 증감 50원"),
])
async def test_invalid_amounts_are_rejected_with_a_clear_error(make_settings, sqlite_url, event_type, payload,
                                                               field, message):
    app = build_ingest(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app) as (ingest,):
        good = f.budget_line()
        bad = f.envelope(event_type, "P-RND", payload)
        r = await ingest.post("/v1/events", headers=AUTH, json=[good, bad])
        assert r.status_code == 422, r.text
        rejected = r.json()["rejected"]
        assert {e["index"] for e in rejected} == {1}
        assert any(e["field"] == field and message in e["message"] for e in rejected), rejected
        r = await ingest.get(f"/v1/events/{good['event_id']}")
        assert r.status_code == 404  # all or nothing: the valid line was not accepted either


def test_consistent_budget_line_passes_the_same_check():
    good = f.envelope("budget.line_set", "P-RND", line_payload(current=1_200_000))
    checked = check(0, good, f.SOURCE, Policy())
    assert isinstance(checked, Checked) and checked.event.payload.current_budget == 1_200_000
