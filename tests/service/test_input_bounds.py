"""Regression tests for what fuzzing the OpenAPIs (test_openapi_fuzz.py) found, on SQLite and
PostgreSQL: each request below was a 500 (an exception out of the database driver) or a 422 in a shape
the OpenAPI does not declare. Now each is FastAPI's usual 422, naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.budget.app import build as build_budget
from services.ingest.app import build as build_ingest
from services.notify.app import build as build_notify
from services.notify.service import ManualClock
from services.programs.app import build as build_programs
from tests.helpers import running

BIG = str(2**63)  # one past SQLite's and PostgreSQL's 64-bit integers: OverflowError / NumericValueOutOfRange

# (service, method, url, json body, the parameter the 422 names)
REFUSED: list[tuple[str, str, str, Any, list[Any]]] = [
    ("budget", "GET", f"/v1/budget/programs?fiscal_year={BIG}", None, ["query", "fiscal_year"]),
    ("budget", "GET", f"/v1/budget/programs?offset={BIG}", None, ["query", "offset"]),
    ("budget", "GET", f"/v1/budget/programs/P-RND?fiscal_year={BIG}", None, ["query", "fiscal_year"]),
    ("budget", "GET", f"/v1/budget/unlinked?offset={BIG}", None, ["query", "offset"]),
    ("budget", "GET", f"/v1/budget/unknown-programs?offset={BIG}", None, ["query", "offset"]),
    ("budget", "GET", "/v1/budget/programs?division=%00", None, ["query", "division"]),
    ("budget", "GET", "/v1/budget/programs/P%00RND", None, ["path"]),
    ("budget", "GET", "/v1/budget/summary?fiscal_year=2025&unit=%EB%A7%8C%EC%9B%90", None, ["query", "unit"]),  # 만원
    ("budget", "GET", "/v1/budget/programs?format=xml", None, ["query", "format"]),
    ("programs", "GET", f"/v1/programs?fiscal_year={BIG}", None, ["query", "fiscal_year"]),
    ("programs", "GET", f"/v1/programs?offset={BIG}", None, ["query", "offset"]),
    ("programs", "GET", "/v1/programs?status=slow", None, ["query", "status"]),
    ("programs", "GET", "/v1/programs?office=%00", None, ["query", "office"]),
    ("programs", "GET", "/v1/programs/P%00", None, ["path"]),
    ("notify", "GET", f"/v1/notifications?offset={BIG}", None, ["query", "offset"]),
    ("notify", "GET", f"/v1/audit?offset={BIG}", None, ["query", "offset"]),
    ("notify", "POST", f"/v1/inbox/x%40seoul.example/{BIG}/read", None, ["path", "delivery_id"]),
    ("notify", "POST", f"/v1/inbox/x%40seoul.example/{2**31}/read", None, ["path", "delivery_id"]),  # PG INTEGER
    ("notify", "GET", "/v1/inbox/%00", None, ["path"]),
    ("notify", "GET", "/v1/audit?actor=%00", None, ["query", "actor"]),
    ("notify", "POST", "/v1/alerts/%00/ack", {}, ["path"]),
    ("notify", "POST", "/v1/alerts/abc/ack", {"comment": "확인\x00"}, ["body", "comment"]),
    ("notify", "POST", "/v1/silences", {"matchers": [{"name": "과", "value": "경제정책과\x00"}],
                                        "ends_at": "2030-01-01T00:00:00Z", "comment": "점검"},
     ["body", "matchers", 0, "value"]),
    ("notify", "POST", "/v1/silences", {"matchers": [{"name": "과", "value": "경제정책과"}],
                                        "ends_at": "2000-01-01T00:00:00Z", "comment": "점검"}, ["body", "ends_at"]),
    ("ingest", "GET", "/v1/events/%00", None, ["path"]),
]


@pytest.fixture
async def clients(make_settings, db_url) -> Any:
    settings = make_settings(database_url=db_url, notify_tick_s=3600)
    apps = [build_ingest(settings, start_broker=False), build_budget(settings, start_broker=False),
            build_programs(settings, start_broker=False),
            build_notify(settings, start_broker=False, clock=ManualClock(datetime(2025, 2, 3, tzinfo=UTC)))]
    async with running(*apps) as found:
        yield dict(zip(("ingest", "budget", "programs", "notify"), found, strict=True))


async def test_out_of_range_numbers_and_control_characters_are_422_naming_the_parameter(clients) -> None:
    wrong = []
    for service, method, url, body, loc in REFUSED:
        resp = await clients[service].request(method, url, json=body)
        detail = resp.json().get("detail") if resp.headers.get("content-type", "").startswith("application/json") \
            else resp.text
        if resp.status_code != 422 or not isinstance(detail, list) or detail[0]["loc"] != loc:
            wrong.append(f"{method} {url}: {resp.status_code} {str(detail)[:200]}")
    assert not wrong, "\n".join(wrong)


async def test_the_bounds_still_let_every_ordinary_request_through(clients) -> None:
    for service, url in [("budget", "/v1/budget/programs?fiscal_year=2025&offset=1000000&unit=억원&format=json"),
                         ("budget", "/v1/budget/summary?fiscal_year=2025&unit=백만원"),
                         ("programs", "/v1/programs?fiscal_year=2025&status=late&offset=0&office=경제실"),
                         ("notify", "/v1/notifications?offset=1000000"), ("notify", "/v1/audit?actor=김지영")]:
        resp = await clients[service].get(url)
        assert resp.status_code == 200, (url, resp.text[:200])


async def test_the_audit_log_says_its_instants_are_utc(clients) -> None:
    """SQLite hands back the stored instant without a zone; the API said `2025-…T…` with no offset,
    which is not the `date-time` its OpenAPI declares (found by the schema check)."""
    notify = clients["notify"]
    made = await notify.post("/v1/silences", json={"matchers": [{"name": "과", "value": "경제정책과"}],
                                                   "ends_at": "2030-01-01T00:00:00Z", "comment": "점검"})
    assert made.status_code == 201, made.text
    rows = (await notify.get("/v1/audit?action=silence.create")).json()
    assert len(rows) == 1
    at = datetime.fromisoformat(rows[0]["at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - at).total_seconds()) < 600
